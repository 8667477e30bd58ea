"""trust list: issuers the operator vouches for (the `listed` trust level)

Revision ID: 5a8c3e1f7b24
Revises: e4a2d8c61b95
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.core.db

revision: str = "5a8c3e1f7b24"
down_revision: str | None = "e4a2d8c61b95"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "trusted_issuers",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("identifier", sa.String(length=2048), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=True),
        sa.Column("note", sa.String(length=1000), nullable=True),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("created_at", app.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trusted_issuers")),
        sa.UniqueConstraint("identifier", name=op.f("uq_trusted_issuers_identifier")),
    )
    with op.batch_alter_table("trusted_issuers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_trusted_issuers_source"), ["source"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("trusted_issuers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_trusted_issuers_source"))

    op.drop_table("trusted_issuers")
