"""Application errors and the one handler that renders them as RFC 9457 problem details."""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

import anyio
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect, cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core import text
from app.core.logs import current_request_id
from app.core.web import error_page, wants_html

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("microcred")

# Seconds a client is asked to wait (Retry-After) when a part the service needs is unavailable.
RETRY_AFTER_SECONDS = 5


class AppError(Exception):
    """A client-facing error: its status and message reach the caller as problem+json."""

    status_code: int = 400
    title: str | None = None
    # Response headers the error carries (Retry-After of a 429).
    headers: Mapping[str, str] | None = None

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


class ServiceUnavailable(AppError):
    """A part the service needs (`part`: database, key store, disk) is unavailable: 503 with
    Retry-After. The fault is the operator's to fix; the client may simply try again."""

    status_code = 503
    part = "service"

    def __init__(self, message: str, *, log_detail: str | None = None, **extra: Any) -> None:
        super().__init__(message, unavailable=self.part, **extra)
        self.log_detail = log_detail or message  # for the operator's log, not the client


class DatabaseUnavailable(ServiceUnavailable):
    part = "database"


# What the database layer raises when the database cannot serve (down, unreachable, disk full,
# locked past the busy timeout, read-only file, pool exhausted), as opposed to a bug in a query.
DATABASE_FAULTS: tuple[type[Exception], ...] = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.DisconnectionError,
    sa_exc.TimeoutError,
    sqlite3.OperationalError,
    sqlite3.InterfaceError,
)
# A value the database refuses to store (NUL on PostgreSQL, a number out of range; sqlite3 cannot
# encode a lone surrogate).
UNSTORABLE: tuple[type[Exception], ...] = (sa_exc.DataError, UnicodeEncodeError)
try:  # psycopg is only installed for PostgreSQL; bulk COPY raises its errors unwrapped
    import psycopg

    DATABASE_FAULTS = (*DATABASE_FAULTS, psycopg.OperationalError, psycopg.InterfaceError)
    UNSTORABLE = (*UNSTORABLE, psycopg.DataError)
except ImportError:  # pragma: no cover - PostgreSQL support is installed with the package
    pass


def database_unavailable(exc: BaseException) -> DatabaseUnavailable:
    """The client-facing error for a database fault; the fault itself is logged, not shown."""
    first_line = next(iter(str(exc).splitlines()), "")
    return DatabaseUnavailable(
        "The database is unavailable; try again shortly.",
        log_detail=f"{type(exc).__name__}: {first_line}",
    )


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
    if status == 503 and not (headers and "Retry-After" in headers):
        headers = {**(headers or {}), "Retry-After": str(RETRY_AFTER_SECONDS)}
    request_id = current_request_id()
    if request_id is not None:  # the id the request's log lines carry (and X-Request-ID)
        body["request_id"] = request_id
    return JSONResponse(
        jsonable_encoder(body), status_code=status, media_type=PROBLEM_JSON, headers=headers
    )


def error_headers(exc: AppError) -> dict[str, str]:
    """The headers an AppError's answer carries: its own (Retry-After of a 429), a bearer
    challenge for a 401, Retry-After for a 503."""
    headers = dict(exc.headers or {})
    if exc.status_code == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if exc.status_code == 503:
        headers.setdefault("Retry-After", str(RETRY_AFTER_SECONDS))
    return headers


def render_error(exc: AppError) -> JSONResponse:
    """An AppError as problem+json where there is no request to negotiate with (middleware)."""
    return problem(
        exc.status_code, exc.message, title=exc.title, headers=error_headers(exc), **exc.extra
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
        if isinstance(exc, ServiceUnavailable):
            log.warning("%s unavailable: %s", exc.part, exc.log_detail)
        return error_response(
            request,
            exc.status_code,
            exc.message,
            title=exc.title,
            headers=error_headers(exc),
            **exc.extra,
        )

    async def _database_fault(request: Request, exc: Exception) -> Response:
        error = database_unavailable(exc)
        log.warning("database unavailable: %s", error.log_detail)
        return error_response(
            request, error.status_code, error.message, headers=error_headers(error), **error.extra
        )

    for fault in DATABASE_FAULTS:
        app.add_exception_handler(fault, _database_fault)

    async def _unstorable(request: Request, exc: Exception) -> Response:
        # A backstop: text is checked at the edge (TextGuardMiddleware), but a value the edge
        # cannot see (a multipart text field, a CSV cell) must still be a 4xx, not a 500.
        # Logged with its traceback: it shows a way in that the edge guard does not cover.
        log.warning("refused a value that cannot be stored", exc_info=exc)
        return error_response(
            request,
            422,
            "The request holds a value that cannot be stored (NUL, a lone surrogate, or out of range).",
        )

    for unstorable in UNSTORABLE:
        app.add_exception_handler(unstorable, _unstorable)

    async def _too_deep(request: Request, _exc: Exception) -> Response:
        return error_response(request, 400, "The request is nested too deeply to be read.")

    app.add_exception_handler(RecursionError, _too_deep)

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
    """Guard request bodies before any handler reads them: over the limit, 413; not all received
    within `body_timeout` seconds of the request's start, 408 (a stalled or dripping upload holds
    no worker for longer); a client gone mid-body ends the request quietly (nobody is left to
    answer, and it is no error of ours: a debug line, no traceback)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        per_path: dict[str, int] | None = None,
        body_timeout: float | None = None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        # Routes that take larger bodies (bulk uploads), by exact path.
        self.per_path = per_path or {}
        self.body_timeout = body_timeout

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
        body_done = False
        deadline = (
            anyio.current_time() + self.body_timeout if self.body_timeout is not None else None
        )

        async def guarded_receive() -> Message:
            nonlocal received, body_done
            if body_done or deadline is None:
                message = await receive()  # after the body: waiting for a disconnect is fine
            else:
                try:
                    with anyio.fail_after(max(0.0, deadline - anyio.current_time())):
                        message = await receive()
                except TimeoutError:
                    raise _BodyTimeout(self.body_timeout or 0) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge(limit)
                if not message.get("more_body", False):
                    body_done = True
            elif message["type"] == "http.disconnect":
                body_done = True
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, guarded_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await self._refuse(scope, receive, send, limit)
        except _BodyTimeout as exc:
            if not started:
                await problem(408, exc.detail, headers={"Connection": "close"})(
                    scope, receive, send
                )
        except ClientDisconnect:
            log.debug("client disconnected before its request body was read: %s", scope.get("path"))

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        response = problem(413, f"The request body exceeds the limit of {limit} bytes.")
        await response(scope, receive, send)


class _BodyTooLarge(StarletteHTTPException):
    """An HTTPException, so that FastAPI's body parsing re-raises it instead of calling it a 400."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"The request body exceeds the limit of {max_bytes} bytes.")


class _BodyTimeout(StarletteHTTPException):
    """An HTTPException for the same reason: the handler answers it as a 408 problem."""

    def __init__(self, seconds: float) -> None:
        super().__init__(
            408,
            f"The request body did not arrive within {seconds:g} s.",
            headers={"Connection": "close"},
        )


class TextGuardMiddleware:
    """Refuse, before routing, text no feature can store or show: NUL and lone surrogates in the
    path, the query, cookies, url-encoded forms and JSON bodies, and JSON nested too deeply
    (see app.core.text). One guard for every route, so that no field can be forgotten.

    JSON and form bodies are read here (the body size middleware outside has capped them) and
    handed on unchanged; other bodies (uploads) stream through untouched.
    """

    def __init__(self, app: ASGIApp, *, max_depth: int = text.MAX_JSON_DEPTH) -> None:
        self.app = app
        self.max_depth = max_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._check_target(scope)
        if refusal is not None:
            await _answer(refusal, scope, receive, send)
            return
        media = _header(scope, b"content-type").split(";", 1)[0].strip().lower()
        is_json = media in {"", "application/json"} or media.endswith("+json")
        is_form = media == "application/x-www-form-urlencoded"
        if not (is_json or is_form) or scope.get("method") in {"GET", "HEAD", "OPTIONS"}:
            await self.app(scope, receive, send)
            return
        body, more = await _read_body(receive)
        refusal = self._check_json(body) if is_json else self._check_form(body)
        if refusal is not None:
            await _answer(refusal, scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await more()

        await self.app(scope, replay, send)

    def _check_target(self, scope: Scope) -> JSONResponse | None:
        fault = text.text_fault(scope.get("path", ""))
        if fault:
            return problem(400, f"The request path {fault}.")
        query = scope.get("query_string", b"").decode("latin-1")
        for name, value in parse_qsl(query, keep_blank_values=True):
            fault = text.text_fault(name) or text.text_fault(value)
            if fault:
                return _refused(("query", text.printable(name)), fault)
        cookies = _header(scope, b"cookie")
        if cookies:
            for name, value in cookie_parser(cookies).items():
                fault = text.text_fault(name) or text.text_fault(value)
                if fault:
                    return _refused(("cookie", text.printable(name)), fault)
        return None

    def _check_json(self, body: bytes) -> JSONResponse | None:
        if text.nesting_exceeds(body, self.max_depth):
            return problem(400, f"The JSON body is nested deeper than {self.max_depth} levels.")
        if not text.may_hold_bad_text(body):
            return None
        try:
            text.loads(body, max_depth=self.max_depth)
        except text.UnacceptableJSON as exc:
            return _refused(("body", *exc.fault.loc), exc.fault.reason)
        except ValueError:
            return None  # not JSON: the route says so in its own words
        return None

    def _check_form(self, body: bytes) -> JSONResponse | None:
        for name, value in parse_qsl(body.decode("latin-1"), keep_blank_values=True):
            fault = text.text_fault(name) or text.text_fault(value)
            if fault:
                return _refused(("body", text.printable(name)), fault)
        return None


async def _answer(refusal: JSONResponse, scope: Scope, receive: Receive, send: Send) -> None:
    """The guard's refusal as every other error is answered: a page for a person's browser,
    the problem for everyone else (the same choice as `error_response`)."""
    request = Request(scope)
    if wants_error_page(request):
        detail = str(json.loads(bytes(refusal.body)).get("detail", ""))
        await error_page(request, refusal.status_code, detail)(scope, receive, send)
        return
    await refusal(scope, receive, send)


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return ""


async def _read_body(receive: Receive) -> tuple[bytes, Receive]:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks), receive


def _refused(loc: tuple[str, ...], reason: str) -> JSONResponse:
    where = ".".join(p for p in loc if p != "body") or "body"
    return problem(
        422,
        f"{where} {reason}.",
        errors=[{"loc": list(loc), "msg": reason, "type": "text_unacceptable"}],
    )
