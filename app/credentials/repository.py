"""Every SQL statement of the credentials feature."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from app.credentials.models import Credential
from app.status.models import StatusList, StatusPurpose


def get(session: Session, credential_id: uuid.UUID) -> Credential | None:
    return session.get(Credential, credential_id)


def get_for_update(session: Session, credential_id: uuid.UUID) -> Credential | None:
    """The row, locked until the transaction ends: status changes never race each other."""
    return session.scalars(
        select(Credential).where(Credential.id == credential_id).with_for_update()
    ).one_or_none()


def by_idempotency_key(session: Session, issuer_id: uuid.UUID, key: str) -> Credential | None:
    return session.scalars(
        select(Credential).where(
            Credential.issuer_id == issuer_id, Credential.idempotency_key == key
        )
    ).one_or_none()


def list_for_issuer(
    session: Session,
    issuer_id: uuid.UUID,
    *,
    limit: int,
    after: tuple[datetime, uuid.UUID] | None,
    achievement_id: uuid.UUID | None = None,
    subject_id: str | None = None,
    issued_after: datetime | None = None,
    issued_before: datetime | None = None,
) -> Sequence[Credential]:
    query = select(Credential).where(Credential.issuer_id == issuer_id)
    if achievement_id is not None:
        query = query.where(Credential.achievement_id == achievement_id)
    if subject_id is not None:
        query = query.where(Credential.subject_id == subject_id)
    if issued_after is not None:
        query = query.where(Credential.issued_at >= issued_after)
    if issued_before is not None:
        query = query.where(Credential.issued_at < issued_before)
    if after is not None:
        query = query.where(tuple_(Credential.issued_at, Credential.id) > tuple_(*after))
    return session.scalars(query.order_by(Credential.issued_at, Credential.id).limit(limit)).all()


def ids_by_external_id(
    session: Session, issuer_id: uuid.UUID, external_ids: Sequence[str]
) -> dict[str, uuid.UUID]:
    """The credentials already issued for these external ids (bulk idempotency)."""
    found: dict[str, uuid.UUID] = {}
    wanted = list(dict.fromkeys(external_ids))
    for start in range(0, len(wanted), 1000):
        chunk = wanted[start : start + 1000]
        for external_id, credential_id in session.execute(
            select(Credential.external_id, Credential.id).where(
                Credential.issuer_id == issuer_id, Credential.external_id.in_(chunk)
            )
        ):
            found[str(external_id)] = credential_id
    return found


# --- what the status lists say: their bits are the states of the credentials holding them --------


def set_indices(session: Session, status_list: StatusList) -> Sequence[int]:
    """The indices whose bit is 1: revoked (or currently suspended) credentials of this list."""
    if status_list.purpose == StatusPurpose.revocation:
        query = select(Credential.revocation_index).where(
            Credential.revocation_list_id == status_list.id, Credential.status == "revoked"
        )
    else:
        query = select(Credential.suspension_index).where(
            Credential.suspension_list_id == status_list.id, Credential.status == "suspended"
        )
    return [int(i) for i in session.scalars(query).all() if i is not None]


def status_at(session: Session, status_list: StatusList, index: int) -> str | None:
    """The status of the credential holding `index` in the list, or None if none holds it."""
    if status_list.purpose == StatusPurpose.revocation:
        query = select(Credential.status).where(
            Credential.revocation_list_id == status_list.id, Credential.revocation_index == index
        )
    else:
        query = select(Credential.status).where(
            Credential.suspension_list_id == status_list.id, Credential.suspension_index == index
        )
    return session.scalars(query).first()
