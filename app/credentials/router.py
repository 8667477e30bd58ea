"""Credential routes: issuance for issuers, and the public credential URL (page, JSON or JWT)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Query
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime

from app.achievements import service as achievements_service
from app.core.config import Settings
from app.core.deps import ContextDep, SessionDep, SettingsDep
from app.core.openapi import problem_responses
from app.core.pagination import Page, decode_cursor, encode_cursor
from app.credentials import service
from app.credentials.models import Credential
from app.credentials.schemas import CredentialCreate, CredentialRead, StatusChange
from app.issuers.deps import CurrentIssuer

api = APIRouter(prefix="/api/v1/credentials", tags=["issuer"])

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="Retry-safe issuance key.",
    ),
]


def credential_read(
    settings: Settings, record: Credential, *, linkedin_organization_id: str | None = None
) -> CredentialRead:
    return CredentialRead.from_record(
        settings, record, linkedin_organization_id=linkedin_organization_id
    )


@api.post(
    "",
    status_code=201,
    response_model=CredentialRead,
    responses=problem_responses(
        404, 409, _404="The achievement is not one of yours", _409="The issuer has no active key"
    ),
)
def issue_credential(
    data: CredentialCreate,
    issuer: CurrentIssuer,
    session: SessionDep,
    ctx: ContextDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Issue (sign and record) one credential. Repeating an Idempotency-Key replays the result."""
    issued = service.issue_credential(
        session,
        settings=ctx.settings,
        keystore=ctx.keystore,
        issuer=issuer,
        data=data,
        idempotency_key=idempotency_key,
    )
    body = credential_read(
        ctx.settings, issued.record, linkedin_organization_id=issuer.linkedin_organization_id
    ).model_dump(mode="json")
    if issued.manage_token is not None:
        body["manage_url"] = service.manage_url(ctx.settings, issued.manage_token)
    headers = {"Location": body["url"]}
    if issued.replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(body, status_code=200 if issued.replayed else 201, headers=headers)


@api.get("", response_model=Page[CredentialRead])
def list_credentials(
    issuer: CurrentIssuer,
    session: SessionDep,
    settings: SettingsDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    achievement_id: Annotated[
        str | None, Query(max_length=2048, description="The achievement's uuid or its URL.")
    ] = None,
    subject_id: Annotated[str | None, Query(max_length=2048)] = None,
    # Aware only: a naive instant is ambiguous, and the UTC columns refuse to compare with one.
    issued_after: AwareDatetime | None = None,
    issued_before: AwareDatetime | None = None,
) -> Page[CredentialRead]:
    """List the calling issuer's credentials, oldest first, filtered and a page at a time."""
    rows = service.list_credentials(
        session,
        issuer=issuer,
        limit=limit + 1,
        after=decode_cursor(cursor),
        achievement_id=achievements_service.achievement_ref(settings, achievement_id)
        if achievement_id is not None
        else None,
        subject_id=subject_id,
        issued_after=issued_after,
        issued_before=issued_before,
    )
    page = rows[:limit]
    next_cursor = encode_cursor(page[-1].issued_at, page[-1].id) if len(rows) > limit else None
    return Page[CredentialRead](
        items=[
            credential_read(settings, r, linkedin_organization_id=issuer.linkedin_organization_id)
            for r in page
        ],
        next_cursor=next_cursor,
    )


@api.get("/{credential_id}", response_model=CredentialRead)
def get_credential(
    credential_id: uuid.UUID, issuer: CurrentIssuer, session: SessionDep, settings: SettingsDep
) -> CredentialRead:
    """Read one of the calling issuer's credentials."""
    record = service.get_credential(session, credential_id=credential_id, issuer=issuer)
    return credential_read(
        settings, record, linkedin_organization_id=issuer.linkedin_organization_id
    )


@api.post(
    "/{credential_id}/revoke",
    response_model=CredentialRead,
    responses=problem_responses(409, _409="Revoked already (revocation is final)"),
)
def revoke_credential(
    credential_id: uuid.UUID,
    data: StatusChange,
    issuer: CurrentIssuer,
    session: SessionDep,
    settings: SettingsDep,
) -> CredentialRead:
    """Revoke a credential for good; its status list and page change at once."""
    record = service.revoke(session, issuer=issuer, credential_id=credential_id, reason=data.reason)
    return credential_read(
        settings, record, linkedin_organization_id=issuer.linkedin_organization_id
    )


@api.post(
    "/{credential_id}/suspend",
    response_model=CredentialRead,
    responses=problem_responses(
        409, _409="Revoked, suspended already, or the issuer offers no suspension"
    ),
)
def suspend_credential(
    credential_id: uuid.UUID,
    data: StatusChange,
    issuer: CurrentIssuer,
    session: SessionDep,
    settings: SettingsDep,
) -> CredentialRead:
    """Suspend a credential (issuers that offer suspension); 409 otherwise."""
    record = service.suspend(
        session, issuer=issuer, credential_id=credential_id, reason=data.reason
    )
    return credential_read(
        settings, record, linkedin_organization_id=issuer.linkedin_organization_id
    )


@api.post(
    "/{credential_id}/unsuspend",
    response_model=CredentialRead,
    responses=problem_responses(409, _409="Not suspended"),
)
def unsuspend_credential(
    credential_id: uuid.UUID,
    data: StatusChange,
    issuer: CurrentIssuer,
    session: SessionDep,
    settings: SettingsDep,
) -> CredentialRead:
    """Lift a suspension."""
    record = service.unsuspend(
        session, issuer=issuer, credential_id=credential_id, reason=data.reason
    )
    return credential_read(
        settings, record, linkedin_organization_id=issuer.linkedin_organization_id
    )
