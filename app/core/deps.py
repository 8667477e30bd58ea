"""FastAPI dependencies shared by every feature, as `Annotated` aliases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import anyio
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from app.core.config import Settings
from app.core.context import AppContext
from app.core.errors import Unauthorized
from app.core.ratelimit import credential_key, limiter
from app.core.security import same_secret


# The two below are `async def` on purpose: FastAPI runs a plain `def` dependency in the thread
# pool, a hop that costs far more than reading an attribute (every request would pay it).
async def get_context(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


ContextDep = Annotated[AppContext, Depends(get_context)]


async def get_settings(ctx: ContextDep) -> Settings:
    return ctx.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


@asynccontextmanager
async def _unit_of_work(ctx: AppContext, factory: sessionmaker[Session]) -> AsyncIterator[Session]:
    """A session for one request, committed before the response is sent, rolled back on error.

    A request takes a database slot (there are as many as pooled connections) *before* it takes a
    worker thread. Otherwise, under load, every worker thread could be blocked waiting for a
    connection or SQLite's write lock while the requests holding them wait for a thread to commit.
    """
    async with ctx.db_slots():
        session = factory()
        try:
            yield session
            await run_in_threadpool(session.commit)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await run_in_threadpool(session.rollback)
            raise
        finally:
            with anyio.CancelScope(shield=True):
                await run_in_threadpool(session.close)


async def get_session(ctx: ContextDep) -> AsyncIterator[Session]:
    """The request's unit of work (the one commit point)."""
    # A context manager, not a nested generator: an error thrown in at `yield` must reach it.
    async with _unit_of_work(ctx, ctx.sessions) as session:
        yield session


# scope="function": the commit runs before the response is sent, so a 201 means "stored".
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


async def get_read_session(ctx: ContextDep) -> AsyncIterator[Session]:
    """A session for public pages and verification, which only read."""
    async with _unit_of_work(ctx, ctx.read_sessions) as session:
        yield session


ReadSessionDep = Annotated[Session, Depends(get_read_session, scope="function")]


# Declared for the OpenAPI document (its "Authorize" button); the errors are ours: auto_error=False.
admin_bearer = HTTPBearer(
    scheme_name="OperatorToken", description="MICROCRED_ADMIN_TOKEN", auto_error=False
)
issuer_bearer = HTTPBearer(
    scheme_name="IssuerApiKey", description="An issuer API key (mck_…)", auto_error=False
)


async def require_admin(  # async: a constant-time compare needs no worker thread
    request: Request,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(admin_bearer)],
) -> None:
    token = credentials.credentials if credentials else None
    expected = settings.admin_token.get_secret_value() if settings.admin_token else None
    if token is None:
        raise Unauthorized("This endpoint needs the operator's bearer token.")
    # One operator token: every wrong guess, from anywhere, is a guess at it (keyed by the
    # deployment, so that services sharing one rate-limit store count apart).
    operator = credential_key("admin", settings.base_url, chars=None)
    with limiter(request).attempt(request, operator, Unauthorized):
        if expected is None or not same_secret(token, expected):
            raise Unauthorized("The operator token is not valid.")


AdminDep = Annotated[None, Depends(require_admin)]
