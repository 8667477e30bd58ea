"""Issuance: build, sign and record OB 3.0 credentials, exactly once per idempotency key."""

from __future__ import annotations

import hashlib
import json
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.achievements import service as achievements_service
from app.core import jose
from app.core.config import Settings
from app.core.db import utcnow
from app.core.errors import AppError, NotFound, Unprocessable
from app.core.keys import KeyStore
from app.credentials import builder, repository
from app.credentials.models import Credential
from app.credentials.schemas import CredentialCreate
from app.issuers import service as issuers_service
from app.issuers.models import Issuer


class CredentialNotFound(NotFound):
    pass


class InvalidValidityPeriod(Unprocessable):
    pass


class IdempotencyMismatch(AppError):
    status_code = 422
    title = "Idempotency key reused"


@dataclass(frozen=True)
class Issued:
    record: Credential
    replayed: bool


def credential_url(settings: Settings, credential_id: uuid.UUID) -> str:
    return settings.url(f"/credentials/{credential_id}")


def request_fingerprint(data: CredentialCreate) -> str:
    canonical = json.dumps(data.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _recipient(data: CredentialCreate) -> builder.Recipient:
    r = data.recipient
    subject_id = r.did or (str(r.url) if r.url else None) or f"urn:uuid:{uuid.uuid4()}"
    if r.email is not None:
        salt = secrets.token_hex(16)
        return builder.Recipient(
            subject_id=subject_id,
            email_hash=builder.identity_hash(builder.normalise_email(str(r.email)), salt),
            salt=salt,
            name=r.name,
        )
    return builder.Recipient(subject_id=subject_id, name=r.name)


def issue_credential(
    session: Session,
    *,
    settings: Settings,
    keystore: KeyStore,
    issuer: Issuer,
    data: CredentialCreate,
    idempotency_key: str | None = None,
) -> Issued:
    """Build, sign and store one credential. A repeated idempotency key replays the first result."""
    fingerprint = request_fingerprint(data) if idempotency_key else None
    if idempotency_key:
        earlier = repository.by_idempotency_key(session, issuer.id, idempotency_key)
        if earlier is not None:
            return _replay(earlier, fingerprint)

    achievement = achievements_service.get_achievement(
        session, achievement_id=data.achievement_id, issuer=issuer
    )
    signer = issuers_service.signer_for(
        session, settings=settings, keystore=keystore, issuer=issuer
    )
    # The record keeps the full-precision instant so that listings ("oldest first") follow the
    # order of issuance; the signed dates are whole seconds.
    issued_at = utcnow()
    now = issued_at.replace(microsecond=0)
    valid_from = (data.valid_from or now).replace(microsecond=0)
    valid_until = data.valid_until.replace(microsecond=0) if data.valid_until else None
    if valid_until is not None and valid_until <= valid_from:
        # The schema only compares the two when both are given; the default (now) and the
        # truncation to whole seconds must not yield a credential that ends before it begins.
        raise InvalidValidityPeriod(
            f"valid_until must be later than valid_from ({builder.isoformat(valid_from)}).",
            errors=[{"loc": ["body", "valid_until"], "msg": "must be later than valid_from"}],
        )
    credential_id = uuid.uuid4()
    recipient = _recipient(data)
    credential = builder.build_credential(
        credential_id=credential_url(settings, credential_id),
        issuer_profile=issuers_service.profile_document(settings, issuer),
        achievement=achievements_service.achievement_document(settings, achievement),
        recipient=recipient,
        valid_from=valid_from,
        valid_until=valid_until,
        awarded=now,
        evidence=[e.model_dump(mode="json", exclude_none=True) for e in data.evidence or []],
    )
    token = jose.sign(
        builder.jwt_claims(credential), key=signer.key, algorithm=signer.algorithm, kid=signer.kid
    )
    record = Credential(
        id=credential_id,
        issuer_id=issuer.id,
        achievement_id=achievement.id,
        signing_key_id=signer.signing_key_id,
        subject_id=recipient.subject_id,
        recipient_hash=recipient.email_hash,
        recipient_salt=recipient.salt,
        recipient_name=recipient.name,
        valid_from=valid_from,
        valid_until=valid_until,
        issued_at=issued_at,
        jwt=token,
        idempotency_key=idempotency_key,
        request_hash=fingerprint,
    )
    if idempotency_key is None:
        session.add(record)
        session.flush()
        return Issued(record=record, replayed=False)
    # A concurrent request with the same key may have won the race: keep its result, drop ours.
    savepoint = session.begin_nested()
    try:
        session.add(record)
        session.flush()
    except IntegrityError:
        savepoint.rollback()
        earlier = repository.by_idempotency_key(session, issuer.id, idempotency_key)
        if earlier is None:
            raise
        return _replay(earlier, fingerprint)
    savepoint.commit()
    return Issued(record=record, replayed=False)


def _replay(earlier: Credential, fingerprint: str | None) -> Issued:
    if earlier.request_hash != fingerprint:
        raise IdempotencyMismatch(
            "This Idempotency-Key was already used with a different request body; use a new key."
        )
    return Issued(record=earlier, replayed=True)


def get_credential(
    session: Session, *, credential_id: uuid.UUID, issuer: Issuer | None = None
) -> Credential:
    record = repository.get(session, credential_id)
    if record is None or (issuer is not None and record.issuer_id != issuer.id):
        raise CredentialNotFound(f"No credential {credential_id}.")
    return record


def credential_json(record: Credential) -> dict[str, Any]:
    """The credential as signed: the JWT payload without the JWT-only registered claims."""
    _header, payload = jose.unverified_parts(record.jwt)
    for claim in ("iss", "jti", "sub", "nbf", "exp", "iat"):
        payload.pop(claim, None)
    return payload
