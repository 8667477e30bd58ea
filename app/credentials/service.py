"""Issuance: build, sign and record OB 3.0 credentials, exactly once per idempotency key."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from app.achievements import service as achievements_service
from app.audit import service as audit_service
from app.audit.models import AuditEventType
from app.core import jose
from app.core.config import Settings
from app.core.db import add_unless_conflict, utcnow
from app.core.errors import AppError, Conflict, NotFound, Unprocessable
from app.core.keys import KeyStore
from app.core.metrics import CREDENTIALS_ISSUED
from app.core.security import hash_secret
from app.credentials import builder, repository
from app.credentials.models import Credential, CredentialStatus
from app.credentials.schemas import CredentialCreate
from app.issuers import service as issuers_service
from app.issuers.models import Issuer
from app.status import service as status_service
from app.webhooks import service as webhooks_service
from app.webhooks.models import WebhookEventType


class CredentialNotFound(NotFound):
    pass


class InvalidValidityPeriod(Unprocessable):
    pass


class IdempotencyMismatch(AppError):
    status_code = 422
    title = "Idempotency key reused"


MANAGE_TOKEN_PREFIX = "mcm_"  # noqa: S105 - a public prefix (for secret scanners), not a secret
# What `new_manage_token` makes: the prefix and 32 random bytes in unpadded base64url.
MANAGE_TOKEN_PATTERN = re.compile(r"mcm_[A-Za-z0-9_-]{43}")


def new_manage_token() -> str:
    """A fresh management token for the recipient: 256 random bits; only its hash is stored."""
    return MANAGE_TOKEN_PREFIX + secrets.token_urlsafe(32)


def manage_url(settings: Settings, token: str) -> str:
    return settings.url(f"/manage/{token}")


@dataclass(frozen=True)
class Issued:
    record: Credential
    replayed: bool
    # The recipient's management token, known only at first issuance (replays cannot repeat it).
    manage_token: str | None = None


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
    achievement_id = achievements_service.achievement_ref(settings, data.achievement_id)
    fingerprint = request_fingerprint(data) if idempotency_key else None
    if idempotency_key:
        earlier = repository.by_idempotency_key(session, issuer.id, idempotency_key)
        if earlier is not None:
            return _replay(earlier, fingerprint)

    achievement = achievements_service.get_achievement(
        session,
        achievement_id=achievement_id,
        issuer=issuer,
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
    manage_token = new_manage_token()
    claimed = status_service.claim(session, issuer=issuer, apart=False)
    allocations = claimed.revocations + claimed.suspensions
    entries = [status_service.status_entry(settings, issuer.slug, a) for a in allocations]
    credential = builder.build_credential(
        credential_id=credential_url(settings, credential_id),
        issuer_profile=issuers_service.profile_document(settings, issuer),
        achievement=achievements_service.achievement_document(settings, achievement),
        recipient=recipient,
        valid_from=valid_from,
        valid_until=valid_until,
        awarded=now,
        evidence=[e.model_dump(mode="json", exclude_none=True) for e in data.evidence or []],
        # One entry (revocation) keeps the credential valid against the strict OB 3.0 schema;
        # issuers that offer suspension get both, as the array VCDM 2.0 allows.
        credential_status=entries[0] if len(entries) == 1 else entries,
    )
    credential, token = builder.secure(credential, signer=signer, created=now)
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
        status=CredentialStatus.active,
        revocation_list_id=allocations[0].list_id,
        revocation_index=allocations[0].index,
        suspension_list_id=allocations[1].list_id if len(allocations) > 1 else None,
        suspension_index=allocations[1].index if len(allocations) > 1 else None,
        manage_token_hash=hash_secret(manage_token),
    )
    if idempotency_key is None:
        session.add(record)
        session.flush()
    elif not add_unless_conflict(session, record):
        # A concurrent request with the same key won the race: keep its result, drop ours.
        earlier = repository.by_idempotency_key(session, issuer.id, idempotency_key)
        if earlier is None:
            raise IdempotencyMismatch(
                "The Idempotency-Key collided with a request that left no credential; retry."
            )
        return _replay(earlier, fingerprint)  # our status slots stay unused (see status.claim)
    CREDENTIALS_ISSUED.labels(str(signer.algorithm), "api").inc()
    audit_service.append(
        session,
        issuer_id=issuer.id,
        event_type=AuditEventType.credential_issued,
        subject=credential["id"],
        data={"achievement": str(achievement.id), "kid": signer.kid}
        | ({"verificationMethod": signer.proof.verification_method} if signer.proof else {}),
    )
    webhooks_service.enqueue(
        session,
        issuer_id=issuer.id,
        event_type=WebhookEventType.credential_issued,
        data=_event_data(record, url=credential["id"], issuer_slug=issuer.slug),
    )
    return Issued(record=record, replayed=False, manage_token=manage_token)


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


def list_credentials(
    session: Session,
    *,
    issuer: Issuer,
    limit: int,
    after: tuple[datetime, uuid.UUID] | None = None,
    achievement_id: uuid.UUID | None = None,
    subject_id: str | None = None,
    issued_after: datetime | None = None,
    issued_before: datetime | None = None,
) -> Sequence[Credential]:
    """A page of the issuer's credentials, oldest first, filtered (`after`: the last one seen)."""
    return repository.list_for_issuer(
        session,
        issuer.id,
        limit=limit,
        after=after,
        achievement_id=achievement_id,
        subject_id=subject_id,
        issued_after=issued_after,
        issued_before=issued_before,
    )


def credential_json(record: Credential) -> dict[str, Any]:
    """The credential as signed: the JWT payload without the JWT-only registered claims."""
    _header, payload = jose.unverified_parts(record.jwt)
    for claim in ("iss", "jti", "sub", "nbf", "exp", "iat"):
        payload.pop(claim, None)
    return payload


# --- lifecycle ----------------------------------------------------------------------------------


class StatusConflict(Conflict):
    title = "Status change not possible"


def _locked(session: Session, *, issuer: Issuer, credential_id: uuid.UUID) -> Credential:
    record = repository.get_for_update(session, credential_id)
    if record is None or record.issuer_id != issuer.id:
        raise CredentialNotFound(f"No credential {credential_id}.")
    return record


def _changed(
    session: Session,
    record: Credential,
    status: CredentialStatus,
    reason: str,
    event: AuditEventType,
) -> Credential:
    record.status = status
    record.status_reason = reason
    record.status_changed_at = utcnow()
    # The lists' bits derive from these columns; bump their versions in this same transaction.
    for list_id in (record.revocation_list_id, record.suspension_list_id):
        if list_id is not None:
            status_service.touch(session, list_id)
    session.flush()
    audit_service.append(
        session,
        issuer_id=record.issuer_id,
        event_type=event,
        subject=str(record.id),
        data={"reason": reason},
    )
    issuer = session.get(Issuer, record.issuer_id)  # in the identity map: the caller's issuer
    webhooks_service.enqueue(
        session,
        issuer_id=record.issuer_id,
        # credential.revoked / .suspended / .unsuspended: the audit event's name
        event_type=WebhookEventType(event.value),
        data=_event_data(
            record,
            url=credential_json(record)["id"],
            issuer_slug=issuer.slug if issuer is not None else "",
            reason=reason,
        ),
    )
    return record


def revoke(
    session: Session, *, issuer: Issuer, credential_id: uuid.UUID, reason: str
) -> Credential:
    """Revoke for good: the revocation bit is set and the credential never verifies again."""
    record = _locked(session, issuer=issuer, credential_id=credential_id)
    if record.status == CredentialStatus.revoked:
        raise StatusConflict("This credential is already revoked; revocation is final.")
    if record.revocation_list_id is None:
        raise StatusConflict(
            "This credential was issued without a revocation entry and cannot be revoked."
        )
    return _changed(
        session, record, CredentialStatus.revoked, reason, AuditEventType.credential_revoked
    )


def suspend(
    session: Session, *, issuer: Issuer, credential_id: uuid.UUID, reason: str
) -> Credential:
    """Suspend for now (the issuer must offer suspension); unsuspend lifts it."""
    record = _locked(session, issuer=issuer, credential_id=credential_id)
    if record.suspension_list_id is None:
        raise StatusConflict(
            "This credential carries no suspension entry: its issuer does not offer suspension. Revoke it instead."
        )
    if record.status == CredentialStatus.revoked:
        raise StatusConflict(
            "This credential is revoked; a revoked credential cannot be suspended."
        )
    if record.status == CredentialStatus.suspended:
        raise StatusConflict("This credential is already suspended.")
    return _changed(
        session, record, CredentialStatus.suspended, reason, AuditEventType.credential_suspended
    )


def unsuspend(
    session: Session, *, issuer: Issuer, credential_id: uuid.UUID, reason: str
) -> Credential:
    record = _locked(session, issuer=issuer, credential_id=credential_id)
    if record.status != CredentialStatus.suspended:
        raise StatusConflict(f"This credential is not suspended (it is {record.status}).")
    return _changed(
        session, record, CredentialStatus.active, reason, AuditEventType.credential_unsuspended
    )


def _event_data(
    record: Credential, *, url: str, issuer_slug: str, reason: str | None = None
) -> dict[str, Any]:
    """The `data` of a credential event: what a receiver needs to find the credential."""
    return webhooks_service.event_data(
        credential_id=record.id,
        url=url,
        issuer_slug=issuer_slug,
        achievement_id=record.achievement_id,
        status=str(record.status),
        reason=reason,
    )
