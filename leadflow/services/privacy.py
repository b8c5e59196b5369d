"""A client's personal data: erase it on request, or export everything held about them (GDPR; Ukraine's law on
personal data protection).

A client is a person, found the way dedupe finds one: a contact and every lead linked to it, and every lead or
contact sharing a normalised phone, e-mail or messenger id with them, or folded into or marked a duplicate of one
of their leads, followed until nothing new turns up. Two people who share one phone are one client here, exactly as
intake treats them.

Erasure keeps every row and what reports count (ids, statuses, channels, products, regions, amounts, scores,
timestamps, UTM campaign codes), and removes what identifies the person: their fields become NULL, free text they
wrote or that was written about them becomes "[erased]", and the sentences the system wrote (why a lead went where)
keep their words with the client's values cut out. The event log is append-only except here: the law comes first.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import phonenumbers
from sqlalchemy import ColumnElement, Table, and_, delete, false, or_, select, update
from sqlalchemy.engine import Connection, RowMapping

from leadflow.core.errors import Conflict
from leadflow.store.events import Actor, append_events, new_event
from leadflow.store.lead_rows import identity_keys, lock_client
from leadflow.store.outbox import ERASED_CANCEL
from leadflow.store.tables import (
    activities,
    assignments,
    backlog_changes,
    channel_events,
    client_events,
    companies,
    contacts,
    deals,
    events,
    lead_stages,
    leads,
    outbox,
    tasks,
)
from leadflow.store.tables import messages as conversation
from leadflow.store.tables import timers as timers_table

__all__ = [
    "CANCELLED",
    "ERASED",
    "ERASED_EVENT",
    "MAX_LEADS",
    "Client",
    "client_of_contact",
    "client_of_lead",
    "erase_client",
    "export_client",
]

ERASED = "[erased]"
# A shared office phone can tie hundreds of people together: past this many leads a person decides, not a query.
MAX_LEADS = 1000
ERASED_EVENT = "client.erased"
CANCELLED = ERASED_CANCEL

# What a lead's request may keep once erased: how it came and what it asked for, nothing about who asked.
_KEPT_RAW = frozenset({
    "channel", "source", "external_id", "product", "region", "language", "budget",
    "utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content",
})  # fmt: skip
# Keys of stored JSON whose values are free text by or about the client: replaced whole, not searched.
_FREE_TEXT = frozenset({"message", "note", "title", "text", "subject", "body"})
# The lead card every notification carries (core.messages.LEAD_KEYS): these parts of it are the person.
_CARD_PERSONAL = ("name", "phone", "email", "company")


@dataclass(frozen=True, slots=True)
class Client:
    """One person: their contacts and leads, and how they can be recognised."""

    contact_ids: tuple[int, ...]
    lead_ids: tuple[int, ...]
    phones: tuple[str, ...]  # E.164
    emails: tuple[str, ...]  # normalised
    names: tuple[str, ...]
    messengers: tuple[tuple[str, str], ...] = ()  # (channel, the client's id in it)


def client_of_lead(conn: Connection, lead_id: int, *, limit: int = MAX_LEADS) -> Client | None:
    """The client behind a lead; None when there is no such lead."""
    if conn.execute(select(leads.c.id).where(leads.c.id == lead_id)).first() is None:
        return None
    return _closure(conn, {lead_id}, set(), limit)


def client_of_contact(conn: Connection, contact_id: int, *, limit: int = MAX_LEADS) -> Client | None:
    """The client behind a contact; None when there is no such contact."""
    if conn.execute(select(contacts.c.id).where(contacts.c.id == contact_id)).first() is None:
        return None
    return _closure(conn, set(), {contact_id}, limit)


def _closure(conn: Connection, lead_ids: set[int], contact_ids: set[int], limit: int | None) -> Client:
    """Every lead and contact reachable from these through a shared identity or a link, found round by round."""
    phones: set[str] = set()
    emails: set[str] = set()
    messengers: set[tuple[str, str]] = set()
    names: set[str] = set()
    while True:
        before = (len(lead_ids), len(contact_ids), len(phones), len(emails), len(messengers))
        for r in conn.execute(_linked_leads(lead_ids, contact_ids, phones, emails, messengers)):
            lead_ids.add(r.id)
            lead_ids.update(i for i in (r.merged_into_id, r.duplicate_of_id) if i is not None)
            if r.contact_id is not None:
                contact_ids.add(r.contact_id)
            _collect(r, phones, emails, names)
            if r.messenger_id:
                messengers.add((r.channel, r.messenger_id))
        for r in conn.execute(_linked_contacts(contact_ids, phones, emails)):
            contact_ids.add(r.id)
            _collect(r, phones, emails, names)
        if limit is not None and len(lead_ids) > limit:
            raise Conflict(
                f"this client reaches more than {limit} leads through shared phones, e-mails and links: check who "
                "they are (a shared office phone?) and erase or export them by contact or lead in smaller parts"
            )
        if (len(lead_ids), len(contact_ids), len(phones), len(emails), len(messengers)) == before:
            break
    return Client(tuple(sorted(contact_ids)), tuple(sorted(lead_ids)), tuple(sorted(phones)), tuple(sorted(emails)),
                  tuple(sorted(names)), tuple(sorted(messengers)))  # fmt: skip


def _collect(row: Any, phones: set[str], emails: set[str], names: set[str]) -> None:
    if row.phone:
        phones.add(row.phone)
    if row.email:
        emails.add(row.email)
    if row.name:
        names.add(row.name)


def _linked_leads(
    lead_ids: set[int], contact_ids: set[int], phones: set[str], emails: set[str], messengers: set[tuple[str, str]]
) -> Any:
    ids = sorted(lead_ids)
    linked: list[ColumnElement[bool]] = [leads.c.id.in_(ids), leads.c.merged_into_id.in_(ids),
                                         leads.c.duplicate_of_id.in_(ids)]  # fmt: skip
    if contact_ids:
        linked.append(leads.c.contact_id.in_(sorted(contact_ids)))
    if phones:
        linked.append(leads.c.phone.in_(sorted(phones)))
    if emails:
        linked.append(leads.c.email.in_(sorted(emails)))
    linked += [and_(leads.c.channel == channel, leads.c.messenger_id == mid) for channel, mid in sorted(messengers)]
    return select(
        leads.c.id, leads.c.merged_into_id, leads.c.duplicate_of_id, leads.c.contact_id, leads.c.phone,
        leads.c.email, leads.c.name, leads.c.channel, leads.c.messenger_id,
    ).where(or_(*linked))  # fmt: skip


def _linked_contacts(contact_ids: set[int], phones: set[str], emails: set[str]) -> Any:
    linked: list[ColumnElement[bool]] = [contacts.c.id.in_(sorted(contact_ids))]
    if phones:
        linked.append(contacts.c.phone.in_(sorted(phones)))
    if emails:
        linked.append(contacts.c.email.in_(sorted(emails)))
    return select(contacts.c.id, contacts.c.phone, contacts.c.email, contacts.c.name).where(or_(*linked))


# --- erasure -------------------------------------------------------------------------------------------------


def erase_client(conn: Connection, client: Client, now: datetime, actor: Actor) -> dict[str, int]:
    """Erase the client's personal data in the caller's transaction; returns how many rows of each kind changed.

    Open leads stay open with their status, but nothing waits for a person who can no longer be reached: their
    clocks and deadlines are removed (a running first-contact clock ends as "stopped"). Messages about the client
    still waiting to go out are cancelled (dead, with the reason). Erasing an erased client changes nothing.
    """
    # A request of this client arriving now waits, then finds nobody to fold into (PostgreSQL; SQLite has one writer).
    lock_client(conn, _lock_keys(client))
    client = _closure(conn, set(client.lead_ids), set(client.contact_ids), None)  # and what arrived meanwhile
    lead_ids, contact_ids = list(client.lead_ids), list(client.contact_ids)
    lead_rows = _rows(conn, leads, leads.c.id.in_(lead_ids), lock=True)
    contact_rows = _rows(conn, contacts, contacts.c.id.in_(contact_ids), lock=True)
    own = _own_companies(conn, lead_rows, contact_rows)
    terms = _Terms.of(client, lead_rows, contact_rows, own.values())
    done = {
        "leads": _rewrite(conn, leads, lead_rows, lambda r: _erased_lead(r, terms)),
        "contacts": _rewrite(conn, contacts, contact_rows, lambda r: dict.fromkeys(_CONTACT_PERSONAL)),
        "companies": _rewrite(conn, companies, _rows(conn, companies, companies.c.id.in_(list(own))),
                              lambda r: {"name": ERASED, "name_key": "", "block_key": ""}),
        "deals": _rewrite(conn, deals, _rows(conn, deals, _deals_of(lead_ids, contact_ids)),
                          lambda r: {"title": ERASED}),
        "tasks": _rewrite(conn, tasks, _rows(conn, tasks, tasks.c.lead_id.in_(lead_ids)),
                          lambda r: {"title": ERASED, "note": _blank(r["note"]), "reason": _redacted(r["reason"], terms)}),
        "activities": _rewrite(conn, activities, _rows(conn, activities, activities.c.lead_id.in_(lead_ids)),
                               lambda r: {"note": _blank(r["note"])}),
        "assignments": _rewrite(conn, assignments, _rows(conn, assignments, assignments.c.lead_id.in_(lead_ids)),
                                lambda r: {"reason": terms.redact(r["reason"]),
                                           "candidates": _scrub(r["candidates"], terms)}),
        "events": _rewrite(conn, events, _rows(conn, events, events.c.lead_id.in_(lead_ids)),
                           lambda r: _erased_event(r, terms)),
        "timers": conn.execute(delete(timers_table).where(timers_table.c.lead_id.in_(lead_ids))).rowcount,
        # What the client wrote through the channels and what was answered; the services' raw payloads go whole.
        "conversation": _rewrite(conn, conversation, _rows(conn, conversation, conversation.c.lead_id.in_(lead_ids)),
                                 lambda r: _erased_chat(r, terms)),
        "channel_events": _rewrite(conn, channel_events,
                                   _rows(conn, channel_events, channel_events.c.lead_id.in_(lead_ids)),
                                   lambda r: {"payload": {}, "reason": _redacted(r["reason"], terms)}),
        # What the client did (opened, clicked, booked): attached to their leads, or kept unmatched naming them.
        "client_events": _rewrite(conn, client_events, _client_events_of(conn, lead_ids, terms),
                                  lambda r: {"data": {}, "reason": _redacted(r["reason"], terms)}),
        "backlog_changes": _erase_backlog_changes(conn, lead_ids, terms),
    }  # fmt: skip
    messages = _rows(conn, outbox, _about(lead_ids), lock=True)
    done["messages"] = _rewrite(conn, outbox, messages, lambda r: _erased_message(r, terms))
    done["cancelled"] = sum(1 for r in messages if r["status"] == "pending")
    if any(done.values()):
        counts = {k: v for k, v in done.items() if v}
        append_events(conn, [new_event(i, ERASED_EVENT, now, actor) | {"data": counts} for i in lead_ids])
    return done


_CONTACT_PERSONAL = ("name", "phone", "email", "email_domain")


def _erase_backlog_changes(conn: Connection, lead_ids: list[int], terms: _Terms) -> int:
    """What a backlog run kept to undo its change (the old junk or lost reason, the score's reasons): keyed by run
    and lead, not by an id, so not through _rewrite."""
    changed = 0
    for row in _rows(conn, backlog_changes, backlog_changes.c.lead_id.in_(lead_ids), ordered_by=("run_id", "lead_id")):
        erased = {"before": _scrub(row["before"], terms), "reason": _redacted(row["reason"], terms)}
        diff = {k: v for k, v in erased.items() if row[k] != v}
        if diff:
            key = (backlog_changes.c.run_id == row["run_id"], backlog_changes.c.lead_id == row["lead_id"])
            conn.execute(update(backlog_changes).where(*key).values(**diff))
            changed += 1
    return changed


def _lock_keys(client: Client) -> list[str]:
    """The identities intake (phone:, email:, messenger:) and conversion (client:) hold while they look a person up."""
    keys: list[str] = []
    for phone in client.phones:
        keys += [*identity_keys(phone, None, "", None), f"client:phone:{phone}"]
    for email in client.emails:
        keys += [*identity_keys(None, email, "", None), f"client:email:{email}"]
    for channel, mid in client.messengers:
        keys += identity_keys(None, None, channel, mid)
    return keys


def _rows(
    conn: Connection,
    table: Table,
    where: ColumnElement[bool],
    *,
    lock: bool = False,
    ordered_by: Sequence[str] = ("id",),
) -> Sequence[RowMapping]:
    query = select(table).where(where).order_by(*(table.c[name] for name in ordered_by))
    return conn.execute(query.with_for_update() if lock else query).mappings().all()


def _rewrite(conn: Connection, table: Table, rows: Iterable[RowMapping], erased: Any) -> int:
    """Write each row's erased values where they differ from what it holds; returns how many rows changed."""
    changed = 0
    for row in rows:
        diff = {k: v for k, v in erased(row).items() if row[k] != v}
        if diff:
            conn.execute(update(table).where(table.c.id == row["id"]).values(**diff))
            changed += 1
    return changed


def _erased_lead(row: RowMapping, terms: _Terms) -> dict[str, Any]:
    values: dict[str, Any] = dict.fromkeys(
        ("name", "phone", "email", "company", "message", "messenger_id", "email_domain", "company_key",
         "company_block", "request_hash")  # the hash of a request that held the person
    )  # fmt: skip
    raw = row["raw"] if isinstance(row["raw"], Mapping) else {}
    values["raw"] = _scrub({k: v for k, v in raw.items() if k in _KEPT_RAW}, terms)
    values.update(
        utm=_scrub(row["utm"], terms), utm_campaign=_redacted(row["utm_campaign"], terms),
        source=_redacted(row["source"], terms), problems=_scrub(row["problems"], terms),
        duplicate_reason=_redacted(row["duplicate_reason"], terms), junk_reason=_redacted(row["junk_reason"], terms),
        score_detail=_scrub(row["score_detail"], terms), win_factors=_scrub(row["win_factors"], terms),
    )  # fmt: skip
    # Kept when they say nothing about the person: a repeated delivery of the old request then finds the erased
    # lead instead of writing the person in again. A key that quotes them goes (and stays unique as NULL).
    for key in ("idempotency_key", "external_id"):
        if row[key] is not None and terms.redact(row[key]) != row[key]:
            values[key] = None
    if row["sla_state"] == "running":
        values.update(sla_state="stopped", sla_due_at=None)  # nobody can reach them now: reports see why
    return values


def _erased_event(row: RowMapping, terms: _Terms) -> dict[str, Any]:
    values: dict[str, Any] = {"data": _scrub(row["data"], terms)}
    # The address the request came from: the person's own browser, when they filled in a form. Other events keep
    # theirs, the address of the staff or the integration that made the change.
    if row["type"] == "lead.received" and row.get("address") is not None:
        values["address"] = None
    return values


def _erased_chat(row: RowMapping, terms: _Terms) -> dict[str, Any]:
    """A message of the conversation: its text, subject and the client's address in the channel go; when and how
    it went stay (the response times and counts do not change)."""
    values: dict[str, Any] = {"body": ERASED, "subject": _blank(row["subject"]), "address": None,
                              "meta": _scrub(row["meta"], terms), "error": _redacted(row["error"], terms)}  # fmt: skip
    for key in ("thread", "external_id"):  # an e-mail's Message-ID may quote the client's address
        if row[key] is not None and terms.redact(row[key]) != row[key]:
            values[key] = None
    return values


def _erased_message(row: RowMapping, terms: _Terms) -> dict[str, Any]:
    values: dict[str, Any] = {
        "subject": _blank(row["subject"]),
        "body": ERASED,
        "payload": _scrub(row["payload"], terms),
        "last_error": _redacted(row["last_error"], terms),
    }
    if row["status"] == "pending":
        values.update(status="dead", last_error=CANCELLED)
    return values


def _own_companies(
    conn: Connection, lead_rows: Sequence[RowMapping], contact_rows: Sequence[RowMapping]
) -> dict[int, str]:
    """The client's companies no one else is linked to, by id with their names: a sole trader's firm is the person.

    A company other people or their deals still point at is theirs too, and stays.
    """
    lead_ids = [r["id"] for r in lead_rows]
    contact_ids = [r["id"] for r in contact_rows]
    ids = {r["company_id"] for r in (*lead_rows, *contact_rows) if r["company_id"] is not None}
    ids.update(conn.execute(select(deals.c.company_id).where(_deals_of(lead_ids, contact_ids))).scalars())
    ids.discard(None)
    if not ids:
        return {}
    wanted = sorted(ids)
    shared = set(conn.execute(select(leads.c.company_id).where(
        leads.c.company_id.in_(wanted), leads.c.id.not_in(lead_ids))).scalars())  # fmt: skip
    shared.update(conn.execute(select(contacts.c.company_id).where(
        contacts.c.company_id.in_(wanted), contacts.c.id.not_in(contact_ids))).scalars())  # fmt: skip
    shared.update(conn.execute(select(deals.c.company_id).where(
        deals.c.company_id.in_(wanted), ~_deals_of(lead_ids, contact_ids))).scalars())  # fmt: skip
    rows = conn.execute(select(companies.c.id, companies.c.name).where(companies.c.id.in_(sorted(ids - shared))))
    return {r.id: r.name for r in rows}


def _deals_of(lead_ids: Sequence[int], contact_ids: Sequence[int]) -> ColumnElement[bool]:
    # IS NOT NULL on each side keeps the test true or false, never NULL, so its negation means "someone else's".
    of_lead = and_(deals.c.lead_id.is_not(None), deals.c.lead_id.in_(list(lead_ids))) if lead_ids else false()
    of_contact = (
        and_(deals.c.contact_id.is_not(None), deals.c.contact_id.in_(list(contact_ids))) if contact_ids else false()
    )
    return or_(of_lead, of_contact)


def _about(lead_ids: Sequence[int]) -> ColumnElement[bool]:
    """Messages about these leads: by the lead card they carry, or by the event that caused them (some have none)."""
    ids = list(lead_ids)
    return or_(
        outbox.c.payload[("lead", "id")].as_integer().in_(ids),
        outbox.c.event_id.in_(select(events.c.id).where(events.c.lead_id.in_(ids))),
    )


# --- finding the person in text ------------------------------------------------------------------------------

_PHONE_LIKE = re.compile(r"\+?\d[\d\s().\-]{4,}\d")
_MIN_PHONE_DIGITS = 6


@dataclass(frozen=True, slots=True)
class _Terms:
    """What identifies the client in text: words (names, e-mails, companies, ids, what they typed) in any case, and
    phone numbers by their digits in any format."""

    words: re.Pattern[str] | None
    phone_digits: tuple[str, ...]

    @classmethod
    def of(
        cls, client: Client, lead_rows: Iterable[Mapping[Any, Any]], contact_rows: Iterable[Mapping[Any, Any]],
        company_names: Iterable[str] = (),
    ) -> _Terms:  # fmt: skip
        words: set[str] = {*client.emails, *client.phones, *(m for _, m in client.messengers)}
        names = set(client.names)
        words.update(company_names)
        digits = {_national_digits(p) for p in client.phones}
        for row in lead_rows:
            words.update(v for k in ("email", "company", "messenger_id", "message") if (v := row[k]))
            raw = row["raw"] if isinstance(row["raw"], Mapping) else {}
            for key, value in raw.items():
                if key not in _KEPT_RAW:
                    words.update(w for w in _strings(value) if len(w) >= 3)  # not a checkbox's "on" or "1"
            if isinstance(raw.get("name"), str):
                names.add(raw["name"])
            if isinstance(raw.get("phone"), str | int):
                digits.add(re.sub(r"\D", "", str(raw["phone"])))
        for row in contact_rows:
            words.update(v for k in ("email", "phone") if (v := row[k]))
        # A name, and each of its parts: a note that says "Ivan asked to call after six" names him too.
        words.update(names)
        words.update(part for name in names for part in name.split() if sum(c.isalpha() for c in part) >= 2)
        found = sorted({w.strip() for w in words if len(w.strip()) >= 2}, key=lambda w: (-len(w), w))
        # Whole words only, so "Ivan" leaves "Ivanna" alone; free text the client typed is matched the same way.
        pattern = re.compile(r"(?<!\w)(?:" + "|".join(map(re.escape, found)) + r")(?!\w)", re.I) if found else None
        return cls(pattern, tuple(sorted(d for d in digits if len(d) >= _MIN_PHONE_DIGITS)))

    def redact(self, text: str) -> str:
        if self.words is not None:
            text = self.words.sub(ERASED, text)
        if self.phone_digits:
            text = _PHONE_LIKE.sub(self._phone, text)
        return text

    def _phone(self, found: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", found.group())
        return ERASED if any(d in digits for d in self.phone_digits) else found.group()


def _national_digits(e164: str) -> str:
    """The digits every way of writing the number contains: +380671234567, 0671234567, 067 123 45 67."""
    try:
        return str(phonenumbers.parse(e164).national_number)
    except phonenumbers.NumberParseException:
        return re.sub(r"\D", "", e164)


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, int | float) and not isinstance(value, bool) and len(str(value)) >= _MIN_PHONE_DIGITS:
        yield str(value)  # an id or a number written as digits, not a count
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _scrub(value: Any, terms: _Terms) -> Any:
    """Stored JSON without the client: free text whole, the lead card's personal parts, their values anywhere else."""
    if isinstance(value, str):
        return terms.redact(value)
    if isinstance(value, list):
        return [_scrub(item, terms) for item in value]
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key in _FREE_TEXT:
                out[key] = _blank(item)
            elif key == "lead" and isinstance(item, Mapping):
                out[key] = _scrub({k: None if k in _CARD_PERSONAL else v for k, v in item.items()}, terms)
            else:
                out[key] = _scrub(item, terms)
        return out
    return value


def _client_events_of(conn: Connection, lead_ids: list[int], terms: _Terms) -> list[RowMapping]:
    """The client's events: those on their leads, and the unmatched ones whose report names them."""
    attached = _rows(conn, client_events, client_events.c.lead_id.in_(lead_ids))

    def names_them(text: str) -> bool:
        return terms.redact(text) != text

    unmatched = [r for r in _rows(conn, client_events, client_events.c.lead_id.is_(None))
                 if names_them(json.dumps(r["data"], ensure_ascii=False)) or names_them(r["reason"] or "")]  # fmt: skip
    return [*attached, *unmatched]


def _blank(value: Any) -> Any:
    """Free text replaced whole, keeping the shape a reader of the JSON expects."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        return {k: _blank(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_blank(v) for v in value]
    return ERASED if isinstance(value, str) else value


def _redacted(text: str | None, terms: _Terms) -> str | None:
    return None if text is None else terms.redact(text)


# --- export --------------------------------------------------------------------------------------------------

# Not the client's: another team's Slack webhook URL is a credential, delivery errors and the candidates weighed
# are about the staff.
_NOT_EXPORTED = {"outbox": {"recipient", "last_error"}, "assignments": {"candidates"}}


def export_client(conn: Connection, client: Client) -> dict[str, Any]:
    """Everything held about the client, as JSON can carry it: their leads, each with its events, assignments,
    activities, deals, tasks, timers, the statuses it went through, what a backlog triage kept to undo and the
    messages about it; their contacts (each with the deals made through
    it rather than through one of their leads) and companies."""
    lead_ids, contact_ids = list(client.lead_ids), list(client.contact_ids)
    lead_rows = _rows(conn, leads, leads.c.id.in_(lead_ids))
    contact_rows = _rows(conn, contacts, contacts.c.id.in_(contact_ids))
    deal_rows = _rows(conn, deals, _deals_of(lead_ids, contact_ids))
    children = {name: _by_lead(table, _rows(conn, table, table.c.lead_id.in_(lead_ids),
                                            ordered_by=[c.name for c in table.primary_key.columns]))
                for name, table in _LEAD_CHILDREN.items()}  # fmt: skip
    children["deals"] = _by_lead(deals, [d for d in deal_rows if d["lead_id"] in client.lead_ids])
    lead_of_event = {e["id"]: lead_id for lead_id, rows in children["events"].items() for e in rows}
    messages: dict[Any, list[dict[str, Any]]] = {}
    for message in _rows(conn, outbox, _about(lead_ids)):
        card = message["payload"].get("lead") if isinstance(message["payload"], Mapping) else None
        lead_id = lead_of_event.get(message["event_id"]) or (card.get("id") if isinstance(card, Mapping) else None)
        messages.setdefault(lead_id, []).append(_shown(outbox, message))
    children["messages"] = messages
    through_contact = [d for d in deal_rows if d["lead_id"] not in client.lead_ids]
    company_ids = sorted({r["company_id"] for r in (*lead_rows, *contact_rows, *deal_rows) if r["company_id"]})
    export = {
        "client": {"contact_ids": contact_ids, "lead_ids": lead_ids, "phones": list(client.phones),
                   "emails": list(client.emails), "names": list(client.names)},
        "leads": [_shown(leads, r) | {name: rows.get(r["id"], []) for name, rows in children.items()}
                  for r in lead_rows],
        "contacts": [_shown(contacts, c) | {"deals": [_shown(deals, d) for d in through_contact
                                                      if d["contact_id"] == c["id"]]} for c in contact_rows],
        "companies": [_shown(companies, r) for r in _rows(conn, companies, companies.c.id.in_(company_ids))],
    }  # fmt: skip
    result: dict[str, Any] = _jsonable(export)
    return result


_LEAD_CHILDREN: dict[str, Table] = {"events": events, "assignments": assignments, "activities": activities,
                                    "tasks": tasks, "timers": timers_table, "conversation": conversation,
                                    "channel_events": channel_events, "client_events": client_events,
                                    "stages": lead_stages, "backlog_changes": backlog_changes}  # fmt: skip


def _by_lead(table: Table, rows: Iterable[RowMapping]) -> dict[Any, list[dict[str, Any]]]:
    out: dict[Any, list[dict[str, Any]]] = {}
    for row in rows:
        out.setdefault(row["lead_id"], []).append(_shown(table, row))
    return out


def _shown(table: Table, row: RowMapping) -> dict[str, Any]:
    hidden = _NOT_EXPORTED.get(table.name, set())
    return {k: v for k, v in row.items() if k not in hidden}


def _jsonable(value: Any) -> Any:
    """Plain JSON: times as ISO 8601, amounts as exact decimal strings."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    return str(value)
