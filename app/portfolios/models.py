"""Freelancer portfolios: public pages of the credentials their owners chose to show."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint, Uuid, false
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, UTCDateTime, utcnow


class Portfolio(Base):
    __tablename__ = "portfolios"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    handle: Mapped[str] = mapped_column(String(40), unique=True)
    display_name: Mapped[str] = mapped_column(String(100))
    # The owner's own words under their name: a one-line headline and a short bio.
    headline: Mapped[str | None] = mapped_column(String(200))
    bio: Mapped[str | None] = mapped_column(Text)
    # The owner's secret (returned once when the portfolio is created); only its hash is kept.
    owner_token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PortfolioEntry(Base):
    """A credential shown on a portfolio; a credential can be on one portfolio at most."""

    __tablename__ = "portfolio_entries"

    credential_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("credentials.id", ondelete="CASCADE"), primary_key=True
    )
    portfolio_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("portfolios.id", ondelete="CASCADE"), index=True
    )
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The owner's choices: featured entries first, then by position (unset: newest first).
    featured: Mapped[bool] = mapped_column(default=False, server_default=false())
    position: Mapped[int | None] = mapped_column(Integer)


class HeldCredential(Base):
    """A credential from anywhere, kept on a portfolio exactly as it was sent.

    Our own credentials are shown through `PortfolioEntry` (they are our records); everything
    else a freelancer holds (another issuer's VC-JWT or JSON credential, pushed by the owner or
    by an application they authorised) is stored byte for byte as text, never re-serialised, and
    verified afresh whenever it is shown. `credential_ref` is the credential's own id, when it
    has one: sending a credential with the same id again replaces it (an upsert).
    """

    __tablename__ = "portfolio_held_credentials"
    __table_args__ = (UniqueConstraint("portfolio_id", "credential_ref"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    portfolio_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("portfolios.id", ondelete="CASCADE"), index=True
    )
    # "jwt" (a compact JWS) or "json" (a credential document, e.g. with an embedded proof).
    form: Mapped[str] = mapped_column(String(8))
    document: Mapped[str] = mapped_column(Text)
    digest: Mapped[str] = mapped_column(String(64))
    credential_ref: Mapped[str | None] = mapped_column(String(1000))
    # Who put it here: "owner", or the application ("ob3:<client id>", …).
    source: Mapped[str] = mapped_column(String(200))
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
