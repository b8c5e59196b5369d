"""A conversation's messages as delivery changes them: a reply the outbox sent, or gave up on, and what the service
said of a reply before leadflow knew the id it gave it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.engine import Connection

from leadflow.core.conversation import moves_forward
from leadflow.store.tables import channel_state, messages

EARLY = "status:"  # channel_state keys of statuses that came before their message's id was recorded


def mark_reply_sent(conn: Connection, message_id: int, external_id: str | None, now: datetime) -> None:
    """The outbox delivered a reply: keep the service's id for it (its later status callbacks name it), and apply
    what the service already said of it, if its word came first."""
    external = external_id[:200] if external_id else None
    channel = conn.execute(
        update(messages)
        .where(messages.c.id == message_id, messages.c.status == "queued")
        .values(status="sent", external_id=external, updated_at=now)
        .returning(messages.c.channel)
    ).scalar()
    if external is None or channel is None:
        return
    key = (EARLY + external)[:60]
    early = conn.execute(
        delete(channel_state).where(channel_state.c.channel == channel, channel_state.c.key == key)
        .returning(channel_state.c.value)
    ).scalar()  # fmt: skip
    if early is None:
        return
    state, _, error = early.partition(" ")
    if moves_forward("sent", state):
        conn.execute(update(messages).where(messages.c.id == message_id)
                     .values(status=state, error=error or None, updated_at=now))  # fmt: skip


def keep_early_status(
    conn: Connection, channel: str, external_id: str, state: str, error: str | None, now: datetime
) -> None:
    """A service's word on a reply whose id leadflow has not recorded yet (the service answered the send before the
    worker's commit): kept until it is, the furthest state only."""
    key = (EARLY + external_id)[:60]
    where = (channel_state.c.channel == channel, channel_state.c.key == key)
    kept = conn.execute(select(channel_state.c.value).where(*where)).scalar()
    if kept is not None:
        if not moves_forward(kept.partition(" ")[0], state):
            return
        conn.execute(update(channel_state).where(*where).values(value=f"{state} {error or ''}".strip(), updated_at=now))
        return
    conn.execute(channel_state.insert().values(channel=channel, key=key, value=f"{state} {error or ''}".strip(),
                                               updated_at=now))  # fmt: skip


def mark_reply_dead(conn: Connection, message_id: int, error: str, now: datetime) -> None:
    """The outbox gave up on a reply (its last attempt failed, or the service refused it for good)."""
    conn.execute(
        update(messages).where(messages.c.id == message_id).values(status="failed", error=error[:2000], updated_at=now)
    )
