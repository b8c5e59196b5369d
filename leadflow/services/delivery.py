"""Delivering the outbox: claim due messages, send each outside any transaction, record the outcome.

The worker calls :func:`deliver_due` in a loop. A batch is claimed (leased) in one short transaction, every
message is sent with no transaction open (a slow SMTP server must not hold a database lock), and each outcome is
recorded in its own short transaction right after its send. If the process dies in between, the lease runs out
and the message is sent again: delivery is at least once, and webhook receivers can drop repeats by
X-Leadflow-Delivery.

:func:`enqueue_notification` is the writing side: it renders a template and adds one outbox row in the caller's
transaction, the one that writes the event.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.engine import Connection

from leadflow.channels.config import NotifyConfig, env_name
from leadflow.channels.redact import recipient_secrets, redact, secrets_of, shown_recipient
from leadflow.channels.senders import DeliveryError, Sender
from leadflow.core.messages import MessageTemplateError, RenderedMessage, normalize_language, render
from leadflow.store import outbox
from leadflow.store.db import READ_ONLY
from leadflow.store.messages import mark_reply_dead, mark_reply_sent
from leadflow.store.outbox import CHANNELS, OutboxMessage, any_due, claim_due, enqueue, mark_failed, mark_sent

__all__ = [
    "DEFAULT_BATCH",
    "DeliveryReport",
    "OutboxPage",
    "default_lease",
    "deliver_due",
    "enqueue_notification",
    "missing_sender_error",
    "outbox_page",
    "retry_message",
]

log = logging.getLogger("leadflow.notify")

DEFAULT_BATCH = 10

# What to set to enable each channel, for the error on a message nobody can send.
_HOW_TO_ENABLE = {
    "telegram": f"set {env_name('telegram_bot_token')}",
    "slack": f"set {env_name('slack_webhook_url')}",
    "webhook": f"set {env_name('webhook_secret')} (and {env_name('webhook_urls')})",
    "email": f"set {env_name('smtp_host')} and {env_name('smtp_from')}",
    "log": "the log sender was left out of the senders given to the worker",
}


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """What one deliver_due call did: sent, failed (will be tried again), dead (given up)."""

    sent: int = 0
    failed: int = 0
    dead: int = 0

    @property
    def handled(self) -> int:
        """Messages claimed in this call; 0 means the outbox had nothing due."""
        return self.sent + self.failed + self.dead


def missing_sender_error(channel: str) -> str:
    if channel in _HOW_TO_ENABLE:
        return f"no sender configured for channel {channel!r}: {_HOW_TO_ENABLE[channel]}"
    return f"no sender configured for channel {channel!r}: it is not a channel leadflow knows ({', '.join(CHANNELS)})"


def default_lease(config: NotifyConfig, batch_size: int) -> timedelta:
    """Long enough for the whole batch to be sent one by one, each send taking a few network time-outs.

    Too short, and a slow batch is claimed again by another worker and sent twice; too long, and a crashed
    worker's messages wait that long before another worker picks them up.
    """
    return timedelta(seconds=max(60.0, 3 * config.timeout_seconds * batch_size + 30))


def deliver_due(
    engine: Engine,
    senders: Mapping[str, Sender],
    config: NotifyConfig,
    now: datetime,
    *,
    batch_size: int = DEFAULT_BATCH,
    lease: timedelta | None = None,
    clock: Callable[[], datetime] | None = None,
    secrets: frozenset[str] = frozenset(),
) -> DeliveryReport:
    """Send one batch of due messages and record each outcome; returns the counts.

    now decides what is due; outcomes are stamped with clock() when given (the worker passes its wall clock,
    so sent_at and backoff start when the send ended), otherwise with now. `secrets`: more credentials to mask in
    the errors kept (the inbound channels' tokens, which replies to clients are sent with).
    """
    if engine.dialect.name == "sqlite" and not any_due(engine, now):
        return DeliveryReport()  # look before taking SQLite's one write lock (see escalate_due)
    with engine.begin() as conn:
        batch = claim_due(
            conn, now, batch_size, lease or default_lease(config, batch_size), max_attempts=config.max_attempts
        )
    sent = failed = dead = 0
    for message in batch:
        outcome = _deliver_one(engine, senders.get(message.channel), config, message, now, clock, secrets)
        if outcome == "sent":
            sent += 1
        elif outcome == "pending":
            failed += 1
        else:
            dead += 1
    return DeliveryReport(sent=sent, failed=failed, dead=dead)


def _deliver_one(
    engine: Engine,
    sender: Sender | None,
    config: NotifyConfig,
    message: OutboxMessage,
    now: datetime,
    clock: Callable[[], datetime] | None,
    secrets: frozenset[str] = frozenset(),
) -> str:
    """Send one claimed message (no transaction open) and record the outcome; returns the new status."""
    retry_after: timedelta | None = None
    if sender is None:
        error, retryable = missing_sender_error(message.channel), False
    else:
        try:
            external_id = sender.send(message)
        except DeliveryError as exc:
            error, retryable, retry_after = exc.message, exc.retryable, exc.retry_after
        except Exception as exc:
            # A bug in a sender must not stop the batch; the message is retried like any transient failure. The
            # traceback is logged as text, masked: an exception may quote the URL it was sent to.
            log.error("sender for %s crashed on outbox message %s\n%s", message.channel, message.id,
                      redact(traceback.format_exc().rstrip(), _secrets(config, message) | secrets))  # fmt: skip
            error, retryable = f"unexpected error in the {message.channel} sender: {type(exc).__name__}: {exc}", True
        else:
            at = clock() if clock else now
            with engine.begin() as conn:
                mark_sent(conn, message.id, at)
                if message.channel == "reply":  # the conversation keeps the service's id of the reply
                    mark_reply_sent(conn, int(message.payload["message_id"]), external_id, at)
            return "sent"
    error = redact(error, _secrets(config, message) | secrets)  # operators read it through the API
    at = clock() if clock else now
    with engine.begin() as conn:
        status = mark_failed(conn, message.id, at, error, retryable, config, retry_after=retry_after)
        if status == "dead" and message.channel == "reply":
            mark_reply_dead(conn, int(message.payload["message_id"]), error, at)
    if status == "dead":
        shown = shown_recipient(message.channel, message.recipient)
        log.error("outbox message %s (%s to %s) is dead: %s", message.id, message.channel, shown, error)
    else:
        log.warning(
            "outbox message %s (%s, attempt %s of %s) failed, will retry: %s",
            message.id,
            message.channel,
            message.attempts,
            config.max_attempts,
            error,
        )
    return status


@dataclass(frozen=True, slots=True)
class OutboxPage:
    """A page of the outbox as operators see it (recipients' credentials masked), with how many of each status."""

    items: list[OutboxMessage]
    total: int  # of the status asked for (all when none)
    counts: dict[str, int]


def outbox_page(engine: Engine, status: str | None, limit: int, offset: int) -> OutboxPage:
    """Messages, newest first, of one status ('pending', 'sent', 'dead') or all."""
    with engine.connect().execution_options(**READ_ONLY) as conn:
        items = outbox.list_messages(conn, status, limit, offset)
        counts = outbox.count_by_status(conn)
    return OutboxPage(items, counts[status] if status is not None else sum(counts.values()), counts)


def retry_message(engine: Engine, message_id: int, now: datetime) -> OutboxMessage:
    """Put a dead message back in the queue with a fresh set of attempts, due now; as operators see it. NotFound,
    or Conflict when it is not dead (or was cancelled by an erasure)."""
    with engine.begin() as conn:
        return outbox.retry_dead(conn, message_id, now)


def _secrets(config: NotifyConfig, message: OutboxMessage) -> frozenset[str]:
    """The credentials a failure of this message could quote: the configured ones and its own URL's."""
    return secrets_of(config) | recipient_secrets(message.channel, message.recipient)


def _jsonable(value: object) -> Any:
    """The context as JSON can hold it: the payload column and the webhook body are JSON."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)  # exact, unlike float; receivers parse it as they see fit
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(item) for item in value]
    return str(value)


def enqueue_notification(
    conn: Connection,
    *,
    event_id: int | None,
    event_type: str,
    channel: str,
    recipient: str,
    language: str | None,
    context: Mapping[str, object],
    now: datetime,
    overrides: Mapping[str, Mapping[str, str]] | None = None,
) -> RenderedMessage:
    """Render the message for this event and add it to the outbox, in the caller's transaction.

    A broken override falls back to the built-in text (and is logged) rather than failing the transaction that
    records the lead: a typo in a template must never lose a lead. check_overrides() finds such typos at start-up.
    The payload (the webhook body) is {"event", "event_id", "language", "lead", ...the rest of context, "message":
    {"subject", "text"}}.
    """
    try:
        rendered = render(event_type, language, context, overrides)
    except MessageTemplateError as exc:
        if not overrides:
            raise
        log.error("%s; using the built-in text instead", exc)
        rendered = render(event_type, language, context)
    data = _jsonable(context)
    payload: dict[str, Any] = {
        "event": event_type,
        "event_id": event_id,
        "language": normalize_language(language),
        "lead": data.pop("lead", None),
    }
    for key, value in data.items():
        payload.setdefault(key, value)  # the context cannot overwrite the keys above
    payload["message"] = {"subject": rendered.subject, "text": rendered.text}
    enqueue(
        conn,
        [
            {
                "event_id": event_id,
                "channel": channel,
                "recipient": recipient,
                "subject": rendered.subject,
                "body": rendered.text,
                "payload": payload,
                "created_at": now,
            }
        ],
    )
    return rendered
