"""Achievements: the badge templates an issuer awards."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, UTCDateTime, utcnow


class Achievement(Base):
    __tablename__ = "achievements"
    __table_args__ = (Index("ix_achievements_issuer_created", "issuer_id", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    issuer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("issuers.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    criteria_narrative: Mapped[str | None] = mapped_column(Text)
    criteria_url: Mapped[str | None] = mapped_column(String(2048))
    image: Mapped[str | None] = mapped_column(String(2048))
    achievement_type: Mapped[str | None] = mapped_column(String(64))
    alignments: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
