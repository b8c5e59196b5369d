"""Is leadflow in working order: the database answers, the worker keeps up, and notifications reach someone.

`notification_reach` is the one place that decides where escalations and new-lead notices would go; the
start-up warning of `leadflow serve` and `leadflow worker` and `GET /api/v1/health` both ask it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from leadflow.channels.config import NotifyConfig, env_name
from leadflow.services.context import Leadflow
from leadflow.store.db import READ_ONLY
from leadflow.store.tables import managers, outbox, teams, timers

__all__ = [
    "CHANNELS",
    "WORKER_GRACE",
    "NotificationReach",
    "WorkerLag",
    "addresses_in",
    "check_notifications",
    "enabled_channels",
    "health_report",
    "notification_reach",
    "worker_lag",
]

# The channels a notification can be queued for, besides the log, with what turns each one on.
CHANNELS: Mapping[str, str] = {
    "telegram": env_name("telegram_bot_token"),
    "email": f"{env_name('smtp_host')} and {env_name('smtp_from')}",
    "slack": env_name("slack_webhook_url"),
    "webhook": f"{env_name('webhook_urls')} and {env_name('webhook_secret')}",
}
# Where the rules file (or the people API) gives each channel an address.
_ADDRESS_FIELDS: Mapping[str, str] = {
    "telegram": "telegram_chat_id on a manager or a team",
    "email": "email on a manager",
    "slack": "slack_webhook_url on a team",
    "webhook": env_name("webhook_urls"),
}
# A worker acts on a deadline within a second; one this late means no worker is running (or it is stuck).
WORKER_GRACE = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class NotificationReach:
    """The channels that can send, and what a person should know about where notifications would go."""

    channels: tuple[str, ...]
    warnings: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"channels": list(self.channels), "warnings": list(self.warnings)}


def enabled_channels(config: NotifyConfig) -> tuple[str, ...]:
    """The channels `senders_from_config` gives a sender to (the log aside), without opening any connection."""
    enabled = {
        "telegram": config.telegram_bot_token is not None,
        "email": config.email_enabled,
        "slack": config.slack_webhook_url is not None,
        "webhook": config.webhook_secret is not None,
    }
    return tuple(channel for channel, on in enabled.items() if on)


def notification_reach(channels: Collection[str], addresses: Mapping[str, Sequence[str]]) -> NotificationReach:
    """Decide where notifications would go.

    `channels` are the channels that can send (the names of the worker's senders; "log" is not a way to tell
    anyone); `addresses` maps each channel to who has an address there ("manager olena", "team kyiv", ...).
    """
    enabled = tuple(c for c in CHANNELS if c in channels)
    warnings: list[str] = []
    if not enabled:
        settings = "; ".join(f"{channel}: {setting}" for channel, setting in CHANNELS.items())
        warnings.append(
            "no notification channel is enabled, so escalations and new-lead notices reach no one (they are only "
            f"logged); set one in the environment or .env — {settings}"
        )
    elif not any(addresses.get(c) for c in enabled):
        where = "; ".join(f"{c}: {_ADDRESS_FIELDS[c]}" for c in enabled)
        warnings.append(
            f"{_and(enabled)} {'is' if len(enabled) == 1 else 'are'} enabled but no manager or team has an address "
            f"there, so escalations and new-lead notices reach no one; add one — {where}"
        )
    for channel in CHANNELS:
        who = addresses.get(channel, ())
        if who and channel not in enabled:
            warnings.append(
                f"{_count(who)} {'has' if len(who) == 1 else 'have'} an address for {channel} but {channel} is not "
                f"enabled, so those notifications will fail; set {CHANNELS[channel]}"
            )
    return NotificationReach(enabled, tuple(warnings))


def check_notifications(app: Leadflow, channels: Collection[str] | None = None) -> NotificationReach:
    """Where this leadflow's notifications would go. `channels`: the worker's senders; the settings' when None."""
    with app.engine.connect().execution_options(**READ_ONLY) as conn:
        return _reach(conn, app, channels)


def _reach(conn: Connection, app: Leadflow, channels: Collection[str] | None) -> NotificationReach:
    enabled = enabled_channels(app.notify) if channels is None else channels
    return notification_reach(enabled, addresses_in(conn, app.notify))


def addresses_in(conn: Connection, config: NotifyConfig) -> dict[str, list[str]]:
    """Who has an address on each channel: the active managers and the teams as stored, the webhook receivers."""
    found: dict[str, list[str]] = {channel: [] for channel in CHANNELS}
    query = select(managers.c.key, managers.c.email, managers.c.telegram_chat_id).where(managers.c.active)
    for key, email, chat in conn.execute(query.order_by(managers.c.key)):
        if chat:
            found["telegram"].append(f"manager {key}")
        if email:
            found["email"].append(f"manager {key}")
    query = select(teams.c.key, teams.c.telegram_chat_id, teams.c.slack_webhook_url).order_by(teams.c.key)
    for key, chat, slack in conn.execute(query):
        if chat:
            found["telegram"].append(f"team {key}")
        if slack:
            found["slack"].append(f"team {key}")
    if config.slack_webhook_url is not None:  # the team chat of every team without a Slack webhook of its own
        found["slack"].append("the teams' chat")
    # The host only: a receiver's URL may carry a token.
    found["webhook"] = [f"receiver at {urlsplit(url).hostname or 'an unnamed host'}" for url in config.webhook_urls]
    return found


@dataclass(frozen=True, slots=True)
class WorkerLag:
    """Deadlines and notifications that should have been acted on more than WORKER_GRACE ago."""

    overdue_deadlines: int
    overdue_notifications: int
    oldest_overdue_seconds: int | None

    @property
    def behind(self) -> bool:
        return bool(self.overdue_deadlines or self.overdue_notifications)


def worker_lag(conn: Connection, now: datetime) -> WorkerLag:
    cutoff = now - WORKER_GRACE
    deadlines, oldest_deadline = conn.execute(
        select(func.count(), func.min(timers.c.due_at)).where(timers.c.due_at < cutoff)
    ).one()
    messages, oldest_message = conn.execute(
        select(func.count(), func.min(outbox.c.next_attempt_at)).where(
            outbox.c.status == "pending", outbox.c.next_attempt_at < cutoff
        )
    ).one()
    oldest = min((t for t in (oldest_deadline, oldest_message) if t is not None), default=None)
    seconds = int((now - oldest).total_seconds()) if oldest is not None else None
    return WorkerLag(int(deadlines), int(messages), seconds)


def health_report(
    app: Leadflow, now: datetime, *, channels: Collection[str] | None = None, worker_in_process: bool = False
) -> dict[str, Any]:
    """What `GET /api/v1/health` answers. `channels`: the running worker's senders; the settings' when None.

    Raises the database's own error when it does not answer.
    """
    with app.engine.connect().execution_options(**READ_ONLY) as conn:
        reach = _reach(conn, app, channels)
        lag = worker_lag(conn, now)
    return {
        "status": "ok",
        "database": app.engine.dialect.name,
        "notifications": reach.as_dict(),
        "worker": {
            "in_process": worker_in_process,
            "status": "behind" if lag.behind else "ok",
            "overdue_deadlines": lag.overdue_deadlines,
            "overdue_notifications": lag.overdue_notifications,
            "oldest_overdue_seconds": lag.oldest_overdue_seconds,
        },
    }


def _and(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _count(who: Sequence[str]) -> str:
    shown = ", ".join(who[:3])
    return shown + (f" and {len(who) - 3} more" if len(who) > 3 else "")
