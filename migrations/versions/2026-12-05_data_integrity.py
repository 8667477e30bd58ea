"""data integrity: issuers that add eddsa-rdfc-2022 proofs, and the purpose of each signing key

Revision ID: 7d3b9f2a6c10
Revises: 7c2e9f4a1b30
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7d3b9f2a6c10"
down_revision: str | None = "7c2e9f4a1b30"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN with a constant default (no batch copy: on SQLite a table copy would
    # drop the issuers and cascade to every row that refers to them). Every existing issuer
    # keeps signing VC-JWTs only, every existing key is a JWT key.
    op.add_column(
        "issuers",
        sa.Column("data_integrity", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.add_column(
        "signing_keys",
        sa.Column("purpose", sa.String(length=16), server_default="jwt", nullable=False),
    )


def downgrade() -> None:
    # Plain DROP COLUMN (SQLite has it since 3.35): a batch copy of `issuers` would drop the
    # table, and its ON DELETE CASCADE would take every row that refers to an issuer with it.
    op.drop_column("signing_keys", "purpose")
    op.drop_column("issuers", "data_integrity")
