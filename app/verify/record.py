"""The `record` check: a credential that claims to be ours must match what we recorded.

Anything under our credential URLs, or naming one of our issuers, must be byte-identical to an
issuance record (a JWT we signed is stored whole). The one other thing our issuers sign is a
status list: accepted only as a `BitstringStatusListCredential` of that issuer at an existing
list URL (status lists are re-signed on demand, so no token is stored).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.identifiers import canonical_identifier
from app.credentials import repository as credentials_repository
from app.credentials.models import Credential
from app.verify.envelope import issuer_id_of, types_of
from app.verify.schemas import CheckResult
from app.verify.status import list_path, local_list

Outcome = tuple[CheckResult, str]


def own_record_id(settings: Settings, credential_id: Any) -> uuid.UUID | None:
    """The record id of one of our credentials from its id (URL), without reading anything."""
    prefix = settings.url("/credentials/")
    if not isinstance(credential_id, str) or not credential_id.startswith(prefix):
        return None
    try:
        return uuid.UUID(credential_id[len(prefix) :])
    except ValueError:
        return None


def read_record(session: Session, record_id: uuid.UUID | None) -> Credential | None:
    return credentials_repository.get(session, record_id) if record_id is not None else None


def record_outcome(
    session: Session,
    settings: Settings,
    credential: dict[str, Any],
    *,
    record: Credential | None,
    token: str | None,
    issuer_is_ours: bool,
) -> Outcome:
    cred_id = credential.get("id")
    ours = isinstance(cred_id, str) and (
        cred_id.startswith(settings.url("/credentials/"))
        or cred_id.startswith(settings.url("/status/"))
    )
    if not ours and not issuer_is_ours:
        return CheckResult.skipped, "Issued elsewhere: this service holds no record of it."
    if isinstance(cred_id, str) and list_path(settings, cred_id) is not None:
        return _status_list_outcome(session, settings, credential, cred_id)
    if record is None:
        return CheckResult.fail, "This service has no record of issuing a credential with this id."
    if token is not None and record.jwt != token.strip():
        return CheckResult.fail, "The token differs from the one recorded at issuance."
    return (
        CheckResult.pass_,
        f"Matches the issuance record of {record.issued_at.date().isoformat()}.",
    )


def _status_list_outcome(
    session: Session, settings: Settings, credential: dict[str, Any], cred_id: str
) -> Outcome:
    if "BitstringStatusListCredential" not in types_of(credential):
        return (
            CheckResult.fail,
            "This id is one of this service's status lists, and the credential is not a status list.",
        )
    path = list_path(settings, cred_id)
    issuer = issuer_id_of(credential)
    if (
        path is None
        or issuer is None
        or canonical_identifier(issuer) != settings.issuer_did(path[0])
        or local_list(session, settings, cred_id) is None
    ):
        return CheckResult.fail, "This service publishes no such status list for this issuer."
    return CheckResult.pass_, "A status list published by this service."
