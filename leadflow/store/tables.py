"""The database schema (SQLAlchemy Core). Alembic migrations create it; nothing calls create_all in production."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
    true,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on SQLite (which keeps no zone) as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; leadflow stores aware UTC times")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    # On SQLite a time is text. Every lead writes about a dozen of them, so the conversion is done in one step,
    # with the C datetime methods, to the very text SQLAlchemy's SQLite DATETIME writes and reads.
    def bind_processor(self, dialect: Dialect) -> Any:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        def to_text(value: datetime | None) -> str | None:
            if value is None:
                return None
            if value.tzinfo is None:
                raise ValueError("naive datetime given to the database; leadflow stores aware UTC times")
            return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")

        return to_text

    def result_processor(self, dialect: Dialect, coltype: Any) -> Any:
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)
        fallback = super().result_processor(dialect, coltype)

        def from_text(value: Any) -> Any:
            if value is None:
                return None
            if isinstance(value, str):
                try:
                    parsed = datetime.fromisoformat(value)
                except ValueError:
                    return fallback(value) if fallback else value
                return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
            return fallback(value) if fallback else value

        return from_text


Id = BigInteger().with_variant(Integer(), "sqlite")  # INTEGER PRIMARY KEY is SQLite's rowid

# The event types the hand-off report reads by time (services/reports/handoffs.py); a partial index holds only them.
HANDOFF_EVENTS = ("lead.desk_overdue", "lead.chain_exhausted")
HANDOFF_WHERE = "type IN ('lead.desk_overdue', 'lead.chain_exhausted')"

teams = Table(
    "teams",
    metadata,
    Column("id", Id, primary_key=True),
    Column("key", String(60), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("timezone", String(60)),
    Column("head_key", String(60)),
    Column("hours", JSON),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("telegram_chat_id", String(60)),
    Column("slack_webhook_url", String(500)),
    Column("scoring", Boolean, nullable=False, server_default=true()),
    Column("desk", Boolean, nullable=False, server_default=false()),
    Column("desk_sla_seconds", Integer, nullable=False, server_default="900"),
    # A repeat lead of a client with an owner: always / available / never to that owner (rules may override).
    Column("sticky", String(20), nullable=False, server_default="available"),
    Column("sticky_wait_seconds", Integer, nullable=False, server_default="0"),
    Column("match_accounts", Boolean, nullable=False, server_default=false()),
)

managers = Table(
    "managers",
    metadata,
    Column("id", Id, primary_key=True),
    Column("key", String(60), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("team_id", ForeignKey("teams.id"), nullable=False, index=True),
    Column("email", String(254)),
    Column("telegram_chat_id", String(60)),
    Column("regions", JSON, nullable=False),
    Column("products", JSON, nullable=False),
    Column("languages", JSON, nullable=False),
    Column("capacity", Integer, nullable=False),
    Column("hours", JSON),
    Column("active", Boolean, nullable=False),
    Column("absent", Boolean, nullable=False),
    # Kept in step with leads in the same transaction, so routing reads one row, not a count.
    Column("open_leads", Integer, nullable=False, server_default="0"),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("vacations", JSON),
    Column("on_call", Boolean, nullable=False, server_default=false()),
    Column("weight", Integer, nullable=False, server_default="1"),
    Column("tier", Integer, nullable=False, server_default="2"),
    Column("role", String(20), nullable=False, server_default="manager"),
    # Load and results, kept in step by the services, so routing reads them from the manager's own row.
    Column("open_value", Numeric(18, 2), nullable=False, server_default="0"),
    Column("open_deals", Integer, nullable=False, server_default="0"),
    Column("closed_leads", Integer, nullable=False, server_default="0"),
    Column("won_leads", Integer, nullable=False, server_default="0"),
    Column("first_contacts", Integer, nullable=False, server_default="0"),
    Column("fast_contacts", Integer, nullable=False, server_default="0"),  # first contact within 20 minutes
    Column("accepts", JSON),  # only leads matching this condition (a rule's `when:` language); NULL: every lead
    Column("extension", String(40)),  # their internal phone number: a call-tracking service names it
)

companies = Table(
    "companies",
    metadata,
    Column("id", Id, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("name_key", String(200), nullable=False, index=True),
    Column("block_key", String(10), nullable=False, index=True),
    Column("owner_id", ForeignKey("managers.id"), index=True),
    Column("created_at", UTCDateTime, nullable=False),
)

contacts = Table(
    "contacts",
    metadata,
    Column("id", Id, primary_key=True),
    Column("name", String(200)),
    Column("phone", String(20), index=True),
    Column("email", String(254), index=True),
    Column("company_id", ForeignKey("companies.id"), index=True),
    Column("owner_id", ForeignKey("managers.id"), index=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("email_domain", String(254)),
    Index(
        "ix_contacts_email_domain",
        "email_domain",
        sqlite_where=text("email_domain IS NOT NULL"),
        postgresql_where=text("email_domain IS NOT NULL"),
    ),
)

leads = Table(
    "leads",
    metadata,
    Column("id", Id, primary_key=True),
    Column("channel", String(40), nullable=False),
    Column("source", String(200)),
    Column("external_id", String(200)),
    Column("idempotency_key", String(200), unique=True),
    Column("name", String(200)),
    Column("phone", String(20)),
    Column("phone_type", String(10)),
    Column("email", String(254)),
    Column("company", String(200)),
    Column("region", String(60)),
    Column("product", String(200)),
    Column("language", String(10)),
    Column("budget", Numeric(16, 2)),
    Column("message", Text),
    Column("utm", JSON, nullable=False),
    Column("raw", JSON, nullable=False),
    Column("status", String(60), nullable=False),
    Column("manager_id", ForeignKey("managers.id")),
    Column("team_id", ForeignKey("teams.id")),
    Column("contact_id", ForeignKey("contacts.id")),
    Column("company_id", ForeignKey("companies.id")),
    Column("duplicate_of_id", ForeignKey("leads.id")),
    Column("duplicate_reason", Text),
    Column("junk_reason", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("assigned_at", UTCDateTime),
    Column("first_contact_at", UTCDateTime),
    Column("rule_key", String(60)),
    # First-contact SLA: running, met, exhausted (end of chain), stopped (closed before contact).
    Column("sla_state", String(20)),
    Column("sla_due_at", UTCDateTime),
    Column("sla_hops", Integer, nullable=False, server_default="0"),
    Column("response_seconds", Integer),
    Column("response_band", String(10)),
    Column("score", Integer),
    Column("score_detail", JSON),
    Column("temperature", String(10)),
    Column("department", String(40)),
    Column("win_probability", Float),
    Column("win_factors", JSON),
    Column("processing_due_at", UTCDateTime),
    Column("queue", String(20)),  # "desk": waiting for the quality desk
    # Of the request that made the lead: an idempotency key reused with another request is refused.
    Column("request_hash", String(64)),
    # Fields that could not be kept as given, each {field, reason}: the desk sees them, the raw request has them.
    Column("problems", JSON),
    Column("messenger_id", String(200)),  # the client's id in the channel (a Telegram or Viber user id, ...)
    # A repeat request folded into the client's open lead (status "merged"): kept, never routed on its own.
    Column("merged_into_id", ForeignKey("leads.id")),
    # Account matching: the company name's match keys, and the e-mail's domain.
    Column("company_key", String(200)),
    Column("company_block", String(10)),
    Column("email_domain", String(254)),
    # A closed lead's result as the manager recorded it: what was sold, and why a lost one was lost.
    Column("won_amount", Numeric(16, 2)),
    Column("won_units", Integer),
    Column("won_margin", Numeric(16, 2)),
    Column("lost_reason", Text),
    Column("tags", JSON),  # labels the team's automations (or people) put on the lead
    Column("first_contact_by", ForeignKey("managers.id")),  # who made the first contact (not always the owner)
    Column("utm_campaign", String(200)),  # utm.utm_campaign, as a column: reports group and filter by it
    UniqueConstraint("channel", "external_id"),
    Index("ix_leads_phone", "phone"),
    Index("ix_leads_email", "email"),
    Index("ix_leads_status_created_at", "status", "created_at"),
    Index("ix_leads_manager_id_status", "manager_id", "status"),
    Index("ix_leads_created_at", "created_at"),
    Index("ix_leads_sla_state_sla_due_at", "sla_state", "sla_due_at"),
    Index("ix_leads_sla_state_first_contact_created", "sla_state", "first_contact_at", "created_at"),
    Index("ix_leads_queue_created_at", "queue", "created_at"),
    Index("ix_leads_first_contact_at", "first_contact_at"),
    *(
        Index(
            f"ix_leads_{column}",
            column,
            sqlite_where=text(f"{column} IS NOT NULL"),
            postgresql_where=text(f"{column} IS NOT NULL"),
        )
        for column in (
            "messenger_id",
            "merged_into_id",
            "duplicate_of_id",
            "contact_id",
            "company_block",
            "email_domain",
        )
    ),
)

deals = Table(
    "deals",
    metadata,
    Column("id", Id, primary_key=True),
    Column("lead_id", ForeignKey("leads.id"), index=True),
    Column("contact_id", ForeignKey("contacts.id"), index=True),
    Column("company_id", ForeignKey("companies.id"), index=True),
    Column("manager_id", ForeignKey("managers.id"), index=True),
    Column("title", String(200), nullable=False),
    Column("amount", Numeric(16, 2)),
    Column("stage", String(60), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("closed_at", UTCDateTime),
)

assignments = Table(
    "assignments",
    metadata,
    Column("id", Id, primary_key=True),
    Column("lead_id", ForeignKey("leads.id"), nullable=False),
    Column("manager_id", ForeignKey("managers.id"), index=True),  # NULL: sent to the unassigned queue
    Column("kind", String(20), nullable=False),  # initial, sticky, restore, manual, escalation
    Column("rule_key", String(60)),
    Column("strategy", String(30)),
    Column("reason", Text, nullable=False),
    Column("candidates", JSON, nullable=False),
    Column("at", UTCDateTime, nullable=False),
    # Covering: a period's assignments by time with what the load and KPI reports read, never the candidates.
    Index(
        "ix_assignments_at_manager_id_lead_id_kind_rule_key_strategy",
        "at",
        "manager_id",
        "lead_id",
        "kind",
        "rule_key",
        "strategy",
    ),
    # A lead's assignments with their kind and manager from the index alone: the hand-off report's first owners.
    Index("ix_assignments_lead_id_kind_manager_id", "lead_id", "kind", "manager_id"),
)

# Round-robin position per rule: the manager who got the previous lead.
rr_pointers = Table(
    "rr_pointers",
    metadata,
    Column("rule_key", String(60), primary_key=True),
    Column("last_manager_key", String(60)),
    Column("state", JSON),  # weighted strategies keep their running credits here
)

# Win-probability models learned from closed leads; the newest active one scores new leads.
scoring_models = Table(
    "scoring_models",
    metadata,
    Column("id", Id, primary_key=True),
    Column("kind", String(30), nullable=False),
    Column("model", JSON, nullable=False),
    Column("metrics", JSON, nullable=False),
    Column("trained_on", Integer, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

tasks = Table(
    "tasks",
    metadata,
    Column("id", Id, primary_key=True),
    Column("lead_id", ForeignKey("leads.id"), index=True),
    Column("manager_id", ForeignKey("managers.id"), index=True),
    Column("kind", String(30), nullable=False),  # call, task
    Column("title", String(200), nullable=False),
    Column("status", String(20), nullable=False),  # open, done, cancelled
    Column("due_at", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
    Column("done_at", UTCDateTime),
    Column("note", Text),
    Column("reason", Text),  # why the task exists: the trigger and the event, the cadence's plan, or who set it
    Column("actor", String(60)),  # who made it: "automation:review-after-win", "user:olena"
    Column("source", String(60)),  # the trigger's key, "cadence", or "manual"
    Column("follows_owner", Boolean, nullable=False, server_default=false()),  # moves with the lead to a new owner
    Column("cadence_attempt", Integer),  # the call attempt of the cadence this task is
    Column("closed_by", String(60)),
    Column("updated_at", UTCDateTime),
    Index("ix_tasks_manager_id_status_due_at", "manager_id", "status", "due_at"),
)

activities = Table(
    "activities",
    metadata,
    Column("id", Id, primary_key=True),
    Column("lead_id", ForeignKey("leads.id"), nullable=False, index=True),
    Column("manager_id", ForeignKey("managers.id"), index=True),
    Column("kind", String(30), nullable=False),  # call, message, meeting
    Column("outcome", String(30)),  # connected, no_answer, busy, wrong_number, sent, set
    Column("note", Text),
    Column("at", UTCDateTime, nullable=False),
    Column("duration_seconds", Integer),  # a call's talk time, where the phone system or the manager gave it
    Index("ix_activities_at", "at"),
)

# Append-only: every change to a lead is a row here, never updated or deleted.
events = Table(
    "events",
    metadata,
    Column("id", Id, primary_key=True),
    Column("lead_id", ForeignKey("leads.id"), index=True),
    Column("type", String(40), nullable=False),
    Column("actor", String(60)),  # "user:olena", "key:site form", or a process ("sla", "batch")
    Column("data", JSON, nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("address", String(64)),  # the client address of the request that made the change
    # Set on every new event: the automations have yet to look at it (NULL once they have). The partial index keeps
    # the waiting ones, a handful, however long the log grows.
    Column("automate", Boolean, server_default=true()),
    # The audit: changes made by people and keys, by actor and time.
    Index("ix_events_actor_at", "actor", "at"),
    # The reports' hand-off losses: the few event types they count, by time, however long the log grows.
    Index(
        "ix_events_handoff_type_at",
        "type",
        "at",
        sqlite_where=text(HANDOFF_WHERE),
        postgresql_where=text(HANDOFF_WHERE),
    ),
    Index(
        "ix_events_automate",
        "id",
        sqlite_where=text("automate IS NOT NULL"),
        postgresql_where=text("automate IS NOT NULL"),
    ),
)

# Deadlines are rows written with the change that caused them; the worker claims the due ones.
timers = Table(
    "timers",
    metadata,
    Column("id", Id, primary_key=True),
    Column("lead_id", ForeignKey("leads.id"), nullable=False, index=True),
    Column("kind", String(30), nullable=False),
    Column("due_at", UTCDateTime, nullable=False, index=True),
    Column("data", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("ref", String(80)),  # what an automation timer is for: its trigger, "task:<id>", "cadence"
)

# Outgoing notifications, written in the same transaction as the event that caused them.
outbox = Table(
    "outbox",
    metadata,
    Column("id", Id, primary_key=True),
    Column("event_id", ForeignKey("events.id"), index=True),
    Column("channel", String(20), nullable=False),  # telegram, slack, webhook, email, log
    Column("recipient", String(500), nullable=False),
    Column("subject", String(300)),
    Column("body", Text, nullable=False),
    Column("payload", JSON, nullable=False),
    Column("status", String(20), nullable=False),  # pending, sent, dead
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("last_error", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("sent_at", UTCDateTime),
    Index("ix_outbox_status_next_attempt_at", "status", "next_attempt_at"),
)


# People who sign in. A user holds roles, each for one team or (team NULL) for all of them.
users = Table(
    "users",
    metadata,
    Column("id", Id, primary_key=True),
    Column("username", String(40), nullable=False, unique=True),  # lower case
    Column("name", String(200), nullable=False),
    Column("password_hash", String(200), nullable=False),
    Column("manager_id", ForeignKey("managers.id"), index=True),  # a manager's own account: their leads
    Column("language", String(10)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("password_changed_at", UTCDateTime, nullable=False),
    Column("last_login_at", UTCDateTime),
    Column("disabled_at", UTCDateTime),
)

user_roles = Table(
    "user_roles",
    metadata,
    Column("id", Id, primary_key=True),
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("role", String(20), nullable=False),  # admin, head, desk, manager
    Column("team_id", ForeignKey("teams.id", ondelete="CASCADE")),  # NULL: every team
    UniqueConstraint("user_id", "role", "team_id"),
)

# Keys for machines. Only a keyed hash of the key is kept (see services/accounts.py).
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Id, primary_key=True),
    Column("name", String(50), nullable=False, unique=True),
    Column("scope", String(20), nullable=False),  # intake, read, write, admin
    Column("digest", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),  # the key's first characters, to tell keys apart in lists
    Column("origins", JSON),  # intake keys embedded in pages: the sites allowed to post with them
    Column("rate_per_minute", Integer),  # intake keys: leads per minute for the key (NULL: no limit)
    Column("address_rate_per_minute", Integer),  # intake keys: leads per minute from one client address
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(60)),
    Column("last_used_at", UTCDateTime),
    Column("revoked_at", UTCDateTime),
)

# Signed-in people: one row per session, found by a hash of its token; revoking a row signs it out.
sessions = Table(
    "sessions",
    metadata,
    Column("id", Id, primary_key=True),
    Column("digest", String(64), nullable=False, unique=True),
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),  # the absolute timeout
    Column("revoked_at", UTCDateTime),
    Column("address", String(64)),
    Column("user_agent", String(300)),
)

# Failed sign-ins, for throttling by account and by address; old rows are pruned as new ones come.
login_failures = Table(
    "login_failures",
    metadata,
    Column("id", Id, primary_key=True),
    Column("username", String(40), nullable=False),
    Column("address", String(64)),
    Column("at", UTCDateTime, nullable=False),
    Index("ix_login_failures_username_at", "username", "at"),
    Index("ix_login_failures_address_at", "address", "at"),
)

# Values of this installation made once: the secret API keys are hashed with.
instance = Table(
    "instance",
    metadata,
    Column("name", String(40), primary_key=True),
    Column("value", String(200), nullable=False),
)

# A lead's conversation: what the client wrote through a channel, and what managers answered through it.
messages = Table(
    "messages",
    metadata,
    Column("id", Id, primary_key=True),
    Column("lead_id", ForeignKey("leads.id"), nullable=False),
    Column("channel", String(40), nullable=False),  # telegram, whatsapp, viber, email, call, ...
    Column("direction", String(3), nullable=False),  # in, out
    Column("address", String(254)),  # the client's address in the channel: a chat or user id, an e-mail address
    Column("external_id", String(200)),  # the service's id of the message (of an outgoing one, once it is sent)
    Column("thread", String(300)),  # the service's conversation id, where it has one (an e-mail's Message-ID)
    Column("kind", String(30), nullable=False),  # message, contact, form, call_missed, call_answered, reply
    Column("subject", String(300)),
    Column("body", Text),
    Column("meta", JSON, nullable=False),
    # in: received; out: queued, sent, delivered, read, failed
    Column("status", String(20), nullable=False),
    Column("error", Text),
    Column("manager_id", ForeignKey("managers.id")),  # who answered (out)
    Column("actor", String(60)),
    Column("outbox_id", ForeignKey("outbox.id")),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_messages_lead_id_created_at", "lead_id", "created_at"),
    Index("ix_messages_channel_external_id", "channel", "external_id"),
    Index("ix_messages_channel_address_created_at", "channel", "address", "created_at"),
)

# Everything a channel delivered, as it came, with what it became: a repeat of the same id creates nothing.
channel_events = Table(
    "channel_events",
    metadata,
    Column("id", Id, primary_key=True),
    Column("channel", String(40), nullable=False),
    Column("external_id", String(200)),  # the service's id of the message or event
    # new_lead, joined (the client's open lead), status (of a message sent), unreadable
    Column("outcome", String(20), nullable=False),
    Column("reason", Text),
    Column("lead_id", ForeignKey("leads.id"), index=True),
    Column("message_id", ForeignKey("messages.id")),
    Column("payload", JSON, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    UniqueConstraint("channel", "external_id"),
    Index("ix_channel_events_channel_received_at", "channel", "received_at"),
)

# Calls refused before they were read (a missing or wrong signature): counted, for the admins, nothing else kept.
channel_refusals = Table(
    "channel_refusals",
    metadata,
    Column("channel", String(40), primary_key=True),
    Column("reason", String(100), primary_key=True),
    Column("count", BigInteger, nullable=False),
    Column("first_at", UTCDateTime, nullable=False),
    Column("last_at", UTCDateTime, nullable=False),
)

# What a channel's adapter keeps between runs (Telegram's update offset, a mailbox's last UID) and its last error.
channel_state = Table(
    "channel_state",
    metadata,
    Column("channel", String(40), primary_key=True),
    Column("key", String(60), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# A lead's call cadence: the policy it follows, the attempts made, and the task of the next one.
cadences = Table(
    "cadences",
    metadata,
    Column("lead_id", ForeignKey("leads.id"), primary_key=True),
    Column("policy", String(60), nullable=False),
    Column("state", String(20), nullable=False),  # running, stopped, exhausted
    Column("attempts", JSON, nullable=False),  # the instants of the unanswered attempts, oldest first
    Column("task_id", ForeignKey("tasks.id")),  # the open task of the next attempt
    Column("next_at", UTCDateTime),
    Column("reason", Text),  # why it stands where it does: the last plan, or why it stopped
    Column("started_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_cadences_state_next_at", "state", "next_at"),
)

# What a client did (opened an e-mail, clicked, booked a meeting), as an integration or a tracked link reported it.
# Deduplicated by the reporter's own id; one that matches no client is kept with the reason.
client_events = Table(
    "client_events",
    metadata,
    Column("id", Id, primary_key=True),
    Column("external_id", String(200), nullable=False, unique=True),
    Column("type", String(40), nullable=False),
    Column("lead_id", ForeignKey("leads.id"), index=True),
    Column("outcome", String(20), nullable=False),  # attached, unmatched
    Column("reason", Text),
    Column("data", JSON, nullable=False),  # what was reported: the url, the page, the client's phone or e-mail
    Column("at", UTCDateTime, nullable=False),  # when the client did it
    Column("received_at", UTCDateTime, nullable=False),
    Column("actor", String(60)),
)

# Where the automations last saw each lead: a status or temperature change between two looks is an event to them.
automation_seen = Table(
    "automation_seen",
    metadata,
    Column("lead_id", ForeignKey("leads.id"), primary_key=True),
    Column("status", String(60)),
    Column("temperature", String(10)),
    Column("score", Integer),
)

# Backlog triage runs: what was selected and done, and how far the run (and its undo) got. A run is worked in
# chunks, each one transaction that also moves the cursor, so a run killed between chunks resumes where it stood.
backlog_runs = Table(
    "backlog_runs",
    metadata,
    Column("id", Id, primary_key=True),
    Column("created_at", UTCDateTime, nullable=False),  # the moment the selection was frozen
    Column("actor", String(60)),
    Column("selection", JSON, nullable=False),
    Column("action", JSON, nullable=False),
    Column("state", String(20), nullable=False),  # running, done, undoing, undone
    Column("cursor", Id),  # the last lead id the run went past
    Column("done_count", Integer, nullable=False, server_default="0"),
    Column("skipped_count", Integer, nullable=False, server_default="0"),  # changed meanwhile: left as they were
    Column("total_at_start", Integer, nullable=False),
    Column("undo_cursor", Id),
    Column("undone_count", Integer, nullable=False, server_default="0"),
    Column("kept_count", Integer, nullable=False, server_default="0"),  # changed by others since: not undone
    Column("report", JSON),  # why leads were skipped or kept, grouped; the routing of a requeue
    Column("finished_at", UTCDateTime),
    Column("undone_at", UTCDateTime),
)

# One row per lead a run selected, written when it starts: what became of the lead, and what undo puts back.
backlog_changes = Table(
    "backlog_changes",
    metadata,
    Column("run_id", ForeignKey("backlog_runs.id"), primary_key=True),
    Column("lead_id", ForeignKey("leads.id"), primary_key=True, index=True),
    Column("state", String(20), nullable=False),  # pending, done, skipped, undone, kept
    Column("before", JSON),  # the lead's columns (and removed timers) as they were before the change
    Column("reason", Text),  # why a lead was skipped, or kept at undo
    Column("event_id", ForeignKey("events.id")),  # the lead.backlog event of the change
    Column("done_at", UTCDateTime),
    Column("undone_at", UTCDateTime),
)


# Every status a lead has been in: when it entered and left, and who owned it and which team it was with when it
# entered. Database triggers on `leads` write it in the same statement that changes the status (store/stages.py),
# so every writer, present and future, keeps it exact. The reports' funnel, conversions and cycle times read it.
lead_stages = Table(
    "lead_stages",
    metadata,
    Column("id", Id, primary_key=True),
    Column("lead_id", ForeignKey("leads.id"), nullable=False),
    Column("status", String(60), nullable=False),
    Column("previous", String(60)),  # the status it came from; NULL: the lead arrived in this status
    Column("entered_at", UTCDateTime, nullable=False),
    Column("left_at", UTCDateTime),  # NULL: the lead is in it now
    Column("manager_id", ForeignKey("managers.id")),  # the owner when the lead entered the status
    Column("team_id", ForeignKey("teams.id")),
    Index("ix_lead_stages_status_entered_at_manager_id_lead_id", "status", "entered_at", "manager_id", "lead_id"),
    # Covering: the funnel, the KPIs and the forecast read a cohort's stages from this index alone, and the
    # triggers find a lead's open stage by its first column.
    Index(
        "ix_lead_stages_lead_id_status_entered_at_left_at_manager_id",
        "lead_id",
        "status",
        "entered_at",
        "left_at",
        "manager_id",
    ),
)

# Advertising spend per day and campaign, imported from a CSV or posted by API: channel quality's cost per lead.
# '' (not NULL) stands for "any" in channel, source and campaign, so one day's line is unique.
channel_costs = Table(
    "channel_costs",
    metadata,
    Column("id", Id, primary_key=True),
    Column("day", Date, nullable=False),
    Column("channel", String(40), nullable=False, server_default=""),
    Column("source", String(200), nullable=False, server_default=""),
    Column("campaign", String(200), nullable=False, server_default=""),
    Column("amount", Numeric(16, 2), nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("actor", String(60)),
    UniqueConstraint("day", "channel", "source", "campaign"),
)

# Sales plans set by API for one month (they stand over the rules file's `reports.plans` for that month):
# `scope` is "team:<key>" or "manager:<key>".
sales_plans = Table(
    "sales_plans",
    metadata,
    Column("scope", String(80), primary_key=True),
    Column("month", String(7), primary_key=True),  # YYYY-MM
    Column("deals_per_day", Numeric(10, 2)),
    Column("revenue_per_month", Numeric(18, 2)),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("actor", String(60)),
)

# Daily digests sent: one row per recipient and local day, written with the digest's notifications, so a digest
# goes out once however many workers look.
digests = Table(
    "digests",
    metadata,
    Column("recipient", String(80), primary_key=True),  # "manager:<key>": the head it went to
    Column("day", Date, primary_key=True),  # the recipient's local day it was sent on
    Column("sent_at", UTCDateTime, nullable=False),
)
