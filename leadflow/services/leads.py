"""Read leads with their history, move them through the funnel, restore junk."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, func, select, update
from sqlalchemy.engine import Connection, RowMapping

from leadflow.core.errors import Conflict, FieldProblem, InvalidInput, NotFound
from leadflow.core.policy import Action, Principal
from leadflow.services.access import guard_lead, restrict
from leadflow.services.context import Leadflow
from leadflow.services.intake import assign_existing, desk_team, queue_at_desk
from leadflow.services.sla import stop_clock
from leadflow.store.db import READ_ONLY
from leadflow.store.events import append_events, new_event
from leadflow.store.lead_rows import lead_row_to_clean, lock_lead
from leadflow.store.tables import assignments, events, leads, managers
from leadflow.store.team_state import add_load, record_result

_LEAD_VIEW = select(leads, managers.c.key.label("manager_key"), managers.c.name.label("manager_name")).outerjoin(
    managers, managers.c.id == leads.c.manager_id
)


@dataclass(frozen=True, slots=True)
class LeadFilter:
    status: str | None = None
    manager: str | None = None  # manager key; "none" for the unassigned queue
    channel: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None


def get_lead(app: Leadflow, lead_id: int, *, who: Principal) -> dict[str, Any]:
    """The lead, who owns it, every assignment with its reason and the whole event history."""
    with app.engine.connect().execution_options(**READ_ONLY) as conn:
        guard_lead(conn, who, lead_id, Action.LEAD_READ)
        row = conn.execute(_LEAD_VIEW.where(leads.c.id == lead_id)).mappings().first()
        if row is None:
            raise NotFound(f"lead {lead_id} does not exist")
        history = conn.execute(select(events).where(events.c.lead_id == lead_id).order_by(events.c.id)).mappings()
        decisions = conn.execute(
            select(assignments, managers.c.key.label("manager_key"), managers.c.name.label("manager_name"))
            .outerjoin(managers, managers.c.id == assignments.c.manager_id)
            .where(assignments.c.lead_id == lead_id)
            .order_by(assignments.c.id)
        ).mappings()
        return {**dict(row), "events": [dict(e) for e in history], "assignments": [dict(a) for a in decisions]}


def _filtered(query: Select[Any], f: LeadFilter) -> Select[Any]:
    if f.status:
        query = query.where(leads.c.status == f.status)
    if f.manager == "none":
        query = query.where(leads.c.manager_id.is_(None))
    elif f.manager:
        query = query.where(managers.c.key == f.manager)
    if f.channel:
        query = query.where(leads.c.channel == f.channel)
    if f.created_from:
        query = query.where(leads.c.created_at >= f.created_from)
    if f.created_to:
        query = query.where(leads.c.created_at < f.created_to)
    return query


# Statuses a lead can have that are not steps of the funnel: a repeat request folded into the client's open lead.
OUTSIDE_FUNNEL = ("merged",)


def check_filter(app: Leadflow, f: LeadFilter) -> None:
    """A filter that can never match is a mistake to say, not an empty page to show."""
    funnel = [s.key for s in app.rules.funnel]
    statuses = funnel + [s for s in OUTSIDE_FUNNEL if s not in funnel]
    problems = []
    if f.status is not None and f.status not in statuses:
        problems.append(FieldProblem("status", f"'{f.status}' is not a status: use one of {', '.join(statuses)}"))
    for name, value in (("created_from", f.created_from), ("created_to", f.created_to)):
        if value is not None and value.tzinfo is None:
            problems.append(FieldProblem(name, "give a time zone, e.g. 2026-11-23T10:00:00Z or +02:00"))
    if problems:
        raise InvalidInput(problems)


def list_leads(
    app: Leadflow, f: LeadFilter, limit: int, offset: int, *, who: Principal
) -> tuple[list[dict[str, Any]], int]:
    """Newest first, of the leads `who` may see; the total counts every one of them that matches the filter."""
    check_filter(app, f)
    with app.engine.connect().execution_options(**READ_ONLY) as conn:
        page = restrict(_filtered(_LEAD_VIEW, f), who).order_by(leads.c.id.desc()).limit(limit).offset(offset)
        rows = conn.execute(page)
        # The join to managers only when the filter names a manager: counting through it read every lead twice.
        counted = (
            leads.join(managers, managers.c.id == leads.c.manager_id) if f.manager not in (None, "none") else leads
        )
        total = conn.execute(restrict(_filtered(select(func.count()).select_from(counted), f), who)).scalar_one()
        return [dict(r) for r in rows.mappings()], total


def restore_lead(app: Leadflow, lead_id: int, now: datetime, *, who: Principal) -> dict[str, Any]:
    """Bring a junk lead back: status new, and on as if it had just arrived (its team's quality desk, or routed)."""
    with app.engine.begin() as conn:
        guard_lead(conn, who, lead_id, Action.LEAD_WORK)
        row = lock_lead(conn, lead_id)
        if row["status"] != "junk":
            raise Conflict(f"lead {lead_id} is '{row['status']}', not junk: only junk can be restored")
        restored = new_event(lead_id, "lead.restored", now, who, was=row["junk_reason"])
        desk = desk_team(lead_row_to_clean(row), app.rules)
        if desk is not None:
            conn.execute(update(leads).where(leads.c.id == lead_id).values(status="new", queue="desk", updated_at=now))
            queued = queue_at_desk(conn, lead_id, desk, now)
            append_events(conn, [restored, queued])
            return {"id": lead_id, "status": "new", "queue": "desk", "reason": queued["data"]["reason"]}
        append_events(conn, [restored])
        decision = assign_existing(conn, app, row, now, kind="restore")
        return {"id": lead_id, "status": "assigned" if decision.assigned else "new", "reason": decision.reason}


@dataclass(frozen=True, slots=True)
class Sale:
    """What a won lead brought, as the manager recorded it."""

    amount: Decimal | None = None
    units: int | None = None
    margin: Decimal | None = None

    def problems(self) -> list[FieldProblem]:
        found = []
        for name, value in (("amount", self.amount), ("units", self.units), ("margin", self.margin)):
            if value is not None and value < 0:
                found.append(FieldProblem(name, f"{name} cannot be negative"))
        if self.amount is not None and self.margin is not None and self.margin > self.amount:
            found.append(FieldProblem("margin", "the margin cannot be more than the amount"))
        return found


def set_status(
    app: Leadflow, lead_id: int, status: str, now: datetime, *, who: Principal, reason: str | None = None,
    sale: Sale | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Move a lead to another funnel status; a manager's load follows open/closed. A lead closed as won keeps what
    it brought (`sale`); one closed as lost keeps why (`reason`)."""
    statuses = {s.key: s for s in app.rules.funnel}
    if status not in statuses:
        raise InvalidInput.one("status", f"'{status}' is not in the funnel ({', '.join(statuses)})")
    if status == "junk" and not reason:
        raise InvalidInput.one("reason", "say why the lead is junk, so it can be judged and restored later")
    if sale is not None:
        if statuses[status].outcome != "won":
            raise InvalidInput.one("amount", f"'{status}' does not close a lead as won: a sale goes with a won status")
        if sale.problems():
            raise InvalidInput(sale.problems())
    with app.engine.begin() as conn:
        guard_lead(conn, who, lead_id, Action.LEAD_WORK)
        return set_status_in(conn, app, lock_lead(conn, lead_id), status, now, who=who, reason=reason, sale=sale)


def set_status_in(
    conn: Connection, app: Leadflow, row: RowMapping, status: str, now: datetime, *, who: Principal,
    reason: str | None = None, sale: Sale | None = None,
) -> dict[str, Any]:  # fmt: skip
    """set_status() on a locked lead row, in the caller's transaction (an automation changes a status with the
    rest of what it does)."""
    statuses = {s.key: s for s in app.rules.funnel}
    lead_id = row["id"]
    old = row["status"]
    if old == status:
        return {"id": lead_id, "status": status}
    was_open = old in app.rules.open_statuses
    now_open = status in app.rules.open_statuses
    if row["manager_id"] is not None and was_open != now_open:
        add_load(conn, row["manager_id"], +1 if now_open else -1, row["budget"])
    outcome = statuses[status].outcome
    if row["manager_id"] is not None and outcome is not None and statuses[old].outcome is None:
        record_result(conn, row["manager_id"], closed=True, won=outcome == "won")
    values: dict[str, Any] = {"status": status, "updated_at": now}
    if status == "junk":
        values["junk_reason"] = reason
    if outcome == "lost":
        values["lost_reason"] = reason
    if sale is not None:
        values.update(won_amount=sale.amount, won_units=sale.units, won_margin=sale.margin)
    if not now_open and row["sla_state"] == "running":
        # Closed before anyone made contact: the clock stops, and reports see why.
        stop_clock(conn, lead_id)
        values.update(sla_state="stopped", sla_due_at=None)
    conn.execute(update(leads).where(leads.c.id == lead_id).values(**values))
    sold: dict[str, Any] = {} if sale is None else {"amount": _number(sale.amount), "units": sale.units,
                                    "margin": _number(sale.margin)}  # fmt: skip
    change = new_event(lead_id, "lead.status_changed", now, who, old=old, new=status, reason=reason, **sold)
    append_events(conn, [change])
    return {"id": lead_id, "status": status}


def _number(value: Decimal | None) -> str | None:
    return None if value is None else str(value)
