"""Audit trail routes (under the issuers API: an issuer reads its own chain; the operator reads any issuer's)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy.orm import Session

from app.audit import service
from app.audit.models import AuditEventType
from app.audit.schemas import AuditEventRead
from app.core.deps import AdminDep, SessionDep
from app.core.pagination import Page
from app.issuers import service as issuers
from app.issuers.deps import CurrentIssuer

api = APIRouter()

Limit = Annotated[int, Query(ge=1, le=500)]
Cursor = Annotated[
    str | None,
    Query(max_length=20, description="next_cursor of the previous page (events after that seq)."),
]
Types = Annotated[
    list[AuditEventType] | None, Query(alias="type", description="Only these event types.")
]


def _page(
    session: Session,
    issuer_id: uuid.UUID,
    *,
    limit: int,
    cursor: str | None,
    types: list[AuditEventType] | None,
) -> Page[AuditEventRead]:
    events = service.list_events(
        session, issuer_id=issuer_id, after=cursor, limit=limit + 1, types=types or ()
    )
    page = events[:limit]
    return Page[AuditEventRead](
        items=[AuditEventRead.model_validate(e) for e in page],
        next_cursor=str(page[-1].seq) if len(events) > limit else None,
    )


@api.get("/api/v1/audit", response_model=Page[AuditEventRead], tags=["audit"])
def list_own_events(
    issuer: CurrentIssuer,
    session: SessionDep,
    limit: Limit = 100,
    cursor: Cursor = None,
    event_type: Types = None,
) -> Page[AuditEventRead]:
    """The calling issuer's audit trail, oldest first, each event carrying the previous hash."""
    return _page(session, issuer.id, limit=limit, cursor=cursor, types=event_type)


@api.get("/api/v1/issuers/{slug}/audit", response_model=Page[AuditEventRead], tags=["operator"])
def list_issuer_events(
    slug: str,
    _admin: AdminDep,
    session: SessionDep,
    limit: Limit = 100,
    cursor: Cursor = None,
    event_type: Types = None,
) -> Page[AuditEventRead]:
    """An issuer's audit trail (operator view), oldest first."""
    issuer = issuers.get_issuer(session, slug=slug)
    return _page(session, issuer.id, limit=limit, cursor=cursor, types=event_type)
