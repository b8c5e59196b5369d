"""The channels as an admin sees and leadflow keeps them: refused calls counted, each channel's kept values (an
update offset, a mailbox's last UID, its last error), events kept to finish later, what the worker hands the
pollers, and each channel's status."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from leadflow.channels.inbound.ports import PollerServices
from leadflow.channels.redact import redact
from leadflow.core.conversation import Refusal
from leadflow.services.context import Leadflow
from leadflow.services.conversations import take_inbound
from leadflow.store.tables import channel_events, channel_refusals, channel_state

LAST_ERROR = "last_error"


def count_refusal(app: Leadflow, refusal: Refusal, now: datetime) -> None:
    """Count a call refused before it was read (a forged or unsigned one): the count is all that is kept."""
    key = {"channel": refusal.channel[:40], "reason": refusal.reason[:100]}
    with app.engine.begin() as conn:
        done = conn.execute(update(channel_refusals).where(
            channel_refusals.c.channel == key["channel"], channel_refusals.c.reason == key["reason"]
        ).values(count=channel_refusals.c.count + 1, last_at=now))  # fmt: skip
        if done.rowcount == 0:
            try:
                with conn.begin_nested():
                    conn.execute(channel_refusals.insert().values(**key, count=1, first_at=now, last_at=now))
            except IntegrityError:  # counted by another request meanwhile
                conn.execute(update(channel_refusals).where(
                    channel_refusals.c.channel == key["channel"], channel_refusals.c.reason == key["reason"]
                ).values(count=channel_refusals.c.count + 1, last_at=now))  # fmt: skip


def read_state(app: Leadflow, channel: str, key: str) -> str | None:
    with app.engine.connect() as conn:
        return conn.execute(
            select(channel_state.c.value).where(channel_state.c.channel == channel, channel_state.c.key == key)
        ).scalar()


def save_state(app: Leadflow, channel: str, key: str, value: str, now: datetime) -> None:
    """Keep an adapter's value (an update offset, a mailbox's last UID, its last error) across restarts."""
    with app.engine.begin() as conn:
        save_state_in(conn, channel, key, value, now)


def save_state_in(conn: Connection, channel: str, key: str, value: str, now: datetime) -> None:
    where = (channel_state.c.channel == channel, channel_state.c.key == key)
    if conn.execute(update(channel_state).where(*where).values(value=value, updated_at=now)).rowcount == 0:
        conn.execute(channel_state.insert().values(channel=channel, key=key, value=value, updated_at=now))


def note_error(app: Leadflow, channel: str, error: str, now: datetime) -> None:
    """An adapter's last error (a mailbox that refused the login, a Bot API that did not answer), for the status;
    credentials are masked in it here, whatever the caller did."""
    save_state(app, channel, LAST_ERROR, f"{now.isoformat()} {redact(error, app.channels.secrets())}"[:2000], now)


def clear_error(app: Leadflow, channel: str) -> None:
    """The channel works again: its last error is no longer shown."""
    with app.engine.begin() as conn:
        conn.execute(delete(channel_state).where(channel_state.c.channel == channel, channel_state.c.key == LAST_ERROR))


def poller_services(app: Leadflow, clock: Callable[[], datetime]) -> PollerServices:
    """What the channels' pollers need from leadflow, bound to this app and clock (the worker hands it to them)."""
    return PollerServices(
        take=lambda items: take_inbound(app, items, clock()),
        load_state=lambda channel, key: read_state(app, channel, key),
        save_state=lambda channel, key, value: save_state(app, channel, key, value, clock()),
        note_error=lambda channel, error: note_error(app, channel, error, clock()),
        clear_error=lambda channel: clear_error(app, channel),
        held=lambda channel: held_events(app, channel),
        release=lambda channel, event_id: release_event(app, channel, event_id),
    )


# Events a channel keeps to finish after the service was answered (Lead Ads: a form's id, whose answers are fetched
# from the Graph API afterwards), as channel_state rows: kept across restarts until released.
HELD = "held:"


def hold_events(app: Leadflow, channel: str, events: Mapping[str, str], now: datetime,
                taken_in: Sequence[str] = ()) -> list[str]:  # fmt: skip
    """Keep events to finish later, committed before this returns; the ids newly kept (not kept already, nor taken
    already as channel events of the channels `taken_in`)."""

    def work(conn: Connection) -> list[str]:
        fresh = []
        for event_id, value in events.items():
            key = f"{HELD}{event_id}"[:60]
            kept = conn.execute(select(channel_state.c.key).where(channel_state.c.channel == channel,
                                                                  channel_state.c.key == key)).first()  # fmt: skip
            taken = taken_in and conn.execute(select(channel_events.c.id).where(
                channel_events.c.channel.in_(taken_in), channel_events.c.external_id == event_id)).first()  # fmt: skip
            if kept is None and not taken:
                conn.execute(channel_state.insert().values(channel=channel, key=key, value=value, updated_at=now))
                fresh.append(event_id)
        return fresh

    try:
        return app.transaction(work)
    except IntegrityError:  # the same event kept by a concurrent call (PostgreSQL): that one stands
        return app.transaction(work)


def held_events(app: Leadflow, channel: str) -> dict[str, str]:
    """The events a channel keeps to finish, by id."""
    with app.engine.connect() as conn:
        rows = conn.execute(select(channel_state.c.key, channel_state.c.value).where(
            channel_state.c.channel == channel, channel_state.c.key.startswith(HELD, autoescape=True)))  # fmt: skip
        return {row.key[len(HELD) :]: row.value for row in rows}


def release_event(app: Leadflow, channel: str, event_id: str) -> None:
    """A kept event is finished: keep it no longer."""
    with app.engine.begin() as conn:
        conn.execute(delete(channel_state).where(channel_state.c.channel == channel,
                                                 channel_state.c.key == f"{HELD}{event_id}"[:60]))  # fmt: skip


def channels_status(app: Leadflow) -> list[dict[str, Any]]:
    """Each channel: configured or not, its last event, what it received, refused calls, its last error."""
    enabled = app.channels.enabled
    with app.engine.connect() as conn:
        last = {r.channel: r for r in conn.execute(
            select(channel_events.c.channel, func.max(channel_events.c.received_at).label("at"),
                   func.count().label("events")).group_by(channel_events.c.channel)
        )}  # fmt: skip
        outcomes: dict[str, dict[str, int]] = {}
        for r in conn.execute(select(channel_events.c.channel, channel_events.c.outcome, func.count().label("n"))
                              .group_by(channel_events.c.channel, channel_events.c.outcome)):  # fmt: skip
            outcomes.setdefault(r.channel, {})[r.outcome] = int(r.n)
        refused: dict[str, dict[str, int]] = {}
        for r in conn.execute(select(channel_refusals.c.channel, channel_refusals.c.reason,
                                     channel_refusals.c["count"].label("times"))):  # fmt: skip
            refused.setdefault(r.channel, {})[r.reason] = int(r.times)
        errors = {r.channel: r.value for r in conn.execute(
            select(channel_state.c.channel, channel_state.c.value).where(channel_state.c.key == LAST_ERROR))}  # fmt: skip
    names = [*enabled, *sorted((set(last) | set(refused) | set(errors)) - set(enabled))]
    return [{"channel": name, "configured": enabled.get(name, False),
             "last_event_at": last[name].at if name in last else None,
             "events": last[name].events if name in last else 0, "outcomes": outcomes.get(name, {}),
             "refused": refused.get(name, {}), "last_error": errors.get(name)} for name in names]  # fmt: skip
