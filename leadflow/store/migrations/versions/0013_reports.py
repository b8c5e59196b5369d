"""reports: every status a lead has been in (kept by triggers), who made the first contact, the UTM campaign as a
column, call durations, advertising costs, sales plans, the digests sent, and the indexes the reports read by

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from leadflow.store.stages import create_stage_triggers, drop_stage_triggers
from leadflow.store.tables import HANDOFF_WHERE, UTCDateTime

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_HANDOFF = sa.text(HANDOFF_WHERE)


def upgrade() -> None:
    conn = op.get_bind()
    postgres = conn.dialect.name == "postgresql"
    # SQLite adds a foreign key only by rebuilding the table (before the triggers on it exist).
    with op.batch_alter_table("leads") as batch:
        batch.add_column(sa.Column("first_contact_by", Id, nullable=True))
        batch.add_column(sa.Column("utm_campaign", sa.String(200), nullable=True))
        batch.create_foreign_key("fk_leads_first_contact_by_managers", "managers", ["first_contact_by"], ["id"])
    op.add_column("activities", sa.Column("duration_seconds", sa.Integer(), nullable=True))
    op.create_index("ix_activities_at", "activities", ["at"])
    op.create_index("ix_assignments_at_manager_id_lead_id_kind_rule_key_strategy", "assignments",
                    ["at", "manager_id", "lead_id", "kind", "rule_key", "strategy"])  # fmt: skip
    op.create_index("ix_assignments_lead_id_kind_manager_id", "assignments", ["lead_id", "kind", "manager_id"])
    op.drop_index("ix_assignments_lead_id", "assignments")
    op.create_index("ix_events_handoff_type_at", "events", ["type", "at"], sqlite_where=_HANDOFF,
                    postgresql_where=_HANDOFF)  # fmt: skip
    op.create_table(
        "lead_stages",
        sa.Column("id", Id, primary_key=True),
        sa.Column("lead_id", Id, sa.ForeignKey("leads.id", name="fk_lead_stages_lead_id_leads"), nullable=False),
        sa.Column("status", sa.String(60), nullable=False),
        sa.Column("previous", sa.String(60)),
        sa.Column("entered_at", UTCDateTime(), nullable=False),
        sa.Column("left_at", UTCDateTime()),
        sa.Column("manager_id", Id, sa.ForeignKey("managers.id", name="fk_lead_stages_manager_id_managers")),
        sa.Column("team_id", Id, sa.ForeignKey("teams.id", name="fk_lead_stages_team_id_teams")),
        sa.PrimaryKeyConstraint("id", name="pk_lead_stages"),
    )
    op.create_index("ix_lead_stages_lead_id_status_entered_at_left_at_manager_id", "lead_stages",
                    ["lead_id", "status", "entered_at", "left_at", "manager_id"])  # fmt: skip
    op.create_index("ix_lead_stages_status_entered_at_manager_id_lead_id", "lead_stages",
                    ["status", "entered_at", "manager_id", "lead_id"])  # fmt: skip
    op.create_table(
        "channel_costs",
        sa.Column("id", Id, primary_key=True),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("channel", sa.String(40), nullable=False, server_default=""),
        sa.Column("source", sa.String(200), nullable=False, server_default=""),
        sa.Column("campaign", sa.String(200), nullable=False, server_default=""),
        sa.Column("amount", sa.Numeric(16, 2), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(60)),
        sa.PrimaryKeyConstraint("id", name="pk_channel_costs"),
        sa.UniqueConstraint(
            "day", "channel", "source", "campaign", name="uq_channel_costs_day_channel_source_campaign"
        ),
    )
    op.create_table(
        "sales_plans",
        sa.Column("scope", sa.String(80), nullable=False),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("deals_per_day", sa.Numeric(10, 2)),
        sa.Column("revenue_per_month", sa.Numeric(18, 2)),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(60)),
        sa.PrimaryKeyConstraint("scope", "month", name="pk_sales_plans"),
    )
    op.create_table(
        "digests",
        sa.Column("recipient", sa.String(80), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("sent_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("recipient", "day", name="pk_digests"),
    )
    # What is known of the leads already there. Their earlier statuses were never recorded: each has one stage,
    # the status it is in, from its last change.
    op.execute("INSERT INTO lead_stages (lead_id, status, previous, entered_at, manager_id, team_id) "
               "SELECT id, status, NULL, updated_at, manager_id, team_id FROM leads")  # fmt: skip
    manager = "e.data->>'manager'" if postgres else "json_extract(e.data, '$.manager')"
    op.execute(f"UPDATE leads SET first_contact_by = (SELECT m.id FROM events e JOIN managers m ON m.key = {manager} "
               "WHERE e.lead_id = leads.id AND e.type = 'lead.contacted' ORDER BY e.id LIMIT 1) "
               "WHERE first_contact_at IS NOT NULL")  # fmt: skip
    campaign = "utm->>'utm_campaign'" if postgres else "json_extract(utm, '$.utm_campaign')"
    op.execute(f"UPDATE leads SET utm_campaign = {campaign}")
    create_stage_triggers(conn)


def downgrade() -> None:
    drop_stage_triggers(op.get_bind())
    op.drop_table("digests")
    op.drop_table("sales_plans")
    op.drop_table("channel_costs")
    op.drop_index("ix_lead_stages_status_entered_at_manager_id_lead_id", "lead_stages")
    op.drop_index("ix_lead_stages_lead_id_status_entered_at_left_at_manager_id", "lead_stages")
    op.drop_table("lead_stages")
    op.drop_index("ix_events_handoff_type_at", "events")
    op.create_index("ix_assignments_lead_id", "assignments", ["lead_id"])
    op.drop_index("ix_assignments_lead_id_kind_manager_id", "assignments")
    op.drop_index("ix_assignments_at_manager_id_lead_id_kind_rule_key_strategy", "assignments")
    op.drop_index("ix_activities_at", "activities")
    with op.batch_alter_table("activities") as batch:
        batch.drop_column("duration_seconds")
    with op.batch_alter_table("leads") as batch:
        batch.drop_column("utm_campaign")
        batch.drop_column("first_contact_by")
