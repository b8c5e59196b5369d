"""Conversations with clients through the messaging channels: what they write joins their open lead (or opens one
through the normal intake), what managers answer goes back through the channel the client used.

Everything an adapter read is taken in one transaction per call (a webhook's whole body), committed before the
service is answered: a crash after the answer loses nothing, a crash before it leaves nothing and the service
delivers again. Each item is a `channel_events` row keyed by the service's own id, so a repeat creates nothing.

A reply is a `messages` row and an outbox row written together, with the contact it counts as: the manager's
reply stops the lead's first-contact clock (the chat SLA of `sla.channels`) like a call that got through. The
outbox delivers it, retries it and dead-letters it as it does notifications; the service's id for the sent
message comes back and is kept, so the service's later word on it (delivered, read) finds it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.exc import IntegrityError

from leadflow.channels.inbound.calls import CallContact, call_contact
from leadflow.channels.inbound.ports import PollerServices
from leadflow.channels.inbound.registry import reply_problem
from leadflow.channels.redact import redact
from leadflow.core.cleaning import clean_lead
from leadflow.core.conversation import (
    DELIVERY_STATES,
    REPLY_CHANNELS,
    DeliveryStatus,
    Inbound,
    InboundMessage,
    Refusal,
)
from leadflow.core.errors import Conflict, InvalidInput, NotFound
from leadflow.core.lead import read_lead
from leadflow.core.policy import Action, Principal
from leadflow.core.text import scrub_json
from leadflow.services.access import guard_lead
from leadflow.services.context import Leadflow
from leadflow.services.desk import by_hand, manager_by_key
from leadflow.services.intake import assign_existing, prepare_lead
from leadflow.services.sla import record_contact_in
from leadflow.store.events import add_event, new_event
from leadflow.store.lead_rows import lead_row_to_clean, lock_lead
from leadflow.store.outbox import enqueue
from leadflow.store.tables import channel_events, channel_refusals, channel_state, leads, messages, outbox, timers
from leadflow.store.team_state import add_load

# WhatsApp lets a business write freely only within 24 hours of the client's last message.
WHATSAPP_WINDOW = timedelta(hours=24)
PREVIEW = 200  # characters of a message quoted in its event


@dataclass(frozen=True, slots=True)
class Taken:
    """What one inbound item became."""

    # new_lead, joined (the client's open lead), repeat (delivered before), status, unreadable, ignored (a manager's
    # call to a number with no open lead)
    outcome: str
    lead_id: int | None = None
    message_id: int | None = None
    reason: str = ""

    @property
    def created(self) -> bool:
        return self.outcome in ("new_lead", "joined")


def take_inbound(app: Leadflow, items: Sequence[Inbound], now: datetime) -> list[Taken]:
    """Take what an adapter read, in one transaction committed before this returns."""
    try:
        return app.transaction(lambda conn: [_take(conn, app, item, now) for item in items])
    except IntegrityError:
        # The same message delivered twice at once (PostgreSQL): the one that committed first stands.
        return app.transaction(lambda conn: [_take(conn, app, item, now) for item in items])


async def take_inbound_async(app: Leadflow, items: Sequence[Inbound], now: datetime) -> list[Taken]:
    """take_inbound() for the HTTP layer: on the process's group writer (or a thread of the pool)."""
    try:
        return await app.transaction_async(lambda conn: [_take(conn, app, item, now) for item in items])
    except IntegrityError:
        return await app.transaction_async(lambda conn: [_take(conn, app, item, now) for item in items])


def _take(conn: Connection, app: Leadflow, item: Inbound, now: datetime) -> Taken:
    if item.event_id is not None:
        seen = conn.execute(
            select(channel_events.c.lead_id, channel_events.c.message_id).where(
                channel_events.c.channel == item.channel, channel_events.c.external_id == item.event_id
            )
        ).first()
        if seen is not None:
            return Taken("repeat", seen.lead_id, seen.message_id, "already received: nothing new")
    if isinstance(item, InboundMessage):
        taken = _take_message(conn, app, item, now)
    elif isinstance(item, DeliveryStatus):
        taken = _take_status(conn, item, now)
    else:
        taken = Taken("unreadable", reason=item.reason)
    _record(conn, item, taken, now)
    return taken


def _record(conn: Connection, item: Inbound, taken: Taken, now: datetime) -> None:
    payload, _ = scrub_json(dict(item.raw), cut=True)
    conn.execute(channel_events.insert().values(
        channel=item.channel, external_id=item.event_id, outcome=taken.outcome, reason=taken.reason or None,
        lead_id=taken.lead_id, message_id=taken.message_id, payload=payload, received_at=now,
    ))  # fmt: skip


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


def _take_message(conn: Connection, app: Leadflow, item: InboundMessage, now: datetime) -> Taken:
    data = lead_fields(item)
    lead_in, problems, payload = read_lead(data)
    clean = clean_lead(lead_in, app.rules.default_region, problems)
    # A reply names the message it answers (an e-mail's In-Reply-To): it joins that message's open lead, even when
    # the client answers from another address; otherwise the client is found by their address, phone or e-mail.
    open_lead = _lead_answered(conn, app, item) or _open_lead_of(
        conn, app, item.channel, clean.messenger_id, clean.phone, clean.email
    )
    # Calls: a manager's call to a number with no open lead is no client's request, and makes no lead.
    if open_lead is None and item.channel == "call" and item.meta.get("direction") == "outgoing":
        return Taken("ignored", reason="a manager's call to a number with no open lead: nothing to add it to")
    if open_lead is not None:
        lead_id, outcome, reason = open_lead, "joined", "the client's open lead"
    else:
        work = prepare_lead(app, lead_in, now, raw=payload, problems=problems, sender=(f"channel:{item.channel}",
                                                                                        None, None))  # fmt: skip
        intake = work(conn)
        lead_id = intake.lead_id
        outcome = "joined" if intake.merged else "new_lead"
        reason = intake.reason
    message_id = _add_message(conn, lead_id, item, now)
    text = (item.text or "")[:PREVIEW]
    add_event(conn, new_event(lead_id, "message.received", now, f"channel:{item.channel}", channel=item.channel,
                              message_id=message_id, kind=item.kind, text=text))  # fmt: skip
    # Calls: one answered on, or made from, a manager's extension is that manager's contact with the client.
    if item.channel == "call":
        reason = f"{reason}; {_call_contact(conn, app, item, lead_id, outcome == 'new_lead', now)}"
    return Taken(outcome, lead_id, message_id, reason)


def _open_lead_of(
    conn: Connection, app: Leadflow, channel: str, messenger_id: str | None, phone: str | None, email: str | None
) -> int | None:
    """The client's newest open lead: by their id in this channel, their phone or their e-mail."""
    same = []
    if messenger_id:
        same.append(and_(leads.c.channel == channel, leads.c.messenger_id == messenger_id))
    if phone:
        same.append(leads.c.phone == phone)
    if email:
        same.append(leads.c.email == email)
    if not same:
        return None
    found = conn.execute(
        select(leads.c.id).where(or_(*same), leads.c.status.in_(sorted(app.rules.open_statuses)),
                                 leads.c.merged_into_id.is_(None))
        .order_by(leads.c.created_at.desc(), leads.c.id.desc()).limit(1)
    ).scalar()  # fmt: skip
    return int(found) if found is not None else None


def _lead_answered(conn: Connection, app: Leadflow, item: InboundMessage) -> int | None:
    """The open lead of the message this one answers (a reply leadflow sent, or the client's earlier message), found
    by that message's id in the channel."""
    if not item.reply_to:
        return None
    found = conn.execute(
        select(messages.c.lead_id).join(leads, leads.c.id == messages.c.lead_id)
        .where(messages.c.channel == item.channel, messages.c.external_id == item.reply_to[:200],
               leads.c.status.in_(sorted(app.rules.open_statuses)), leads.c.merged_into_id.is_(None))
        .order_by(messages.c.id.desc()).limit(1)
    ).scalar()  # fmt: skip
    return int(found) if found is not None else None


def _add_message(conn: Connection, lead_id: int, item: InboundMessage, now: datetime) -> int:
    meta, _ = scrub_json(dict(item.meta), cut=True)
    if item.reply_to:
        meta["reply_to"] = item.reply_to
    if item.at is not None:
        meta["sent_at"] = item.at.isoformat()
    subject = meta.pop("subject", None)
    direction = "out" if item.meta.get("direction") == "outgoing" else "in"  # a call a manager made
    row = conn.execute(messages.insert().returning(messages.c.id).values(
        lead_id=lead_id, channel=item.channel, direction=direction, address=(item.sender or "")[:254] or None,
        external_id=item.event_id[:200], thread=(item.thread or None) and item.thread[:300], kind=item.kind,
        subject=subject[:300] if isinstance(subject, str) else None, body=item.text, meta=meta, status="received",
        created_at=now, updated_at=now,
    ))  # fmt: skip
    return int(row.scalar_one())


# -- Calls: the manager's contact a call was ------------------------------------------------------------------------

CALLS = Principal("system", "calls")


def _call_contact(conn: Connection, app: Leadflow, item: InboundMessage, lead_id: int, new: bool, now: datetime) -> str:
    """Record the contact a call was (channels/inbound/calls.py says whose, from the managers' `extension:`), and
    say what became of it. A call that made a new lead was answered by a manager who has now spoken to the client:
    the lead is theirs, whoever routing chose, and already contacted."""
    contact, why = call_contact(item, app.rules.managers)
    if contact is None:
        return why
    try:
        with conn.begin_nested():
            if new:
                _give_to_answerer(conn, app, lead_id, contact, now)
            record_contact_in(conn, app, lead_id, contact.manager_key, "call", contact.outcome, now, contact.note,
                              who=CALLS)  # fmt: skip
    except (Conflict, InvalidInput, NotFound) as refused:
        return f"kept on the thread, not counted as {contact.manager_key}'s contact: {refused}"
    return f"{contact.manager_key}'s contact: call, {contact.outcome}"


def _give_to_answerer(conn: Connection, app: Leadflow, lead_id: int, contact: CallContact, now: datetime) -> None:
    row = lock_lead(conn, lead_id)
    if row["status"] not in app.rules.open_statuses or row["queue"] is not None:
        return  # junk, or waiting for the quality desk, which decides
    target = manager_by_key(conn, app, contact.manager_key, "extension")
    if row["manager_id"] == target.id:
        return
    if row["manager_id"] is not None:
        add_load(conn, row["manager_id"], -1, row["budget"])
    conn.execute(delete(timers).where(timers.c.lead_id == lead_id))  # the routed owner's clock
    decision = by_hand(target, lead_row_to_clean(row), now, f"{contact.note}: the client has spoken to {target.name}")
    assign_existing(conn, app, row, now, kind="manual", decision=decision)


def _take_status(conn: Connection, item: DeliveryStatus, now: datetime) -> Taken:
    if item.state not in DELIVERY_STATES:
        return Taken("unreadable", reason=f"unknown delivery state '{item.state}'")
    found = conn.execute(
        select(messages.c.id, messages.c.lead_id, messages.c.status).where(
            messages.c.channel == item.channel, messages.c.external_id == item.message_external_id,
            messages.c.direction == "out",
        )
    ).first()  # fmt: skip
    if found is None:
        return Taken("status", reason=f"no message sent by leadflow has the id '{item.message_external_id}'")
    # States only move forward (a late "delivered" never undoes "read"); a failure is recorded whenever it comes.
    order = DELIVERY_STATES.index
    if item.state == "failed" or order(item.state) > order(
        found.status if found.status in DELIVERY_STATES else "queued"
    ):
        conn.execute(update(messages).where(messages.c.id == found.id)
                     .values(status=item.state, error=item.error, updated_at=now))  # fmt: skip
    return Taken("status", found.lead_id, found.id, f"message {found.id}: {item.state}")


# -- Refused calls and the adapters' state ------------------------------------------------------------------------


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
    save_state(app, channel, "last_error", f"{now.isoformat()} {redact(error, app.channels.secrets())}"[:2000], now)


def poller_services(app: Leadflow, clock: Callable[[], datetime]) -> PollerServices:
    """What the channels' pollers need from leadflow, bound to this app and clock (the worker hands it to them)."""
    return PollerServices(
        take=lambda items: take_inbound(app, items, clock()),
        load_state=lambda channel, key: read_state(app, channel, key),
        save_state=lambda channel, key, value: save_state(app, channel, key, value, clock()),
        note_error=lambda channel, error: note_error(app, channel, error, clock()),
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


# -- Replies ------------------------------------------------------------------------------------------------------


def send_reply(
    app: Leadflow, lead_id: int, text: str, now: datetime, *, who: Principal, channel: str | None = None,
    subject: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Queue a manager's answer to the client through the channel they wrote from (or `channel`); it counts as the
    manager's contact with the client. Refused, with nothing written, when the channel cannot carry it now."""
    text = (text or "").strip()
    if not text:
        raise InvalidInput.one("text", "write the message to send")
    if len(text) > 4096:
        raise InvalidInput.one("text", f"a message is at most 4096 characters, this one has {len(text)}")
    if channel is not None and channel not in REPLY_CHANNELS:
        raise InvalidInput.one("channel", f"'{channel}' cannot carry a reply: use one of {', '.join(REPLY_CHANNELS)}")
    with app.engine.begin() as conn:
        guard_lead(conn, who, lead_id, Action.LEAD_WORK)
        lead = conn.execute(select(leads).where(leads.c.id == lead_id)).mappings().first()
        if lead is None:
            raise NotFound(f"lead {lead_id} does not exist")
        via, address, last = _reply_route(conn, lead, channel)
        _check_channel(app, via, last, now)
        in_reply_to = last.thread if last is not None and via == "email" else None
        if via == "email" and subject is None:
            subject = _reply_subject(last.subject if last is not None else None)
        manager_id = who.manager_id if who.manager_id is not None else lead["manager_id"]
        message_id = conn.execute(messages.insert().returning(messages.c.id).values(
            lead_id=lead_id, channel=via, direction="out", address=address, kind="reply", subject=subject,
            body=text, meta={"in_reply_to": in_reply_to} if in_reply_to else {}, status="queued",
            manager_id=manager_id, actor=who.label, created_at=now, updated_at=now,
        )).scalar_one()  # fmt: skip
        event_id = add_event(conn, new_event(lead_id, "message.sent", now, who, channel=via, message_id=message_id,
                                             text=text[:PREVIEW]))  # fmt: skip
        enqueue(conn, [{"channel": "reply", "recipient": f"{via}:{address}", "subject": subject, "body": text,
                        "event_id": event_id, "created_at": now,
                        "payload": {"message_id": message_id, "lead_id": lead_id, "channel": via, "address": address,
                                    "in_reply_to": in_reply_to}}])  # fmt: skip
        queued = conn.execute(select(func.max(outbox.c.id)).where(outbox.c.event_id == event_id)).scalar()
        conn.execute(update(messages).where(messages.c.id == message_id).values(outbox_id=queued))
        contact = _count_as_contact(conn, app, lead_id, who, now)
    return {"id": message_id, "lead_id": lead_id, "channel": via, "address": address, "status": "queued",
            "contact": contact}  # fmt: skip


def _reply_route(conn: Connection, lead: RowMapping, channel: str | None) -> tuple[str, str, Any]:
    """The channel and address a reply goes to, and the client's last message there (None: they never wrote)."""
    query = select(messages).where(messages.c.lead_id == lead["id"], messages.c.direction == "in",
                                   messages.c.address.is_not(None))  # fmt: skip
    if channel is not None:
        query = query.where(messages.c.channel == channel)
    last = conn.execute(query.order_by(messages.c.created_at.desc(), messages.c.id.desc()).limit(1)).first()
    if last is not None and last.channel in REPLY_CHANNELS:
        return last.channel, last.address, last
    via = channel or (lead["channel"] if lead["channel"] in REPLY_CHANNELS else "email" if lead["email"] else None)
    if via == "email" and lead["email"]:
        return "email", lead["email"], None
    if via is not None and via == lead["channel"] and lead["messenger_id"]:
        return via, lead["messenger_id"], None
    asked = f"through {channel}" if channel else "through a channel leadflow can answer in"
    raise Conflict(f"the client of lead {lead['id']} has not written {asked}: call them, or write to their e-mail")


def _check_channel(app: Leadflow, via: str, last: Any, now: datetime) -> None:
    problem = reply_problem(app.channels, app.notify, via)
    if problem:
        raise Conflict(problem)
    if via == "whatsapp" and (last is None or now - last.created_at > WHATSAPP_WINDOW):
        when = f"last wrote at {last.created_at:%Y-%m-%d %H:%M} UTC" if last is not None else "has not written"
        raise Conflict(f"outside WhatsApp's 24-hour customer-service window: the client {when}; WhatsApp takes only "
                       "approved template messages then, so call the client or wait for them to write")  # fmt: skip


def _reply_subject(subject: str | None) -> str:
    if not subject:
        return "Re: your request"
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
            select(channel_state.c.channel, channel_state.c.value).where(channel_state.c.key == "last_error"))}  # fmt: skip
    names = [*enabled, *sorted((set(last) | set(refused) | set(errors)) - set(enabled))]
    return [{"channel": name, "configured": enabled.get(name, False),
             "last_event_at": last[name].at if name in last else None,
             "events": last[name].events if name in last else 0, "outcomes": outcomes.get(name, {}),
             "refused": refused.get(name, {}), "last_error": errors.get(name)} for name in names]  # fmt: skip
