"""Conversations with clients through the messaging channels: what a client writes joins their open lead, or makes
a new lead through the normal intake (cleaning, dedupe, junk rules, routing, the chat deadline).

What an adapter read is taken in one transaction per call (a webhook's whole body, a poll's batch), committed before
the service is answered: a crash after the answer loses nothing, a crash before it leaves nothing and the service
delivers again. Each item is a `channel_events` row keyed by the service's own id, so a repeat creates nothing.

As intake does, everything that needs no database (reading the lead, cleaning it, the intake's own preparation)
happens before the transaction (`prepare`), so the writer that serialises SQLite's writes only runs statements.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import bindparam, desc, select, update
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.exc import IntegrityError

from leadflow.core.cleaning import clean_lead
from leadflow.core.conversation import (
    DELIVERY_STATES,
    DeliveryStatus,
    Inbound,
    InboundMessage,
    Unreadable,
    moves_forward,
)
from leadflow.core.errors import InvalidInput, LeadflowError
from leadflow.core.lead import CleanLead, read_lead
from leadflow.core.policy import Action, Principal
from leadflow.core.text import scrub_json
from leadflow.services.access import guard_lead
from leadflow.services.call_contacts import call_contact_in
from leadflow.services.context import Leadflow
from leadflow.services.intake import TakeLead, prepare_lead
from leadflow.store.events import add_event, new_event
from leadflow.store.fast import Fast
from leadflow.store.messages import keep_early_status
from leadflow.store.tables import channel_events, leads, messages

PREVIEW = 200  # characters of a message quoted in its event
# The client's leads looked at to find the open one: more than a client ever has open at once.
RECENT_LEADS = 50
FILLABLE = ("name", "phone", "phone_type", "email", "company")  # what a message may fill in on the lead it joins


@dataclass(frozen=True, slots=True)
class Taken:
    """What one inbound item became."""

    # new_lead, joined (the client's open lead), repeat (delivered before), status (of a message sent), unreadable,
    # ignored (understood, and deliberately not taken: a reaction, a bot's event, a manager's own call)
    outcome: str
    lead_id: int | None = None
    message_id: int | None = None
    reason: str = ""

    @property
    def created(self) -> bool:
        return self.outcome in ("new_lead", "joined")


@dataclass(frozen=True, slots=True)
class Prepared:
    """An item made ready before the transaction: its dedupe key, its payload as stored, and for a message the
    client as cleaned and the intake that makes their lead (or why it cannot)."""

    item: Inbound
    event_id: str | None
    payload: dict[str, Any]
    clean: CleanLead | None = None
    intake: TakeLead | None = None
    refused: str | None = None  # the message cannot make a lead (intake refuses it): joins an open one, or is kept


def prepare(app: Leadflow, items: Sequence[Inbound], now: datetime) -> list[Prepared]:
    """Everything before the transaction: read and clean each message's lead, prepare its intake."""
    return [_prepare(app, item, now) for item in items]


def _prepare(app: Leadflow, item: Inbound, now: datetime) -> Prepared:
    payload, _ = scrub_json(dict(item.raw), cut=True)
    event_id = item.event_id[:200] if item.event_id is not None else None
    if event_id is None and isinstance(item, Unreadable):
        # The same unreadable body delivered again (the service retries it) is kept once.
        event_id = "body:" + hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()[:40]
    if not isinstance(item, InboundMessage):
        return Prepared(item, event_id, payload)
    lead_in, problems, lead_payload = read_lead(lead_fields(item))
    sender = (f"channel:{item.channel}", None, None)
    try:
        intake = prepare_lead(app, lead_in, now, raw=lead_payload, problems=problems, sender=sender)
    except InvalidInput as refused:
        clean = clean_lead(lead_in, app.rules.default_region, problems)
        return Prepared(item, event_id, payload, clean, refused=f"the message cannot make a lead: {refused}")
    return Prepared(item, event_id, payload, intake.clean, intake)


def lead_fields(item: InboundMessage) -> dict[str, Any]:
    """The lead a message makes when its client has no open lead: what the channel tells of the client."""
    fields: dict[str, Any] = {"channel": item.channel, "external_id": f"{item.kind}:{item.event_id}"[:200]}
    if item.sender and item.channel != "email":
        fields["messenger_id"] = item.sender
    if item.sender and item.channel == "email":
        fields["email"] = item.sender
    if item.name:
        fields["name"] = item.name
    if item.text:
        fields["message"] = item.text
    fields.update({k: v for k, v in item.lead.items() if v not in (None, "")})
    return fields


def take_inbound(app: Leadflow, items: Sequence[Inbound], now: datetime) -> list[Taken]:
    """Take what an adapter read, in one transaction committed before this returns."""
    ready = prepare(app, items, now)
    try:
        return app.transaction(lambda conn: take_prepared(conn, app, ready, now))
    except IntegrityError:
        # The same message delivered twice at once (PostgreSQL): the one that committed first stands.
        return app.transaction(lambda conn: take_prepared(conn, app, ready, now))


async def take_inbound_async(app: Leadflow, items: Sequence[Inbound], now: datetime) -> list[Taken]:
    """take_inbound() for the HTTP layer: prepared on the event loop, taken on the process's group writer."""
    ready = prepare(app, items, now)
    try:
        return await app.transaction_async(lambda conn: take_prepared(conn, app, ready, now))
    except IntegrityError:
        return await app.transaction_async(lambda conn: take_prepared(conn, app, ready, now))


def take_prepared(conn: Connection, app: Leadflow, ready: Sequence[Prepared], now: datetime) -> list[Taken]:
    """The transaction: each item in turn; one that the engine refuses is kept as unreadable, alone."""
    return [_take_or_keep(conn, app, one, now) for one in ready]


def _take_or_keep(conn: Connection, app: Leadflow, one: Prepared, now: datetime) -> Taken:
    if one.event_id is not None:
        seen = _SEEN.first(conn, {"channel": one.item.channel, "event": one.event_id})
        if seen is not None:
            return Taken("repeat", seen.lead_id, seen.message_id, "already received: nothing new")
    try:
        with conn.begin_nested():  # an item the engine refuses leaves nothing behind, and the others stand
            taken = _take(conn, app, one, now)
    except LeadflowError as refused:  # kept, with why the engine would not take it
        taken = Taken("unreadable", reason=f"not taken: {refused}"[:1000])
    _INSERT_EVENT.run(conn, {
        "channel": one.item.channel, "external_id": one.event_id, "outcome": taken.outcome,
        "reason": taken.reason[:2000] or None, "lead_id": taken.lead_id, "message_id": taken.message_id,
        "payload": one.payload, "received_at": now,
    })  # fmt: skip
    return taken


def _take(conn: Connection, app: Leadflow, one: Prepared, now: datetime) -> Taken:
    item = one.item
    if isinstance(item, InboundMessage):
        return _take_message(conn, app, one, item, now)
    if isinstance(item, DeliveryStatus):
        return _take_status(conn, item, now)
    ignored = item.reason.startswith("ignored")
    return Taken("ignored" if ignored else "unreadable", reason=item.reason)


_SEEN = Fast(
    select(channel_events.c.lead_id, channel_events.c.message_id).where(
        channel_events.c.channel == bindparam("channel"), channel_events.c.external_id == bindparam("event")
    )
)
_INSERT_EVENT = Fast(channel_events.insert())
_INSERT_MESSAGE = Fast(messages.insert().returning(messages.c.id))
_CLIENT_LEADS = select(leads.c.id, leads.c.status, leads.c.merged_into_id).order_by(
    desc(leads.c.created_at), desc(leads.c.id)
)
# One statement per identity rather than one OR: each uses its own index, as intake's look-ups do.
_BY_MESSENGER = Fast(
    _CLIENT_LEADS.where(leads.c.channel == bindparam("channel"), leads.c.messenger_id == bindparam("value"))
    .limit(RECENT_LEADS)
)  # fmt: skip
_BY_PHONE = Fast(_CLIENT_LEADS.where(leads.c.phone == bindparam("value")).limit(RECENT_LEADS))
_BY_EMAIL = Fast(_CLIENT_LEADS.where(leads.c.email == bindparam("value")).limit(RECENT_LEADS))
_ANSWERED = Fast(
    select(leads.c.id, leads.c.status, leads.c.merged_into_id)
    .join(messages, messages.c.lead_id == leads.c.id)
    .where(messages.c.channel == bindparam("channel"), messages.c.external_id == bindparam("value"))
    .order_by(desc(messages.c.id)).limit(5)
)  # fmt: skip


def _take_message(conn: Connection, app: Leadflow, one: Prepared, item: InboundMessage, now: datetime) -> Taken:
    clean = one.clean
    assert clean is not None
    # A reply names the message it answers (an e-mail's In-Reply-To): it joins that message's open lead, even when
    # the client answers from another address; otherwise the client is found by their address, phone or e-mail.
    found, earlier = _open_lead(conn, app, item, clean)
    if found is None and item.channel == "call" and item.meta.get("direction") == "outgoing":
        return Taken("ignored", reason="a manager's call to a number with no open lead: nothing to add it to")
    if found is not None:
        lead_id, outcome, reason = found, "joined", "the client's open lead"
        _fill_in(conn, lead_id, clean, now)
    elif one.intake is None:
        return Taken("unreadable", reason=one.refused or "the message cannot make a lead")
    else:
        intake = one.intake(conn)
        lead_id, reason = intake.lead_id, intake.reason
        outcome = "joined" if intake.merged else "new_lead"
        if intake.created and earlier is not None:
            _link_repeat_sale(conn, item, lead_id, earlier, now)
    direction = "out" if item.meta.get("direction") == "outgoing" else "in"  # a call a manager made
    message_id = _add_message(conn, lead_id, item, direction, now)
    add_event(conn, new_event(lead_id, "message.received", now, f"channel:{item.channel}", channel=item.channel,
                              message_id=message_id, kind=item.kind, text=(item.text or "")[:PREVIEW]))  # fmt: skip
    if item.channel == "call":  # one answered on, or made from, a manager's extension is that manager's contact
        reason = f"{reason}; {call_contact_in(conn, app, item, lead_id, outcome == 'new_lead', now)}"
    return Taken(outcome, lead_id, message_id, reason)


def _open_lead(conn: Connection, app: Leadflow, item: InboundMessage, clean: CleanLead) -> tuple[int | None, Any]:
    """The client's newest open lead: the one the message answers, else by their id in this channel, their phone
    or their e-mail (in that order of trust); and, when there is none, their newest lead in this channel."""
    tries: list[tuple[Fast, dict[str, Any]]] = []
    if item.reply_to:
        tries.append((_ANSWERED, {"channel": item.channel, "value": item.reply_to[:200]}))
    if clean.messenger_id:
        tries.append((_BY_MESSENGER, {"channel": item.channel, "value": clean.messenger_id}))
    if clean.phone:
        tries.append((_BY_PHONE, {"value": clean.phone}))
    if clean.email:
        tries.append((_BY_EMAIL, {"value": clean.email}))
    open_statuses = app.rules.open_statuses
    earlier = None
    for statement, params in tries:
        rows = statement.all(conn, params)
        for row in rows:
            if row.status in open_statuses and row.merged_into_id is None:
                return int(row.id), None
        if statement is _BY_MESSENGER:
            earlier = next((row for row in rows if row.merged_into_id is None), None)
    return None, earlier


def _fill_in(conn: Connection, lead_id: int, clean: CleanLead, now: datetime) -> None:
    """What the message tells of the client that the lead lacks (a phone shared in the chat): filled in."""
    offered = {name: getattr(clean, name) for name in FILLABLE if getattr(clean, name)}
    if not offered:
        return
    lead = conn.execute(select(*(leads.c[name] for name in FILLABLE)).where(leads.c.id == lead_id)).mappings().one()
    filled = {name: value for name, value in offered.items() if lead[name] is None}
    if filled:
        conn.execute(update(leads).where(leads.c.id == lead_id).values(updated_at=now, **filled))


def _link_repeat_sale(conn: Connection, item: InboundMessage, lead_id: int, earlier: Any, now: datetime) -> None:
    """A returning client known only in the channel: their new lead is linked to their last one there (intake links
    by phone, e-mail and contact; a chat id is the channel's own), unless intake linked it already."""
    reason = f"the same {item.channel} client as lead #{earlier.id} ({earlier.status}): a repeat request"
    linked = _LINK.run(conn, {"lead": lead_id, "of": earlier.id, "why": reason})
    if linked.rowcount:
        add_event(conn, new_event(lead_id, "lead.duplicate", now, f"channel:{item.channel}", reason=reason,
                                  of=earlier.id))  # fmt: skip


_LINK = Fast(
    update(leads)
    .where(leads.c.id == bindparam("lead"), leads.c.duplicate_of_id.is_(None), leads.c.contact_id.is_(None))
    .values(duplicate_of_id=bindparam("of"), duplicate_reason=bindparam("why"))
)


def _add_message(conn: Connection, lead_id: int, item: InboundMessage, direction: str, now: datetime) -> int:
    meta, _ = scrub_json(dict(item.meta), cut=True)
    if item.reply_to:
        meta["reply_to"] = item.reply_to
    if item.at is not None:
        meta["sent_at"] = item.at.isoformat()
    subject = meta.pop("subject", None)
    return int(_INSERT_MESSAGE.scalar(conn, {
        "lead_id": lead_id, "channel": item.channel, "direction": direction,
        "address": (item.sender or "")[:254] or None, "external_id": item.event_id[:200],
        "thread": item.thread[:300] if item.thread else None, "kind": item.kind,
        "subject": subject[:300] if isinstance(subject, str) else None, "body": item.text, "meta": meta,
        "status": "received", "error": None, "manager_id": None, "actor": None, "outbox_id": None,
        "created_at": now, "updated_at": now,
    }))  # fmt: skip


def _take_status(conn: Connection, item: DeliveryStatus, now: datetime) -> Taken:
    if item.state not in DELIVERY_STATES:
        return Taken("unreadable", reason=f"unknown delivery state '{item.state}'")
    found = conn.execute(
        select(messages.c.id, messages.c.lead_id, messages.c.status).where(
            messages.c.channel == item.channel, messages.c.external_id == item.message_external_id[:200],
            messages.c.direction == "out",
        )
    ).first()  # fmt: skip
    if found is None:
        # The service may answer before the worker has recorded the id it gave the reply: kept for that moment.
        keep_early_status(conn, item.channel, item.message_external_id, item.state, item.error, now)
        return Taken("status", reason=f"no message sent by leadflow has the id '{item.message_external_id}' yet")
    if moves_forward(found.status, item.state):
        conn.execute(update(messages).where(messages.c.id == found.id)
                     .values(status=item.state, error=item.error, updated_at=now))  # fmt: skip
    return Taken("status", found.lead_id, found.id, f"message {found.id}: {item.state}")


# -- Reading ------------------------------------------------------------------------------------------------------


def thread_of(app: Leadflow, lead_id: int, *, who: Principal, limit: int = 200) -> list[dict[str, Any]]:
    """A lead's conversation, oldest first: what the client wrote and what was answered, with each reply's state."""
    with app.engine.connect() as conn:
        guard_lead(conn, who, lead_id, Action.LEAD_READ)
        rows = conn.execute(
            select(messages).where(messages.c.lead_id == lead_id)
            .order_by(messages.c.created_at.desc(), messages.c.id.desc()).limit(limit)
        ).mappings().all()  # fmt: skip
    return [_shown(row) for row in reversed(rows)]


def _shown(row: RowMapping) -> dict[str, Any]:
    return {"id": row["id"], "channel": row["channel"], "direction": row["direction"], "kind": row["kind"],
            "address": row["address"], "subject": row["subject"], "text": row["body"], "status": row["status"],
            "error": row["error"], "meta": row["meta"], "at": row["created_at"],
            "updated_at": row["updated_at"]}  # fmt: skip
