"""Issuance records: one row per signed credential, holding the JWT exactly as issued."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint, Uuid, false
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, UTCDateTime, utcnow


class CredentialStatus(StrEnum):
    active = "active"
    revoked = "revoked"
    suspended = "suspended"


class Credential(Base):
    __tablename__ = "credentials"
    __table_args__ = (
        UniqueConstraint("issuer_id", "idempotency_key"),
        # The issuer's own id for the row of a bulk submission: the same row never issues twice.
        # external_id leads, so a chunk's `external_id IN (…)` is an index condition whatever
        # the planner believes about the issuer's row count (a young, unanalysed table).
        UniqueConstraint("external_id", "issuer_id", name="uq_credentials_issuer_external_id"),
        UniqueConstraint("revocation_list_id", "revocation_index"),
        UniqueConstraint("suspension_list_id", "suspension_index"),
        Index("ix_credentials_issuer_issued", "issuer_id", "issued_at", "id"),
        Index("ix_credentials_achievement", "achievement_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    issuer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("issuers.id", ondelete="RESTRICT"))
    achievement_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("achievements.id", ondelete="RESTRICT")
    )
    signing_key_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("signing_keys.id", ondelete="RESTRICT")
    )
    subject_id: Mapped[str] = mapped_column(String(2048))
    # Salted SHA-256 of the recipient's email (`sha256$<hex>`) and its salt; the email is never stored.
    recipient_hash: Mapped[str | None] = mapped_column(String(80))
    recipient_salt: Mapped[str | None] = mapped_column(String(64))
    recipient_name: Mapped[str | None] = mapped_column(String(200))
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime)
    valid_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    jwt: Mapped[str] = mapped_column(Text)
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    request_hash: Mapped[str | None] = mapped_column(String(64))
    external_id: Mapped[str | None] = mapped_column(String(255))
    # Lifecycle: the status lists' bits are derived from these columns, in the same transaction.
    status: Mapped[CredentialStatus] = mapped_column(
        String(16), default=CredentialStatus.active, server_default=CredentialStatus.active.value
    )
    status_reason: Mapped[str | None] = mapped_column(Text)
    status_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revocation_list_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("status_lists.id"))
    revocation_index: Mapped[int | None] = mapped_column(Integer)
    suspension_list_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("status_lists.id"))
    suspension_index: Mapped[int | None] = mapped_column(Integer)
    # Sharing: the recipient's private management link (only its hash), and whether the
    # recipient chose to hide their display name on public pages.
    manage_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    recipient_name_hidden: Mapped[bool] = mapped_column(default=False, server_default=false())
