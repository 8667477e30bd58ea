"""The outermost middleware: a request id, a metrics observation and (optionally) an access line.

It wraps even Starlette's error middleware (see `main.MicrocredApp`), so that a request that ends
in a 500 is counted, logged and answered with its X-Request-ID like any other.
"""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.logs import end_request, redact_path, start_request
from app.core.metrics import observe_request

access = logging.getLogger("microcred.access")

UNMATCHED = "unmatched"  # the route label of a request no route took (a 404 of the router)


def route_template(scope: Scope) -> str:
    """The template of the route that took the request (`/issuers/{slug}`), never the raw path."""
    route = scope.get("route")
    if route is None:
        return UNMATCHED
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return template if isinstance(template, str) else UNMATCHED


class RequestObserver:
    def __init__(self, app: ASGIApp, *, access_log: bool) -> None:
        self.app = app
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        incoming = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                incoming = value
                break
        rid, bound = start_request(incoming)
        rid_header = (b"x-request-id", rid.encode("ascii"))
        status = 500  # what the client gets when the app raises before answering

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), rid_header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = route_template(scope)
            observe_request(scope["method"], route, status, elapsed)
            if self.access_log:
                # Never the query string (it may carry secrets) nor any header.
                access.info(
                    "request",
                    extra={
                        "method": scope["method"],
                        "route": route,
                        "path": redact_path(scope["path"]),
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 2),
                        "client": (scope.get("client") or ("-",))[0],
                    },
                )
            end_request(bound)
