"""QR code images of credential URLs, rendered once and served from memory with strong ETags."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.badges.qr import qr_png, qr_svg
from app.core.cache import CachedImage
from app.core.deps import ContextDep, ReadSessionDep
from app.core.errors import NotFound
from app.credentials import service as credentials_service

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
