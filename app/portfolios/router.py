"""Routes of the management link (JSON API and HTML forms) and of the public portfolios."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import ValidationError

from app.badges.qr import qr_svg
from app.core import text as client_text
from app.core.cache import CachedImage
from app.core.config import Settings
from app.core.context import AppContext
from app.core.deps import ContextDep, ReadSessionDep, SessionDep
from app.core.errors import AppError, problem
from app.core.openapi import problem_responses
from app.core.ratelimit import RateLimited, credential_key, limiter
from app.core.web import JSON_TYPES, negotiated, preferred, render
from app.credentials import service as credentials_service
from app.issuers import service as issuers_service
from app.issuers.deps import CurrentIssuer
from app.portfolios import service
from app.portfolios.owner_router import owner_api
from app.portfolios.schemas import (
    HANDLE_PATTERN,
    ManagedCredential,
    ManageLink,
    NameVisibility,
    PortfolioCredential,
    PortfolioJoin,
    PortfolioJoined,
    PortfolioPublic,
    PortfolioRef,
    SkillCount,
)
from app.verify.page import share_context
from app.verify.service import Verifier

issuer_api = APIRouter(prefix="/api/v1/credentials", tags=["issuer"])
recipient_api = APIRouter(prefix="/api/v1/manage", tags=["recipient"])
pages = APIRouter(include_in_schema=False)
public = APIRouter(tags=["public"])

router = APIRouter()

# Too long a token is no token of ours: the path-validation handler answers 404, not 422.
ManageToken = Annotated[
    str, Path(max_length=200, description="The management token (mcm_…) of the management link.")
]
FLASH_COOKIE = "microcred_flash"
_HANDLE = re.compile(HANDLE_PATTERN)
# HANDLE_PATTERN for the form's `pattern` attribute, which browsers compile with the `v` flag:
# there a literal "-" in a class must be escaped, or the whole check is skipped.
HANDLE_HTML_PATTERN = r"[a-z0-9\-]{3,40}"
# The management page holds a secret in its URL: never cache it, index it or send it as Referer.
PRIVATE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
}


def _verifier(session: Any, ctx: AppContext) -> Verifier:
    return Verifier.from_context(ctx, session)


def _ref(settings: Settings, portfolio: Any) -> PortfolioRef:
    return PortfolioRef(
        handle=portfolio.handle,
        display_name=portfolio.display_name,
        url=service.portfolio_url(settings, portfolio.handle),
    )


def _managed(settings: Settings, view: service.ManageView) -> ManagedCredential:
    page = view.page
    return ManagedCredential(
        id=view.record.id,
        url=credentials_service.credential_url(settings, view.record.id),
        achievement_name=page.achievement_name,
        issuer_name=page.issuer_name,
        recipient_name=view.record.recipient_name,
        status=view.verification.status,
        verified=page.verified,
        record_status=view.record.status,
        changes_allowed=view.changes_allowed,
        name_hidden=view.record.recipient_name_hidden,
        portfolio=_ref(settings, view.portfolio) if view.portfolio is not None else None,
    )


# --- issuer: re-mint the management link --------------------------------------------------------


@issuer_api.post("/{credential_id}/manage-link", response_model=ManageLink)
def remint_manage_link(
    credential_id: uuid.UUID, issuer: CurrentIssuer, session: SessionDep, ctx: ContextDep
) -> ManageLink:
    """Mint a new management link for the recipient; the previous link stops working."""
    url = service.remint_manage_link(
        session, settings=ctx.settings, issuer=issuer, credential_id=credential_id
    )
    return ManageLink(manage_url=url)


# --- recipient: JSON API ------------------------------------------------------------------------


def _manage_attempt(request: Request, token: str) -> AbstractContextManager[None]:
    """A management-token check under the failure budgets (429 while spent; misses counted)."""
    return limiter(request).attempt(
        request, credential_key("manage", token), service.ManageLinkNotFound
    )


def _key_attempt(request: Request, handle: str) -> AbstractContextManager[None]:
    """A portfolio owner key check: the credential being guessed is the key of `handle`."""
    return limiter(request).attempt(
        request, f"portfolio:{handle}", service.WrongPortfolioKey, service.PortfolioNotFound
    )


@recipient_api.get("/{token}", response_model=ManagedCredential)
def get_managed(
    token: ManageToken,
    request: Request,
    response: Response,
    session: ReadSessionDep,
    ctx: ContextDep,
) -> ManagedCredential:
    """The credential behind a management link, with its live status and portfolio."""
    response.headers["Cache-Control"] = "no-store"
    with _manage_attempt(request, token):
        view = service.manage_view(session, verifier=_verifier(session, ctx), token=token)
    return _managed(ctx.settings, view)


@recipient_api.post(
    "/{token}/portfolio",
    response_model=PortfolioJoined,
    status_code=201,
    responses={
        200: {"model": PortfolioJoined, "description": "Added to an existing portfolio"},
        **problem_responses(
            403,
            409,
            _403="The portfolio key does not open this portfolio",
            _409="The handle is taken",
        ),
    },
)
def add_to_portfolio(
    token: ManageToken, data: PortfolioJoin, request: Request, session: SessionDep, ctx: ContextDep
) -> JSONResponse:
    """Show the credential on a portfolio: 201 and its owner key when it creates one."""
    with _manage_attempt(request, token), _key_attempt(request, data.handle):
        joined = service.add_to_portfolio(
            session,
            token=token,
            handle=data.handle,
            display_name=data.display_name,
            portfolio_key=data.portfolio_key,
        )
    body = PortfolioJoined(
        portfolio=_ref(ctx.settings, joined.portfolio),
        created=joined.created,
        portfolio_key=joined.portfolio_key,
    )
    return JSONResponse(
        body.model_dump(mode="json"),
        status_code=201 if joined.created else 200,
        headers={"Location": body.portfolio.url, "Cache-Control": "no-store"},
    )


@recipient_api.delete("/{token}/portfolio", status_code=204)
def remove_from_portfolio(token: ManageToken, request: Request, session: SessionDep) -> Response:
    """Take the credential off its portfolio."""
    with _manage_attempt(request, token):
        service.remove_from_portfolio(session, token=token)
    return Response(status_code=204)


@recipient_api.put("/{token}/name-visibility", response_model=ManagedCredential)
def set_name_visibility(
    token: ManageToken,
    data: NameVisibility,
    request: Request,
    session: SessionDep,
    ctx: ContextDep,
) -> ManagedCredential:
    """Hide or show the recipient's name on the public pages."""
    with _manage_attempt(request, token):
        service.set_name_hidden(session, token=token, hidden=data.hidden)
    view = service.manage_view(session, verifier=_verifier(session, ctx), token=token)
    return _managed(ctx.settings, view)


# --- recipient: the management page (HTML forms, no JavaScript) ---------------------------------


def _read_flash(request: Request) -> dict[str, Any] | None:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return None
    try:
        data = client_text.loads(base64.urlsafe_b64decode(raw.encode()))
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _back(request: Request, token: str, kind: str, text: str, **extra: str) -> Response:
    """303 back to the management page, carrying the message in a short-lived cookie.

    A cookie rather than the query string: a new portfolio's key must not end up in the URL
    (history, logs); the page shows it once and deletes the cookie. Only a well-formed token
    gets here (`_page_attempt`): it becomes the cookie's path and the redirect's target.
    """
    if not service.is_manage_token(token):  # never a header or cookie attribute from raw input
        return _not_found_page(request)
    response = RedirectResponse(f"/manage/{token}", status_code=303, headers=PRIVATE_HEADERS)
    payload = json.dumps({"kind": kind, "text": text, **extra}).encode()
    response.set_cookie(
        FLASH_COOKIE,
        base64.urlsafe_b64encode(payload).decode(),
        max_age=300,
        path=f"/manage/{token}",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )
    return response


def _not_found_page(request: Request) -> Response:
    response = render(request, "manage.html", {"missing": True}, status_code=404)
    response.headers.update(PRIVATE_HEADERS)
    return response


def _limited_page(request: Request, exc: RateLimited) -> Response:
    response = render(
        request, "manage.html", {"limited": exc.retry_after, "missing": True}, status_code=429
    )
    response.headers.update({**PRIVATE_HEADERS, **(exc.headers or {})})
    return response


class _PageAnswer(Exception):
    """A page route's early answer (the 404 or 429 page) from inside its attempt."""

    def __init__(self, response: Response) -> None:
        self.response = response


@contextmanager
def _page_attempt(request: Request, token: str) -> Iterator[None]:
    """The management token check of a page: an unknown or malformed token answers the 404 page,
    a spent budget the 429 page (both raised as `_PageAnswer`)."""
    try:
        with _manage_attempt(request, token):
            if not service.is_manage_token(token):
                raise service.ManageLinkNotFound("This management link is not valid.")
            yield
    except service.ManageLinkNotFound:
        raise _PageAnswer(_not_found_page(request)) from None
    except RateLimited as exc:
        raise _PageAnswer(_limited_page(request, exc)) from None


@pages.get("/manage/{token}")
def manage_page(token: str, request: Request, session: ReadSessionDep, ctx: ContextDep) -> Response:
    """The recipient's page: the credential, its live status and the sharing choices."""
    try:
        with _page_attempt(request, token):
            view = service.manage_view(session, verifier=_verifier(session, ctx), token=token)
    except _PageAnswer as answer:
        return answer.response
    settings = ctx.settings
    response = render(
        request,
        "manage.html",
        {
            "missing": False,
            "view": view,
            "p": view.page,
            "token": token,
            "flash": _read_flash(request),
            "credential_url": f"/credentials/{view.record.id}",
            "portfolio_url": (
                service.portfolio_url(settings, view.portfolio.handle)
                if view.portfolio is not None
                else None
            ),
            "handle_pattern": HANDLE_HTML_PATTERN,
            # The owner's sharing tools, only while the credential is good to share.
            "share": (
                share_context(
                    settings,
                    view.page,
                    page_url=credentials_service.credential_url(settings, view.record.id),
                    linkedin_organization_id=issuers_service.linkedin_organization_id(
                        session, view.record.issuer_id
                    ),
                )
                if view.page.shareable
                else None
            ),
        },
    )
    if FLASH_COOKIE in request.cookies:
        response.delete_cookie(FLASH_COOKIE, path=f"/manage/{token}")
    response.headers.update(PRIVATE_HEADERS)
    return response


def _form_value(value: str) -> str | None:
    value = value.strip()
    return value or None


@pages.post("/manage/{token}/portfolio")
def manage_add_form(
    token: str,
    request: Request,
    session: SessionDep,
    handle: Annotated[str, Form(max_length=200)] = "",
    display_name: Annotated[str, Form(max_length=200)] = "",
    portfolio_key: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Form: add the credential to a new or an existing portfolio."""
    try:
        with _page_attempt(request, token):
            try:
                data = PortfolioJoin(
                    handle=handle,
                    display_name=_form_value(display_name),
                    portfolio_key=_form_value(portfolio_key),
                )
            except ValidationError as exc:
                field = str(exc.errors()[0]["loc"][0]) if exc.errors() else "handle"
                text = {
                    "handle": "A handle is 3–40 characters: lowercase letters, digits and hyphens.",
                    "display_name": "A display name is 1–100 characters.",
                }.get(field, "Please check the form.")
                return _back(request, token, "error", text)
            try:
                with _key_attempt(request, data.handle):
                    joined = service.add_to_portfolio(
                        session,
                        token=token,
                        handle=data.handle,
                        display_name=data.display_name,
                        portfolio_key=data.portfolio_key,
                    )
            except service.ManageLinkNotFound:
                raise
            except AppError as exc:  # a spent portfolio-key budget (429) too: said on the page
                return _back(request, token, "error", exc.message)
    except _PageAnswer as answer:
        return answer.response
    handle_ = joined.portfolio.handle
    if joined.portfolio_key is not None:
        return _back(
            request,
            token,
            "ok",
            f"Your portfolio /p/{handle_} is live with this credential on it.",
            key=joined.portfolio_key,
        )
    return _back(request, token, "ok", f"Added to your portfolio /p/{handle_}.")


def _form_action(request: Request, token: str, action: Callable[[], object], done: str) -> Response:
    """A management form's one shape: the token check (404/429 pages), the action, then back to
    the page with `done`, or with the action's own refusal said on the page."""
    try:
        with _page_attempt(request, token):
            try:
                action()
            except service.ManageLinkNotFound:
                raise
            except AppError as exc:
                return _back(request, token, "error", exc.message)
    except _PageAnswer as answer:
        return answer.response
    return _back(request, token, "ok", done)


@pages.post("/manage/{token}/portfolio/remove")
def manage_remove_form(token: str, request: Request, session: SessionDep) -> Response:
    """Form: take the credential off its portfolio."""
    return _form_action(
        request,
        token,
        lambda: service.remove_from_portfolio(session, token=token),
        "Removed from your portfolio: it is no longer listed.",
    )


@pages.post("/manage/{token}/portfolio/feature")
def manage_feature_form(
    token: str,
    request: Request,
    session: SessionDep,
    featured: Annotated[Literal["true", "false"], Form()],
) -> Response:
    """Form: feature this credential on the portfolio (shown first), or stop featuring it."""
    return _form_action(
        request,
        token,
        lambda: service.set_featured(session, token=token, featured=featured == "true"),
        "Featured on your portfolio." if featured == "true" else "No longer featured.",
    )


@pages.post("/manage/{token}/portfolio/move")
def manage_move_form(
    token: str,
    request: Request,
    session: SessionDep,
    direction: Annotated[Literal["up", "down"], Form()],
) -> Response:
    """Form: move this credential one place up or down on the portfolio."""
    return _form_action(
        request,
        token,
        lambda: service.move(session, token=token, up=direction == "up"),
        f"Moved {direction} on your portfolio.",
    )


@pages.post("/manage/{token}/portfolio/profile")
def manage_profile_form(
    token: str,
    request: Request,
    session: SessionDep,
    headline: Annotated[str, Form(max_length=200)] = "",
    bio: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """Form: the headline and bio shown under the name on the portfolio."""
    return _form_action(
        request,
        token,
        lambda: service.set_profile(session, token=token, headline=headline, bio=bio),
        "Your portfolio's headline and bio are saved.",
    )


@pages.post("/manage/{token}/name-visibility")
def manage_name_form(
    token: str,
    request: Request,
    session: SessionDep,
    hidden: Annotated[Literal["true", "false"], Form()] = "true",
) -> Response:
    """Form: hide or show the recipient's name on public pages."""
    return _form_action(
        request,
        token,
        lambda: service.set_name_hidden(session, token=token, hidden=hidden == "true"),
        (
            "Your name is now hidden on public pages."
            if hidden == "true"
            else "Your name is now shown on public pages."
        ),
    )


# --- public portfolios --------------------------------------------------------------------------


def _public(settings: Settings, view: service.PortfolioView) -> PortfolioPublic:
    handle = view.portfolio.handle
    url = service.portfolio_url(settings, handle)
    return PortfolioPublic(
        handle=handle,
        display_name=view.display_name,
        headline=view.portfolio.headline,
        bio=view.portfolio.bio,
        url=url,
        qr_svg_url=f"{url}/qr.svg",
        credentials=[
            PortfolioCredential(
                id=item.record.id,
                url=credentials_service.credential_url(settings, item.record.id),
                achievement_name=item.page.achievement_name,
                achievement_url=item.page.achievement_url,
                issuer_name=item.page.issuer_name,
                issuer_url=item.page.issuer_page,
                recipient_name=item.page.recipient_name,
                valid_from=item.page.valid_from,
                valid_until=item.page.valid_until,
                awarded=item.page.awarded,
                status=item.status,
                status_label=item.status_label,
                verified=item.page.verified,
                featured=item.featured,
            )
            for item in view.items
        ],
        skills=[
            SkillCount(name=s.name, kind=s.kind, count=s.count, url=s.url) for s in view.skills
        ],
    )


@public.get(
    "/p/{handle}",
    response_model=PortfolioPublic,
    responses={200: {"content": {"text/html": {}}, "description": "The page or its JSON"}},
)
def portfolio_page(
    handle: str,
    request: Request,
    session: ReadSessionDep,
    ctx: ContextDep,
    format: Annotated[
        Literal["html", "json"] | None, Query(description="Overrides Accept.")
    ] = None,
) -> Response:
    """A freelancer's public portfolio: chosen credentials with live status, verified skills."""
    chosen = format or (
        "json"
        if preferred(request, ("text/html", *JSON_TYPES), "text/html") in JSON_TYPES
        else "html"
    )
    headers = {"Cache-Control": "no-cache"}
    try:
        if not _HANDLE.match(handle):
            raise service.PortfolioNotFound(f"There is no portfolio /p/{handle}.")
        view = service.public_portfolio(session, verifier=_verifier(session, ctx), handle=handle)
    except service.PortfolioNotFound as exc:
        if chosen == "json":  # a problem, but still an answer chosen by Accept
            return negotiated(problem(404, exc.message, title=exc.title, headers=headers))
        response = render(request, "portfolio.html", {"missing": True}, status_code=404)
        response.headers.update(headers)
        return negotiated(response)
    body = _public(ctx.settings, view)
    if chosen == "json":
        return negotiated(JSONResponse(body.model_dump(mode="json"), headers=headers))
    response = render(request, "portfolio.html", {"missing": False, "view": view, "data": body})
    response.headers.update(headers)
    return negotiated(response)


@public.get(
    "/p/{handle}/qr.svg",
    response_class=Response,
    responses={200: {"content": {"image/svg+xml": {}}}, 304: {"description": "Not modified"}},
)
def portfolio_qr(
    handle: str, request: Request, session: ReadSessionDep, ctx: ContextDep
) -> Response:
    """QR code (SVG) of the portfolio URL."""
    key = f"portfolio:{handle}.svg"
    image = ctx.images.get(key)
    if image is None:
        if not _HANDLE.match(handle) or not service.portfolio_exists(session, handle=handle):
            raise service.PortfolioNotFound(f"There is no portfolio /p/{handle}.")
        body = qr_svg(service.portfolio_url(ctx.settings, handle))
        image = CachedImage(
            body=body,
            etag=f'"{hashlib.sha256(body).hexdigest()[:32]}"',
            media_type="image/svg+xml",
        )
        ctx.images.put(key, image)
    # A handle's URL never changes, so neither does its QR code.
    headers = {"ETag": image.etag, "Cache-Control": "public, max-age=86400"}
    tags = {tag.strip() for tag in request.headers.get("if-none-match", "").split(",")}
    if image.etag in tags or "*" in tags:
        return Response(status_code=304, headers=headers)
    return Response(image.body, media_type=image.media_type, headers=headers)


router.include_router(issuer_api)
router.include_router(owner_api)
router.include_router(recipient_api)
router.include_router(pages)
router.include_router(public)
