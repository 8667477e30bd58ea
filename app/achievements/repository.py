"""Every SQL statement of the achievements feature."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from app.achievements.models import Achievement


def get(session: Session, achievement_id: uuid.UUID) -> Achievement | None:
    return session.get(Achievement, achievement_id)


def list_for_issuer(
    session: Session, issuer_id: uuid.UUID, *, limit: int, after: tuple[datetime, uuid.UUID] | None
) -> Sequence[Achievement]:
    query = select(Achievement).where(Achievement.issuer_id == issuer_id)
    if after is not None:
        query = query.where(tuple_(Achievement.created_at, Achievement.id) > tuple_(*after))
    return session.scalars(
        query.order_by(Achievement.created_at, Achievement.id).limit(limit)
    ).all()


def of_issuer(
    session: Session, issuer_id: uuid.UUID, ids: Sequence[uuid.UUID]
) -> Sequence[Achievement]:
    if not ids:
        return []
    return session.scalars(
        select(Achievement).where(Achievement.issuer_id == issuer_id, Achievement.id.in_(ids))
    ).all()
