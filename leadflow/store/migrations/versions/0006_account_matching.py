"""account matching: leads carry their company's match keys and corporate e-mail domain, contacts their domain

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from leadflow.core.cleaning import company_block, company_key

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_INDEXES = {
    "ix_leads_company_block": ("leads", "company_block"),
    "ix_leads_email_domain": ("leads", "email_domain"),
    "ix_contacts_email_domain": ("contacts", "email_domain"),
}


def _domain(email: str | None) -> str | None:
    return email.rsplit("@", 1)[1].lower() if email and "@" in email else None


def upgrade() -> None:
    with op.batch_alter_table("leads") as batch:
        batch.add_column(sa.Column("company_key", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("company_block", sa.String(length=10), nullable=True))
        batch.add_column(sa.Column("email_domain", sa.String(length=254), nullable=True))
    with op.batch_alter_table("contacts") as batch:
        batch.add_column(sa.Column("email_domain", sa.String(length=254), nullable=True))
    # The keys of what is stored already, worked out as intake works them out for new leads.
    conn = op.get_bind()
    leads = sa.table("leads", sa.column("id"), sa.column("company"), sa.column("email"), sa.column("company_key"),
                     sa.column("company_block"), sa.column("email_domain"))  # fmt: skip
    rows = []
    for lead_id, company, email in conn.execute(sa.select(leads.c.id, leads.c.company, leads.c.email)):
        key = company_key(company) if company else None
        rows.append({"i": lead_id, "k": key or None, "b": company_block(key) if key else None, "d": _domain(email)})
    if rows:
        conn.execute(
            leads.update()
            .where(leads.c.id == sa.bindparam("i"))
            .values(company_key=sa.bindparam("k"), company_block=sa.bindparam("b"), email_domain=sa.bindparam("d")),
            rows,
        )
    contacts = sa.table("contacts", sa.column("id"), sa.column("email"), sa.column("email_domain"))
    found = [{"i": i, "d": _domain(e)} for i, e in conn.execute(sa.select(contacts.c.id, contacts.c.email)) if e]
    if found:
        conn.execute(
            contacts.update().where(contacts.c.id == sa.bindparam("i")).values(email_domain=sa.bindparam("d")), found
        )
    for name, (table, column) in _INDEXES.items():
        where = sa.text(f"{column} IS NOT NULL")
        op.create_index(name, table, [column], sqlite_where=where, postgresql_where=where)


def downgrade() -> None:
    for name, (table, _) in _INDEXES.items():
        op.drop_index(name, table)
    with op.batch_alter_table("contacts") as batch:
        batch.drop_column("email_domain")
    with op.batch_alter_table("leads") as batch:
        for column in ("email_domain", "company_block", "company_key"):
            batch.drop_column(column)
