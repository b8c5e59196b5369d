"""A manager's reply to the client, through the channel the client wrote from.

The reply is a `messages` row and an outbox row written together, with the contact it counts as: the manager's
reply stops the lead's first-contact clock (the chat deadline of `sla.channels`) as a call that got through does.
The outbox delivers it, retries it and dead-letters it as it does notifications; the service's id for the sent
message comes back and is kept, so the service's later word on it (delivered, read) finds it. What a channel
cannot carry now is refused at once, with the reason, and nothing is written.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import desc, func, select, update
from sqlalchemy.engine import Connection, Row, RowMapping

from leadflow.channels.inbound.registry import reply_problem
from leadflow.core.conversation import REPLY_CHANNELS
from leadflow.core.errors import Conflict, InvalidInput, NotFound
from leadflow.core.policy import Action, Principal
from leadflow.services.access import guard_lead
from leadflow.services.context import Leadflow
from leadflow.services.sla import record_contact_in
from leadflow.services.tracking import track_reply
from leadflow.store.events import add_event, new_event
from leadflow.store.outbox import enqueue
from leadflow.store.tables import leads, messages, outbox

# WhatsApp lets a business write freely only within 24 hours of the client's last message.
WHATSAPP_WINDOW = timedelta(hours=24)
MAX_TEXT = 4096
PREVIEW = 200  # characters of a message quoted in its event


def send_reply(
    app: Leadflow, lead_id: int, text: str, now: datetime, *, who: Principal, channel: str | None = None,
    subject: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Queue a manager's answer to the client through the channel they wrote from (or `channel`); it counts as the
    manager's contact with the client. Refused, with nothing written, when the channel cannot carry it now."""
    text = (text or "").strip()
    if not text:
        raise InvalidInput.one("text", "write the message to send")
    if len(text) > MAX_TEXT:
        raise InvalidInput.one("text", f"a message is at most {MAX_TEXT} characters, this one has {len(text)}")
    if channel is not None and channel not in REPLY_CHANNELS:
        raise InvalidInput.one("channel", f"'{channel}' cannot carry a reply: use one of {', '.join(REPLY_CHANNELS)}")
    with app.engine.begin() as conn:
        guard_lead(conn, who, lead_id, Action.LEAD_WORK)
        lead = conn.execute(select(leads).where(leads.c.id == lead_id)).mappings().first()
        if lead is None:
            raise NotFound(f"lead {lead_id} does not exist")
        queued = queue_reply_in(conn, app, lead, text, now, who=who, channel=channel, subject=subject)
        queued["contact"] = _count_as_contact(conn, app, lead_id, who, now)
    return queued


def queue_reply_in(
    conn: Connection, app: Leadflow, lead: RowMapping, text: str, now: datetime, *, who: Principal,
    channel: str | None = None, subject: str | None = None, kind: str = "reply",
) -> dict[str, Any]:  # fmt: skip
    """The message row, its event and its outbox row, in the caller's transaction; no contact is recorded.
    `kind`: "reply" (a person wrote it) or "auto" (an automation's template). Conflict when the channel cannot
    carry it now."""
    lead_id = lead["id"]
    via, address, last = reply_route(conn, lead, channel)
    _check_channel(conn, app, via, address, now)
    in_reply_to = last.thread if last is not None and via == "email" else None
    if via == "email" and subject is None:
        subject = _reply_subject(
            last.subject if last is not None else None, lead["language"] or app.rules.default_language
        )
    manager_id = who.manager_id if who.manager_id is not None else lead["manager_id"]
    meta = {"in_reply_to": in_reply_to} if in_reply_to else {}
    message_id = conn.execute(messages.insert().returning(messages.c.id).values(
        lead_id=lead_id, channel=via, direction="out", address=address, kind=kind, subject=subject,
        body=text, meta=meta, status="queued",
        manager_id=manager_id, actor=who.label, created_at=now, updated_at=now,
    )).scalar_one()  # fmt: skip
    extra: dict[str, Any] = {"auto": True} if kind == "auto" else {}
    event_id = add_event(conn, new_event(lead_id, "message.sent", now, who, channel=via, message_id=message_id,
                                         text=text[:PREVIEW], **extra))  # fmt: skip
    payload = {"message_id": message_id, "lead_id": lead_id, "channel": via, "address": address,
               "in_reply_to": in_reply_to}  # fmt: skip
    sent = text
    # An e-mail goes out with tracked links and an open pixel; the stored body stays what was written.
    tracked = track_reply(conn, app, message_id, text) if via == "email" else None
    if tracked is not None:
        sent, payload["html"], meta = tracked.text, tracked.html, {**meta, "links": tracked.links}
    enqueue(conn, [{"channel": "reply", "recipient": f"{via}:{address}", "subject": subject, "body": sent,
                    "event_id": event_id, "created_at": now, "payload": payload}])  # fmt: skip
    queued = conn.execute(select(func.max(outbox.c.id)).where(outbox.c.event_id == event_id)).scalar()
    conn.execute(update(messages).where(messages.c.id == message_id).values(outbox_id=queued, meta=meta))
    return {"id": message_id, "lead_id": lead_id, "channel": via, "address": address, "status": "queued"}


def reply_route(conn: Connection, lead: RowMapping, channel: str | None) -> tuple[str, str, Row[Any] | None]:
    """The channel and address a reply goes to, and the client's last message there (None: they never wrote)."""
    query = select(messages).where(messages.c.lead_id == lead["id"], messages.c.direction == "in",
                                   messages.c.address.is_not(None))  # fmt: skip
    if channel is not None:
        query = query.where(messages.c.channel == channel)
    else:
        query = query.where(messages.c.channel.in_(REPLY_CHANNELS))  # a call's number is not a chat
    last = conn.execute(query.order_by(messages.c.created_at.desc(), messages.c.id.desc()).limit(1)).first()
    if last is not None:
        return last.channel, last.address, last
    via = channel or (lead["channel"] if lead["channel"] in REPLY_CHANNELS else "email" if lead["email"] else None)
    if via == "email" and lead["email"]:
        return "email", lead["email"], None
    if via is not None and via == lead["channel"] and lead["messenger_id"]:
        return via, lead["messenger_id"], None
    asked = f"through {channel}" if channel else "through a channel leadflow can answer in"
    raise Conflict(f"the client of lead {lead['id']} has not written {asked}: call them, or write to their e-mail")


def _check_channel(conn: Connection, app: Leadflow, via: str, address: str, now: datetime) -> None:
    problem = reply_problem(app.channels, app.notify, via)
    if problem:
        raise Conflict(problem)
    if via == "whatsapp":
        wrote = last_written(conn, via, address)
        if wrote is None or now - wrote > WHATSAPP_WINDOW:
            when = f"last wrote at {wrote:%Y-%m-%d %H:%M} UTC" if wrote is not None else "has not written"
            raise Conflict(f"outside WhatsApp's 24-hour customer-service window: the client {when}; WhatsApp takes "
                           "only approved template messages then, so call the client or wait for them to write")  # fmt: skip


def last_written(conn: Connection, channel: str, address: str) -> datetime | None:
    """When the client last wrote from this address in this channel, on any of their leads: by the service's own
    time for the message where it gave one (a message delivered late opened its window when it was written)."""
    last = conn.execute(
        select(messages.c.created_at, messages.c.meta).where(
            messages.c.channel == channel, messages.c.address == address, messages.c.direction == "in")
        .order_by(desc(messages.c.created_at)).limit(1)
    ).first()  # fmt: skip
    if last is None:
        return None
    written = (last.meta or {}).get("sent_at")
    try:
        return min(last.created_at, datetime.fromisoformat(written)) if written else last.created_at
    except ValueError:
        return last.created_at


# The subject of an answer to a client who wrote no subject (or came through a form), in their language.
_YOUR_REQUEST = {"uk": "Ваш запит", "ru": "Ваш запрос", "en": "Your request"}


def _reply_subject(subject: str | None, language: str) -> str:
    if not subject:
        return _YOUR_REQUEST.get(language, _YOUR_REQUEST["en"])
    return subject if subject.lower().startswith("re:") else f"Re: {subject}"[:300]


def _count_as_contact(conn: Connection, app: Leadflow, lead_id: int, who: Principal, now: datetime) -> bool:
    """The reply is the manager's contact with the client (it stops the first-contact clock). A reply by someone who
    is no manager of the lead (an admin, a key) is sent, but is no one's contact."""
    if who.manager_id is None:
        return False
    try:
        with conn.begin_nested():
            record_contact_in(conn, app, lead_id, None, "message", "sent", now, "replied through the channel", who=who)
    except (Conflict, InvalidInput):
        return False
    return True
