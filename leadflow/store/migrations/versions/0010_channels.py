"""channels: a lead's messages, every channel event as it came, refused calls counted, adapters' state; managers'
extensions

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from leadflow.store.tables import UTCDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("managers") as batch:
        batch.add_column(sa.Column("extension", sa.String(40), nullable=True))
    op.create_table(
        "messages",
        sa.Column("id", Id, primary_key=True),
        sa.Column("lead_id", Id, sa.ForeignKey("leads.id", name="fk_messages_lead_id_leads"), nullable=False),
        sa.Column("channel", sa.String(40), nullable=False),
        sa.Column("direction", sa.String(3), nullable=False),
        sa.Column("address", sa.String(254)),
        sa.Column("external_id", sa.String(200)),
        sa.Column("thread", sa.String(300)),
        sa.Column("kind", sa.String(30), nullable=False),
        sa.Column("subject", sa.String(300)),
        sa.Column("body", sa.Text()),
        sa.Column("meta", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("error", sa.Text()),
        sa.Column("manager_id", Id, sa.ForeignKey("managers.id", name="fk_messages_manager_id_managers")),
        sa.Column("actor", sa.String(60)),
        sa.Column("outbox_id", Id, sa.ForeignKey("outbox.id", name="fk_messages_outbox_id_outbox")),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_messages"),
    )
    op.create_index("ix_messages_lead_id_created_at", "messages", ["lead_id", "created_at"])
    op.create_index("ix_messages_channel_external_id", "messages", ["channel", "external_id"])
    op.create_index("ix_messages_channel_address_created_at", "messages", ["channel", "address", "created_at"])
    op.create_table(
        "channel_events",
        sa.Column("id", Id, primary_key=True),
        sa.Column("channel", sa.String(40), nullable=False),
        sa.Column("external_id", sa.String(200)),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text()),
        sa.Column("lead_id", Id, sa.ForeignKey("leads.id", name="fk_channel_events_lead_id_leads")),
        sa.Column("message_id", Id, sa.ForeignKey("messages.id", name="fk_channel_events_message_id_messages")),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_channel_events"),
        sa.UniqueConstraint("channel", "external_id", name="uq_channel_events_channel_external_id"),
    )
    op.create_index("ix_channel_events_lead_id", "channel_events", ["lead_id"])
    op.create_index("ix_channel_events_channel_received_at", "channel_events", ["channel", "received_at"])
    op.create_table(
        "channel_refusals",
        sa.Column("channel", sa.String(40), nullable=False),
        sa.Column("reason", sa.String(100), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("first_at", UTCDateTime(), nullable=False),
        sa.Column("last_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("channel", "reason", name="pk_channel_refusals"),
    )
    op.create_table(
        "channel_state",
        sa.Column("channel", sa.String(40), nullable=False),
        sa.Column("key", sa.String(60), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("channel", "key", name="pk_channel_state"),
    )


def downgrade() -> None:
    op.drop_table("channel_state")
    op.drop_table("channel_refusals")
    op.drop_table("channel_events")
    op.drop_table("messages")
    with op.batch_alter_table("managers") as batch:
        batch.drop_column("extension")
