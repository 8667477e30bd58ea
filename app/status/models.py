"""Status lists: one row per (issuer, purpose, sequence number); the bits live on the credentials."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, UTCDateTime, utcnow


class StatusPurpose(StrEnum):
    revocation = "revocation"
    suspension = "suspension"


class StatusList(Base):
    """A Bitstring Status List. Which bits are set is derived from the credentials that point at it,
    so the list changes in the same transaction as a credential's status; `version` counts those
    changes and keys the signed, cached list credential."""

    __tablename__ = "status_lists"
    __table_args__ = (UniqueConstraint("issuer_id", "purpose", "seq"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    issuer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("issuers.id", ondelete="CASCADE"))
    purpose: Mapped[StatusPurpose] = mapped_column(String(16))
    seq: Mapped[int] = mapped_column(Integer)
    size: Mapped[int] = mapped_column(Integer)
    full: Mapped[bool] = mapped_column(default=False)
    # Slots handed out so far: slot n of the list holds index P(n), P the list's keyed permutation
    # (app/status/shuffle.py). `index_key` is that secret key (hex); never published.
    next_slot: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    index_key: Mapped[str | None] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
