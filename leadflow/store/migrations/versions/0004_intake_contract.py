"""intake contract: request fingerprints, flagged fields, messenger ids, repeat requests folded into open leads

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# Partial indexes: most leads have none of these, and a NULL costs nothing to keep out of the index.
_PARTIAL = {
    "ix_leads_messenger_id": "messenger_id",
    "ix_leads_merged_into_id": "merged_into_id",
    "ix_leads_duplicate_of_id": "duplicate_of_id",
    "ix_leads_contact_id": "contact_id",
}


def upgrade() -> None:
    with op.batch_alter_table("leads") as batch:
        batch.add_column(sa.Column("request_hash", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("problems", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("messenger_id", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("merged_into_id", Id, nullable=True))
        batch.create_foreign_key(op.f("fk_leads_merged_into_id_leads"), "leads", ["merged_into_id"], ["id"])
    for name, column in _PARTIAL.items():
        where = sa.text(f"{column} IS NOT NULL")
        op.create_index(name, "leads", [column], sqlite_where=where, postgresql_where=where)


def downgrade() -> None:
    for name in _PARTIAL:
        op.drop_index(name, "leads")
    with op.batch_alter_table("leads") as batch:
        batch.drop_constraint(op.f("fk_leads_merged_into_id_leads"), type_="foreignkey")
        for column in ("merged_into_id", "messenger_id", "problems", "request_hash"):
            batch.drop_column(column)
