"""status lists hand out slots from a counter through a keyed permutation; no allocation rows

Revision ID: e4a2d8c61b95
Revises: b7e1a0c4d2f1
Create Date: 2026-11-28

Before, every allocated index was a row of `status_allocations`, drawn at random and refused by
the primary key when taken. Now a list has a slot counter (`next_slot`) and a secret key
(`index_key`): slot n holds index P(n), P a keyed permutation (app/status/shuffle.py).

A list that already handed out indices at random cannot switch (the permutation would run into
them), so such lists are closed (`full`); the issuer's next credential opens a fresh list. The
cost is the unused rest of at most one open list per issuer and purpose. Open lists that handed
out nothing get a key and carry on.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e4a2d8c61b95"
down_revision: str | None = "b7e1a0c4d2f1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("status_lists", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("next_slot", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("index_key", sa.String(length=64), nullable=True))
    bind = op.get_bind()
    bind.execute(
        sa.text(
            'UPDATE status_lists SET "full" = true WHERE EXISTS '
            "(SELECT 1 FROM status_allocations a WHERE a.list_id = status_lists.id)"
        )
    )
    open_ids = bind.execute(sa.text('SELECT id FROM status_lists WHERE NOT "full"')).scalars()
    for list_id in list(open_ids):
        bind.execute(
            sa.text("UPDATE status_lists SET index_key = :k WHERE id = :i"),
            {"k": secrets.token_hex(32), "i": list_id},
        )
    op.drop_table("status_allocations")


def downgrade() -> None:
    op.create_table(
        "status_allocations",
        sa.Column("list_id", sa.Uuid(), nullable=False),
        sa.Column("index", sa.Integer(), autoincrement=False, nullable=False),
        sa.ForeignKeyConstraint(
            ["list_id"],
            ["status_lists.id"],
            name=op.f("fk_status_allocations_list_id_status_lists"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("list_id", "index", name=op.f("pk_status_allocations")),
    )
    # The indices in use are those of the stored credentials; slots claimed by a chunk that
    # failed held no credential and are free again under the random allocator.
    op.execute(
        'INSERT INTO status_allocations (list_id, "index") '
        "SELECT revocation_list_id, revocation_index FROM credentials "
        "WHERE revocation_list_id IS NOT NULL AND revocation_index IS NOT NULL"
    )
    op.execute(
        'INSERT INTO status_allocations (list_id, "index") '
        "SELECT suspension_list_id, suspension_index FROM credentials "
        "WHERE suspension_list_id IS NOT NULL AND suspension_index IS NOT NULL"
    )
    with op.batch_alter_table("status_lists", schema=None) as batch_op:
        batch_op.drop_column("index_key")
        batch_op.drop_column("next_slot")
