"""automations: tasks with their reasons, call cadences, client events, tags, the automations' queue of events

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from leadflow.store.tables import UTCDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_WAITING = sa.text("automate IS NOT NULL")


def upgrade() -> None:
    # New events wait for the automations; the ones already written happened before there were any.
    op.add_column("events", sa.Column("automate", sa.Boolean(), server_default=sa.true(), nullable=True))
    op.execute("UPDATE events SET automate = NULL")
    op.create_index("ix_events_automate", "events", ["id"], sqlite_where=_WAITING, postgresql_where=_WAITING)
    op.add_column("timers", sa.Column("ref", sa.String(80), nullable=True))
    op.add_column("leads", sa.Column("tags", sa.JSON(), nullable=True))
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("note", sa.Text()))
        batch.add_column(sa.Column("reason", sa.Text()))
        batch.add_column(sa.Column("actor", sa.String(60)))
        batch.add_column(sa.Column("source", sa.String(60)))
        batch.add_column(sa.Column("follows_owner", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("cadence_attempt", sa.Integer()))
        batch.add_column(sa.Column("closed_by", sa.String(60)))
        batch.add_column(sa.Column("updated_at", UTCDateTime()))
        batch.create_index("ix_tasks_manager_id_status_due_at", ["manager_id", "status", "due_at"])
    op.create_table(
        "cadences",
        sa.Column("lead_id", Id, sa.ForeignKey("leads.id", name="fk_cadences_lead_id_leads"), nullable=False),
        sa.Column("policy", sa.String(60), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("attempts", sa.JSON(), nullable=False),
        sa.Column("task_id", Id, sa.ForeignKey("tasks.id", name="fk_cadences_task_id_tasks")),
        sa.Column("next_at", UTCDateTime()),
        sa.Column("reason", sa.Text()),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("lead_id", name="pk_cadences"),
    )
    op.create_index("ix_cadences_state_next_at", "cadences", ["state", "next_at"])
    op.create_table(
        "client_events",
        sa.Column("id", Id, primary_key=True),
        sa.Column("external_id", sa.String(200), nullable=False),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("lead_id", Id, sa.ForeignKey("leads.id", name="fk_client_events_lead_id_leads")),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text()),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(60)),
        sa.PrimaryKeyConstraint("id", name="pk_client_events"),
        sa.UniqueConstraint("external_id", name="uq_client_events_external_id"),
    )
    op.create_index("ix_client_events_lead_id", "client_events", ["lead_id"])
    op.create_table(
        "automation_seen",
        sa.Column("lead_id", Id, sa.ForeignKey("leads.id", name="fk_automation_seen_lead_id_leads"), nullable=False),
        sa.Column("status", sa.String(60)),
        sa.Column("temperature", sa.String(10)),
        sa.Column("score", sa.Integer()),
        sa.PrimaryKeyConstraint("lead_id", name="pk_automation_seen"),
    )


def downgrade() -> None:
    op.drop_table("automation_seen")
    op.drop_table("client_events")
    op.drop_table("cadences")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_index("ix_tasks_manager_id_status_due_at")
        for name in ("updated_at", "closed_by", "cadence_attempt", "follows_owner", "source", "actor", "reason",
                     "note"):  # fmt: skip
            batch.drop_column(name)
    with op.batch_alter_table("leads") as batch:
        batch.drop_column("tags")
    with op.batch_alter_table("timers") as batch:
        batch.drop_column("ref")
    op.drop_index("ix_events_automate", "events")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("automate")
