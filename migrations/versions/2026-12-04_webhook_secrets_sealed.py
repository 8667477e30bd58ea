"""webhook secrets sealed at rest under the keys passphrase

Data only: every endpoint secret stored in clear is sealed (app.core.keys.seal_secret, bound to
the endpoint's id) under MICROCRED_KEYS_PASSPHRASE, read from the environment of the process that
migrates, as the service reads it. Without a passphrase (development) secrets stay in clear, as
the signing keys do, and nothing changes. Downgrade opens them again (it needs the passphrase).

Revision ID: 7c2e9f4a1b30
Revises: 5a8c3e1f7b24
Create Date: 2026-12-04
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.core.keys import SEALED_PREFIX, seal_secret, unseal_secret

revision: str = "7c2e9f4a1b30"
down_revision: str | None = "5a8c3e1f7b24"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_endpoints = sa.table(
    "webhook_endpoints", sa.column("id", sa.Uuid()), sa.column("secret", sa.String(255))
)


def _passphrase() -> bytes | None:
    value = os.environ.get("MICROCRED_KEYS_PASSPHRASE")
    return value.encode() if value else None


def _context(endpoint_id: object) -> str:
    return f"webhook-secret:{endpoint_id}"  # app.webhooks.service.secret_context, as of now


def upgrade() -> None:
    passphrase = _passphrase()
    if passphrase is None:
        return
    bind = op.get_bind()
    rows = bind.execute(sa.select(_endpoints.c.id, _endpoints.c.secret)).all()
    for endpoint_id, secret in rows:
        if secret.startswith(SEALED_PREFIX):
            continue
        sealed = seal_secret(passphrase, secret, context=_context(endpoint_id))
        bind.execute(
            _endpoints.update().where(_endpoints.c.id == endpoint_id).values(secret=sealed)
        )


def downgrade() -> None:
    bind = op.get_bind()
    rows = bind.execute(sa.select(_endpoints.c.id, _endpoints.c.secret)).all()
    sealed = [(i, s) for i, s in rows if s.startswith(SEALED_PREFIX)]
    if not sealed:
        return
    passphrase = _passphrase()
    if passphrase is None:
        raise RuntimeError(
            f"{len(sealed)} webhook secret(s) are sealed: set MICROCRED_KEYS_PASSPHRASE to downgrade"
        )
    cache: dict[bytes, bytes] = {}
    for endpoint_id, secret in sealed:
        clear = unseal_secret(passphrase, secret, context=_context(endpoint_id), cache=cache)
        bind.execute(_endpoints.update().where(_endpoints.c.id == endpoint_id).values(secret=clear))
