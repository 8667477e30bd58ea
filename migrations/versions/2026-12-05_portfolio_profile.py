"""portfolio profile and order: the owner's headline and bio, featured entries and positions

Revision ID: 7c1e9a4b2d63
Revises: 7d3b9f2a6c10
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7c1e9a4b2d63"
down_revision: str | None = "7d3b9f2a6c10"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("portfolios") as batch:
        batch.add_column(sa.Column("headline", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("bio", sa.Text(), nullable=True))
    with op.batch_alter_table("portfolio_entries") as batch:
        batch.add_column(
            sa.Column("featured", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch.add_column(sa.Column("position", sa.Integer(), nullable=True))


def downgrade() -> None:
    # Plain DROP COLUMN (SQLite has it since 3.35): a batch copy drops and re-creates the table,
    # which cascades to the rows that refer to it.
    op.drop_column("portfolio_entries", "position")
    op.drop_column("portfolio_entries", "featured")
    op.drop_column("portfolios", "bio")
    op.drop_column("portfolios", "headline")
