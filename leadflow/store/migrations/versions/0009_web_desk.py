"""web desk: a closed lead's result (amount, units, margin, why it was lost); first contacts by time

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("leads") as batch:
        batch.add_column(sa.Column("won_amount", sa.Numeric(16, 2), nullable=True))
        batch.add_column(sa.Column("won_units", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("won_margin", sa.Numeric(16, 2), nullable=True))
        batch.add_column(sa.Column("lost_reason", sa.Text(), nullable=True))
    # The team board counts today's first contacts per manager.
    op.create_index("ix_leads_first_contact_at", "leads", ["first_contact_at"])


def downgrade() -> None:
    op.drop_index("ix_leads_first_contact_at", table_name="leads")
    with op.batch_alter_table("leads") as batch:
        for column in ("lost_reason", "won_margin", "won_units", "won_amount"):
            batch.drop_column(column)
