"""Content negotiation and page rendering shared by the public routes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).resolve().parent.parent / "templates"))

JSON_TYPES = ("application/json", "application/ld+json")
JWT_TYPES = ("application/vc+jwt", "application/jwt")


def _accepted(request: Request) -> list[tuple[str, float]]:
    accepted = []
    for part in request.headers.get("accept", "").split(","):
        media, _, params = part.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if media:
            accepted.append((media.strip().lower(), q))
    return accepted


def preferred(request: Request, offers: tuple[str, ...], default: str) -> str:
    """The offered media type the client prefers most; `default` when it names none of them."""
    best, best_q = default, 0.0
    for media, q in _accepted(request):
        if q <= 0:
            continue
        for offer in offers:
            if media == offer and q > best_q:
                best, best_q = offer, q
            elif (
                media in {"*/*", offer.split("/")[0] + "/*"} and best_q == 0.0 and offer == default
            ):
                best_q = 0.001
    return best


def wants_html(request: Request) -> bool:
    """Browsers ask for text/html; API clients and curl (*/*) get JSON; `?format=json` forces JSON."""
    if request.query_params.get("format") == "json":
        return False
    return preferred(request, ("text/html", *JSON_TYPES), "application/json") == "text/html"


def render(
    request: Request, template: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    return TEMPLATES.TemplateResponse(request, template, context, status_code=status_code)
