"""Application errors and the one handler that renders them as RFC 9457 problem details."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.web import error_page, wants_html

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("microcred")


class AppError(Exception):
    """A client-facing error: its status and message reach the caller as problem+json."""

    status_code: int = 400
    title: str | None = None

    def __init__(self, message: str, *, status_code: int | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code
        self.extra = extra


class BadRequest(AppError):
    status_code = 400


class Unauthorized(AppError):
    status_code = 401


class Forbidden(AppError):
    status_code = 403


class NotFound(AppError):
    status_code = 404


class Conflict(AppError):
    status_code = 409


class PayloadTooLarge(AppError):
    status_code = 413


class UnsupportedMediaType(AppError):
    status_code = 415


class Unprocessable(AppError):
    status_code = 422


def problem(
    status: int,
    detail: str,
    *,
    title: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    body.update(extra)
    return JSONResponse(
        jsonable_encoder(body), status_code=status, media_type=PROBLEM_JSON, headers=headers
    )


def _validation_errors(errors: Sequence[Any]) -> tuple[int, str, list[dict[str, Any]]]:
    items = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ())]
        items.append({"loc": loc, "msg": err.get("msg", ""), "type": err.get("type", "")})
    if any(e["type"] == "json_invalid" for e in items):
        return 400, "The request body is not valid JSON.", items
    if items and all(e["loc"][:1] == ["path"] for e in items):
        # A path that does not parse (a non-UUID id) names no resource: 404, not a payload error.
        return 404, "No such resource.", items
    first = items[0] if items else {"loc": [], "msg": "invalid request"}
    where = ".".join(p for p in first["loc"] if p != "body") or "request"
    return 422, f"{where}: {first['msg']}", items


def wants_error_page(request: Request) -> bool:
    """A person's browser asking for a page (not the API, not an API client): show a page.

    API paths always answer problem+json, whatever the Accept header says: a platform's
    client must never have to parse HTML.
    """
    return not request.url.path.startswith("/api/") and wants_html(request)


def error_response(
    request: Request,
    status: int,
    detail: str,
    *,
    title: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> Response:
    """The one error rendering: a page for people, RFC 9457 problem details for everyone else."""
    if wants_error_page(request):
        return error_page(request, status, detail, headers=headers)
    return problem(status, detail, title=title, headers=headers, **extra)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def _app_error(request: Request, exc: AppError) -> Response:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        return error_response(
            request, exc.status_code, exc.message, title=exc.title, headers=headers, **exc.extra
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        status, detail, items = _validation_errors(exc.errors())
        return error_response(request, status, detail, errors=items)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        if exc.status_code == 404 and detail == "Not Found":
            detail = "No such resource."
        return error_response(request, exc.status_code, detail, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error", exc_info=exc)
        return error_response(request, 500, "An unexpected error occurred; it has been logged.")


class BodySizeLimitMiddleware:
    """Refuse request bodies over the limit with 413 before any handler reads them."""

    def __init__(
        self, app: ASGIApp, *, max_bytes: int, per_path: dict[str, int] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        # Routes that take larger bodies (bulk uploads), by exact path.
        self.per_path = per_path or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.per_path.get(scope.get("path", ""), self.max_bytes)
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared < 0 or declared > limit:
                    await self._refuse(scope, receive, send, limit)
                    return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await self._refuse(scope, receive, send, limit)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        response = problem(413, f"The request body exceeds the limit of {limit} bytes.")
        await response(scope, receive, send)


class _BodyTooLarge(StarletteHTTPException):
    """An HTTPException, so that FastAPI's body parsing re-raises it instead of calling it a 400."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"The request body exceeds the limit of {max_bytes} bytes.")
