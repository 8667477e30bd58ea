"""Issuers (course providers), their signing keys and their API keys."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, UTCDateTime, utcnow


class KeyStatus(StrEnum):
    active = "active"
    retired = "retired"
    compromised = "compromised"


class KeyPurpose(StrEnum):
    """What a key signs: VC-JWTs, or the issuer's embedded Data Integrity proofs."""

    jwt = "jwt"
    data_integrity = "data_integrity"  # Ed25519, eddsa-rdfc-2022, a Multikey method


class Issuer(Base):
    __tablename__ = "issuers"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    url: Mapped[str] = mapped_column(String(2048))
    email: Mapped[str | None] = mapped_column(String(320))
    description: Mapped[str | None] = mapped_column(Text)
    image: Mapped[str | None] = mapped_column(String(2048))
    algorithm: Mapped[str] = mapped_column(String(16))
    suspension: Mapped[bool] = mapped_column(Boolean, default=False)
    # Credentials carry an eddsa-rdfc-2022 proof (made first) besides their VC-JWT.
    data_integrity: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # LinkedIn "add to profile" pre-fills the organisation by id when the issuer has one.
    linkedin_organization_id: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SigningKey(Base):
    __tablename__ = "signing_keys"
    __table_args__ = (UniqueConstraint("issuer_id", "key_id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    issuer_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("issuers.id", ondelete="CASCADE"), index=True
    )
    # The DID URL fragment: the RFC 7638 thumbprint of the public key, stable forever.
    key_id: Mapped[str] = mapped_column(String(64))
    algorithm: Mapped[str] = mapped_column(String(16))
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[KeyStatus] = mapped_column(String(16), default=KeyStatus.active)
    purpose: Mapped[KeyPurpose] = mapped_column(
        String(16), default=KeyPurpose.jwt, server_default=KeyPurpose.jwt.value
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    compromised_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    issuer_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("issuers.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str | None] = mapped_column(String(100))
    # The first characters, to tell keys apart in listings; the secret itself is never stored.
    prefix: Mapped[str] = mapped_column(String(16))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
