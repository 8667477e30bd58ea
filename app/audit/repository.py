"""Every SQL statement of the audit trail."""

from __future__ import annotations

import uuid
from collections.abc import Generator, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit.models import AuditEvent, AuditHead


def lock_head(session: Session, issuer_id: uuid.UUID) -> AuditHead | None:
    """The chain head, locked until the transaction ends (`FOR UPDATE`; SQLite locks the file).

    populate_existing: a head already in the identity map may predate the lock; the values under
    the lock are the ones the next link must build on.
    """
    return session.scalars(
        select(AuditHead)
        .where(AuditHead.issuer_id == issuer_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one_or_none()


def head(session: Session, issuer_id: uuid.UUID) -> AuditHead | None:
    return session.get(AuditHead, issuer_id)


def page(
    session: Session,
    issuer_id: uuid.UUID,
    *,
    after_seq: int | None,
    limit: int,
    types: Sequence[str] = (),
) -> Sequence[AuditEvent]:
    query = select(AuditEvent).where(AuditEvent.issuer_id == issuer_id)
    if after_seq is not None:
        query = query.where(AuditEvent.seq > after_seq)
    if types:
        query = query.where(AuditEvent.type.in_(types))
    return session.scalars(query.order_by(AuditEvent.seq).limit(limit)).all()


def chains(session: Session, issuer_id: uuid.UUID | None = None) -> Sequence[uuid.UUID]:
    """The issuer id of every chain (a head or at least one event)."""
    heads = select(AuditHead.issuer_id)
    with_events = select(AuditEvent.issuer_id)
    if issuer_id is not None:
        heads = heads.where(AuditHead.issuer_id == issuer_id)
        with_events = with_events.where(AuditEvent.issuer_id == issuer_id)
    union = heads.union(with_events).subquery()
    return list(session.scalars(select(union.c.issuer_id).order_by(union.c.issuer_id)))


def events_in_order(session: Session, issuer_id: uuid.UUID) -> Generator[AuditEvent]:
    """An issuer's events by seq, streamed in batches (a chain may be long); close it when done."""
    query = (
        select(AuditEvent)
        .where(AuditEvent.issuer_id == issuer_id)
        .order_by(AuditEvent.seq)
        .execution_options(yield_per=1000)
    )
    # Closed when the caller stops early too (on PostgreSQL this is a server-side cursor).
    with session.scalars(query) as events:
        yield from events
