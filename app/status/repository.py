"""Every SQL statement of the status-list feature."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.credentials.models import Credential
from app.status.models import StatusAllocation, StatusList, StatusPurpose


def open_list(session: Session, issuer_id: uuid.UUID, purpose: StatusPurpose) -> StatusList | None:
    return session.scalars(
        select(StatusList)
        .where(
            StatusList.issuer_id == issuer_id,
            StatusList.purpose == purpose,
            StatusList.full.is_(False),
        )
        .order_by(StatusList.seq.desc())
        .limit(1)
    ).first()


def last_seq(session: Session, issuer_id: uuid.UUID, purpose: StatusPurpose) -> int:
    value = session.scalar(
        select(func.max(StatusList.seq)).where(
            StatusList.issuer_id == issuer_id, StatusList.purpose == purpose
        )
    )
    return int(value or 0)


def get_list(
    session: Session, issuer_id: uuid.UUID, purpose: StatusPurpose, seq: int
) -> StatusList | None:
    return session.scalars(
        select(StatusList).where(
            StatusList.issuer_id == issuer_id, StatusList.purpose == purpose, StatusList.seq == seq
        )
    ).one_or_none()


def allocated_count(session: Session, list_id: uuid.UUID) -> int:
    return int(session.scalar(select(func.count()).where(StatusAllocation.list_id == list_id)) or 0)


def mark_full(session: Session, list_id: uuid.UUID) -> None:
    session.execute(update(StatusList).where(StatusList.id == list_id).values(full=True))


def bump_version(session: Session, list_id: uuid.UUID) -> None:
    """Record that the list's bits changed (same transaction as the status change)."""
    session.execute(
        update(StatusList).where(StatusList.id == list_id).values(version=StatusList.version + 1)
    )


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


def credential_status_at(session: Session, status_list: StatusList, index: int) -> str | None:
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


def allocated_indices(session: Session, list_id: uuid.UUID) -> Sequence[int]:
    return session.scalars(
        select(StatusAllocation.index).where(StatusAllocation.list_id == list_id)
    ).all()
