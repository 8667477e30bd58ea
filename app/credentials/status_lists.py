"""Public status lists: `BitstringStatusListCredential`s, signed as VC-JWTs (and, for issuers
with Data Integrity, as JSON-LD with an embedded eddsa-rdfc-2022 proof), cached per version.

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
from app.core.web import (
    JSON_TYPES,
    JWT_TYPES,
    VC_LD_TYPE,
    VC_TYPE,
    CredentialForm,
    credential_form,
    negotiated,
)
from app.credentials import repository
from app.issuers import service as issuers_service
from app.issuers.models import KeyPurpose
from app.status import service

public = APIRouter(tags=["public"])

# Short: a revocation must reach verifiers that cache the list within a minute.
CACHE_CONTROL = "public, max-age=60, must-revalidate"
# The ETag's suffix per form: the forms of one version differ, and so must their tags.
ETAG_FORMS: dict[CredentialForm, str] = {"jwt": "t", "json": "j", "vc": "d", "html": "h"}


@public.get(
    "/status/{slug}/{purpose}/{seq}",
    responses={
        200: {
            "content": {
                "application/vc+jwt": {"schema": {"type": "string"}},
                "application/vc+ld+json": {},
                "application/ld+json": {},
                "application/vc": {},
            },
            "description": "The signed status list credential (JWT, the default), its JSON payload "
            "(application/json), or, for an issuer with Data Integrity, the JSON-LD credential "
            "with an embedded eddsa-rdfc-2022 proof (application/ld+json, application/vc, "
            "application/vc+ld+json; the JSON payload for other issuers).",
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
    # The Data Integrity key, read from the database like the JWT key below; None: no DI form.
    proof_key = (
        issuers_service.active_key_id(session, issuer=issuer, purpose=KeyPurpose.data_integrity)
        if issuer.data_integrity
        else None
    )
    form, wanted = credential_form(
        request,
        (*JWT_TYPES, *JSON_TYPES, VC_LD_TYPE, *((VC_TYPE,) if proof_key else ())),
        "application/vc+jwt",
    )
    if form == "vc" and proof_key is None:
        form = "json"  # as before Data Integrity: the JSON payload, without a proof
    # The signed list is cached per version of the bits, per signing key (a rotation or a
    # compromise on any replica changes the active key, read here from the database), and per
    # half-lifetime window: a list is re-signed at least every TTL/2, so what is served always
    # has half its validity ahead of it, and replicas agree on the ETag of a window. Every form
    # shares that key (the Data Integrity key in it too): a revocation bumps the version, so no
    # form is served from before it, the secured JSON-LD no more than the JWT.
    signing_key = issuers_service.active_key_id(session, issuer=issuer)
    window = int(time.time() // (service.LIST_CREDENTIAL_TTL.total_seconds() / 2))
    version = f"{status_list.version}:{signing_key}:{proof_key or '-'}:{window}"
    key = f"status:{status_list.id}:{version}:{form}"
    cached = ctx.images.get(key)
    if cached is None:
        signed = service.build_list_credential(
            session,
            settings=ctx.settings,
            keystore=ctx.keystore,
            issuer=issuer,
            status_list=status_list,
            set_indices=repository.set_indices(session, status_list),
            with_proof=form == "vc",
        )
        if form == "jwt":
            body, media = signed.jwt.encode(), "application/vc+jwt"
        else:
            # (`secured` is None only if Data Integrity was turned off between the two reads.)
            document = signed.secured if form == "vc" and signed.secured else signed.credential
            body, media = json.dumps(document).encode(), VC_LD_TYPE
        digest = hashlib.sha256(f"{status_list.id}:{version}".encode()).hexdigest()[:20]
        # Weak: two replicas sign the same bits in the same window with different bytes.
        cached = CachedImage(body=body, etag=f'W/"{digest}-{ETAG_FORMS[form]}"', media_type=media)
        ctx.images.put(key, cached)
    headers = {"ETag": cached.etag, "Cache-Control": CACHE_CONTROL}
    if cached.etag in {t.strip() for t in request.headers.get("if-none-match", "").split(",")}:
        return negotiated(Response(status_code=304, headers=headers))
    # The secured form says it is what was asked for (application/ld+json, application/vc …).
    media_type = wanted if form == "vc" else cached.media_type
    return negotiated(Response(cached.body, media_type=media_type, headers=headers))
