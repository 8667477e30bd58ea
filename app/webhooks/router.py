"""Webhook routes: an issuer registers endpoints and reads (and replays) their deliveries."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response

from app.core.deps import ContextDep, SessionDep
from app.core.openapi import problem_responses
from app.core.pagination import Page, decode_cursor, encode_cursor
from app.issuers.deps import CurrentIssuer
from app.webhooks import service
from app.webhooks.models import DeliveryState, WebhookDelivery
from app.webhooks.schemas import (
    DeliveryRead,
    EndpointCreate,
    EndpointRead,
    EndpointUpdate,
    EndpointWithSecret,
)

api = APIRouter(prefix="/api/v1/webhooks", tags=["issuer"])


def delivery_read(delivery: WebhookDelivery, event_type: str) -> DeliveryRead:
    return DeliveryRead(
        id=delivery.id,
        webhook_id=service.webhook_id(delivery.message_id),
        event_type=event_type,
        state=delivery.state,
        attempts=delivery.attempts,
        last_status_code=delivery.last_status_code,
        last_error=delivery.last_error,
        last_attempt_at=delivery.last_attempt_at,
        next_attempt_at=(
            delivery.next_attempt_at if delivery.state == DeliveryState.pending else None
        ),
        delivered_at=delivery.delivered_at,
        created_at=delivery.created_at,
    )


@api.post(
    "",
    status_code=201,
    response_model=EndpointWithSecret,
    responses=problem_responses(409, _409="The issuer has as many endpoints as it may"),
)
def create_endpoint(
    data: EndpointCreate, issuer: CurrentIssuer, session: SessionDep, ctx: ContextDep
) -> EndpointWithSecret:
    """Register an https endpoint for events; the answer holds its signing secret, shown once."""
    created = service.create_endpoint(
        session, fetcher=ctx.fetcher, keystore=ctx.keystore, issuer=issuer, data=data
    )
    return _with_secret(created)


@api.get("", response_model=list[EndpointRead])
def list_endpoints(issuer: CurrentIssuer, session: SessionDep) -> list[EndpointRead]:
    """The calling issuer's webhook endpoints (without their secrets)."""
    return [EndpointRead.model_validate(e) for e in service.list_endpoints(session, issuer=issuer)]


@api.get("/{endpoint_id}", response_model=EndpointRead)
def get_endpoint(
    endpoint_id: uuid.UUID, issuer: CurrentIssuer, session: SessionDep
) -> EndpointRead:
    """One webhook endpoint (without its secret)."""
    endpoint = service.get_endpoint(session, issuer=issuer, endpoint_id=endpoint_id)
    return EndpointRead.model_validate(endpoint)


@api.patch("/{endpoint_id}", response_model=EndpointRead)
def update_endpoint(
    endpoint_id: uuid.UUID,
    data: EndpointUpdate,
    issuer: CurrentIssuer,
    session: SessionDep,
    ctx: ContextDep,
) -> EndpointRead:
    """Change the URL, events, description or enabled flag; disabling cancels pending deliveries."""
    endpoint = service.update_endpoint(
        session, fetcher=ctx.fetcher, issuer=issuer, endpoint_id=endpoint_id, data=data
    )
    return EndpointRead.model_validate(endpoint)


@api.delete("/{endpoint_id}", status_code=204)
def delete_endpoint(endpoint_id: uuid.UUID, issuer: CurrentIssuer, session: SessionDep) -> Response:
    """Delete an endpoint and its deliveries; nothing more is sent to it."""
    service.delete_endpoint(session, issuer=issuer, endpoint_id=endpoint_id)
    return Response(status_code=204)


@api.post("/{endpoint_id}/rotate-secret", response_model=EndpointWithSecret)
def rotate_secret(
    endpoint_id: uuid.UUID, issuer: CurrentIssuer, session: SessionDep, ctx: ContextDep
) -> EndpointWithSecret:
    """Replace the signing secret at once; the answer holds the new one, shown once."""
    rotated = service.rotate_secret(
        session, keystore=ctx.keystore, issuer=issuer, endpoint_id=endpoint_id
    )
    return _with_secret(rotated)


def _with_secret(found: service.WithSecret) -> EndpointWithSecret:
    # The row holds the secret sealed: the answer takes the clear one the service made.
    read = EndpointRead.model_validate(found.endpoint)
    return EndpointWithSecret(**read.model_dump(), secret=found.secret)


@api.get("/{endpoint_id}/deliveries", response_model=Page[DeliveryRead])
def list_deliveries(
    endpoint_id: uuid.UUID,
    issuer: CurrentIssuer,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    state: DeliveryState | None = None,
) -> Page[DeliveryRead]:
    """The endpoint's deliveries, newest first, a page at a time (filter by `state`)."""
    rows = service.list_deliveries(
        session,
        issuer=issuer,
        endpoint_id=endpoint_id,
        limit=limit + 1,
        before=decode_cursor(cursor),
        state=state,
    )
    page = rows[:limit]
    last = page[-1][0] if page else None
    return Page[DeliveryRead](
        items=[delivery_read(d, t) for d, t in page],
        next_cursor=(
            encode_cursor(last.created_at, last.id)
            if last is not None and len(rows) > limit
            else None
        ),
    )


@api.post(
    "/{endpoint_id}/deliveries/{delivery_id}/replay",
    status_code=202,
    response_model=DeliveryRead,
    responses=problem_responses(409, _409="The endpoint is disabled"),
)
def replay_delivery(
    endpoint_id: uuid.UUID, delivery_id: uuid.UUID, issuer: CurrentIssuer, session: SessionDep
) -> DeliveryRead:
    """Send a delivery again now, under the same webhook-id (202: it is queued, not yet sent)."""
    delivery, event_type = service.replay(
        session, issuer=issuer, endpoint_id=endpoint_id, delivery_id=delivery_id
    )
    return delivery_read(delivery, event_type)
