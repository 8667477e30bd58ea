"""Entries of the operator's trust list."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, UTCDateTime, utcnow

# Column sizes; the schemas refuse longer values before they reach the database.
IDENTIFIER_MAX = 2048
NAME_MAX = 200
URL_MAX = 2048
NOTE_MAX = 1000
SOURCE_MAX = 255

MANUAL_SOURCE = "manual"
DCC_SOURCE_PREFIX = "dcc-registry:"


class TrustedIssuer(Base):
    """An issuer the operator vouches for, by its DID or https origin."""

    __tablename__ = "trusted_issuers"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    # The canonical form (app/core/identifiers.py): every spelling of a DID finds the one row.
    identifier: Mapped[str] = mapped_column(String(IDENTIFIER_MAX), unique=True)
    # What verification pages show for the `listed` level.
    name: Mapped[str] = mapped_column(String(NAME_MAX))
    url: Mapped[str | None] = mapped_column(String(URL_MAX))
    note: Mapped[str | None] = mapped_column(String(NOTE_MAX))
    # "manual", or "dcc-registry:<registry name>" for entries an import brought (and may update
    # or remove on the next import of that registry).
    source: Mapped[str] = mapped_column(String(SOURCE_MAX), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
