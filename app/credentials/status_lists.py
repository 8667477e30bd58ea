"""Public status lists: `BitstringStatusListCredential`s, signed as VC-JWTs, cached per version.

Served from the credentials feature because a list's bits are the states of the credentials
that hold its indices; `app/status/` allocates the indices and signs what it is given."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response

from app.core.cache import CachedImage
from app.core.deps import ContextDep, ReadSessionDep
from app.core.openapi import problem_responses
from app.core.web import JSON_TYPES, JWT_TYPES, negotiated, preferred
from app.credentials import repository
from app.issuers import service as issuers_service
from app.status import service

public = APIRouter(tags=["public"])

# Short: a revocation must reach verifiers that cache the list within a minute.
CACHE_CONTROL = "public, max-age=60, must-revalidate"


@public.get(
    "/status/{slug}/{purpose}/{seq}",
    responses={
        200: {
            "content": {
                "application/vc+jwt": {"schema": {"type": "string"}},
                "application/vc+ld+json": {},
            },
            "description": "The signed status list credential (JWT), or its JSON payload by Accept.",
        },
        304: {"description": "Not modified"},
        **problem_responses(409, _409="The issuer has no active key to sign the list with"),
    },
    response_class=Response,
)
def status_list(
    slug: str,
    purpose: str,
    seq: Annotated[int, Path(ge=1, le=1_000_000)],
    request: Request,
    session: ReadSessionDep,
    ctx: ContextDep,
) -> Response:
    """A status list credential: which of the issuer's credentials are revoked (or suspended)."""
    issuer, status_list = service.find_list(session, slug=slug, purpose=purpose, seq=seq)
    as_json = (
        preferred(
            request, (*JWT_TYPES, *JSON_TYPES, "application/vc+ld+json"), "application/vc+jwt"
        )
        not in JWT_TYPES
    )
    # The signed list is cached per version of the bits, per signing key (a rotation or a
    # compromise on any replica changes the active key, read here from the database), and per
    # half-lifetime window: a list is re-signed at least every TTL/2, so what is served always
    # has half its validity ahead of it, and replicas agree on the ETag of a window.
    signing_key = issuers_service.active_key_id(session, issuer=issuer)
    window = int(time.time() // (service.LIST_CREDENTIAL_TTL.total_seconds() / 2))
    version = f"{status_list.version}:{signing_key}:{window}"
    key = f"status:{status_list.id}:{version}:{'json' if as_json else 'jwt'}"
    cached = ctx.images.get(key)
    if cached is None:
        signed = service.build_list_credential(
            session,
            settings=ctx.settings,
            keystore=ctx.keystore,
            issuer=issuer,
            status_list=status_list,
            set_indices=repository.set_indices(session, status_list),
        )
        body = json.dumps(signed.credential).encode() if as_json else signed.jwt.encode()
        media = "application/vc+ld+json" if as_json else "application/vc+jwt"
        digest = hashlib.sha256(f"{status_list.id}:{version}".encode()).hexdigest()[:20]
        # Weak: two replicas sign the same bits in the same window with different bytes.
        cached = CachedImage(
            body=body, etag=f'W/"{digest}-{"j" if as_json else "t"}"', media_type=media
        )
        ctx.images.put(key, cached)
    headers = {"ETag": cached.etag, "Cache-Control": CACHE_CONTROL}
    if cached.etag in {t.strip() for t in request.headers.get("if-none-match", "").split(",")}:
        return negotiated(Response(status_code=304, headers=headers))
    return negotiated(Response(cached.body, media_type=cached.media_type, headers=headers))
