"""held credentials: credentials of other issuers kept on a portfolio exactly as sent

Revision ID: 3b8e5d1c9f47
Revises: 7c1e9a4b2d63
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.core.db import UTCDateTime

revision: str = "3b8e5d1c9f47"
down_revision: str | None = "7c1e9a4b2d63"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "portfolio_held_credentials",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column(
            "portfolio_id",
            sa.Uuid(),
            sa.ForeignKey("portfolios.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("form", sa.String(length=8), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("credential_ref", sa.String(length=1000), nullable=True),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("added_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("portfolio_id", "credential_ref"),
    )
    op.create_index(
        "ix_portfolio_held_credentials_portfolio_id",
        "portfolio_held_credentials",
        ["portfolio_id"],
    )


def downgrade() -> None:
    op.drop_index(
        "ix_portfolio_held_credentials_portfolio_id", table_name="portfolio_held_credentials"
    )
    op.drop_table("portfolio_held_credentials")
