"""The public pages of one credential, each showing its verdict now: the verification page at the
credential's URL (HTML for people, JSON or the JWT by Accept), the share card image, the framable
embed card and the oEmbed endpoint."""

from __future__ import annotations

import hashlib
import uuid
from typing import Annotated, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from sqlalchemy.orm import Session

from app.core.cache import CachedImage
from app.core.context import AppContext
from app.core.deps import ContextDep, ReadSessionDep
from app.core.errors import Conflict, NotFound
from app.core.web import (
    JSON_TYPES,
    JWT_TYPES,
    VC_TYPE,
    credential_form,
    negotiated,
    render,
)
from app.credentials import service as credentials_service
from app.credentials.models import Credential
from app.issuers import service as issuers_service
from app.sharing import service
from app.sharing.card import render_card
from app.verify.certificate import certificate_pdf
from app.verify.page import PageModel, build_page_model, verification_context
from app.verify.service import Verifier

public = APIRouter(tags=["public"])

# The one policy that lets other sites frame a page of ours (the embed card); everything else
# keeps the middleware's frame-ancestors 'none' and X-Frame-Options DENY.
EMBED_CSP = (
    "default-src 'self'; img-src 'self' https: data:; style-src 'self'; "
    "frame-ancestors *; form-action 'self'; base-uri 'none'"
)
# The card follows the credential's status: clients revalidate (cheap with the ETag).
CARD_CACHE = "public, max-age=300, must-revalidate"


def _record(session: Session, credential_id: str | uuid.UUID) -> Credential:
    try:
        record_id = uuid.UUID(str(credential_id))
    except ValueError:
        raise NotFound(f"No credential {credential_id}.") from None
    return credentials_service.get_credential(session, credential_id=record_id)


def _page_model(session: Session, ctx: AppContext, record: Credential) -> PageModel:
    """The credential as its page shows it, verified now (status, revocation, expiry)."""
    return build_page_model(
        ctx.settings, Verifier.from_context(ctx, session).verify_jwt(record.jwt)
    )


def _not_modified(request: Request, etag: str) -> bool:
    if_none_match = request.headers.get("if-none-match", "")
    tags = {tag.strip() for tag in if_none_match.split(",")}
    return etag in tags or f"W/{etag}" in tags or if_none_match.strip() == "*"


@public.get(
    "/credentials/{credential_id}/card.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}, 304: {"description": "Not modified"}},
)
def share_card(
    credential_id: str, request: Request, session: ReadSessionDep, ctx: ContextDep
) -> Response:
    """The 1200x627 share card (Open Graph / Twitter image) of a credential, with its live status."""
    record = _record(session, credential_id)
    model = _page_model(session, ctx, record)
    hidden = "h" if record.recipient_name_hidden else "n"
    key = f"{record.id}.card.{model.status}.{hidden}"
    image = ctx.images.get(key)
    if image is None:
        body = render_card(
            service.card_data(
                ctx.settings,
                achievement=model.achievement_name,
                issuer=model.issuer_name,
                recipient=model.recipient_name,
                status=model.status,
                status_label=model.banner_title,
                initials=model.initials,
            )
        )
        image = CachedImage(
            body=body, etag=f'"{hashlib.sha256(body).hexdigest()[:32]}"', media_type="image/png"
        )
        ctx.images.put(key, image)
    headers = {"ETag": image.etag, "Cache-Control": CARD_CACHE}
    if _not_modified(request, image.etag):
        return Response(status_code=304, headers=headers)
    return Response(image.body, media_type=image.media_type, headers=headers)


@public.get(
    "/credentials/{credential_id}/embed",
    response_class=Response,
    responses={200: {"content": {"text/html": {}}}},
)
def embed_card(
    credential_id: str, request: Request, session: ReadSessionDep, ctx: ContextDep
) -> Response:
    """A compact card of the credential and its live status, for iframes (framable from anywhere)."""
    record = _record(session, credential_id)
    model = _page_model(session, ctx, record)
    response = render(
        request,
        "embed.html",
        {
            "page": model,
            "page_url": credentials_service.credential_url(ctx.settings, record.id),
        },
    )
    response.headers["Content-Security-Policy"] = EMBED_CSP
    response.headers["Cache-Control"] = "no-cache"
    return response


@public.get(
    "/credentials/{credential_id}/certificate.pdf",
    response_class=Response,
    responses={
        200: {"content": {"application/pdf": {}}},
        404: {"description": "No such credential"},
        409: {"description": "The credential is not valid now (revoked, suspended, expired …)"},
    },
)
def certificate(credential_id: str, session: ReadSessionDep, ctx: ContextDep) -> Response:
    """A one-page printable certificate (PDF) with a QR code of the credential's URL, verified now.

    Only for a credential that is valid now: a revoked, suspended or expired one gets no
    certificate to print.
    """
    record = _record(session, credential_id)
    model = _page_model(session, ctx, record)
    if not model.shareable:
        raise Conflict(
            f"This credential is {model.banner_title.lower()} now; there is no certificate to print.",
            credential_status=model.status,
        )
    url = credentials_service.credential_url(ctx.settings, record.id)
    body = certificate_pdf(model, url=url, service=urlsplit(ctx.settings.base_url).hostname or "")
    return Response(
        body,
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'inline; filename="credential-{record.id}.pdf"',
            "Cache-Control": "no-cache",
        },
    )


@public.get(
    "/oembed",
    responses={
        200: {"description": "An oEmbed 1.0 `rich` response."},
        404: {"description": "The URL is not a credential of this service."},
        501: {"description": "Only format=json is offered."},
    },
)
def oembed(
    session: ReadSessionDep,
    ctx: ContextDep,
    url: Annotated[str, Query(max_length=2048, description="A credential URL of this service.")],
    format: Annotated[Literal["json", "xml"] | str, Query()] = "json",
    maxwidth: Annotated[int | None, Query(ge=1, le=10000)] = None,
    maxheight: Annotated[int | None, Query(ge=1, le=10000)] = None,
) -> JSONResponse:
    """oEmbed provider for credential URLs: an iframe of the embed card."""
    if format != "json":
        raise service.OEmbedFormatNotImplemented(
            f"Only format=json is offered (asked for {format!r})."
        )
    record = _record(session, service.credential_id_from_url(ctx.settings, url))
    model = _page_model(session, ctx, record)
    title = model.achievement_name or "Credential"
    if model.issuer_name:
        title += f", issued by {model.issuer_name}"
    return JSONResponse(
        service.oembed_response(
            ctx.settings,
            credential_id=record.id,
            title=title,
            issuer=model.issuer_name,
            maxwidth=maxwidth,
            maxheight=maxheight,
        ),
        headers={"Cache-Control": "public, max-age=300"},
    )


@public.get(
    "/credentials/{credential_id}",
    response_model=None,
    responses={
        200: {
            "content": {
                "text/html": {},
                "application/ld+json": {},
                "application/vc": {},
                "application/vc+jwt": {"schema": {"type": "string"}},
            },
            "description": "The verification page, the credential JSON (application/json: without an embedded proof; application/ld+json or application/vc: with it) or the compact JWT, by Accept.",
        }
    },
)
def credential_page(
    credential_id: str,
    request: Request,
    session: ReadSessionDep,
    ctx: ContextDep,
    format: Annotated[
        Literal["html", "json", "vc", "jwt"] | None,
        Query(description="Overrides Accept (`vc`: the JSON-LD credential with its proof)."),
    ] = None,
) -> Response:
    """The credential's public URL: a verification page for browsers, JSON or JWT by Accept."""
    try:
        record_id = uuid.UUID(credential_id)
    except ValueError:
        raise NotFound(f"No credential {credential_id}.") from None
    record = credentials_service.get_credential(session, credential_id=record_id)
    form, wanted = credential_form(
        request, ("text/html", *JSON_TYPES, VC_TYPE, *JWT_TYPES), "text/html"
    )
    chosen = format or form
    if chosen == "jwt":
        return negotiated(PlainTextResponse(record.jwt, media_type="application/vc+jwt"))
    if chosen in {"json", "vc"}:
        credential = credentials_service.credential_json(record)
        if chosen == "json":
            # As before Data Integrity: the credential the VC-JWT secures, without the
            # embedded proof (JSON-LD clients ask for application/ld+json or application/vc).
            credential.pop("proof", None)
        return negotiated(
            JSONResponse(
                credential,
                media_type=VC_TYPE if wanted == VC_TYPE and not format else "application/ld+json",
            )
        )
    verification = Verifier.from_context(ctx, session).verify_jwt(record.jwt)
    context = verification_context(
        ctx.settings,
        verification,
        linkedin_organization_id=issuers_service.linkedin_organization_id(
            session, record.issuer_id
        ),
    )
    page = context["page"]
    if page.trust_level == "registered" and page.issuer_logo is None:
        page.issuer_logo = issuers_service.logo_url(session, record.issuer_id)
    response = negotiated(render(request, "credential.html", context))
    response.headers["Cache-Control"] = "no-cache"
    return response
