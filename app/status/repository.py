"""Every SQL statement of the status-list feature."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Row, Select, func, select, update
from sqlalchemy.orm import Session

from app.status.models import StatusList, StatusPurpose


def _newest_open(query: Select[Any], issuer_id: uuid.UUID, purpose: StatusPurpose) -> Select[Any]:
    """`query` narrowed to the issuer's open list for `purpose` (the newest, should two be open)."""
    return (
        query.where(
            StatusList.issuer_id == issuer_id,
            StatusList.purpose == purpose,
            StatusList.full.is_(False),
        )
        .order_by(StatusList.seq.desc())
        .limit(1)
    )


def open_list(session: Session, issuer_id: uuid.UUID, purpose: StatusPurpose) -> StatusList | None:
    return session.scalars(_newest_open(select(StatusList), issuer_id, purpose)).first()


def last_seq(session: Session, issuer_id: uuid.UUID, purpose: StatusPurpose) -> int:
    value = session.scalar(
        select(func.max(StatusList.seq)).where(
            StatusList.issuer_id == issuer_id, StatusList.purpose == purpose
        )
    )
    return int(value or 0)


def get_list(
    session: Session, issuer_id: uuid.UUID, purpose: StatusPurpose, seq: int
) -> StatusList | None:
    return session.scalars(
        select(StatusList).where(
            StatusList.issuer_id == issuer_id, StatusList.purpose == purpose, StatusList.seq == seq
        )
    ).one_or_none()


def mark_full(session: Session, list_id: uuid.UUID) -> None:
    session.execute(update(StatusList).where(StatusList.id == list_id).values(full=True))


def bump_version(session: Session, list_id: uuid.UUID) -> None:
    """Record that the list's bits changed (same transaction as the status change)."""
    session.execute(
        update(StatusList).where(StatusList.id == list_id).values(version=StatusList.version + 1)
    )


def take_open_slots(
    session: Session, issuer_id: uuid.UUID, purpose: StatusPurpose, count: int
) -> Row[uuid.UUID, int, int, str | None, int] | None:
    """`count` slots of the issuer's open list in one statement, if it has that many left:
    (id, seq, size, index_key, next_slot after the taking), else None (see `take_slots`)."""
    open_list = _newest_open(select(StatusList.id), issuer_id, purpose).scalar_subquery()
    return session.execute(
        update(StatusList)
        .where(
            StatusList.id == open_list,
            StatusList.full.is_(False),
            StatusList.index_key.is_not(None),
            StatusList.next_slot + count <= StatusList.size,
        )
        .values(
            next_slot=StatusList.next_slot + count,
            full=StatusList.next_slot + count >= StatusList.size,
        )
        .returning(
            StatusList.id,
            StatusList.seq,
            StatusList.size,
            StatusList.index_key,
            StatusList.next_slot,
        )
        .execution_options(synchronize_session=False)
    ).one_or_none()


def take_slots(session: Session, list_id: uuid.UUID, count: int) -> range:
    """Take up to `count` unused slots of the list: one UPDATE of its counter (RETURNING).

    The row lock it takes lasts until the transaction ends, which is why callers on PostgreSQL
    take slots in a transaction of their own. The list is marked full with its last slot. An
    empty range: the list had no slot left (another writer took the last ones).
    """
    taken = session.execute(
        update(StatusList)
        .where(
            StatusList.id == list_id,
            StatusList.full.is_(False),
            StatusList.next_slot + count <= StatusList.size,
        )
        .values(
            next_slot=StatusList.next_slot + count,
            full=StatusList.next_slot + count >= StatusList.size,
        )
        .returning(StatusList.next_slot)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    if taken is not None:
        return range(taken - count, taken)
    # Fewer than `count` slots left: take what remains.
    row = session.execute(
        select(StatusList.next_slot, StatusList.size)
        .where(StatusList.id == list_id, StatusList.full.is_(False))
        .with_for_update()
    ).one_or_none()
    if row is None:
        return range(0)
    first, size = int(row[0]), int(row[1])
    session.execute(
        update(StatusList)
        .where(StatusList.id == list_id)
        .values(next_slot=size, full=True)
        .execution_options(synchronize_session=False)
    )
    return range(first, size)
