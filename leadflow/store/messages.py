"""A conversation's messages as delivery changes them: a reply the outbox sent, or gave up on."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlalchemy.engine import Connection

from leadflow.store.tables import messages


def mark_reply_sent(conn: Connection, message_id: int, external_id: str | None, now: datetime) -> None:
    """The outbox delivered a reply: keep the service's id for it (its later status callbacks name it)."""
    conn.execute(
        update(messages)
        .where(messages.c.id == message_id, messages.c.status == "queued")
        .values(status="sent", external_id=external_id and external_id[:200], updated_at=now)
    )


def mark_reply_dead(conn: Connection, message_id: int, error: str, now: datetime) -> None:
    """The outbox gave up on a reply (its last attempt failed, or the service refused it for good)."""
    conn.execute(
        update(messages).where(messages.c.id == message_id).values(status="failed", error=error[:2000], updated_at=now)
    )
