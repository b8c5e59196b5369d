"""backlog triage: runs and the change each made to a lead, for resuming and undoing

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from leadflow.store.tables import UTCDateTime

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "backlog_runs",
        sa.Column("id", Id, primary_key=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(60)),
        sa.Column("selection", sa.JSON(), nullable=False),
        sa.Column("action", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("cursor", Id),
        sa.Column("done_count", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("skipped_count", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("total_at_start", sa.Integer(), nullable=False),
        sa.Column("undo_cursor", Id),
        sa.Column("undone_count", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("kept_count", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("report", sa.JSON()),
        sa.Column("finished_at", UTCDateTime()),
        sa.Column("undone_at", UTCDateTime()),
        sa.PrimaryKeyConstraint("id", name="pk_backlog_runs"),
    )
    op.create_table(
        "backlog_changes",
        sa.Column(
            "run_id",
            Id,
            sa.ForeignKey("backlog_runs.id", name="fk_backlog_changes_run_id_backlog_runs"),
            nullable=False,
        ),
        sa.Column("lead_id", Id, sa.ForeignKey("leads.id", name="fk_backlog_changes_lead_id_leads"), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("before", sa.JSON()),
        sa.Column("reason", sa.Text()),
        sa.Column("event_id", Id, sa.ForeignKey("events.id", name="fk_backlog_changes_event_id_events")),
        sa.Column("done_at", UTCDateTime()),
        sa.Column("undone_at", UTCDateTime()),
        sa.PrimaryKeyConstraint("run_id", "lead_id", name="pk_backlog_changes"),
    )
    op.create_index("ix_backlog_changes_lead_id", "backlog_changes", ["lead_id"])


def downgrade() -> None:
    op.drop_index("ix_backlog_changes_lead_id", "backlog_changes")
    op.drop_table("backlog_changes")
    op.drop_table("backlog_runs")
