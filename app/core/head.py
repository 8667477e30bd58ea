"""`HEAD` wherever `GET` is: link checkers and unfurlers probe pages and images with it."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HeadAsGetMiddleware:
    """Answer `HEAD` as the route's `GET` would, headers and status alike, without the body.

    One mechanism for every route (RFC 9110 §9.3.2: HEAD is GET without content), so no route
    needs its own HEAD handler and none can forget one. The GET's Content-Length is kept, as
    the RFC allows; a route with no GET answers HEAD exactly as it answers GET (404 or 405).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def send_headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, send_headers_only)
