"""Speed to lead: first-contact clocks, the contacts that stop them, and escalations along the chain.

A clock is a row in `timers`, written in the same transaction as the assignment that starts it. The worker
claims due rows (SKIP LOCKED on PostgreSQL, so several workers never take the same one) and moves the lead in the
same transaction that deletes the timer, so every deadline is acted on exactly once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.engine import Connection, RowMapping

from leadflow.core.errors import Conflict, InvalidInput
from leadflow.core.lead import CleanLead
from leadflow.core.routing import Decision, ManagerState, TeamState
from leadflow.core.rules import RulesFile, SlaPolicy
from leadflow.core.schedule import format_duration
from leadflow.core.sla import BANDS, first_contact_due, next_owner, policy_for, response_band
from leadflow.services.context import Leadflow
from leadflow.services.conversion import move_deals
from leadflow.services.delivery import enqueue_notification
from leadflow.store.db import READ_ONLY
from leadflow.store.events import new_event, record_assignment
from leadflow.store.lead_rows import lead_row_to_clean, lock_lead
from leadflow.store.tables import activities, events, leads, managers, teams, timers
from leadflow.store.team_state import add_load, load_team_state, lock_teams, record_result, save_pointer

FIRST_CONTACT = "first_contact"
DESK = "desk"  # a lead waiting at the quality desk past the desk's own deadline
ROUTE_AT = "route_at"  # a lead that waits for its team to open (out_of_hours: queue)
# What a manager can record, and which of those is a first contact that stops the clock.
OUTCOMES = {"call": ("connected", "no_answer", "busy", "wrong_number"), "message": ("sent",), "meeting": ("set",)}
INSERT_TIMER = timers.insert()
_INSERT_EVENT_ID = events.insert().returning(events.c.id)
STOPS_CLOCK = {("call", "connected"), ("message", "sent"), ("meeting", "set")}


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
    conn.execute(INSERT_TIMER, timer_row(lead_id, clock, owner, rule_key, now, hop, tried))


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
    targets += [("webhook", url) for url in app.notify.webhook_urls]
    for channel, recipient in targets:
        enqueue_notification(conn, event_id=event_id, event_type=event_type, channel=channel, recipient=recipient,
                             language=language, context=context, now=now,
                             overrides=app.rules.templates or None)  # fmt: skip


def insert_event(conn: Connection, row: dict[str, Any]) -> int:
    return int(conn.execute(_INSERT_EVENT_ID, row).scalar_one())


# --- first contact -------------------------------------------------------------------------------------------


def record_contact(
    app: Leadflow, lead_id: int, manager_key: str, kind: str, outcome: str, now: datetime, note: str | None = None
) -> dict[str, Any]:
    """A manager reached (or tried to reach) the client; a real contact by the owner stops the clock."""
    if kind not in OUTCOMES:
        raise InvalidInput.one("kind", f"'{kind}' is not a contact kind: use {', '.join(OUTCOMES)}")
    if outcome not in OUTCOMES[kind]:
        raise InvalidInput.one("outcome", f"a {kind} can end as {', '.join(OUTCOMES[kind])}, not '{outcome}'")
    with app.engine.begin() as conn:
        lead = lock_lead(conn, lead_id)
        who = conn.execute(select(managers.c.id, managers.c.name).where(managers.c.key == manager_key)).first()
        if who is None:
            raise InvalidInput.one("manager", f"manager '{manager_key}' does not exist")
        if lead["manager_id"] != who.id:
            owner = conn.execute(select(managers.c.name).where(managers.c.id == lead["manager_id"])).scalar()
            now_with = f"it is with {owner}" if owner else "it has no manager now"
            raise Conflict(f"{who.name} does not own lead {lead_id} any more: {now_with}")
        conn.execute(activities.insert(), {"lead_id": lead_id, "manager_id": who.id, "kind": kind, "outcome": outcome,
                                           "note": note, "at": now})  # fmt: skip
        stops = (kind, outcome) in STOPS_CLOCK
        first = stops and lead["first_contact_at"] is None
        values: dict[str, Any] = {"updated_at": now}
        result: dict[str, Any] = {"id": lead_id, "first_contact": first, "sla_state": lead["sla_state"]}
        if first:
            waited = now - lead["created_at"]
            values.update(first_contact_at=now, response_seconds=int(waited.total_seconds()),
                          response_band=response_band(lead["created_at"], now))  # fmt: skip
            if lead["sla_state"] == "running":
                values.update(sla_state="met", sla_due_at=None)
                stop_clock(conn, lead_id)
            if lead["status"] in ("new", "assigned") and "contacted" in {s.key for s in app.rules.funnel}:
                values["status"] = "contacted"
            record_result(conn, who.id, first_contact=True, fast=waited <= BANDS[0][0])
            result.update(sla_state=values.get("sla_state", lead["sla_state"]), response_band=values["response_band"],
                          response_seconds=values["response_seconds"])  # fmt: skip
        conn.execute(update(leads).where(leads.c.id == lead_id).values(**values))
        event_type = "lead.contacted" if first else "lead.contact_attempt"
        insert_event(conn, new_event(lead_id, event_type, now, manager_key, kind=kind, outcome=outcome, note=note))
        result["status"] = values.get("status", lead["status"])
        return result


# --- escalation ----------------------------------------------------------------------------------------------

_DUE = select(timers.c.id, timers.c.lead_id, timers.c.kind, timers.c.data, timers.c.due_at).order_by(timers.c.due_at)


_LOCK_LEAD = select(leads).where(leads.c.id == bindparam("id")).with_for_update(skip_locked=True)
_DELETE_TIMER = delete(timers).where(timers.c.id == bindparam("id"))
_TEAM = select(teams).where(teams.c.key == bindparam("key"))


@dataclass
class _BatchState:
    """The team state of one escalation transaction: read once, kept current in memory as leads move.

    Reading it again for every escalation costs more than the decisions; the teams stay locked (PostgreSQL) for
    the whole transaction, so nobody else changes it meanwhile.
    """

    default_tz: str
    managers: dict[str, ManagerState] = field(default_factory=dict)
    teams: dict[str, RowMapping | None] = field(default_factory=dict)
    pointers: dict[str, str | None] = field(default_factory=dict)
    credits: dict[str, Mapping[str, float]] = field(default_factory=dict)
    rules_read: set[str] = field(default_factory=set)

    def load(self, conn: Connection, team_keys: list[str], rule_key: str) -> TeamState:
        missing = [t for t in team_keys if t not in self.teams]
        if missing or rule_key not in self.rules_read:
            loaded = load_team_state(conn, missing, [rule_key], self.default_tz)
            self.managers.update(loaded.managers)
            self.pointers.update(loaded.rr_pointers)
            self.credits.update(loaded.credits)
            self.rules_read.add(rule_key)
            for key in missing:
                self.teams[key] = conn.execute(_TEAM, {"key": key}).mappings().first()
        ordered = dict(sorted(self.managers.items(), key=lambda kv: kv[1].id))
        return TeamState(ordered, self.pointers, self.credits)

    def moved(self, lead: RowMapping, decision: Decision) -> None:
        value = lead["budget"] or Decimal(0)
        for m in self.managers.values():
            if m.id == lead["manager_id"]:
                self.managers[m.key] = replace(m, open_leads=m.open_leads - 1, open_value=m.open_value - value)
                break
        if decision.manager_key in self.managers:
            m = self.managers[decision.manager_key]
            self.managers[m.key] = replace(m, open_leads=m.open_leads + 1, open_value=m.open_value + value)
        if decision.pointer is not None:
            self.pointers[decision.pointer[0]] = decision.pointer[1]
        if decision.credits is not None:
            self.credits[decision.credits[0]] = decision.credits[1]


def _teams_of(app: Leadflow, data: dict[str, Any]) -> list[str]:
    rule = next((r for r in app.rules.routing.rules if r.key == data.get("rule")), None)
    return sorted({data["team"], *([rule.team] if rule else [])})


def escalate_due(app: Leadflow, now: datetime, limit: int = 100) -> int:
    """Act on up to `limit` passed deadlines in one transaction; returns how many leads moved."""
    moved = 0
    with app.engine.begin() as conn:
        due = conn.execute(_DUE.where(timers.c.due_at <= now).limit(limit).with_for_update(skip_locked=True)).all()
        # Lock every team this batch may touch at once, in one order, so two workers never wait on each other
        # in a circle.
        lock_teams(
            conn, sorted({t for timer in due if timer.kind == FIRST_CONTACT for t in _teams_of(app, timer.data)})
        )
        batch = _BatchState(app.rules.default_timezone)
        for timer in due:
            lead = conn.execute(_LOCK_LEAD, {"id": timer.lead_id}).mappings().first()
            if lead is None:
                continue  # someone is recording a contact on it right now; the next round decides
            conn.execute(_DELETE_TIMER, {"id": timer.id})
            if timer.kind == ROUTE_AT:
                moved += _route_waiting(conn, app, lead, now)
            elif timer.kind == DESK:
                moved += _desk_overdue(conn, app, lead, timer.data, timer.due_at, now)
            elif lead["sla_state"] == "running" and lead["manager_id"] is not None:
                _escalate(conn, app, batch, lead, timer.data, timer.due_at, now)
                moved += 1
            # anything else is a stale clock: the lead was contacted, closed or moved since
    return moved


def _route_waiting(conn: Connection, app: Leadflow, lead: RowMapping, now: datetime) -> int:
    """A lead that waited for its team to open: route it now, as if it had just arrived."""
    from leadflow.services.intake import assign_existing  # intake builds on this module

    if lead["manager_id"] is not None or lead["status"] != "new" or lead["queue"] is not None:
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
    event_id = insert_event(conn, new_event(lead["id"], "lead.desk_overdue", now, "sla",
                                            reason=f"waiting at the quality desk for {waited}",
                                            due_at=due_at.isoformat()))  # fmt: skip
    team = conn.execute(select(teams).where(teams.c.key == data.get("team"))).mappings().first()
    context = lead_context(app, lead["id"], lead_row_to_clean(lead)) | {"waited": waited}
    notify(conn, app, "lead.desk_overdue", event_id, None, context, now, team_chat=team)
    return 1


def _escalate(
    conn: Connection,
    app: Leadflow,
    batch: _BatchState,
    lead: RowMapping,
    data: dict[str, Any],
    due_at: datetime,
    now: datetime,
) -> None:
    rules = app.rules
    clean = lead_row_to_clean(lead)
    team_key = data["team"]
    state = batch.load(conn, _teams_of(app, data), data.get("rule") or "fallback")
    team = batch.teams.get(team_key)
    current = next((m for m in state.managers.values() if m.id == lead["manager_id"]), None)
    current_key = current.key if current else data["manager"]
    policy = policy_for(rules, clean, data.get("rule"), team_key)
    esc = next_owner(
        clean, rules, state, now, policy=policy, current_key=current_key, hop=int(data.get("hop", 0)),
        tried=tuple(data.get("tried", ())), rule_key=data.get("rule"), team_key=team_key,
        head_key=team["head_key"] if team else None,
    )  # fmt: skip
    decision = esc.decision
    new_owner = state.managers.get(decision.manager_key) if decision.manager_key else None
    values: dict[str, Any] = {"manager_id": decision.manager_id, "sla_hops": esc.hop, "updated_at": now}
    if new_owner is None:
        values.update(status="new", sla_state="exhausted", sla_due_at=None, assigned_at=None)
    elif esc.final:
        values.update(sla_state="exhausted", sla_due_at=None, assigned_at=now)
    else:
        clock = Clock(policy, first_contact_due(policy, now, new_owner.hours))
        values.update(sla_due_at=clock.due_at, assigned_at=now)
        write_timer(
            conn, lead["id"], clock, new_owner, data.get("rule"), now, esc.hop, (*data.get("tried", ()), current_key)
        )
    conn.execute(update(leads).where(leads.c.id == lead["id"]).values(**values))
    add_load(conn, lead["manager_id"], -1, lead["budget"])
    if decision.manager_id is not None:
        add_load(conn, decision.manager_id, +1, lead["budget"])
        move_deals(conn, lead["id"], lead["manager_id"], decision.manager_id)  # its deal goes with it
    if decision.pointer is not None:
        save_pointer(conn, *decision.pointer, decision.credits[1] if decision.credits else None)
    batch.moved(lead, decision)
    record_assignment(conn, lead["id"], decision, "escalation", now)
    event_type = "lead.chain_exhausted" if esc.final else "lead.escalated"
    late_ms = int((now - due_at).total_seconds() * 1000)
    event_id = insert_event(conn, new_event(
        lead["id"], event_type, now, "sla", reason=decision.reason, hop=esc.hop, max_hops=policy.chain.max_hops,
        previous=current_key, manager=decision.manager_key, due_at=due_at.isoformat(), late_ms=late_ms,
    ))  # fmt: skip
    context = lead_context(app, lead["id"], clean) | {
        "manager_name": decision.manager_name, "previous_manager_name": current.name if current else current_key,
        "minutes": int(policy.first_contact.total_seconds() // 60) if not esc.final else None,
        "hop": esc.hop, "max_hops": policy.chain.max_hops, "reason": decision.reason,
        "deadline": format_duration(policy.first_contact),
    }  # fmt: skip
    notify(conn, app, event_type, event_id, new_owner, context, now, team_chat=team)


def next_due_at(app: Leadflow) -> datetime | None:
    """The nearest deadline, so an idle worker sleeps exactly until then."""
    with app.engine.connect().execution_options(**READ_ONLY) as conn:
        value: datetime | None = conn.execute(select(func.min(timers.c.due_at))).scalar()
    return value
