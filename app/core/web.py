"""Content negotiation and page rendering shared by the public routes."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).resolve().parent.parent / "templates"))

JSON_TYPES = ("application/json", "application/ld+json")
JWT_TYPES = ("application/vc+jwt", "application/jwt")
# VCDM 2.0's media type of a credential in JSON-LD (secured by an embedded proof when it has one),
# and the one its drafts used before (our status lists have answered to it since they exist).
VC_TYPE = "application/vc"
VC_LD_TYPE = "application/vc+ld+json"

CredentialForm = Literal["html", "json", "vc", "jwt"]
# The form of a credential (or status list credential) each media type asks for at its URL:
# `json` the credential the VC-JWT secures, without an embedded proof (as before Data Integrity);
# `vc` the JSON-LD credential with its embedded Data Integrity proof; `jwt` the compact VC-JWT.
CREDENTIAL_FORMS: dict[str, CredentialForm] = {
    "text/html": "html",
    "application/json": "json",
    "application/ld+json": "vc",
    VC_TYPE: "vc",
    VC_LD_TYPE: "vc",
    "application/vc+jwt": "jwt",
    "application/jwt": "jwt",
}


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


def credential_form(
    request: Request, offers: tuple[str, ...], default: str
) -> tuple[CredentialForm, str]:
    """(the form, the media type it was chosen by) of a credential URL, by `Accept`.

    One table for the credential URL and the status list URL, so that `application/ld+json` /
    `application/vc` mean the Data Integrity-secured JSON-LD at both, and `application/json` the
    plain JSON at both. Each route offers the media types it serves (of `CREDENTIAL_FORMS`)."""
    wanted = preferred(request, offers, default)
    return CREDENTIAL_FORMS[wanted], wanted


R = TypeVar("R", bound=Response)


def negotiated(response: R) -> R:
    """Mark a response whose form was chosen by `Accept` (HTML, JSON, JWT at one URL): a shared
    cache must key on the header, or a browser could be served what curl asked for. Every route
    that negotiates answers through this, 304s included."""
    current = [v.strip() for v in response.headers.get("vary", "").split(",") if v.strip()]
    if not any(v.lower() in {"accept", "*"} for v in current):
        response.headers["Vary"] = ", ".join([*current, "Accept"])
    return response


def wants_html(request: Request) -> bool:
    """Browsers ask for text/html; API clients and curl (*/*) get JSON; `?format=json` forces JSON."""
    if request.query_params.get("format") == "json":
        return False
    return preferred(request, ("text/html", *JSON_TYPES), "application/json") == "text/html"


def safe_href(value: object) -> str | None:
    """`value` if it may be a link on our pages: an absolute http(s) URL with a host; else None.

    Pages link to what credentials say (criteria, alignments, evidence, issuer sites), and a
    pasted foreign credential says anything: `javascript:`, `data:`, `vbscript:` links would run
    in our origin or mislead. The scheme is read as browsers read it (leading blanks, tabs and
    newlines dropped; `urlsplit` does the same), so `java\tscript:` is refused as well. Every
    template passes such URLs through this filter (`{{ url|safe_href }}`) and shows the text
    without a link when it answers None.
    """
    if not isinstance(value, str) or not value or len(value) > 8192:
        return None
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:
        return None
    if parts.scheme.lower() not in {"http", "https"} or not host or "\\" in value:
        return None
    return value


TEMPLATES.env.filters["safe_href"] = safe_href


def render(
    request: Request, template: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    return TEMPLATES.TemplateResponse(request, template, context, status_code=status_code)


# What a person reads on an error page, by status: a plain title and what to do next.
ERROR_PAGES: dict[int, tuple[str, str]] = {
    400: ("That request could not be read", "Check the link or the form and try again."),
    401: ("Sign-in needed", "This address is for the service's API clients."),
    403: ("Not allowed", "This address is not open to you."),
    404: (
        "Nothing at this address",
        "No credential, issuer or page of this service has this link. If you scanned a QR code "
        "or followed a link from a CV, it may be mistyped or forged: do not rely on it.",
    ),
    405: ("Not available this way", "This address cannot be opened in a browser."),
    422: ("That request could not be read", "Check the link or the form and try again."),
    429: ("Too many requests", "Wait a moment, then try again."),
    503: ("Temporarily unavailable", "The service is busy or down for a moment; try again soon."),
}


def error_page(
    request: Request,
    status: int,
    detail: str,
    *,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """An error as a page for people, with a way on (home, verify): never raw JSON in a browser."""
    title, advice = ERROR_PAGES.get(
        status,
        ("Something went wrong", "Try again later.")
        if status >= 500
        else ("That did not work", "Check the link and try again."),
    )
    response = render(
        request,
        "error.html",
        {"status": status, "title": title, "advice": advice, "detail": detail},
        status_code=status,
    )
    for name, value in (headers or {}).items():
        response.headers[name] = value
    response.headers["Cache-Control"] = "no-store"
    return response
