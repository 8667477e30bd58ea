"""The issuer behind an API key, as a dependency."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials

from app.core.deps import SessionDep, issuer_bearer
from app.core.errors import Unauthorized
from app.core.ratelimit import credential_key, limiter
from app.core.security import hash_secret
from app.issuers import repository
from app.issuers.models import Issuer


def current_issuer(
    request: Request,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(issuer_bearer)],
) -> Issuer:
    token = credentials.credentials if credentials else None
    if token is None:
        raise Unauthorized("This endpoint needs an issuer API key as a bearer token.")
    with limiter(request).attempt(request, credential_key("apikey", token), Unauthorized):
        issuer = repository.issuer_for_api_key(session, hash_secret(token))
        if issuer is None:
            raise Unauthorized("The API key is not valid or has been revoked.")
    return issuer


CurrentIssuer = Annotated[Issuer, Depends(current_issuer)]
