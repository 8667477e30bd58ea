"""The append-only audit trail: per-issuer hash chains of lifecycle events."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, UTCDateTime, utcnow


class AuditEventType(StrEnum):
    # The genesis event of every issuer's chain.
    issuer_created = "issuer.created"
    credential_issued = "credential.issued"
    credential_revoked = "credential.revoked"
    credential_suspended = "credential.suspended"
    credential_unsuspended = "credential.unsuspended"
    key_rotated = "key.rotated"
    key_added = "key.added"  # a key of another purpose (Data Integrity) beside the signing key
    key_retired = "key.retired"
    key_compromised = "key.compromised"
    api_key_created = "api_key.created"
    api_key_revoked = "api_key.revoked"


class AuditHead(Base):
    """The latest link of an issuer's chain; locking this row serialises appends to the chain."""

    __tablename__ = "audit_heads"

    issuer_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("issuers.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, default=0)
    hash: Mapped[str] = mapped_column(String(64))


class AuditEvent(Base):
    __tablename__ = "audit_events"
    __table_args__ = (UniqueConstraint("issuer_id", "seq"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    issuer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("issuers.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(40))
    subject: Mapped[str | None] = mapped_column(String(2048))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
