"""Every SQL statement of the webhooks feature."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, exists, func, insert, select, true, tuple_, update
from sqlalchemy.orm import Session, aliased

from app.webhooks.models import DeliveryState, WebhookDelivery, WebhookEndpoint, WebhookMessage

# --- endpoints ------------------------------------------------------------------------------------


def endpoints_for_issuer(session: Session, issuer_id: uuid.UUID) -> Sequence[WebhookEndpoint]:
    return session.scalars(
        select(WebhookEndpoint)
        .where(WebhookEndpoint.issuer_id == issuer_id)
        .order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
    ).all()


def count_endpoints(session: Session, issuer_id: uuid.UUID) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(WebhookEndpoint)
            .where(WebhookEndpoint.issuer_id == issuer_id)
        )
        or 0
    )


def enabled_subscriptions(
    session: Session, issuer_id: uuid.UUID
) -> Sequence[tuple[uuid.UUID, list[str]]]:
    """(endpoint id, events) of the issuer's enabled endpoints: the outbox's one lookup."""
    rows = session.execute(
        select(WebhookEndpoint.id, WebhookEndpoint.events).where(
            WebhookEndpoint.issuer_id == issuer_id, WebhookEndpoint.enabled == true()
        )
    )
    return [(row.id, list(row.events)) for row in rows]


def cancel_pending(session: Session, endpoint_id: uuid.UUID, *, reason: str) -> None:
    session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.endpoint_id == endpoint_id,
            WebhookDelivery.state == DeliveryState.pending,
        )
        .values(state=DeliveryState.cancelled, lease_id=None, last_error=reason)
    )


def delete_endpoint(session: Session, endpoint: WebhookEndpoint) -> None:
    """The endpoint and its deliveries, and the messages no other endpoint still has."""
    mine = select(WebhookDelivery.message_id).where(WebhookDelivery.endpoint_id == endpoint.id)
    other = aliased(WebhookDelivery)
    orphans = session.scalars(
        select(WebhookMessage.id).where(
            WebhookMessage.id.in_(mine),
            ~exists().where(
                other.message_id == WebhookMessage.id, other.endpoint_id != endpoint.id
            ),
        )
    ).all()
    session.execute(delete(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id))
    if orphans:
        session.execute(delete(WebhookMessage).where(WebhookMessage.id.in_(orphans)))
    session.delete(endpoint)
    session.flush()


# --- the outbox -----------------------------------------------------------------------------------


def insert_outbox(
    session: Session, messages: list[dict[str, Any]], deliveries: list[dict[str, Any]]
) -> None:
    """Bulk inserts (executemany) in the caller's transaction: messages first, then deliveries."""
    if messages:
        session.execute(insert(WebhookMessage), messages)
    if deliveries:
        session.execute(insert(WebhookDelivery), deliveries)


# --- deliveries -----------------------------------------------------------------------------------


def delivery_page(
    session: Session,
    endpoint_id: uuid.UUID,
    *,
    limit: int,
    before: tuple[datetime, uuid.UUID] | None,
    state: DeliveryState | None,
) -> Sequence[tuple[WebhookDelivery, str]]:
    """An endpoint's deliveries with their event types, newest first."""
    query = (
        select(WebhookDelivery, WebhookMessage.event_type)
        .join(WebhookMessage, WebhookMessage.id == WebhookDelivery.message_id)
        .where(WebhookDelivery.endpoint_id == endpoint_id)
    )
    if state is not None:
        query = query.where(WebhookDelivery.state == state)
    if before is not None:
        query = query.where(
            tuple_(WebhookDelivery.created_at, WebhookDelivery.id) < tuple_(*before)
        )
    query = query.order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc())
    return [(row[0], row[1]) for row in session.execute(query.limit(limit))]


def delivery_with_type(
    session: Session, endpoint_id: uuid.UUID, delivery_id: uuid.UUID
) -> tuple[WebhookDelivery, str] | None:
    row = session.execute(
        select(WebhookDelivery, WebhookMessage.event_type)
        .join(WebhookMessage, WebhookMessage.id == WebhookDelivery.message_id)
        .where(WebhookDelivery.id == delivery_id, WebhookDelivery.endpoint_id == endpoint_id)
        .with_for_update(of=WebhookDelivery)
    ).one_or_none()
    return None if row is None else (row[0], row[1])


@dataclass(frozen=True)
class Claimed:
    """What one attempt needs, read when it was claimed."""

    delivery_id: uuid.UUID
    lease_id: uuid.UUID
    attempts: int
    message_id: uuid.UUID
    body: str
    endpoint_id: uuid.UUID
    url: str
    secret: str  # as stored: sealed (see KeyStore.seal) or, without a passphrase, in clear
    enabled: bool


def any_due(session: Session, now: datetime) -> bool:
    """A cheap read (no lock) that spares the claim's write when nothing is due."""
    return (
        session.scalar(
            select(WebhookDelivery.id)
            .where(
                WebhookDelivery.state == DeliveryState.pending,
                WebhookDelivery.next_attempt_at <= now,
            )
            .limit(1)
        )
        is not None
    )


def claim_due(
    session: Session, *, now: datetime, lease_until: datetime, lease_id: uuid.UUID, limit: int
) -> list[Claimed]:
    """Take up to `limit` due deliveries for this dispatcher: they stay pending, due again when the
    lease ends (so a crashed sender's work is retried), and only this lease may record results.

    PostgreSQL: FOR UPDATE SKIP LOCKED lets several dispatchers claim disjoint batches at once.
    SQLite ignores the clause; its writers are serialised (BEGIN IMMEDIATE) instead.
    """
    due = (
        select(WebhookDelivery.id)
        .where(
            WebhookDelivery.state == DeliveryState.pending,
            WebhookDelivery.next_attempt_at <= now,
        )
        .order_by(WebhookDelivery.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    claimed = session.scalars(
        update(WebhookDelivery)
        .where(WebhookDelivery.id.in_(due.scalar_subquery()))
        .values(next_attempt_at=lease_until, lease_id=lease_id)
        .returning(WebhookDelivery.id)
        .execution_options(synchronize_session=False)
    ).all()
    if not claimed:
        return []
    rows = session.execute(
        select(
            WebhookDelivery.id,
            WebhookDelivery.attempts,
            WebhookMessage.id.label("message_id"),
            WebhookMessage.body,
            WebhookEndpoint.id.label("endpoint_id"),
            WebhookEndpoint.url,
            WebhookEndpoint.secret,
            WebhookEndpoint.enabled,
        )
        .join(WebhookMessage, WebhookMessage.id == WebhookDelivery.message_id)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .where(WebhookDelivery.id.in_(claimed))
        .order_by(WebhookDelivery.created_at)
    )
    return [
        Claimed(
            delivery_id=row.id,
            lease_id=lease_id,
            attempts=row.attempts,
            message_id=row.message_id,
            body=row.body,
            endpoint_id=row.endpoint_id,
            url=row.url,
            secret=row.secret,
            enabled=row.enabled,
        )
        for row in rows
    ]


def record_attempt(session: Session, claimed: Claimed, values: dict[str, Any]) -> bool:
    """Store one attempt's outcome, unless the claim was lost (a replay or a cancellation came
    first): False then, and nothing changes."""
    result = session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == claimed.delivery_id,
            WebhookDelivery.lease_id == claimed.lease_id,
            WebhookDelivery.state == DeliveryState.pending,
        )
        .values(lease_id=None, **values)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


def deliveries_by_state(session: Session) -> dict[str, int]:
    """How many deliveries are in each state (for /metrics; the state index answers it)."""
    counts = {state.value: 0 for state in DeliveryState}
    for state, count in session.execute(
        select(WebhookDelivery.state, func.count()).group_by(WebhookDelivery.state)
    ):
        counts[str(state)] = int(count)
    return counts
