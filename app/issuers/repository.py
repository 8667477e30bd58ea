"""Every SQL statement of the issuers feature."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.issuers.models import ApiKey, Issuer, KeyPurpose, KeyStatus, SigningKey


def get_by_slug(session: Session, slug: str) -> Issuer | None:
    return session.scalars(select(Issuer).where(Issuer.slug == slug)).one_or_none()


def get(session: Session, issuer_id: uuid.UUID) -> Issuer | None:
    return session.get(Issuer, issuer_id)


def slug_taken(session: Session, slug: str) -> bool:
    return session.scalar(select(Issuer.id).where(Issuer.slug == slug)) is not None


def list_all(session: Session) -> Sequence[Issuer]:
    return session.scalars(select(Issuer).order_by(Issuer.created_at, Issuer.slug)).all()


def keys_of(session: Session, issuer_id: uuid.UUID) -> Sequence[SigningKey]:
    return session.scalars(
        select(SigningKey).where(SigningKey.issuer_id == issuer_id).order_by(SigningKey.created_at)
    ).all()


def keys_of_many(session: Session, issuer_ids: Sequence[uuid.UUID]) -> Sequence[SigningKey]:
    return session.scalars(
        select(SigningKey)
        .where(SigningKey.issuer_id.in_(issuer_ids))
        .order_by(SigningKey.created_at)
    ).all()


def active_key(
    session: Session, issuer_id: uuid.UUID, purpose: KeyPurpose = KeyPurpose.jwt
) -> SigningKey | None:
    return session.scalars(
        select(SigningKey)
        .where(
            SigningKey.issuer_id == issuer_id,
            SigningKey.status == KeyStatus.active,
            SigningKey.purpose == purpose,
        )
        .order_by(SigningKey.created_at.desc())
        .limit(1)
    ).first()


def key_by_kid(session: Session, issuer_id: uuid.UUID, key_id: str) -> SigningKey | None:
    return session.scalars(
        select(SigningKey).where(SigningKey.issuer_id == issuer_id, SigningKey.key_id == key_id)
    ).one_or_none()


def issuer_for_api_key(session: Session, secret_hash: str) -> Issuer | None:
    return session.scalars(
        select(Issuer)
        .join(ApiKey, ApiKey.issuer_id == Issuer.id)
        .where(ApiKey.secret_hash == secret_hash, ApiKey.revoked_at.is_(None))
    ).one_or_none()


def api_keys_of(session: Session, issuer_id: uuid.UUID) -> Sequence[ApiKey]:
    return session.scalars(
        select(ApiKey).where(ApiKey.issuer_id == issuer_id).order_by(ApiKey.created_at)
    ).all()


def api_key(session: Session, issuer_id: uuid.UUID, key_id: uuid.UUID) -> ApiKey | None:
    return session.scalars(
        select(ApiKey).where(ApiKey.issuer_id == issuer_id, ApiKey.id == key_id)
    ).one_or_none()


def active_keys(
    session: Session, issuer_id: uuid.UUID, purpose: KeyPurpose = KeyPurpose.jwt
) -> Sequence[SigningKey]:
    return session.scalars(
        select(SigningKey)
        .where(
            SigningKey.issuer_id == issuer_id,
            SigningKey.status == KeyStatus.active,
            SigningKey.purpose == purpose,
        )
        .order_by(SigningKey.created_at)
        # Read under the issuer's lifecycle lock: the values now, not the identity map's.
        .execution_options(populate_existing=True)
    ).all()


def slugs(session: Session) -> dict[uuid.UUID, str]:
    """Every issuer's slug by id (to label what other features know only by issuer id)."""
    return {row.id: row.slug for row in session.execute(select(Issuer.id, Issuer.slug))}


def every_active_key(session: Session) -> Sequence[tuple[str, SigningKey]]:
    """(issuer slug, key) for every active signing key of every issuer."""
    rows = session.execute(
        select(Issuer.slug, SigningKey)
        .join(SigningKey, SigningKey.issuer_id == Issuer.id)
        .where(SigningKey.status == KeyStatus.active)
        .order_by(Issuer.slug, SigningKey.created_at)
    ).all()
    return [(slug, key) for slug, key in rows]
