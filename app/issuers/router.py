"""Issuer routes: the operator's API and the public profile, DID document and JWKS."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from app.core.config import Settings
from app.core.deps import AdminDep, ContextDep, ReadSessionDep, SessionDep, SettingsDep
from app.core.openapi import media_types, problem_responses
from app.core.standards import OB3_CONTEXT, VC2_CONTEXT
from app.core.web import negotiated, render, wants_html
from app.issuers import repository, service
from app.issuers.models import Issuer, KeyPurpose, SigningKey
from app.issuers.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyRead,
    IssuerCreate,
    IssuerCreated,
    IssuerRead,
    IssuerUpdate,
    KeyCompromise,
    KeyRotate,
    SigningKeyRead,
    SigningKeyRotated,
)

api = APIRouter(prefix="/api/v1/issuers", tags=["operator"])
public = APIRouter(tags=["public"])


def signing_key_read(did: str, key: SigningKey) -> SigningKeyRead:
    return SigningKeyRead.from_record(did, key)


def issuer_read(
    settings: Settings, issuer: Issuer, keys: list[SigningKey] | tuple[SigningKey, ...]
) -> IssuerRead:
    return IssuerRead.from_record(settings, issuer, keys)


@api.post(
    "",
    status_code=201,
    response_model=IssuerCreated,
    responses=problem_responses(409, _409="The slug is taken"),
)
def create_issuer(
    data: IssuerCreate, _admin: AdminDep, session: SessionDep, ctx: ContextDep
) -> IssuerCreated:
    """Create an issuer with a signing key and a first API key (shown once)."""
    issuer, key, api_key, secret = service.create_issuer(session, keystore=ctx.keystore, data=data)
    return IssuerCreated(
        issuer=issuer_read(ctx.settings, issuer, list(repository.keys_of(session, issuer.id))),
        api_key=ApiKeyCreated(**ApiKeyRead.model_validate(api_key).model_dump(), key=secret),
        warnings=service.algorithm_warnings(key.algorithm),
    )


@api.get("", response_model=list[IssuerRead])
def list_issuers(_admin: AdminDep, session: SessionDep, settings: SettingsDep) -> list[IssuerRead]:
    """List every issuer."""
    return [issuer_read(settings, i, keys) for i, keys in service.list_issuers(session)]


@api.get("/{slug}", response_model=IssuerRead)
def get_issuer(
    slug: str, _admin: AdminDep, session: SessionDep, settings: SettingsDep
) -> IssuerRead:
    """Read one issuer with its keys."""
    issuer = service.get_issuer(session, slug=slug)
    return issuer_read(settings, issuer, list(repository.keys_of(session, issuer.id)))


@api.patch("/{slug}", response_model=IssuerRead)
def update_issuer(
    slug: str, data: IssuerUpdate, _admin: AdminDep, session: SessionDep, ctx: ContextDep
) -> IssuerRead:
    """Change an issuer's settings (its LinkedIn organization id, Data Integrity proofs)."""
    issuer = service.update_issuer(
        session, keystore=ctx.keystore, issuer=service.get_issuer(session, slug=slug), data=data
    )
    return issuer_read(ctx.settings, issuer, list(repository.keys_of(session, issuer.id)))


@api.get("/{slug}/api-keys", response_model=list[ApiKeyRead])
def list_api_keys(slug: str, _admin: AdminDep, session: SessionDep) -> list[ApiKeyRead]:
    """List an issuer's API keys (never the secrets)."""
    issuer = service.get_issuer(session, slug=slug)
    return [ApiKeyRead.model_validate(k) for k in service.list_api_keys(session, issuer=issuer)]


@api.post("/{slug}/api-keys", status_code=201, response_model=ApiKeyCreated)
def create_api_key(
    slug: str, _admin: AdminDep, session: SessionDep, data: ApiKeyCreate | None = None
) -> ApiKeyCreated:
    """Create another API key for an issuer (shown once)."""
    issuer = service.get_issuer(session, slug=slug)
    record, secret = service.create_api_key(session, issuer=issuer, data=data)
    return ApiKeyCreated(**ApiKeyRead.model_validate(record).model_dump(), key=secret)


@api.delete(
    "/{slug}/api-keys/{key_id}",
    response_model=ApiKeyRead,
    responses=problem_responses(409, _409="The API key is already revoked"),
)
def revoke_api_key(
    slug: str, key_id: uuid.UUID, _admin: AdminDep, session: SessionDep
) -> ApiKeyRead:
    """Revoke an API key: it stops working at once."""
    issuer = service.get_issuer(session, slug=slug)
    return ApiKeyRead.model_validate(service.revoke_api_key(session, issuer=issuer, key_id=key_id))


@api.get("/{slug}/keys", response_model=list[SigningKeyRead])
def list_signing_keys(
    slug: str, _admin: AdminDep, session: SessionDep, settings: SettingsDep
) -> list[SigningKeyRead]:
    """List an issuer's signing keys: active, retired and compromised."""
    issuer = service.get_issuer(session, slug=slug)
    did = settings.issuer_did(issuer.slug)
    return [signing_key_read(did, k) for k in service.list_signing_keys(session, issuer=issuer)]


@api.post("/{slug}/keys", status_code=201, response_model=SigningKeyRotated)
def rotate_signing_key(
    slug: str, _admin: AdminDep, session: SessionDep, ctx: ContextDep, data: KeyRotate | None = None
) -> SigningKeyRotated:
    """Rotate: a new key signs from now on; the previous one is retired and stays published."""
    issuer = service.get_issuer(session, slug=slug)
    key = service.rotate_key(
        session,
        keystore=ctx.keystore,
        issuer=issuer,
        algorithm=data.algorithm if data else None,
        purpose=data.purpose if data else KeyPurpose.jwt,
    )
    read = signing_key_read(ctx.settings.issuer_did(issuer.slug), key)
    warnings = service.algorithm_warnings(key.algorithm) if key.purpose == KeyPurpose.jwt else []
    return SigningKeyRotated(**read.model_dump(), warnings=warnings)


@api.post(
    "/{slug}/keys/{key_id}/retire",
    response_model=SigningKeyRead,
    responses=problem_responses(409, _409="The key is not active, or the only active one"),
)
def retire_signing_key(
    slug: str, key_id: str, _admin: AdminDep, session: SessionDep, settings: SettingsDep
) -> SigningKeyRead:
    """Stop signing with a key (never the only active one); what it signed keeps verifying."""
    issuer = service.get_issuer(session, slug=slug)
    key = service.retire_key(session, issuer=issuer, key_id=key_id)
    return signing_key_read(settings.issuer_did(issuer.slug), key)


@api.post(
    "/{slug}/keys/{key_id}/compromise",
    response_model=SigningKeyRead,
    responses=problem_responses(409, _409="The key is compromised already"),
)
def compromise_signing_key(
    slug: str,
    key_id: str,
    _admin: AdminDep,
    session: SessionDep,
    settings: SettingsDep,
    data: KeyCompromise | None = None,
) -> SigningKeyRead:
    """Mark a key compromised: it leaves the DID document and JWKS; what it signed fails."""
    issuer = service.get_issuer(session, slug=slug)
    key = service.compromise_key(
        session, issuer=issuer, key_id=key_id, since=data.since if data else None
    )
    return signing_key_read(settings.issuer_did(issuer.slug), key)


# --- public ---------------------------------------------------------------------------------

_PUBLIC_CACHE = "public, max-age=300"


@public.get(
    "/issuers/{slug}",
    response_model=None,
    response_class=Response,
    responses=media_types(
        "application/ld+json", "text/html", description="The profile, or its page"
    ),
)
def issuer_profile(
    slug: str, request: Request, session: ReadSessionDep, settings: SettingsDep
) -> Response:
    """The issuer's OB 3.0 Profile (an HTML page for browsers)."""
    issuer = service.get_issuer(session, slug=slug)
    profile: dict[str, Any] = {
        "@context": [VC2_CONTEXT, OB3_CONTEXT],
        **service.profile_document(settings, issuer),
    }
    if wants_html(request):
        keys = repository.keys_of(session, issuer.id)
        return negotiated(
            render(
                request,
                "issuer.html",
                {
                    "issuer": issuer,
                    "profile": profile,
                    "keys": keys,
                    "did": profile["id"],
                    "settings": settings,
                },
            )
        )
    return negotiated(
        JSONResponse(
            profile, media_type="application/ld+json", headers={"Cache-Control": _PUBLIC_CACHE}
        )
    )


@public.get(
    "/issuers/{slug}/did.json",
    response_class=Response,
    responses=media_types("application/did+json", description="The DID document"),
)
def issuer_did_document(slug: str, session: ReadSessionDep, settings: SettingsDep) -> JSONResponse:
    """The issuer's did:web DID document: its keys not reported compromised, active first."""
    issuer = service.get_issuer(session, slug=slug)
    document = service.did_document(settings, issuer, repository.keys_of(session, issuer.id))
    return JSONResponse(
        document, media_type="application/did+json", headers={"Cache-Control": _PUBLIC_CACHE}
    )


@public.get(
    "/issuers/{slug}/jwks.json",
    response_class=Response,
    responses=media_types("application/jwk-set+json", description="The key set"),
)
def issuer_jwks(slug: str, session: ReadSessionDep, settings: SettingsDep) -> JSONResponse:
    """The keys of the DID document, in its order, as a JSON Web Key Set."""
    issuer = service.get_issuer(session, slug=slug)
    document = service.jwks_document(settings, issuer, repository.keys_of(session, issuer.id))
    return JSONResponse(
        document, media_type="application/jwk-set+json", headers={"Cache-Control": _PUBLIC_CACHE}
    )
