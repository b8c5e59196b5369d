"""Speed to lead: first-contact clocks, the contacts that stop them, and escalations along the chain.

A clock is a row in `timers`, written in the same transaction as the assignment that starts it. The worker
claims due rows (SKIP LOCKED on PostgreSQL, so several workers never take the same one) and moves the lead in the
same transaction that deletes the timer, so every deadline is acted on exactly once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, bindparam, delete, func, or_, select, update
from sqlalchemy.engine import Connection, RowMapping

from leadflow.core.errors import Conflict, InvalidInput, NotFound
from leadflow.core.lead import CleanLead
from leadflow.core.policy import Principal
from leadflow.core.routing import FALLBACK, Decision, LiveState, ManagerState, teams_involved
from leadflow.core.rules import RulesFile, SlaPolicy
from leadflow.core.schedule import format_duration
from leadflow.core.sla import BANDS, first_contact_due, next_owner, policy_for, response_band
from leadflow.services.access import guard_contact, restrict
from leadflow.services.context import Leadflow
from leadflow.services.delivery import enqueue_notification
from leadflow.store.db import READ_ONLY
from leadflow.store.events import INSERT_ASSIGNMENT, add_event, assignment_row, new_event
from leadflow.store.fast import Fast
from leadflow.store.lead_rows import identity_keys, lead_row_to_clean, lock_client, lock_leads
from leadflow.store.outbox import collected as outbox_collected
from leadflow.store.tables import activities, assignments, deals, events, leads, managers, teams, timers
from leadflow.store.team_state import (
    ADD_LOAD,
    add_deals,
    load_manager,
    load_team_state,
    lock_teams,
    record_result,
    save_pointer,
)

FIRST_CONTACT = "first_contact"
DESK = "desk"  # a lead waiting at the quality desk past the desk's own deadline
ROUTE_AT = "route_at"  # a lead that waits for its team to open (out_of_hours: queue)
# What a manager can record, and which of those is a first contact that stops the clock.
OUTCOMES = {"call": ("connected", "no_answer", "busy", "wrong_number"), "message": ("sent",), "meeting": ("set",)}
INSERT_TIMER = timers.insert()
_INSERT_TIMER = Fast(INSERT_TIMER)  # one a lead at intake: on the driver's cursor
STOPS_CLOCK = {("call", "connected"), ("message", "sent"), ("meeting", "set")}
SLA_TIMERS = (FIRST_CONTACT, DESK, ROUTE_AT)  # the rest (automations', tasks') are services/automation.py's
DEFAULT_SLACK = "default"  # outbox recipient meaning the configured Slack webhook


@dataclass(frozen=True, slots=True)
class Clock:
    policy: SlaPolicy
    due_at: datetime


def plan_clock(
    rules: RulesFile, lead: CleanLead, decision: Decision, owner: ManagerState, now: datetime
) -> Clock | None:
    if not rules.sla.enabled or not decision.assigned:
        return None
    policy = policy_for(rules, lead, decision.rule_key, owner.team)
    return Clock(policy, first_contact_due(policy, now, owner.hours))


def clock_columns(clock: Clock | None, rule_key: str | None) -> dict[str, Any]:
    if clock is None:
        return {"sla_state": None, "sla_due_at": None, "rule_key": rule_key}
    return {"sla_state": "running", "sla_due_at": clock.due_at, "rule_key": rule_key}


def timer_row(
    lead_id: int, clock: Clock, owner: ManagerState, rule_key: str | None, now: datetime,
    hop: int = 0, tried: tuple[str, ...] = (),
) -> dict[str, Any]:  # fmt: skip
    """The first-contact timer of a lead: when it is due and where the chain stands."""
    data = {"hop": hop, "manager": owner.key, "rule": rule_key, "team": owner.team, "tried": list(tried)}
    return {"lead_id": lead_id, "kind": FIRST_CONTACT, "due_at": clock.due_at, "data": data, "created_at": now}


def write_timer(
    conn: Connection, lead_id: int, clock: Clock, owner: ManagerState, rule_key: str | None, now: datetime,
    hop: int = 0, tried: tuple[str, ...] = (),
) -> None:  # fmt: skip
    _INSERT_TIMER.run(conn, timer_row(lead_id, clock, owner, rule_key, now, hop, tried))


def stop_clock(conn: Connection, lead_id: int) -> None:
    conn.execute(delete(timers).where(timers.c.lead_id == lead_id, timers.c.kind == FIRST_CONTACT))


# --- notifications -------------------------------------------------------------------------------------------


def _language(app: Leadflow, owner: ManagerState | None) -> str:
    for lang in sorted(owner.languages) if owner else ():
        if lang in ("uk", "ru", "en"):
            return lang
    return app.rules.default_language


def lead_context(app: Leadflow, lead_id: int, lead: CleanLead) -> dict[str, Any]:
    card = {"id": lead_id, "name": lead.name, "phone": lead.phone, "email": lead.email, "product": lead.product,
            "company": lead.company, "channel": lead.channel}  # fmt: skip
    return {"lead": card, "link": app.link(lead_id)}


def notify(
    conn: Connection, app: Leadflow, event_type: str, event_id: int | None, to: ManagerState | None,
    context: dict[str, Any], now: datetime, team_chat: RowMapping | None = None,
) -> None:  # fmt: skip
    """Queue the message for the manager's own channels, the team chat and every webhook receiver."""
    language = _language(app, to)
    targets: list[tuple[str, str]] = []
    if to is not None and to.telegram_chat_id:
        targets.append(("telegram", to.telegram_chat_id))
    if to is not None and to.email:
        targets.append(("email", to.email))
    if team_chat is not None and team_chat["telegram_chat_id"]:
        targets.append(("telegram", team_chat["telegram_chat_id"]))
    if team_chat is not None and team_chat["slack_webhook_url"]:
        targets.append(("slack", team_chat["slack_webhook_url"]))
    elif team_chat is not None and app.notify.slack_webhook_url is not None:
        # The team has no chat of its own: the installation's Slack webhook (LEADFLOW_NOTIFY__SLACK_WEBHOOK_URL) is
        # the team chat. The outbox names it, never its URL, which is a credential.
        targets.append(("slack", DEFAULT_SLACK))
    targets += [("webhook", url) for url in app.notify.webhook_urls]
    for channel, recipient in targets:
        enqueue_notification(conn, event_id=event_id, event_type=event_type, channel=channel, recipient=recipient,
                             language=language, context=context, now=now,
                             overrides=app.rules.templates or None)  # fmt: skip


# --- first contact -------------------------------------------------------------------------------------------


def record_contact(
    app: Leadflow, lead_id: int, manager_key: str | None, kind: str, outcome: str, now: datetime, note: str | None = None,
    *, who: Principal, duration_seconds: int | None = None,
) -> dict[str, Any]:  # fmt: skip
    """A manager reached (or tried to reach) the client; a real contact stops the clock.

    A real contact reaches the client, not one lead: every open lead of the same client (same phone, e-mail or
    messenger id, the same contact, or a duplicate link) that was still waiting for its first contact counts as
    contacted too, each with an event saying through which lead. A former owner's late call is recorded as theirs
    and stops the clock; the lead stays with its current owner, who is told.
    """
    with app.engine.begin() as conn:
        return record_contact_in(conn, app, lead_id, manager_key, kind, outcome, now, note, who=who,
                                 duration_seconds=duration_seconds)  # fmt: skip


def record_contact_in(
    conn: Connection, app: Leadflow, lead_id: int, manager_key: str | None, kind: str, outcome: str, now: datetime,
    note: str | None = None, *, who: Principal, duration_seconds: int | None = None,
) -> dict[str, Any]:  # fmt: skip
    """record_contact() inside the caller's transaction (a reply sent to the client is a contact, written with
    the message)."""
    if kind not in OUTCOMES:
        raise InvalidInput.one("kind", f"'{kind}' is not a contact kind: use {', '.join(OUTCOMES)}")
    if outcome not in OUTCOMES[kind]:
        raise InvalidInput.one("outcome", f"a {kind} can end as {', '.join(OUTCOMES[kind])}, not '{outcome}'")
    peek = conn.execute(select(leads).where(leads.c.id == lead_id)).mappings().first()
    if peek is None:
        raise NotFound(f"lead {lead_id} does not exist")
    if manager_key is None and who.manager_id is None:
        raise InvalidInput.one("manager", "name the manager who made the contact")
    named = managers.c.key == manager_key if manager_key is not None else managers.c.id == who.manager_id
    by = conn.execute(select(managers).where(named)).mappings().first()
    guard_contact(conn, who, lead_id, by["id"] if by is not None else None)
    if by is None:
        raise InvalidInput.one("manager", f"manager '{manager_key}' does not exist")
    # One client's leads are changed by one contact at a time (PostgreSQL), so two calls never both miss.
    lock_client(conn, identity_keys(peek["phone"], peek["email"], peek["channel"], peek["messenger_id"]))
    stops = (kind, outcome) in STOPS_CLOCK
    waiting = conn.execute(_client_leads(app, peek)).scalars().all() if stops else []
    lead, siblings = lock_leads(conn, lead_id, waiting)
    owner = conn.execute(select(managers).where(managers.c.id == lead["manager_id"])).mappings().first()
    late = by["id"] != lead["manager_id"]
    if late and conn.execute(_HELD, {"lead": lead_id, "manager": by["id"]}).first() is None:
        now_with = f"it is with {owner['name']}" if owner else "it has no manager now"
        raise Conflict(f"{by['name']} has never owned lead {lead_id}: {now_with}")
    conn.execute(activities.insert(), {"lead_id": lead_id, "manager_id": by["id"], "kind": kind, "outcome": outcome,
                                       "note": note, "at": now, "duration_seconds": duration_seconds})  # fmt: skip
    first = stops and lead["first_contact_at"] is None
    values: dict[str, Any] = {"updated_at": now}
    result: dict[str, Any] = {"id": lead_id, "first_contact": first, "sla_state": lead["sla_state"]}
    if first:
        values.update(_first_contact_values(app, lead, by["id"], now))
        if values.get("sla_state") == "met":
            stop_clock(conn, lead_id)
        waited = now - lead["created_at"]
        record_result(conn, by["id"], first_contact=True, fast=waited <= BANDS[0][0])
        result.update(sla_state=values.get("sla_state", lead["sla_state"]), response_band=values["response_band"],
                      response_seconds=values["response_seconds"])  # fmt: skip
    conn.execute(update(leads).where(leads.c.id == lead_id).values(**values))
    reason = None
    if late:
        stays = f"the lead stays with {owner['name']}" if owner else "the lead has no owner now"
        reason = f"{by['name']} reached the client after the lead had moved on; {stays}"
    event_type = "lead.contacted" if first else "lead.contact_attempt"
    talk: dict[str, Any] = {"duration_seconds": duration_seconds} if duration_seconds is not None else {}
    event = new_event(lead_id, event_type, now, who, manager=by["key"], kind=kind, outcome=outcome, note=note,
                      owner=owner["key"] if owner else None, reason=reason, **talk)  # fmt: skip
    event_id = add_event(conn, event)
    if late and stops and owner is not None:
        context = lead_context(app, lead_id, lead_row_to_clean(lead)) | {"contacted_by": by["name"],
                                                                          "reason": reason}  # fmt: skip
        owner_state = load_manager(conn, owner["id"], app.rules.default_timezone)
        notify(conn, app, "lead.contacted_by_other", event_id, owner_state, context, now)
    result["status"] = values.get("status", lead["status"])
    result["late"] = late
    result["covered"] = _cover_client(conn, app, lead, siblings, by, kind, outcome, now, who)
    return result


_HELD = (
    select(assignments.c.id)
    .where(assignments.c.lead_id == bindparam("lead"), assignments.c.manager_id == bindparam("manager"))
    .limit(1)
)


def _first_contact_values(app: Leadflow, lead: RowMapping, by: int, now: datetime) -> dict[str, Any]:
    """What a lead's first contact by manager `by` changes: when, by whom, how fast, the clock, and the funnel
    status."""
    waited = now - lead["created_at"]
    values: dict[str, Any] = {"first_contact_at": now, "first_contact_by": by,
                              "response_seconds": max(int(waited.total_seconds()), 0),
                              "response_band": response_band(lead["created_at"], now)}  # fmt: skip
    if lead["sla_state"] == "running":
        values.update(sla_state="met", sla_due_at=None)
    moves_on = lead["status"] in ("new", "assigned") and lead["manager_id"] is not None
    if moves_on and "contacted" in {s.key for s in app.rules.funnel}:
        values["status"] = "contacted"
    return values


def _client_leads(app: Leadflow, lead: RowMapping) -> Select[Any]:
    """The ids of the client's other open leads still waiting for a first contact: the same phone, e-mail or
    messenger id, the same contact, or a duplicate link either way."""
    same = [leads.c.duplicate_of_id == lead["id"]]
    if lead["phone"]:
        same.append(leads.c.phone == lead["phone"])
    if lead["email"]:
        same.append(leads.c.email == lead["email"])
    if lead["messenger_id"]:
        same.append((leads.c.channel == lead["channel"]) & (leads.c.messenger_id == lead["messenger_id"]))
    if lead["contact_id"] is not None:
        same.append(leads.c.contact_id == lead["contact_id"])
    if lead["duplicate_of_id"] is not None:
        same.append(leads.c.id == lead["duplicate_of_id"])
    return select(leads.c.id).where(
        or_(*same), leads.c.id != lead["id"], leads.c.first_contact_at.is_(None),
        leads.c.status.in_(sorted(app.rules.open_statuses)),
    )  # fmt: skip


def _cover_client(
    conn: Connection, app: Leadflow, lead: RowMapping, others: Sequence[RowMapping], by: RowMapping, kind: str,
    outcome: str, now: datetime, who: Principal,
) -> list[int]:  # fmt: skip
    """The client's other leads still waiting for a first contact have had it now, through this one."""
    # Looked at again now that they are locked: one may have been contacted or closed meanwhile.
    open_statuses = app.rules.open_statuses
    siblings = [r for r in others if r["first_contact_at"] is None and r["status"] in open_statuses]
    how = {"call": "a connected call", "message": "a message", "meeting": "a meeting"}[kind]
    reason = f"the client was reached through lead #{lead['id']}: {how} by {by['name']}"
    for sibling in siblings:
        values = _first_contact_values(app, sibling, by["id"], now) | {"updated_at": now}
        if values.get("sla_state") == "met":
            stop_clock(conn, sibling["id"])
        conn.execute(update(leads).where(leads.c.id == sibling["id"]).values(**values))
        add_event(conn, new_event(sibling["id"], "lead.contacted", now, who, manager=by["key"], kind=kind,
                                     outcome=outcome, via=lead["id"], reason=reason))  # fmt: skip
    return [s["id"] for s in siblings]


# --- escalation ----------------------------------------------------------------------------------------------
#
# A round takes a batch of due timers (100 by default) in one transaction and sends a fixed number of statements
# however many leads move: every escalation is decided in memory first, then each table gets one executemany
# (pipelined by psycopg on PostgreSQL), each manager one load update with the batch's summed deltas, each rule one
# pointer upsert. The order of locks: timers and leads with SKIP LOCKED (never waited for), then the batch's teams
# in one sorted statement, so two workers wait for each other only there and never in a circle.

_DUE = (
    select(timers.c.id, timers.c.lead_id, timers.c.kind, timers.c.data, timers.c.due_at)
    .where(timers.c.kind.in_(SLA_TIMERS))
    .order_by(timers.c.due_at)
)
_LOCK_LEADS = select(leads).where(leads.c.id.in_(bindparam("ids", expanding=True))).with_for_update(skip_locked=True)
_DELETE_TIMERS = delete(timers).where(timers.c.id.in_(bindparam("ids", expanding=True)))
_TEAMS = select(teams).where(teams.c.key.in_(bindparam("keys", expanding=True)))
_OPEN_DEALS = select(deals.c.id, deals.c.lead_id, deals.c.manager_id).where(
    deals.c.lead_id.in_(bindparam("ids", expanding=True)), deals.c.closed_at.is_(None)
)
_MOVE_DEAL = update(deals).where(deals.c.id == bindparam("d_id")).values(manager_id=bindparam("d_manager_id"))
# Returned in the order of the rows given (several rows per statement), so each event id finds its messages.
_INSERT_EVENTS = events.insert().returning(events.c.id, sort_by_parameter_order=True)
_ZERO = Decimal(0)
_lead_updates: dict[tuple[str, ...], Any] = {}


def _update_leads(keys: tuple[str, ...]) -> Any:
    """UPDATE leads SET <keys> WHERE id = :l_id, built once per set of columns (an escalation sets one of three)."""
    stmt = _lead_updates.get(keys)
    if stmt is None:
        values = {k: bindparam(f"l_{k}", type_=leads.c[k].type) for k in keys}
        stmt = _lead_updates[keys] = update(leads).where(leads.c.id == bindparam("l_id")).values(values)
    return stmt


@dataclass
class _BatchState:
    """The team state of one escalation transaction: read once, kept current in memory as leads move.

    Reading it again for every escalation costs more than the decisions; the teams stay locked (PostgreSQL) for
    the whole transaction, so nobody else changes it meanwhile.
    """

    live: LiveState
    teams: dict[str, RowMapping]
    by_id: dict[int, str]

    @classmethod
    def read(cls, conn: Connection, team_keys: list[str], rule_keys: list[str], default_tz: str) -> _BatchState:
        live = LiveState(load_team_state(conn, team_keys, rule_keys, default_tz))
        rows = {r["key"]: r for r in conn.execute(_TEAMS, {"keys": team_keys}).mappings()} if team_keys else {}
        return cls(live, rows, {m.id: m.key for m in live.managers.values()})

    def of(self, manager_id: int | None) -> ManagerState | None:
        key = self.by_id.get(manager_id) if manager_id is not None else None
        return self.live.managers[key] if key is not None else None

    def moved(self, lead: RowMapping, decision: Decision) -> None:
        """The lead leaves its owner for the decision's manager; the rotation follows (as the batch writes it)."""
        old = self.of(lead["manager_id"])
        if old is not None:
            self.live.count(old.key, -1, lead["budget"])
        if decision.manager_key in self.live.managers:
            self.live.count(decision.manager_key, +1, lead["budget"])
        self.live.follow(decision)


@dataclass(slots=True)
class _Due:
    """A claimed first-contact timer whose lead is locked, with what can be worked out before the teams are."""

    timer: Any
    lead: RowMapping
    clean: CleanLead
    policy: SlaPolicy


@dataclass
class _Writes:
    """Every row a batch of escalations writes, collected while deciding, sent one statement per table."""

    leads: dict[tuple[str, ...], list[dict[str, Any]]] = field(default_factory=dict)
    timers: list[dict[str, Any]] = field(default_factory=list)
    assignments: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    # Sent once the events have their ids: (event type, new owner, message context, team chat row).
    messages: list[tuple[str, ManagerState | None, dict[str, Any], RowMapping | None]] = field(default_factory=list)
    load: dict[int, tuple[int, Decimal]] = field(default_factory=dict)  # manager id -> (leads, value) deltas
    deals: list[dict[str, Any]] = field(default_factory=list)
    deal_counts: dict[int, int] = field(default_factory=dict)
    pointers: dict[str, tuple[str, Mapping[str, float] | None]] = field(default_factory=dict)

    def add_load(self, manager_id: int, delta: int, value: Decimal) -> None:
        count, total = self.load.get(manager_id, (0, _ZERO))
        self.load[manager_id] = (count + delta, total + value * delta)

    def pointer(self, rule_key: str, manager_key: str, credits: Mapping[str, float] | None) -> None:
        # The same end state as one upsert per decision: the last manager, and the last credits written.
        last = credits if credits is not None else self.pointers.get(rule_key, ("", None))[1]
        self.pointers[rule_key] = (manager_key, last)

    def send(self, conn: Connection, app: Leadflow, now: datetime) -> None:
        for keys, rows in self.leads.items():
            conn.execute(_update_leads(keys), rows)
        if self.timers:
            conn.execute(INSERT_TIMER, self.timers)
        if self.assignments:
            conn.execute(INSERT_ASSIGNMENT, self.assignments)
        # Sorted by id: writers that touch the same managers lock their rows in one order.
        load = [{"manager_id": m, "delta": c, "value": v} for m, (c, v) in sorted(self.load.items()) if c or v]
        if load:
            conn.execute(ADD_LOAD, load)
        if self.deals:
            conn.execute(_MOVE_DEAL, self.deals)
        for manager_id, delta in sorted(self.deal_counts.items()):
            if delta:
                add_deals(conn, manager_id, delta)
        for rule_key, (manager_key, credits) in sorted(self.pointers.items()):
            save_pointer(conn, rule_key, manager_key, credits)
        if not self.events:
            return
        ids = conn.execute(_INSERT_EVENTS, self.events).scalars().all()
        with outbox_collected(conn):
            for event_id, (event_type, owner, context, team) in zip(ids, self.messages, strict=True):
                notify(conn, app, event_type, event_id, owner, context, now, team_chat=team)


def _teams_of(app: Leadflow, data: dict[str, Any]) -> list[str]:
    rule = next((r for r in app.rules.routing.rules if r.key == data.get("rule")), None)
    return sorted({data["team"], *([rule.team] if rule else [])})


def _waits_for_routing(lead: RowMapping) -> bool:
    return lead["manager_id"] is None and lead["status"] == "new" and lead["queue"] is None


def escalate_due(app: Leadflow, now: datetime, limit: int = 100) -> int:
    """Act on up to `limit` passed deadlines in one transaction; returns how many leads moved."""
    moved = 0
    rules = app.rules
    if app.is_sqlite and not _anything_due(app, now):
        # SQLite: look before taking the one write lock. An idle worker asking four times a second would take it
        # from intake's writer each time, and a writer that finds it taken sleeps in SQLite's busy handler.
        return 0
    with app.engine.begin() as conn:
        due = conn.execute(_DUE.where(timers.c.due_at <= now).limit(limit).with_for_update(skip_locked=True)).all()
        if not due:
            return 0
        ids = sorted({t.lead_id for t in due})
        locked = {r["id"]: r for r in conn.execute(_LOCK_LEADS, {"ids": ids}).mappings()}
        # A lead someone is changing right now (recording a contact) keeps its timer: the next round decides.
        # A lead with two due timers has one acted on per round, so each sees the lead as the other left it.
        taken: list[tuple[Any, RowMapping]] = []
        for timer in due:
            lead = locked.pop(timer.lead_id, None)
            if lead is not None:
                taken.append((timer, lead))
        if not taken:
            return 0
        conn.execute(_DELETE_TIMERS, {"ids": [t.id for t, _ in taken]})
        escalations: list[_Due] = []
        others: list[tuple[Any, RowMapping]] = []
        for t, lead in taken:
            if t.kind in (ROUTE_AT, DESK):
                others.append((t, lead))
            elif t.kind == FIRST_CONTACT and lead["sla_state"] == "running" and lead["manager_id"] is not None:
                clean = lead_row_to_clean(lead)
                escalations.append(_Due(t, lead, clean, policy_for(rules, clean, t.data.get("rule"), t.data["team"])))
            # anything else is a stale clock: the lead was contacted, closed or moved since
        # Read before the teams are locked, to keep that lock short: only the locked leads' escalations move them.
        deals_of: dict[int, list[Any]] = {}
        if escalations:
            for deal in conn.execute(_OPEN_DEALS, {"ids": [e.lead["id"] for e in escalations]}):
                deals_of.setdefault(deal.lead_id, []).append(deal)
        # Lock every team this batch may touch at once, in one order, so two workers never wait on each other
        # in a circle (a waiting lead routed here locks the teams its routing reads: the same, already held).
        team_keys = {k for e in escalations for k in _teams_of(app, e.timer.data)}
        for t, lead in others:
            if t.kind == ROUTE_AT and _waits_for_routing(lead):
                team_keys.update(teams_involved(lead_row_to_clean(lead), rules))
        lock_teams(conn, sorted(team_keys))
        # The few other timers first, one by one: what they write is in the database before the escalations
        # read their team state.
        for t, lead in others:
            if t.kind == ROUTE_AT:
                moved += _route_waiting(conn, app, lead, now)
            else:
                moved += _desk_overdue(conn, app, lead, t.data, t.due_at, now)
        if escalations:
            moved += _escalate_all(conn, app, escalations, deals_of, now)
    return moved


def _route_waiting(conn: Connection, app: Leadflow, lead: RowMapping, now: datetime) -> int:
    """A lead that waited for its team to open: route it now, as if it had just arrived."""
    from leadflow.services.intake import assign_existing  # intake builds on this module

    if not _waits_for_routing(lead):
        return 0
    assign_existing(conn, app, lead, now, kind="opening")
    return 1


def _desk_overdue(
    conn: Connection, app: Leadflow, lead: RowMapping, data: dict[str, Any], due_at: datetime, now: datetime
) -> int:
    """A lead has waited at the quality desk past the desk's deadline: say so where the team will see it."""
    if lead["queue"] != "desk":
        return 0
    waited = format_duration(now - lead["created_at"])
    event_id = add_event(conn, new_event(lead["id"], "lead.desk_overdue", now, "sla",
                                            reason=f"waiting at the quality desk for {waited}",
                                            due_at=due_at.isoformat()))  # fmt: skip
    team = conn.execute(select(teams).where(teams.c.key == data.get("team"))).mappings().first()
    context = lead_context(app, lead["id"], lead_row_to_clean(lead)) | {"waited": waited}
    notify(conn, app, "lead.desk_overdue", event_id, None, context, now, team_chat=team)
    return 1


def _escalate_all(
    conn: Connection, app: Leadflow, batch: list[_Due], deals_of: Mapping[int, list[Any]], now: datetime
) -> int:
    """Decide every escalation of the batch on one in-memory team state, then write them all."""
    team_keys = sorted({k for e in batch for k in _teams_of(app, e.timer.data)})
    rule_keys = sorted({e.timer.data.get("rule") or FALLBACK for e in batch})
    state = _BatchState.read(conn, team_keys, rule_keys, app.rules.default_timezone)
    writes = _Writes()
    for e in batch:
        _escalate(app, state, writes, e, deals_of.get(e.lead["id"], ()), now)
    writes.send(conn, app, now)
    return len(batch)


def _escalate(
    app: Leadflow, state: _BatchState, writes: _Writes, due: _Due, deals_of_lead: Sequence[Any], now: datetime
) -> None:
    """One escalation, decided on the batch's state and added to its writes."""
    rules, lead, clean, policy, data = app.rules, due.lead, due.clean, due.policy, due.timer.data
    due_at: datetime = due.timer.due_at
    team_key = data["team"]
    team = state.teams.get(team_key)
    current = state.of(lead["manager_id"])
    current_key = current.key if current else data["manager"]
    esc = next_owner(
        clean, rules, state.live.view, now, policy=policy, current_key=current_key, hop=int(data.get("hop", 0)),
        tried=tuple(data.get("tried", ())), rule_key=data.get("rule"), team_key=team_key,
        head_key=team["head_key"] if team else None,
    )  # fmt: skip
    decision = esc.decision
    new_owner = state.live.managers.get(decision.manager_key) if decision.manager_key else None
    values: dict[str, Any] = {"manager_id": decision.manager_id, "sla_hops": esc.hop, "updated_at": now}
    if new_owner is None:
        values.update(status="new", sla_state="exhausted", sla_due_at=None, assigned_at=None)
    elif esc.final:
        values.update(sla_state="exhausted", sla_due_at=None, assigned_at=now)
    else:
        clock = Clock(policy, first_contact_due(policy, now, new_owner.hours))
        values.update(sla_due_at=clock.due_at, assigned_at=now)
        tried = (*data.get("tried", ()), current_key)
        writes.timers.append(timer_row(lead["id"], clock, new_owner, data.get("rule"), now, esc.hop, tried))
    writes.leads.setdefault(tuple(values), []).append({"l_id": lead["id"]} | {f"l_{k}": v for k, v in values.items()})
    budget: Decimal = lead["budget"] or _ZERO
    writes.add_load(lead["manager_id"], -1, budget)
    if decision.manager_id is not None:
        writes.add_load(decision.manager_id, +1, budget)
        # Its open deals go with it (what move_deals does), counted per manager for the whole batch.
        moving = [d.id for d in deals_of_lead if d.manager_id == lead["manager_id"]]
        if moving:
            writes.deals += [{"d_id": d, "d_manager_id": decision.manager_id} for d in moving]
            writes.deal_counts[lead["manager_id"]] = writes.deal_counts.get(lead["manager_id"], 0) - len(moving)
            writes.deal_counts[decision.manager_id] = writes.deal_counts.get(decision.manager_id, 0) + len(moving)
    if decision.pointer is not None:
        writes.pointer(*decision.pointer, decision.credits[1] if decision.credits else None)
    state.moved(lead, decision)
    writes.assignments.append(assignment_row(lead["id"], decision, "escalation", now))
    event_type = "lead.chain_exhausted" if esc.final else "lead.escalated"
    late_ms = int((now - due_at).total_seconds() * 1000)
    writes.events.append(new_event(
        lead["id"], event_type, now, "sla", reason=decision.reason, hop=esc.hop, max_hops=policy.chain.max_hops,
        previous=current_key, manager=decision.manager_key, due_at=due_at.isoformat(), late_ms=late_ms,
    ))  # fmt: skip
    context = lead_context(app, lead["id"], clean) | {
        "manager_name": decision.manager_name, "previous_manager_name": current.name if current else current_key,
        "minutes": int(policy.first_contact.total_seconds() // 60) if not esc.final else None,
        "hop": esc.hop, "max_hops": policy.chain.max_hops, "reason": decision.reason,
        "deadline": format_duration(policy.first_contact),
    }  # fmt: skip
    writes.messages.append((event_type, new_owner, context, team))


def _anything_due(app: Leadflow, now: datetime) -> bool:
    return timer_due(app, now, SLA_TIMERS)


def next_due_at(app: Leadflow) -> datetime | None:
    """The nearest deadline, so an idle worker sleeps exactly until then."""
    return earliest_timer(app, SLA_TIMERS)


def timer_due(app: Leadflow, now: datetime, kinds: Sequence[str]) -> bool:
    """Whether a timer of these kinds is due, read without taking SQLite's write lock."""
    with app.engine.connect().execution_options(**READ_ONLY) as conn:
        query = select(timers.c.id).where(timers.c.kind.in_(kinds), timers.c.due_at <= now).limit(1)
        return conn.execute(query).first() is not None


def earliest_timer(app: Leadflow, kinds: Sequence[str]) -> datetime | None:
    """When the nearest timer of these kinds falls due."""
    with app.engine.connect().execution_options(**READ_ONLY) as conn:
        value: datetime | None = conn.execute(
            select(func.min(timers.c.due_at)).where(timers.c.kind.in_(kinds))
        ).scalar()
    return value


# Breaches. Two index range scans, each in the order it is listed in, so a page reads what it shows and no more;
# the counts read the same indexes. A lead whose clock runs has had no first contact (the contact stops it), so the
# overdue need no look at the lead itself; a chain that ended stays ended after a late contact, so those ask.
_BREACH_COLUMNS = (
    leads.c.id, leads.c.name, leads.c.phone, leads.c.status, leads.c.sla_state, leads.c.sla_due_at, leads.c.sla_hops,
    leads.c.created_at, managers.c.key.label("manager"),
)  # fmt: skip
_EXHAUSTED = (leads.c.sla_state == "exhausted", leads.c.first_contact_at.is_(None))
_OVERDUE = (leads.c.sla_state == "running", leads.c.sla_due_at < bindparam("now"))


def _breach_page(where: tuple[Any, ...], order: Any) -> Any:
    return (
        select(*_BREACH_COLUMNS)
        .outerjoin(managers, managers.c.id == leads.c.manager_id)
        .where(*where)
        .order_by(order, leads.c.id)
        .limit(bindparam("limit"))
        .offset(bindparam("offset"))
    )


_EXHAUSTED_PAGE = _breach_page(_EXHAUSTED, leads.c.created_at)
_OVERDUE_PAGE = _breach_page(_OVERDUE, leads.c.sla_due_at)
_EXHAUSTED_COUNT = select(func.count()).select_from(leads).where(*_EXHAUSTED)
_OVERDUE_COUNT = select(func.count()).select_from(leads).where(*_OVERDUE)


def list_breaches(app: Leadflow, now: datetime, limit: int, offset: int, *, who: Principal) -> dict[str, Any]:
    """Leads nobody has contacted, of those `who` may see: those whose chain ended (oldest first), then those past
    their deadline (the longest past it first). `total` is exact: every such lead, not the page."""
    with app.engine.connect().execution_options(**READ_ONLY) as conn:
        exhausted = int(conn.execute(restrict(_EXHAUSTED_COUNT, who)).scalar_one())
        overdue = int(conn.execute(restrict(_OVERDUE_COUNT, who), {"now": now}).scalar_one())
        rows: list[Any] = []
        if offset < exhausted:
            rows += conn.execute(restrict(_EXHAUSTED_PAGE, who), {"limit": limit, "offset": offset}).all()
        if len(rows) < limit:
            rest = {"now": now, "limit": limit - len(rows), "offset": max(offset - exhausted, 0)}
            rows += conn.execute(restrict(_OVERDUE_PAGE, who), rest).all()
    items = [
        {"id": r.id, "name": r.name, "phone": r.phone, "status": r.status, "sla_state": r.sla_state,
         "sla_due_at": r.sla_due_at, "sla_hops": r.sla_hops, "created_at": r.created_at, "manager": r.manager,
         "kind": "chain_exhausted" if r.sla_state == "exhausted" else "overdue",
         "waiting_seconds": round((now - r.created_at).total_seconds())}
        for r in rows
    ]  # fmt: skip
    return {"items": items, "total": exhausted + overdue, "chain_exhausted": exhausted, "overdue": overdue,
            "limit": limit, "offset": offset}  # fmt: skip
