"""Every SQL statement of the trust list."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.core.db import insert_ignoring_conflicts
from app.trust.models import TrustedIssuer

# Bound parameters per IN list: far below SQLite's (32,766) and PostgreSQL's (65,535) limits.
_CHUNK = 1000


def list_all(session: Session) -> Sequence[TrustedIssuer]:
    return session.scalars(
        select(TrustedIssuer).order_by(TrustedIssuer.name, TrustedIssuer.identifier)
    ).all()


def get(session: Session, entry_id: uuid.UUID) -> TrustedIssuer | None:
    return session.get(TrustedIssuer, entry_id)


def by_identifier(session: Session, identifier: str) -> TrustedIssuer | None:
    return session.scalars(
        select(TrustedIssuer).where(TrustedIssuer.identifier == identifier)
    ).one_or_none()


def by_identifiers(session: Session, identifiers: Sequence[str]) -> list[TrustedIssuer]:
    """The entries of these (canonical) identifiers: one query per thousand identifiers."""
    found: list[TrustedIssuer] = []
    for start in range(0, len(identifiers), _CHUNK):
        chunk = identifiers[start : start + _CHUNK]
        found.extend(
            session.scalars(select(TrustedIssuer).where(TrustedIssuer.identifier.in_(chunk)))
        )
    return found


def of_source(session: Session, source: str) -> Sequence[TrustedIssuer]:
    return session.scalars(select(TrustedIssuer).where(TrustedIssuer.source == source)).all()


def insert_new(session: Session, rows: Sequence[dict[str, Any]]) -> set[str]:
    """Insert the rows whose identifier is free; the identifiers actually inserted (the others
    were listed by a concurrent writer in the meantime)."""
    inserted = insert_ignoring_conflicts(
        session, TrustedIssuer.__table__, rows, TrustedIssuer.identifier
    )
    return {row.identifier for row in inserted}


def delete_entry(session: Session, entry: TrustedIssuer) -> None:
    session.delete(entry)
    session.flush()


def delete_ids(session: Session, ids: Iterable[uuid.UUID]) -> None:
    wanted = list(ids)
    for start in range(0, len(wanted), _CHUNK):
        session.execute(
            delete(TrustedIssuer).where(TrustedIssuer.id.in_(wanted[start : start + _CHUNK]))
        )
