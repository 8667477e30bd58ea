"""The portfolio owner's API: credentials of other issuers held on their portfolio.

The owner authenticates with the portfolio key (`mcp_…`, given once when the portfolio was
made) as a bearer token. A credential is sent as itself, not wrapped: a compact VC-JWT as
`application/vc+jwt` (or `application/jwt`, `text/plain`), a JSON credential as
`application/vc+ld+json` (or `application/ld+json`, `application/json`); it is kept exactly as
sent (`app.portfolios.held`) and read back byte for byte.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app.core.deps import ReadSessionDep, SessionDep
from app.core.errors import BadRequest, Unauthorized, UnsupportedMediaType
from app.core.openapi import problem_responses
from app.core.ratelimit import limiter
from app.portfolios import held, service
from app.portfolios.models import HeldCredential, Portfolio
from app.portfolios.schemas import HANDLE_PATTERN

owner_api = APIRouter(prefix="/api/v1/portfolios", tags=["portfolio owner"])

portfolio_bearer = HTTPBearer(
    scheme_name="PortfolioKey", description="The portfolio owner key (mcp_…)", auto_error=False
)
HandlePath = Annotated[str, Path(pattern=HANDLE_PATTERN, description="The portfolio's handle.")]
JWT_TYPES = {"application/vc+jwt", "application/jwt", "text/plain"}
JSON_TYPES = {"application/vc+ld+json", "application/ld+json", "application/json", ""}
MEDIA_TYPES = {"jwt": "application/vc+jwt", "json": "application/vc+ld+json"}


class HeldCredentialOut(BaseModel):
    id: uuid.UUID
    form: Literal["jwt", "json"]
    credential_ref: str | None
    source: str
    added_at: datetime
    updated_at: datetime
    document: str


def held_out(row: HeldCredential) -> HeldCredentialOut:
    return HeldCredentialOut(
        id=row.id,
        form="jwt" if row.form == "jwt" else "json",
        credential_ref=row.credential_ref,
        source=row.source,
        added_at=row.added_at,
        updated_at=row.updated_at,
        document=row.document,
    )


def _owned(
    request: Request,
    session: Session,
    handle: str,
    credentials: HTTPAuthorizationCredentials | None,
) -> Portfolio:
    token = credentials.credentials if credentials else None
    if token is None:
        raise Unauthorized("This endpoint needs the portfolio owner key (mcp_…) as a bearer token.")
    with limiter(request).attempt(
        request, f"portfolio:{handle}", service.WrongPortfolioKey, service.PortfolioNotFound
    ):
        return service.owner_portfolio(session, handle=handle, portfolio_key=token)


OwnerKey = Annotated[HTTPAuthorizationCredentials | None, Depends(portfolio_bearer)]


@owner_api.post(
    "/{handle}/credentials",
    status_code=201,
    response_model=HeldCredentialOut,
    responses={
        200: {"model": HeldCredentialOut, "description": "Replaced the one with the same id"},
        **problem_responses(401, 403, 404, 413, 415, 422),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/vc+jwt": {"schema": {"type": "string"}},
                "application/vc+ld+json": {"schema": {"type": "object"}},
            },
        }
    },
)
async def hold_credential(
    handle: HandlePath, request: Request, session: SessionDep, key: OwnerKey
) -> JSONResponse:
    """Keep another issuer's credential on the portfolio, exactly as sent (201; 200 when it
    replaces the held credential with the same id)."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media not in JWT_TYPES and media not in JSON_TYPES:
        raise UnsupportedMediaType(
            f"Unsupported content type {media!r}: send the credential itself, a compact VC-JWT "
            "as application/vc+jwt or a JSON credential as application/vc+ld+json."
        )
    body = await request.body()
    try:
        document = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest("The body is not UTF-8 text.") from exc

    def keep() -> tuple[HeldCredentialOut, bool]:
        portfolio = _owned(request, session, handle, key)
        row, created = held.upsert_held(
            session, portfolio=portfolio, document=document, source=held.OWNER_SOURCE
        )
        return held_out(row), created

    # The body is read on the loop; the database is worked on a worker thread, never the loop.
    out, created = await run_in_threadpool(keep)
    return JSONResponse(
        out.model_dump(mode="json"),
        status_code=201 if created else 200,
        headers={"Cache-Control": "no-store"},
    )


@owner_api.get(
    "/{handle}/credentials",
    response_model=list[HeldCredentialOut],
    responses=problem_responses(401, 403, 404),
)
def list_held(
    handle: HandlePath, request: Request, session: ReadSessionDep, key: OwnerKey
) -> list[HeldCredentialOut]:
    """The credentials of other issuers held on the portfolio, newest first, as sent."""
    portfolio = _owned(request, session, handle, key)
    return [held_out(row) for row in held.held_on(session, portfolio.id)]


@owner_api.get(
    "/{handle}/credentials/{held_id}",
    response_class=Response,
    responses={
        200: {
            "content": {
                "application/vc+jwt": {"schema": {"type": "string"}},
                "application/vc+ld+json": {"schema": {"type": "object"}},
            },
            "description": "The credential exactly as it was sent",
        },
        **problem_responses(401, 403, 404),
    },
)
def read_held(
    handle: HandlePath,
    held_id: uuid.UUID,
    request: Request,
    session: ReadSessionDep,
    key: OwnerKey,
) -> Response:
    """One held credential, byte for byte as it was sent."""
    portfolio = _owned(request, session, handle, key)
    row = held.held_one(session, portfolio.id, held_id)
    return Response(
        row.document.encode("utf-8", "surrogatepass"),
        media_type=MEDIA_TYPES.get(row.form, "application/octet-stream"),
        headers={"Cache-Control": "no-store"},
    )


@owner_api.delete(
    "/{handle}/credentials/{held_id}",
    status_code=204,
    responses=problem_responses(401, 403, 404),
)
def drop_held(
    handle: HandlePath, held_id: uuid.UUID, request: Request, session: SessionDep, key: OwnerKey
) -> Response:
    """Take a held credential off the portfolio."""
    portfolio = _owned(request, session, handle, key)
    held.remove_held(session, portfolio.id, held_id)
    return Response(status_code=204)
