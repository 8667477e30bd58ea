"""FastAPI dependencies shared by every feature, as `Annotated` aliases."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.context import AppContext
from app.core.db import session_scope
from app.core.errors import Unauthorized
from app.core.security import same_secret


def get_context(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


ContextDep = Annotated[AppContext, Depends(get_context)]


def get_settings(ctx: ContextDep) -> Settings:
    return ctx.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_session(ctx: ContextDep) -> Iterator[Session]:
    """The request's unit of work: committed when the handler returns, rolled back on error."""
    yield from session_scope(ctx.sessions)


# scope="function": the commit runs before the response is sent, so a 201 means "stored".
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


# Declared for the OpenAPI document (its "Authorize" button); the errors are ours: auto_error=False.
admin_bearer = HTTPBearer(
    scheme_name="OperatorToken", description="MICROCRED_ADMIN_TOKEN", auto_error=False
)
issuer_bearer = HTTPBearer(
    scheme_name="IssuerApiKey", description="An issuer API key (mck_…)", auto_error=False
)


def require_admin(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(admin_bearer)],
) -> None:
    token = credentials.credentials if credentials else None
    expected = settings.admin_token.get_secret_value() if settings.admin_token else None
    if token is None:
        raise Unauthorized("This endpoint needs the operator's bearer token.")
    if expected is None or not same_secret(token, expected):
        raise Unauthorized("The operator token is not valid.")


AdminDep = Annotated[None, Depends(require_admin)]
