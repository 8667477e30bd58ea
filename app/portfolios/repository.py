"""Every SQL statement of the portfolios feature (and of the management link it serves)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import case, delete, select
from sqlalchemy.orm import Session

from app.credentials.models import Credential
from app.portfolios.models import Portfolio, PortfolioEntry


def credential_by_manage_hash(
    session: Session, token_hash: str, *, for_update: bool = False
) -> Credential | None:
    """The credential whose management token hashes to `token_hash`; locked when it will change."""
    query = select(Credential).where(Credential.manage_token_hash == token_hash)
    if for_update:
        # Serialises a recipient's changes with each other and with the issuer's revoke/suspend.
        query = query.with_for_update()
    return session.scalars(query).one_or_none()


def credential_for_update(session: Session, credential_id: uuid.UUID) -> Credential | None:
    return session.scalars(
        select(Credential).where(Credential.id == credential_id).with_for_update()
    ).one_or_none()


def by_handle(session: Session, handle: str) -> Portfolio | None:
    return session.scalars(select(Portfolio).where(Portfolio.handle == handle)).one_or_none()


def portfolio_of(session: Session, credential_id: uuid.UUID) -> Portfolio | None:
    return session.scalars(
        select(Portfolio)
        .join(PortfolioEntry, PortfolioEntry.portfolio_id == Portfolio.id)
        .where(PortfolioEntry.credential_id == credential_id)
    ).one_or_none()


def entry(session: Session, credential_id: uuid.UUID) -> PortfolioEntry | None:
    return session.get(PortfolioEntry, credential_id)


def remove_entry(session: Session, credential_id: uuid.UUID) -> bool:
    result = session.execute(
        delete(PortfolioEntry).where(PortfolioEntry.credential_id == credential_id)
    )
    return bool(getattr(result, "rowcount", 0))


def credentials_on(session: Session, portfolio_id: uuid.UUID) -> Sequence[Credential]:
    """The credentials its owner chose for a portfolio in the owner's order: featured first,
    then by the position the owner gave, then newest first."""
    return [credential for credential, _entry in entries_on(session, portfolio_id)]


def entries_on(
    session: Session, portfolio_id: uuid.UUID
) -> Sequence[tuple[Credential, PortfolioEntry]]:
    rows = session.execute(
        select(Credential, PortfolioEntry)
        .join(PortfolioEntry, PortfolioEntry.credential_id == Credential.id)
        .where(PortfolioEntry.portfolio_id == portfolio_id)
        .order_by(
            PortfolioEntry.featured.desc(),
            case((PortfolioEntry.position.is_(None), 1), else_=0),
            PortfolioEntry.position,
            Credential.issued_at.desc(),
            Credential.id,
        )
    ).all()
    return [(credential, entry) for credential, entry in rows]
