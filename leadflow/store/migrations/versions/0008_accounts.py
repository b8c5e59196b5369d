"""accounts: users with roles per team, API keys, sessions, failed sign-ins; events carry the client address

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

from leadflow.store.tables import UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("address", sa.String(length=64), nullable=True))
    op.create_index("ix_events_actor_at", "events", ["actor", "at"])
    op.create_table(
        "users",
        sa.Column("id", Id, primary_key=True),
        sa.Column("username", sa.String(40), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("manager_id", Id, sa.ForeignKey("managers.id", name="fk_users_manager_id_managers"), nullable=True),
        sa.Column("language", sa.String(10), nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("password_changed_at", UTCDateTime, nullable=False),
        sa.Column("last_login_at", UTCDateTime, nullable=True),
        sa.Column("disabled_at", UTCDateTime, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("username", name="uq_users_username"),
    )
    op.create_index("ix_users_manager_id", "users", ["manager_id"])
    op.create_table(
        "user_roles",
        sa.Column("id", Id, primary_key=True),
        sa.Column(
            "user_id",
            Id,
            sa.ForeignKey("users.id", name="fk_user_roles_user_id_users", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column(
            "team_id",
            Id,
            sa.ForeignKey("teams.id", name="fk_user_roles_team_id_teams", ondelete="CASCADE"),
            nullable=True,
        ),
        sa.PrimaryKeyConstraint("id", name="pk_user_roles"),
        sa.UniqueConstraint("user_id", "role", "team_id", name="uq_user_roles_user_id_role_team_id"),
    )
    op.create_index("ix_user_roles_user_id", "user_roles", ["user_id"])
    op.create_table(
        "api_keys",
        sa.Column("id", Id, primary_key=True),
        sa.Column("name", sa.String(50), nullable=False),
        sa.Column("scope", sa.String(20), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("origins", sa.JSON, nullable=True),
        sa.Column("rate_per_minute", sa.Integer, nullable=True),
        sa.Column("address_rate_per_minute", sa.Integer, nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("created_by", sa.String(60), nullable=True),
        sa.Column("last_used_at", UTCDateTime, nullable=True),
        sa.Column("revoked_at", UTCDateTime, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("name", name="uq_api_keys_name"),
        sa.UniqueConstraint("digest", name="uq_api_keys_digest"),
    )
    op.create_table(
        "sessions",
        sa.Column("id", Id, primary_key=True),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column(
            "user_id",
            Id,
            sa.ForeignKey("users.id", name="fk_sessions_user_id_users", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("last_seen_at", UTCDateTime, nullable=False),
        sa.Column("expires_at", UTCDateTime, nullable=False),
        sa.Column("revoked_at", UTCDateTime, nullable=True),
        sa.Column("address", sa.String(64), nullable=True),
        sa.Column("user_agent", sa.String(300), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_sessions"),
        sa.UniqueConstraint("digest", name="uq_sessions_digest"),
    )
    op.create_index("ix_sessions_user_id", "sessions", ["user_id"])
    op.create_table(
        "login_failures",
        sa.Column("id", Id, primary_key=True),
        sa.Column("username", sa.String(40), nullable=False),
        sa.Column("address", sa.String(64), nullable=True),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_login_failures"),
    )
    op.create_index("ix_login_failures_username_at", "login_failures", ["username", "at"])
    op.create_index("ix_login_failures_address_at", "login_failures", ["address", "at"])
    instance = op.create_table(
        "instance",
        sa.Column("name", sa.String(40), nullable=False),
        sa.Column("value", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_instance"),
    )
    # Made once per installation: API keys are stored as HMACs under it (see services/accounts.py).
    op.bulk_insert(instance, [{"name": "key_secret", "value": secrets.token_hex(32)}])


def downgrade() -> None:
    for table in ("instance", "login_failures", "sessions", "api_keys", "user_roles", "users"):
        op.drop_table(table)
    op.drop_index("ix_events_actor_at", table_name="events")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("address")
