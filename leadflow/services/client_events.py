"""What the client did, as other systems (or leadflow's own tracked e-mail) report it: opened an e-mail, clicked a
link, visited a page, sent the form again, booked a meeting, viewed the offer.

Each report is a `client_events` row keyed by the reporter's event id, so a repeat writes nothing and gets the first
answer. It joins the client's open lead (the lead named, else the newest open lead of the phone, e-mail or
messenger id), where it becomes the lead event `client.<type>` in the same transaction, for the automations to act
on; a report no open lead matches is kept as "unmatched" with the reason, never refused and never lost.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import ValidationError
from sqlalchemy import bindparam, desc, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from leadflow.core.automation import CLIENT_EVENT_TYPES
from leadflow.core.cleaning import clean_lead
from leadflow.core.errors import FieldProblem, Forbidden, InvalidInput, NotFound
from leadflow.core.lead import LeadIn
from leadflow.core.policy import Action, Principal
from leadflow.core.text import scrub_json
from leadflow.services.access import guard_lead
from leadflow.services.context import Leadflow
from leadflow.store.events import add_event, new_event
from leadflow.store.fast import Fast
from leadflow.store.tables import client_events, leads, messages

# Event ids leadflow gives what it sees itself (its tracked e-mail): a reporter's id may not take one of them.
TRACKED_PREFIXES = ("open:", "click:")
# leadflow's own tracking, as the events it records name it.
TRACKING = Principal("system", "email-tracking")
RECENT_LEADS = 50  # the client's leads looked at to find the open one: more than a client ever has open at once
MAX_ID = 200
_TOLD = ("url", "page", "details", "message_id", "link")  # what the lead event repeats of what was reported


@dataclass(frozen=True, slots=True)
class ClientEvent:
    """One thing the client did, as reported: `external_id` is the reporter's own id for it (a repeat of it is the
    same event); the client is found by `lead_id`, else `phone`, `email` or `messenger_id`."""

    external_id: str
    type: str
    at: datetime | None = None  # when the client did it; None: now
    lead_id: int | None = None
    phone: str | None = None
    email: str | None = None
    messenger_id: str | None = None
    url: str | None = None
    page: str | None = None
    details: dict[str, Any] = field(default_factory=dict)  # the reporter's extra fields (an offer's id, ...)


@dataclass(frozen=True, slots=True)
class _Ready:
    """A report checked and its client's addresses cleaned, before the transaction."""

    event: ClientEvent
    at: datetime
    phone: str | None
    email: str | None
    messenger_id: str | None
    problems: tuple[FieldProblem, ...]  # an address that could not be read: said in an unmatched event's reason
    data: dict[str, Any]  # the client_events row's data


def take_client_event(app: Leadflow, event: ClientEvent, now: datetime, *, who: Principal) -> dict[str, Any]:
    """Keep what the client did, on their open lead when one matches, committed before this returns:
    {id, outcome ("attached" or "unmatched"), lead_id, reason, repeat}. InvalidInput only for a report that
    cannot be an event at all (no id, an unknown type, nothing to find the client by)."""
    work = _work(app, _prepare(app, event, now), now, who)
    try:
        return app.transaction(work)
    except IntegrityError:  # the same id taken at this moment by another process (PostgreSQL): the first stands
        return app.transaction(work)


async def take_client_event_async(
    app: Leadflow, event: ClientEvent, now: datetime, *, who: Principal
) -> dict[str, Any]:
    """take_client_event() for the HTTP layer: checked on the event loop, kept on the process's group writer."""
    work = _work(app, _prepare(app, event, now), now, who)
    try:
        return await app.transaction_async(work)
    except IntegrityError:
        return await app.transaction_async(work)


def _prepare(app: Leadflow, event: ClientEvent, now: datetime) -> _Ready:
    problems = []
    if not event.external_id.strip() or len(event.external_id) > MAX_ID:
        problems.append(FieldProblem("id", f"give the event's own id, 1 to {MAX_ID} characters"))
    elif event.external_id.startswith(TRACKED_PREFIXES):
        problems.append(FieldProblem("id", "ids starting with 'open:' or 'click:' are leadflow's own tracking's"))
    if event.type not in CLIENT_EVENT_TYPES:
        problems.append(FieldProblem("type", f"'{event.type}' is not one of {', '.join(CLIENT_EVENT_TYPES)}"))
    if event.lead_id is None and not (event.phone or event.email or event.messenger_id):
        problems.append(FieldProblem("client", "say whose event it is: lead_id, phone, email or messenger_id"))
    if problems:
        raise InvalidInput(problems)
    # The same cleaning intake gives a lead, so "067 123 45 67" finds the lead stored as +380671234567.
    try:
        given = LeadIn(phone=event.phone, email=event.email, messenger_id=event.messenger_id)
    except ValidationError as exc:
        raise InvalidInput([FieldProblem(str(e["loc"][0]), e["msg"]) for e in exc.errors()]) from None
    clean = clean_lead(given, app.rules.default_region)
    reported = {"phone": event.phone, "email": event.email, "messenger_id": event.messenger_id, "url": event.url,
                "page": event.page}  # fmt: skip
    data, _ = scrub_json({**{k: v for k, v in reported.items() if v is not None},
                          **({"details": event.details} if event.details else {})}, cut=True)  # fmt: skip
    return _Ready(event, event.at or now, clean.phone, clean.email, clean.messenger_id, clean.problems, data)


def _work(app: Leadflow, ready: _Ready, now: datetime, who: Principal) -> Callable[[Connection], dict[str, Any]]:
    def work(conn: Connection) -> dict[str, Any]:
        seen = _first_answer(conn, ready.event.external_id)
        if seen is not None:
            return seen
        lead_id, reason = _find_lead(conn, app, ready, who)
        return _keep(conn, ready, lead_id, reason, now, who)

    return work


def _first_answer(conn: Connection, external_id: str) -> dict[str, Any] | None:
    row = _SEEN.first(conn, {"external_id": external_id})
    if row is None:
        return None
    return {"id": row.id, "outcome": row.outcome, "lead_id": row.lead_id, "reason": row.reason, "repeat": True}


def _keep(
    conn: Connection, ready: _Ready, lead_id: int | None, reason: str, now: datetime, who: Principal | str
) -> dict[str, Any]:  # fmt: skip
    event = ready.event
    actor = who.label if isinstance(who, Principal) else who
    outcome = "attached" if lead_id is not None else "unmatched"
    row_id = int(_INSERT.scalar(conn, {
        "external_id": event.external_id, "type": event.type, "lead_id": lead_id, "outcome": outcome,
        "reason": reason, "data": ready.data, "at": ready.at, "received_at": now, "actor": actor,
    }))  # fmt: skip
    if lead_id is not None:
        given = {name: ready.data[name] for name in _TOLD if name in ready.data}
        row = new_event(lead_id, f"client.{event.type}", now, who, event_id=event.external_id,
                        client_event_id=row_id, source=actor, reason=reason, **given)  # fmt: skip
        row["data"]["at"] = ready.at.isoformat()  # when the client did it; the event's own time is when it was known
        add_event(conn, row)
    return {"id": row_id, "outcome": outcome, "lead_id": lead_id, "reason": reason, "repeat": False}


# -- Finding the lead -----------------------------------------------------------------------------------------------

_SEEN = Fast(
    select(client_events.c.id, client_events.c.outcome, client_events.c.lead_id, client_events.c.reason).where(
        client_events.c.external_id == bindparam("external_id")
    )
)
_INSERT = Fast(client_events.insert().returning(client_events.c.id))
_LEAD = Fast(select(leads.c.id, leads.c.status, leads.c.merged_into_id).where(leads.c.id == bindparam("id")))
_CLIENT_LEADS = select(leads.c.id, leads.c.status, leads.c.merged_into_id).order_by(
    desc(leads.c.created_at), desc(leads.c.id)
)
# One statement per address rather than one OR: each uses its own index, as intake's look-ups do.
_BY_PHONE = Fast(_CLIENT_LEADS.where(leads.c.phone == bindparam("value")).limit(RECENT_LEADS))
_BY_EMAIL = Fast(_CLIENT_LEADS.where(leads.c.email == bindparam("value")).limit(RECENT_LEADS))
_BY_MESSENGER = Fast(_CLIENT_LEADS.where(leads.c.messenger_id == bindparam("value")).limit(RECENT_LEADS))


def _find_lead(conn: Connection, app: Leadflow, ready: _Ready, who: Principal) -> tuple[int | None, str]:
    """The lead the event joins, with why; or None with why none does."""
    if ready.event.lead_id is not None:
        return _named_lead(conn, app, ready.event.lead_id, who)
    tries = [(statement, value) for statement, value in
             ((_BY_PHONE, ready.phone), (_BY_EMAIL, ready.email), (_BY_MESSENGER, ready.messenger_id)) if value]  # fmt: skip
    looked = " or ".join(value for _, value in tries)
    unreadable = "; ".join(p.reason for p in ready.problems)
    if not tries:
        return None, f"no client with this phone or e-mail: {unreadable}"
    closed = 0
    for statement, value in tries:
        rows = statement.all(conn, {"value": value})
        for row in rows:
            if row.status in app.rules.open_statuses and row.merged_into_id is None:
                refused = _refused(conn, who, row.id)
                if refused:
                    return None, f"no open lead for {looked} that {who.label} may add to"
                return int(row.id), f"the client's open lead, found by {value}"
        closed += len(rows)
    also = f" ({unreadable})" if unreadable else ""
    if closed:
        return None, f"no open lead for {looked}: the client's leads are closed{also}"
    return None, f"no client with this phone or e-mail: {looked}{also}"


def _named_lead(conn: Connection, app: Leadflow, lead_id: int, who: Principal) -> tuple[int | None, str]:
    """The lead the reporter named. A closed one still takes the event: it is the lead the client acted on, and a
    client who comes back to an old offer is news for its owner (the automations decide what to do with it)."""
    refused = _refused(conn, who, lead_id)
    row = _LEAD.first(conn, {"id": lead_id})
    if refused or row is None:
        return None, refused or f"lead {lead_id} does not exist"
    if row.merged_into_id is not None:  # a repeat request folded into the client's open lead: that one is theirs
        return int(row.merged_into_id), f"lead {lead_id} was folded into lead {row.merged_into_id}"
    if row.status not in app.rules.open_statuses:
        return lead_id, f"the lead named ({row.status}, closed)"
    return lead_id, "the lead named"


def _refused(conn: Connection, who: Principal, lead_id: int) -> str | None:
    """Why `who` may not add to this lead (it does not exist for them, or they may only read it); None: they may."""
    try:
        guard_lead(conn, who, lead_id, Action.LEAD_CREATE)
    except (NotFound, Forbidden) as refused:
        return str(refused)
    return None


# -- leadflow's own tracking -----------------------------------------------------------------------------------------


def take_tracked(
    app: Leadflow, kind: Literal["email_opened", "link_clicked"], message_id: int, link_index: int | None,
    now: datetime,
) -> str | None:  # fmt: skip
    """An e-mail reply opened (its pixel loaded) or one of its links clicked, as its token said: the first open of a
    message and the first click of each link are kept, on the lead the message was sent from, open or closed (the
    message names the lead; a client reading an old offer again is what a trigger wants to know). Returns the
    address a click goes to; None when the message or link is not one leadflow tracked (or for an open)."""
    with app.engine.connect() as conn:
        message = conn.execute(
            select(messages.c.lead_id, messages.c.meta, messages.c.channel, messages.c.direction)
            .where(messages.c.id == message_id)
        ).first()  # fmt: skip
        links = (message.meta or {}).get("links") if message is not None else None
        if message is None or message.channel != "email" or message.direction != "out" or not isinstance(links, list):
            return None
        url = None
        if kind == "link_clicked":
            if link_index is None or not 0 <= link_index < len(links) or not isinstance(links[link_index], str):
                return None
            url = links[link_index]
            external_id = f"click:m{message_id}:l{link_index}"
        else:
            external_id = f"open:m{message_id}"
        # Turned off, the links sent before still lead where they did; nothing more is recorded.
        if not app.channels.email_tracking or _SEEN.first(conn, {"external_id": external_id}) is not None:
            return url
    event = ClientEvent(external_id, kind, now)
    data = {"message_id": message_id, **({"url": url, "link": link_index} if url is not None else {})}
    ready = _Ready(event, now, None, None, None, (), data)

    def work(conn: Connection) -> dict[str, Any]:
        seen = _first_answer(conn, external_id)
        if seen is not None:
            return seen
        lead_id, reason = _message_lead(conn, app, message.lead_id, message_id)
        return _keep(conn, ready, lead_id, reason, now, TRACKING)

    try:
        app.transaction(work)
    except IntegrityError:  # the same open or click recorded at this moment by another process
        app.transaction(work)
    return url


def _message_lead(conn: Connection, app: Leadflow, lead_id: int, message_id: int) -> tuple[int, str]:
    row = _LEAD.first(conn, {"id": lead_id})
    if row is not None and row.merged_into_id is not None:
        return int(row.merged_into_id), f"the lead e-mail {message_id} was sent from was folded into this one"
    closed = "" if row is None or row.status in app.rules.open_statuses else f" ({row.status}, closed)"
    return lead_id, f"the lead e-mail {message_id} was sent from{closed}"
