"""breaches: an index that lists and counts leads at the end of a chain without reading every lead

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_leads_sla_state_first_contact_created", "leads", ["sla_state", "first_contact_at", "created_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_leads_sla_state_first_contact_created", table_name="leads")
