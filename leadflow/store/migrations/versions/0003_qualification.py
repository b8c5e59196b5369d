"""qualification and routing: scores, temperature, manager tiers and results, the quality desk, scoring models

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_LEADS: list[sa.Column[object]] = [
    sa.Column("score", sa.Integer(), nullable=True),
    sa.Column("score_detail", sa.JSON(), nullable=True),
    sa.Column("temperature", sa.String(length=10), nullable=True),
    sa.Column("department", sa.String(length=40), nullable=True),
    sa.Column("win_probability", sa.Float(), nullable=True),
    sa.Column("win_factors", sa.JSON(), nullable=True),
    sa.Column("processing_due_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("queue", sa.String(length=20), nullable=True),
]
_MANAGERS: list[sa.Column[object]] = [
    sa.Column("vacations", sa.JSON(), nullable=True),
    sa.Column("on_call", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("weight", sa.Integer(), nullable=False, server_default="1"),
    sa.Column("tier", sa.Integer(), nullable=False, server_default="2"),
    sa.Column("role", sa.String(length=20), nullable=False, server_default="manager"),
    sa.Column("open_value", sa.Numeric(18, 2), nullable=False, server_default="0"),
    sa.Column("open_deals", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("closed_leads", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("won_leads", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("first_contacts", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("fast_contacts", sa.Integer(), nullable=False, server_default="0"),
]
_TEAMS: list[sa.Column[object]] = [
    sa.Column("scoring", sa.Boolean(), nullable=False, server_default=sa.true()),
    sa.Column("desk", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("desk_sla_seconds", sa.Integer(), nullable=False, server_default="900"),
]


def upgrade() -> None:
    for table, columns in (("leads", _LEADS), ("managers", _MANAGERS), ("teams", _TEAMS)):
        with op.batch_alter_table(table) as batch:
            for column in columns:
                batch.add_column(column._copy())
    with op.batch_alter_table("leads") as batch:
        batch.create_index("ix_leads_queue_created_at", ["queue", "created_at"])
    with op.batch_alter_table("rr_pointers") as batch:
        batch.add_column(sa.Column("state", sa.JSON(), nullable=True))
    op.create_table(
        "scoring_models",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("model", sa.JSON(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("trained_on", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scoring_models")),
    )


def downgrade() -> None:
    op.drop_table("scoring_models")
    with op.batch_alter_table("rr_pointers") as batch:
        batch.drop_column("state")
    with op.batch_alter_table("leads") as batch:
        batch.drop_index("ix_leads_queue_created_at")
    for table, columns in (("teams", _TEAMS), ("managers", _MANAGERS), ("leads", _LEADS)):
        with op.batch_alter_table(table) as batch:
            for column in reversed(columns):
                batch.drop_column(column.name)
