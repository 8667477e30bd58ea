"""QR codes and baked badge images of credentials, rendered once and served from memory with strong ETags."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.badges.qr import qr_png, qr_svg
from app.badges.render import BadgeInfo, badge_png, badge_svg
from app.core.cache import CachedImage
from app.core.config import Settings
from app.core.deps import ContextDep, ReadSessionDep
from app.core.errors import NotFound
from app.credentials import service as credentials_service
from app.credentials.models import Credential

public = APIRouter(tags=["public"])

IMMUTABLE = "public, max-age=31536000, immutable"


def _serve(request: Request, image: CachedImage) -> Response:
    headers = {"ETag": image.etag, "Cache-Control": IMMUTABLE}
    if_none_match = request.headers.get("if-none-match", "")
    if (
        image.etag in {tag.strip() for tag in if_none_match.split(",")}
        or if_none_match.strip() == "*"
    ):
        return Response(status_code=304, headers=headers)
    return Response(image.body, media_type=image.media_type, headers=headers)


def _qr_route(
    kind: str, render: Callable[[str], bytes], media_type: str
) -> Callable[..., Response]:
    def handler(
        credential_id: str, request: Request, session: ReadSessionDep, ctx: ContextDep
    ) -> Response:
        try:
            record_id = uuid.UUID(credential_id)
        except ValueError:
            raise NotFound(f"No credential {credential_id}.") from None
        cache = ctx.images
        key = f"{record_id}.{kind}"
        image = cache.get(key)
        if image is None:
            credentials_service.get_credential(
                session, credential_id=record_id
            )  # 404 for unknown ids
            body = render(credentials_service.credential_url(ctx.settings, record_id))
            image = CachedImage(
                body=body, etag=f'"{hashlib.sha256(body).hexdigest()[:32]}"', media_type=media_type
            )
            cache.put(key, image)
        return _serve(request, image)

    return handler


public.add_api_route(
    "/credentials/{credential_id}/qr.svg",
    _qr_route("svg", qr_svg, "image/svg+xml"),
    methods=["GET"],
    summary="QR code (SVG) of the credential URL",
    response_class=Response,
    responses={200: {"content": {"image/svg+xml": {}}}, 304: {"description": "Not modified"}},
)
public.add_api_route(
    "/credentials/{credential_id}/qr.png",
    _qr_route("png", qr_png, "image/png"),
    methods=["GET"],
    summary="QR code (PNG) of the credential URL",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}, 304: {"description": "Not modified"}},
)


def _badge_info(settings: Settings, record: Credential) -> BadgeInfo:
    """What the badge shows, read from the credential as signed."""
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
    )


def _image_url(image: object) -> str | None:
    """The achievement image's URL when it is one a browser may load (http(s) or data:image)."""
    url = image.get("id") if isinstance(image, dict) else image
    if isinstance(url, str) and url.startswith(("https://", "http://", "data:image/")):
        return url
    return None


def _badge_route(
    kind: str, render: Callable[[BadgeInfo], bytes], media_type: str
) -> Callable[..., Response]:
    # A sync route: FastAPI runs it in the thread pool, so rendering never blocks the event loop.
    def handler(
        credential_id: str, request: Request, session: ReadSessionDep, ctx: ContextDep
    ) -> Response:
        try:
            record_id = uuid.UUID(credential_id)
        except ValueError:
            raise NotFound(f"No credential {credential_id}.") from None
        key = f"{record_id}.badge.{kind}"
        image = ctx.images.get(key)
        if image is None:
            record = credentials_service.get_credential(session, credential_id=record_id)
            body = render(_badge_info(ctx.settings, record))
            image = CachedImage(
                body=body, etag=f'"{hashlib.sha256(body).hexdigest()[:32]}"', media_type=media_type
            )
            ctx.images.put(key, image)
        return _serve(request, image)

    return handler


public.add_api_route(
    "/credentials/{credential_id}/badge.svg",
    _badge_route("svg", badge_svg, "image/svg+xml"),
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
    _badge_route("png", badge_png, "image/png"),
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
