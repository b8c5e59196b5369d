"""The outbox: notifications written with the event that caused them, then delivered by a worker.

Rows are written in the caller's transaction, so a notification exists exactly when its event does. Delivery is
at least once: :func:`claim_due` leases a batch (moves next_attempt_at forward by the lease and counts the
attempt) in a short transaction of its own; if the process dies while sending, the lease runs out and the rows
are claimed again. On PostgreSQL the claim uses ``FOR UPDATE SKIP LOCKED`` so several workers take disjoint
rows; SQLite has a single writer (BEGIN IMMEDIATE), so one worker at a time.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, Row, func, select, update
from sqlalchemy.engine import Connection

from leadflow.channels.config import NotifyConfig
from leadflow.channels.redact import shown_recipient
from leadflow.core.errors import Conflict, NotFound
from leadflow.store.db import READ_ONLY
from leadflow.store.tables import outbox

__all__ = [
    "CHANNELS",
    "STATUSES",
    "OutboxMessage",
    "backoff_delay",
    "claim_due",
    "collected",
    "count_by_status",
    "enqueue",
    "get_message",
    "list_messages",
    "mark_failed",
    "mark_sent",
    "retry_dead",
    "shown",
]

CHANNELS = ("telegram", "slack", "webhook", "email", "log", "reply")  # reply: to a client, through their channel
STATUSES = ("pending", "sent", "dead")
MAX_SUBJECT = 300  # column sizes, checked here so PostgreSQL and SQLite (which ignores them) behave alike
MAX_RECIPIENT = 500
MAX_ERROR = 2000


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """One outbox row as the delivery side sees it."""

    id: int
    event_id: int | None
    channel: str
    recipient: str
    subject: str | None
    body: str
    payload: Mapping[str, Any]
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None

    @property
    def full_text(self) -> str:
        """Subject and body as one text, for chat channels that have no subject line."""
        return f"{self.subject}\n\n{self.body}" if self.subject else self.body


def _message(row: Row[Any]) -> OutboxMessage:
    return OutboxMessage(
        id=row.id,
        event_id=row.event_id,
        channel=row.channel,
        recipient=row.recipient,
        subject=row.subject,
        body=row.body,
        payload=row.payload,
        status=row.status,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        last_error=row.last_error,
        created_at=row.created_at,
        sent_at=row.sent_at,
    )


def _row(message: Mapping[str, Any]) -> dict[str, Any]:
    missing = [key for key in ("channel", "recipient", "body", "created_at") if message.get(key) is None]
    if missing:
        raise ValueError(f"outbox message is missing {', '.join(missing)}: {dict(message)!r}")
    channel = message["channel"]
    if channel not in CHANNELS:
        raise ValueError(f"unknown notification channel {channel!r}; known channels: {', '.join(CHANNELS)}")
    recipient = str(message["recipient"])
    if not recipient.strip() or len(recipient) > MAX_RECIPIENT:
        raise ValueError(f"outbox recipient must be 1..{MAX_RECIPIENT} characters, got {len(recipient)}")
    subject = message.get("subject")
    if subject is not None and len(subject) > MAX_SUBJECT:
        subject = subject[: MAX_SUBJECT - 1] + "…"
    return {
        "event_id": message.get("event_id"),
        "channel": channel,
        "recipient": recipient,
        "subject": subject,
        "body": message["body"],
        "payload": dict(message.get("payload") or {}),
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": message.get("next_attempt_at") or message["created_at"],
        "last_error": None,
        "created_at": message["created_at"],
        "sent_at": None,
    }


_COLLECTED = "leadflow_outbox_collected"  # key in Connection.info while `collected` is open
_INSERT = outbox.insert()


def enqueue(conn: Connection, messages: Sequence[Mapping[str, Any]]) -> None:
    """Add pending messages in the caller's transaction.

    Each message: channel, recipient, body, created_at (required); event_id, subject, payload (JSON-ready dict)
    and next_attempt_at (default: created_at) optional. Inside :func:`collected` the rows are kept and written
    when it ends, with the others.
    """
    rows = [_row(message) for message in messages]
    pending: list[dict[str, Any]] | None = conn.info.get(_COLLECTED)
    if pending is not None:
        pending.extend(rows)
    elif rows:
        conn.execute(_INSERT, rows)


@contextmanager
def collected(conn: Connection) -> Iterator[None]:
    """Within: messages enqueued on this connection are kept, then written with one executemany at the end.

    For a caller that queues many messages in one transaction (a batch of escalations): one round of the driver
    (pipelined on PostgreSQL) instead of one statement per message. Use it inside the transaction; if the block
    raises, nothing is written (and the transaction is rolled back by its owner). Nesting is not supported.
    """
    if _COLLECTED in conn.info:
        raise RuntimeError("outbox.collected() is already open on this connection")
    pending: list[dict[str, Any]] = []
    conn.info[_COLLECTED] = pending
    try:
        yield
    finally:
        del conn.info[_COLLECTED]
    if pending:
        conn.execute(_INSERT, pending)


def any_due(engine: Engine, now: datetime) -> bool:
    """Whether a message waits to be sent by now (a read: no lock taken)."""
    with engine.connect().execution_options(**READ_ONLY) as conn:
        query = select(outbox.c.id).where(outbox.c.status == "pending", outbox.c.next_attempt_at <= now).limit(1)
        return conn.execute(query).first() is not None


def claim_due(
    conn: Connection, now: datetime, limit: int, lease: timedelta, *, max_attempts: int | None = None
) -> list[OutboxMessage]:
    """Lease up to limit pending messages due by now, oldest due first, and count an attempt on each.

    The returned messages show the new attempts and next_attempt_at (now + lease). Run it in a transaction of its
    own and commit before sending. With max_attempts, a message whose attempts are already used up (its last
    try was interrupted before the outcome was recorded) is dead-lettered here instead of being tried again, so a
    message that crashes the worker cannot loop for ever.
    """
    if limit < 1:
        return []
    query = (
        select(outbox)
        .where(outbox.c.status == "pending", outbox.c.next_attempt_at <= now)
        .order_by(outbox.c.next_attempt_at, outbox.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)  # PostgreSQL: concurrent workers skip each other's rows
    )
    rows = conn.execute(query).all()
    exhausted = [row.id for row in rows if max_attempts is not None and row.attempts >= max_attempts]
    if exhausted:
        conn.execute(
            update(outbox)
            .where(outbox.c.id.in_(exhausted))
            .values(
                status="dead",
                last_error=f"gave up: all {max_attempts} attempts were interrupted or failed "
                "(the delivery process stopped before recording the last outcome)",
            )
        )
    claimed = [row for row in rows if row.id not in exhausted]
    if not claimed:
        return []
    until = now + lease
    conn.execute(
        update(outbox)
        .where(outbox.c.id.in_([row.id for row in claimed]))
        .values(next_attempt_at=until, attempts=outbox.c.attempts + 1)
    )
    # The rows as they now stand, without reading them again.
    return [replace(_message(row), attempts=row.attempts + 1, next_attempt_at=until) for row in claimed]


def mark_sent(conn: Connection, id: int, now: datetime) -> None:
    """Record a delivery. Only a pending message changes: an operator's decision in between stands."""
    conn.execute(
        update(outbox).where(outbox.c.id == id, outbox.c.status == "pending").values(status="sent", sent_at=now)
    )


def backoff_delay(attempts: int, config: NotifyConfig) -> timedelta:
    """The wait after the attempts-th failure: base, 2*base, 4*base, ... capped at the maximum."""
    exponent = max(attempts - 1, 0)
    # Cap the exponent before raising 2 to it: attempts may be large after many operator retries.
    seconds = config.backoff_base_seconds * 2 ** min(exponent, 62)
    return timedelta(seconds=min(seconds, config.backoff_max_seconds))


def mark_failed(
    conn: Connection,
    id: int,
    now: datetime,
    error: str,
    retryable: bool,
    config: NotifyConfig,
    *,
    retry_after: timedelta | None = None,
) -> str:
    """Record a failed attempt; returns the new status: 'pending' (tried again later) or 'dead'.

    The next attempt waits min(base * 2**(attempts-1), max), or longer if the receiver asked (retry_after).
    A message that is not retryable, or has used max_attempts, is dead-lettered.
    """
    row = conn.execute(select(outbox.c.attempts, outbox.c.status).where(outbox.c.id == id).with_for_update()).first()
    if row is None:
        raise NotFound(f"outbox message {id} does not exist")
    if row.status != "pending":
        return str(row.status)
    error = error if len(error) <= MAX_ERROR else error[: MAX_ERROR - 1] + "…"
    if retryable and row.attempts < config.max_attempts:
        delay = backoff_delay(row.attempts, config)
        if retry_after is not None:
            delay = max(delay, min(retry_after, timedelta(seconds=config.backoff_max_seconds)))
        conn.execute(update(outbox).where(outbox.c.id == id).values(next_attempt_at=now + delay, last_error=error))
        return "pending"
    if retryable:
        error = f"gave up after {row.attempts} attempts; last error: {error}"
    conn.execute(update(outbox).where(outbox.c.id == id).values(status="dead", last_error=error))
    return "dead"


def get_message(conn: Connection, id: int) -> OutboxMessage | None:
    row = conn.execute(select(outbox).where(outbox.c.id == id)).first()
    return None if row is None else _message(row)


def shown(message: OutboxMessage) -> OutboxMessage:
    """The message as operators see it: a Slack URL's path and a webhook URL's query values, credentials, masked.
    The row keeps the real address; delivery reads it through claim_due."""
    return replace(message, recipient=shown_recipient(message.channel, message.recipient))


def list_messages(conn: Connection, status: str | None = None, limit: int = 50, offset: int = 0) -> list[OutboxMessage]:
    """Messages, newest first, optionally of one status ('pending', 'sent', 'dead'), as operators see them (shown)."""
    if status is not None and status not in STATUSES:
        raise ValueError(f"unknown outbox status {status!r}; use one of: {', '.join(STATUSES)}")
    query = select(outbox).order_by(outbox.c.id.desc()).limit(max(limit, 0)).offset(max(offset, 0))
    if status is not None:
        query = query.where(outbox.c.status == status)
    return [shown(_message(row)) for row in conn.execute(query)]


def count_by_status(conn: Connection) -> dict[str, int]:
    """How many messages each status has (every status named, 0 included)."""
    rows = conn.execute(select(outbox.c.status, func.count()).group_by(outbox.c.status)).all()
    found: dict[str, int] = {status: count for status, count in rows}
    return {status: int(found.get(status, 0)) for status in STATUSES}


# The last_error of a message stopped because its client's data was erased (services/privacy.py writes it).
ERASED_CANCEL = "cancelled: the client's personal data was erased before this message was sent"


def retry_dead(conn: Connection, id: int, now: datetime) -> OutboxMessage:
    """Give a dead message a fresh set of attempts, due now; returns it as operators see it (shown). Raises NotFound,
    or Conflict if it is not dead."""
    row = conn.execute(select(outbox.c.status, outbox.c.last_error).where(outbox.c.id == id).with_for_update()).first()
    if row is None:
        raise NotFound(f"outbox message {id} does not exist")
    if row.status != "dead":
        raise Conflict(f"outbox message {id} is {row.status}, not dead; only dead messages can be retried")
    if row.last_error == ERASED_CANCEL:
        raise Conflict(f"outbox message {id} was cancelled when its client's personal data was erased")
    # last_error stays, so the operator still sees why it failed before.
    conn.execute(update(outbox).where(outbox.c.id == id).values(status="pending", attempts=0, next_attempt_at=now))
    message = get_message(conn, id)
    assert message is not None
    return shown(message)
