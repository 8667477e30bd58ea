"""QR codes and baked badge images of credentials, rendered once and served from memory with strong ETags."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from app.badges.qr import qr_png, qr_svg
from app.badges.render import BadgeInfo, badge_png, badge_svg
from app.core.cache import CachedImage
from app.core.config import Settings
from app.core.context import AppContext
from app.core.deps import ContextDep
from app.core.errors import NotFound
from app.credentials import service as credentials_service
from app.credentials.models import Credential

public = APIRouter(tags=["public"])

IMMUTABLE = "public, max-age=31536000, immutable"


def _serve(request: Request, image: CachedImage) -> Response:
    headers = {"ETag": image.etag, "Cache-Control": IMMUTABLE}
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None and _matches(if_none_match, image.etag):
        return Response(status_code=304, headers=headers)
    return Response(image.body, media_type=image.media_type, headers=headers)


def _matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110 §13.1.2: If-None-Match compares weakly (a `W/` prefix does not matter)."""
    if if_none_match.strip() == "*":
        return True
    return any(tag.strip().removeprefix("W/") == etag for tag in if_none_match.split(","))


def _image(body: bytes, media_type: str) -> CachedImage:
    return CachedImage(
        body=body, etag=f'"{hashlib.sha256(body).hexdigest()[:32]}"', media_type=media_type
    )


def _record_id(credential_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(credential_id)
    except ValueError:
        raise NotFound(f"No credential {credential_id}.") from None


Renderer = Callable[[AppContext, Credential], CachedImage]


def _cached_image_route(kind: str, render: Renderer) -> Callable[..., Awaitable[Response]]:
    """A route serving an immutable image of a credential from memory, rendering it once.

    The image of a credential id never changes, and only ids that exist are ever cached: a hit
    is answered on the event loop, with no database read and no worker thread. A miss takes a
    database slot and then a worker thread (as core.deps does) to read the record, which 404s
    for unknown ids, and to render: CPU work never runs on the event loop.
    """

    async def handler(credential_id: str, request: Request, ctx: ContextDep) -> Response:
        record_id = _record_id(credential_id)
        key = f"{record_id}.{kind}"
        image = ctx.images.get(key)
        if image is None:
            async with ctx.db_slots():
                image = await run_in_threadpool(_render_and_cache, ctx, record_id, key, render)
        return _serve(request, image)

    return handler


def _render_and_cache(
    ctx: AppContext, record_id: uuid.UUID, key: str, render: Renderer
) -> CachedImage:
    with ctx.read_sessions() as session:
        record = credentials_service.get_credential(session, credential_id=record_id)  # or 404
    image = render(ctx, record)
    ctx.images.put(key, image)
    return image


def _qr(render: Callable[[str], bytes], media_type: str) -> Renderer:
    def qr(ctx: AppContext, record: Credential) -> CachedImage:
        return _image(
            render(credentials_service.credential_url(ctx.settings, record.id)), media_type
        )

    return qr


public.add_api_route(
    "/credentials/{credential_id}/qr.svg",
    _cached_image_route("svg", _qr(qr_svg, "image/svg+xml")),
    methods=["GET"],
    summary="QR code (SVG) of the credential URL",
    response_class=Response,
    responses={200: {"content": {"image/svg+xml": {}}}, 304: {"description": "Not modified"}},
)
public.add_api_route(
    "/credentials/{credential_id}/qr.png",
    _cached_image_route("png", _qr(qr_png, "image/png")),
    methods=["GET"],
    summary="QR code (PNG) of the credential URL",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}, 304: {"description": "Not modified"}},
)


def _badge_info(settings: Settings, record: Credential, *, json_form: bool = False) -> BadgeInfo:
    """What the badge shows, read from the credential as signed (`json_form`: baked as the
    JSON-LD credential with its embedded proof, not as the JWT)."""
    payload = credentials_service.credential_json(record)
    subject = payload.get("credentialSubject")
    achievement = subject.get("achievement") if isinstance(subject, dict) else None
    achievement = achievement if isinstance(achievement, dict) else {}
    issuer = payload.get("issuer")
    issuer_name = issuer.get("name") if isinstance(issuer, dict) else None
    return BadgeInfo(
        achievement_name=str(achievement.get("name") or "Achievement"),
        issuer_name=str(issuer_name or "Issuer"),
        issued_on=record.issued_at.date(),
        url=credentials_service.credential_url(settings, record.id),
        jwt=record.jwt,
        image_url=_image_url(achievement.get("image")),
        credential_json=json.dumps(payload, ensure_ascii=False) if json_form else None,
    )


def _image_url(image: object) -> str | None:
    """The achievement image's URL when it is one a browser may load (http(s) or data:image)."""
    url = image.get("id") if isinstance(image, dict) else image
    if isinstance(url, str) and url.startswith(("https://", "http://", "data:image/")):
        return url
    return None


def _badge(
    render: Callable[[BadgeInfo], bytes], media_type: str, *, json_form: bool = False
) -> Renderer:
    def badge(ctx: AppContext, record: Credential) -> CachedImage:
        return _image(render(_badge_info(ctx.settings, record, json_form=json_form)), media_type)

    return badge


public.add_api_route(
    "/credentials/{credential_id}/badge.svg",
    _cached_image_route("badge.svg", _badge(badge_svg, "image/svg+xml")),
    methods=["GET"],
    summary="Baked badge image (SVG) carrying the credential's JWT",
    description=(
        'Open Badges 3.0 baked SVG: `<openbadges:credential verify="JWT">` is the root\'s first child. '
        "References the achievement's image when it has one, otherwise draws an emblem with a QR code."
    ),
    response_class=Response,
    responses={
        200: {"content": {"image/svg+xml": {}}},
        304: {"description": "Not modified"},
        404: {"description": "No such credential"},
    },
)
public.add_api_route(
    "/credentials/{credential_id}/badge.png",
    _cached_image_route("badge.png", _badge(badge_png, "image/png")),
    methods=["GET"],
    summary="Baked badge image (PNG) carrying the credential's JWT",
    description=(
        "Open Badges 3.0 baked PNG (600 x 600): one uncompressed `iTXt` chunk, keyword "
        "`openbadgecredential`, holds the compact JWT. Always the generated emblem: remote images "
        "are never fetched at request time."
    ),
    response_class=Response,
    responses={
        200: {"content": {"image/png": {}}},
        304: {"description": "Not modified"},
        404: {"description": "No such credential"},
    },
)

_LD_RESPONSES: dict[int | str, dict[str, Any]] = {
    304: {"description": "Not modified"},
    404: {"description": "No such credential"},
}
public.add_api_route(
    "/credentials/{credential_id}/badge-ld.svg",
    _cached_image_route("badge-ld.svg", _badge(badge_svg, "image/svg+xml", json_form=True)),
    methods=["GET"],
    summary="Baked badge image (SVG) carrying the JSON-LD credential with its embedded proof",
    description=(
        "As badge.svg, but `<openbadges:credential>` holds the credential JSON (with its Data "
        "Integrity proof, when the issuer adds one) as CDATA, for wallets that read embedded proofs."
    ),
    response_class=Response,
    responses={200: {"content": {"image/svg+xml": {}}}, **_LD_RESPONSES},
)
public.add_api_route(
    "/credentials/{credential_id}/badge-ld.png",
    _cached_image_route("badge-ld.png", _badge(badge_png, "image/png", json_form=True)),
    methods=["GET"],
    summary="Baked badge image (PNG) carrying the JSON-LD credential with its embedded proof",
    description=(
        "As badge.png, but the `openbadgecredential` iTXt chunk holds the credential JSON (with "
        "its Data Integrity proof, when the issuer adds one)."
    ),
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}, **_LD_RESPONSES},
)
