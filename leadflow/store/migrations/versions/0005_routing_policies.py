"""routing policies: a team's sticky policy and account matching, a manager's `accepts`

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("teams") as batch:
        batch.add_column(sa.Column("sticky", sa.String(length=20), nullable=False, server_default="available"))
        batch.add_column(sa.Column("sticky_wait_seconds", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("match_accounts", sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table("managers") as batch:
        batch.add_column(sa.Column("accepts", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("managers") as batch:
        batch.drop_column("accepts")
    with op.batch_alter_table("teams") as batch:
        for column in ("match_accounts", "sticky_wait_seconds", "sticky"):
            batch.drop_column(column)
