"""The SQL of verification: what one verification of our own credential reads, in one round trip."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from app.credentials.models import Credential
from app.issuers.models import Issuer, KeyStatus, SigningKey


@dataclass(frozen=True)
class KeyState:
    """A signing key as the register holds it now (its status may change at any moment)."""

    status: KeyStatus
    compromised_at: datetime | None
    public_jwk: dict[str, Any]


# Built once: constructing a select() costs more than running it (the compiled form is cached by
# SQLAlchemy either way). The LEFT JOIN's ON clause does not refer to the key: the issuance
# record rides along with the key's row, so a verification of our own credential reads its key's
# current status and its record's current status in one statement, one snapshot.
_KEY_AND_RECORD = (
    select(SigningKey.status, SigningKey.compromised_at, SigningKey.public_jwk, Credential)
    .select_from(Issuer)
    .join(SigningKey, SigningKey.issuer_id == Issuer.id)
    .outerjoin(Credential, Credential.id == bindparam("record_id", type_=Credential.id.type))
    .where(Issuer.slug == bindparam("slug"), SigningKey.key_id == bindparam("key_id"))
)


def key_and_record(
    session: Session, *, slug: str, key_id: str, record_id: uuid.UUID | None
) -> tuple[KeyState, Credential | None] | None:
    """The issuer's signing key `key_id` and, if given and stored, the credential `record_id`.

    None when the issuer or the key does not exist (then nothing says whether the record does).
    """
    row = session.execute(
        _KEY_AND_RECORD, {"slug": slug, "key_id": key_id, "record_id": record_id}
    ).first()
    if row is None:
        return None
    status, compromised_at, public_jwk, record = row
    return KeyState(KeyStatus(status), compromised_at, public_jwk), record
