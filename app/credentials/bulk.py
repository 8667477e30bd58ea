"""Bulk issuance: sign and store many credentials in one transaction with a few multi-row inserts.

The single-issuance path (`service.issue_credential`) makes several round trips per credential;
here one chunk of rows costs a handful: existing external ids, achievements, the signer, status
indices, then one executemany each for credentials, audit events and webhook messages. The
credentials are the same: `builder.build_credential` makes both.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any, Literal

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.achievements import service as achievements_service
from app.audit import service as audit_service
from app.audit.models import AuditEventType
from app.core.config import Settings
from app.core.db import bulk_insert, insert_ignoring_conflicts, utcnow
from app.core.keys import KeyStore
from app.core.metrics import CREDENTIALS_ISSUED
from app.credentials import builder, repository
from app.credentials.models import Credential, CredentialStatus
from app.credentials.service import credential_url
from app.issuers import service as issuers_service
from app.issuers.models import Issuer
from app.status import service as status_service
from app.webhooks import service as webhooks

Outcome = Literal["issued", "existing", "failed"]


@dataclass(frozen=True)
class BulkRequest:
    """One row to issue: `ref` is the caller's handle for it (the job's row number).

    `data` is a validated `CredentialCreate` dumped as JSON (what a job stores for each row).
    """

    ref: int
    data: dict[str, Any]
    external_id: str | None = None

    @property
    def achievement_id(self) -> uuid.UUID:
        return uuid.UUID(str(self.data["achievement_id"]))


@dataclass(frozen=True)
class Batch:
    """What `issue_many` did: a result per request, and the credentials it stored, which
    `announce` writes to the audit trail and the webhook outbox."""

    results: list[BulkResult]
    stored: list[dict[str, Any]] = field(default_factory=list)
    kid: str = ""


@dataclass(frozen=True)
class BulkResult:
    ref: int
    outcome: Outcome
    credential_id: uuid.UUID | None = None
    error: str | None = None


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _recipient(data: dict[str, Any]) -> builder.Recipient:
    r = data["recipient"]
    subject_id = r.get("did") or r.get("url") or f"urn:uuid:{uuid.uuid4()}"
    if r.get("email"):
        salt = secrets.token_hex(16)
        return builder.Recipient(
            subject_id=subject_id,
            email_hash=builder.identity_hash(builder.normalise_email(r["email"]), salt),
            salt=salt,
            name=r.get("name"),
        )
    return builder.Recipient(subject_id=subject_id, name=r.get("name"))


def issue_many(
    session: Session,
    *,
    settings: Settings,
    keystore: KeyStore,
    issuer: Issuer,
    requests: Sequence[BulkRequest],
) -> Batch:
    """Issue every request that can be issued; report the others. Flushes, never commits.

    Call `announce` with the result before the transaction commits. It is separate so that a
    caller can write it last: it locks the issuer's audit chain until the commit.

    A row whose `external_id` already has a credential (an earlier submission, or a concurrent
    one that won the race) is reported `existing` with that credential: nothing is issued twice.
    A row that cannot be issued is reported `failed` and leaves nothing behind.
    """
    results: dict[int, BulkResult] = {}
    achievement_of = {r.ref: r.achievement_id for r in requests}
    achievements = {
        a.id: a
        for a in achievements_service.achievements_of(
            session, issuer=issuer, ids=set(achievement_of.values())
        )
    }
    documents = {
        a_id: achievements_service.achievement_document(settings, a)
        for a_id, a in achievements.items()
    }
    issued_at = utcnow()
    now = issued_at.replace(microsecond=0)
    todo: list[tuple[BulkRequest, uuid.UUID, datetime, datetime | None]] = []
    for request in requests:
        if achievement_of[request.ref] not in achievements:
            results[request.ref] = BulkResult(
                request.ref,
                "failed",
                error=f"achievement_id: no achievement {request.data['achievement_id']} of this issuer",
            )
            continue
        start = _when(request.data.get("valid_from"))
        valid_from = (start or now).replace(microsecond=0)
        end = _when(request.data.get("valid_until"))
        valid_until = end.replace(microsecond=0) if end else None
        if valid_until is not None and valid_until <= valid_from:
            results[request.ref] = BulkResult(
                request.ref,
                "failed",
                error=f"valid_until: must be later than valid_from ({builder.isoformat(valid_from)})",
            )
            continue
        todo.append((request, achievement_of[request.ref], valid_from, valid_until))

    if not todo:
        return Batch([results[r.ref] for r in requests])
    # Claimed before the savepoint below, so that its rollback cannot un-claim them (SQLite) and
    # a retry reuses them (the first attempt stored nothing).
    claimed = status_service.claim(session, issuer=issuer, count=len(todo))
    store = partial(
        _sign_and_store,
        session,
        settings=settings,
        keystore=keystore,
        issuer=issuer,
        documents=documents,
        issued_at=issued_at,
        results=results,
        revocations=claimed.revocations,
        suspensions=claimed.suspensions,
    )
    try:
        # Most rows are new: sign and store them all, and let the unique index on external_id
        # say otherwise. (Asking first costs a query per chunk whose plan depends on statistics
        # a young table does not have yet.)
        with session.begin_nested():
            stored, signer_kid = store(todo, tolerate_conflicts=False)
    except IntegrityError:
        # A resubmission: some external ids already have credentials. Report those, issue the rest.
        known = repository.ids_by_external_id(
            session, issuer.id, [r.external_id for r, *_ in todo if r.external_id is not None]
        )
        rest = []
        for item in todo:
            request = item[0]
            if request.external_id is not None and request.external_id in known:
                results[request.ref] = BulkResult(
                    request.ref, "existing", credential_id=known[request.external_id]
                )
            else:
                rest.append(item)
        stored, signer_kid = store(rest, tolerate_conflicts=True) if rest else ([], "")
    return Batch([results[r.ref] for r in requests], stored, signer_kid)


def _sign_and_store(
    session: Session,
    todo: list[tuple[BulkRequest, uuid.UUID, datetime, datetime | None]],
    *,
    settings: Settings,
    keystore: KeyStore,
    issuer: Issuer,
    documents: dict[uuid.UUID, dict[str, Any]],
    issued_at: datetime,
    results: dict[int, BulkResult],
    revocations: list[status_service.Allocation],
    suspensions: list[status_service.Allocation],
    tolerate_conflicts: bool,
) -> tuple[list[dict[str, Any]], str]:
    """Build, sign and insert (the n-th row gets the n-th status indices); the rows stored and
    the signing kid.

    Strict (`tolerate_conflicts=False`), a taken external id raises IntegrityError; tolerant, the
    rows a concurrent writer took first are reported `existing` (their indices stay unused).
    """
    signer = issuers_service.signer_for(
        session, settings=settings, keystore=keystore, issuer=issuer
    )
    profile = issuers_service.profile_document(settings, issuer)
    awarded = issued_at.replace(microsecond=0)
    entry = _status_entries(settings, issuer.slug)
    secure = partial(builder.secure, signer=signer, created=awarded)
    rows: list[dict[str, Any]] = []
    by_id: dict[uuid.UUID, BulkRequest] = {}
    for n, (request, achievement_id, valid_from, valid_until) in enumerate(todo):
        credential_id = uuid.uuid4()
        recipient = _recipient(request.data)
        revocation = entry(revocations[n])
        status = [revocation, entry(suspensions[n])] if suspensions else revocation
        credential = builder.build_credential(
            credential_id=credential_url(settings, credential_id),
            issuer_profile=profile,
            achievement=documents[achievement_id],
            recipient=recipient,
            valid_from=valid_from,
            valid_until=valid_until,
            awarded=awarded,
            evidence=request.data.get("evidence") or None,
            credential_status=status,
        )
        _credential, token = secure(credential)
        by_id[credential_id] = request
        rows.append(
            {
                "id": credential_id,
                "issuer_id": issuer.id,
                "achievement_id": achievement_id,
                "signing_key_id": signer.signing_key_id,
                "subject_id": recipient.subject_id,
                "recipient_hash": recipient.email_hash,
                "recipient_salt": recipient.salt,
                "recipient_name": recipient.name,
                "valid_from": valid_from,
                "valid_until": valid_until,
                "issued_at": issued_at,
                "jwt": token,
                "external_id": request.external_id,
                "status": CredentialStatus.active.value,
                "revocation_list_id": revocations[n].list_id,
                "revocation_index": revocations[n].index,
                "suspension_list_id": suspensions[n].list_id if suspensions else None,
                "suspension_index": suspensions[n].index if suspensions else None,
                "recipient_name_hidden": False,
            }
        )
    if not tolerate_conflicts:
        bulk_insert(session, Credential.__table__, rows)
        inserted = {row["id"] for row in rows}
    else:
        table = Credential.__table__
        inserted = {row[0] for row in insert_ignoring_conflicts(session, table, rows, table.c.id)}
    lost = [row for row in rows if row["id"] not in inserted]
    if lost:
        # A concurrent submission stored these external ids first: report theirs.
        winners = repository.ids_by_external_id(
            session, issuer.id, [row["external_id"] for row in lost if row["external_id"]]
        )
        for row in lost:
            request = by_id[row["id"]]
            winner = winners.get(row["external_id"]) if row["external_id"] else None
            results[request.ref] = (
                BulkResult(request.ref, "existing", credential_id=winner)
                if winner is not None
                else BulkResult(
                    request.ref, "failed", error="a concurrent write refused this row; resubmit it"
                )
            )
    stored = [row for row in rows if row["id"] in inserted]
    for row in stored:
        request = by_id[row["id"]]
        results[request.ref] = BulkResult(request.ref, "issued", credential_id=row["id"])
    if stored:
        CREDENTIALS_ISSUED.labels(str(signer.algorithm), "batch").inc(len(stored))
    return stored, signer.kid


def _status_entries(
    settings: Settings, slug: str
) -> Callable[[status_service.Allocation], dict[str, Any]]:
    """`status_service.status_entry` for many allocations of a few lists (URL made once a list)."""
    made: dict[uuid.UUID, Callable[[int], dict[str, Any]]] = {}

    def entry(allocation: status_service.Allocation) -> dict[str, Any]:
        at = made.get(allocation.list_id)
        if at is None:
            at = made[allocation.list_id] = status_service.entry_maker(
                settings, slug, allocation.status_list
            )
        return at(allocation.index)

    return entry


def announce(session: Session, *, settings: Settings, issuer: Issuer, batch: Batch) -> None:
    """The audit events and webhook messages of the credentials `issue_many` stored."""
    stored, kid = batch.stored, batch.kid
    if not stored:
        return
    # One data object per achievement, shared by its events (append_many encodes it once).
    data = {
        a: {"achievement": str(a), "kid": kid} for a in {row["achievement_id"] for row in stored}
    }
    audit_service.append_many(
        session,
        issuer_id=issuer.id,
        events=[
            (
                AuditEventType.credential_issued,
                credential_url(settings, row["id"]),
                data[row["achievement_id"]],
            )
            for row in stored
        ],
    )
    webhooks.enqueue_many(
        session,
        issuer_id=issuer.id,
        events=(("credential.issued", issued_event(settings, issuer, row)) for row in stored),
    )


def issued_event(settings: Settings, issuer: Issuer, row: dict[str, Any]) -> dict[str, Any]:
    """The `data` of a credential.issued webhook for a bulk-issued row."""
    return webhooks.event_data(
        credential_id=row["id"],
        url=credential_url(settings, row["id"]),
        issuer_slug=issuer.slug,
        achievement_id=row["achievement_id"],
        status=CredentialStatus.active.value,
        external_id=row["external_id"],
    )
