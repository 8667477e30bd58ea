"""Every SQL statement of the status-list feature."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import cast

from sqlalchemy import Integer, Table, Uuid, bindparam, func, literal, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from app.core.db import insert_ignoring_conflicts, on_postgresql
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


def claim_indices(session: Session, list_id: uuid.UUID, indices: Sequence[int]) -> list[int]:
    """Insert allocations for `indices`; those inserted (the others were already taken).

    PostgreSQL takes the indices as one array parameter (a single short statement, whatever the
    count); SQLite gets a multi-row insert. Either way the primary key refuses taken indices.
    """
    if not indices:
        return []
    table = cast(Table, StatusAllocation.__table__)
    if on_postgresql(session):
        statement = (
            pg_insert(table)
            .from_select(
                ["list_id", "index"],
                select(
                    literal(list_id, Uuid),
                    func.unnest(bindparam("indices", type_=ARRAY(Integer))),
                ),
            )
            .on_conflict_do_nothing()
            .returning(table.c.index)
        )
        return [int(i) for i in session.scalars(statement, {"indices": list(indices)})]
    rows = insert_ignoring_conflicts(
        session, table, [{"list_id": list_id, "index": i} for i in indices], table.c.index
    )
    return [int(row[0]) for row in rows]
