"""first-contact SLA: deadline state on leads, team chats

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("leads") as batch:
        batch.add_column(sa.Column("rule_key", sa.String(length=60), nullable=True))
        batch.add_column(sa.Column("sla_state", sa.String(length=20), nullable=True))
        batch.add_column(sa.Column("sla_due_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("sla_hops", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("response_seconds", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("response_band", sa.String(length=10), nullable=True))
        batch.create_index("ix_leads_sla_state_sla_due_at", ["sla_state", "sla_due_at"])
    with op.batch_alter_table("teams") as batch:
        batch.add_column(sa.Column("telegram_chat_id", sa.String(length=60), nullable=True))
        batch.add_column(sa.Column("slack_webhook_url", sa.String(length=500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("teams") as batch:
        batch.drop_column("slack_webhook_url")
        batch.drop_column("telegram_chat_id")
    with op.batch_alter_table("leads") as batch:
        batch.drop_index("ix_leads_sla_state_sla_due_at")
        for column in ("response_band", "response_seconds", "sla_hops", "sla_due_at", "sla_state", "rule_key"):
            batch.drop_column(column)
