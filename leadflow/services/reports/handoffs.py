"""Hand-off losses: the leads of the period that slipped between hands. They waited at the quality desk past its
deadline, were escalated (how many hops, to whom), ended a chain with nobody having reached the client, had no
owner for longer than the rules allow, or were first reached by someone other than their first owner.
docs/reports.md (Hand-off losses) defines each figure.

Each loss is a condition on a lead of the period, worked out in the database from the lead's row, its assignments
and the two event types the partial index ix_events_handoff_type_at holds; one statement counts them all and picks
the leads to act on, so the cost follows the period's leads, not the whole history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, FromClause, and_, case, func, or_, select, text
from sqlalchemy.engine import Connection

from leadflow.core.stats import share
from leadflow.services.context import Leadflow
from leadflow.services.reports.query import Window
from leadflow.services.reports.shape import N_, Chart, Col, Report, Table, joined, note
from leadflow.store.tables import HANDOFF_WHERE, assignments, events, leads, managers

LIST_SIZE = 100  # the leads to act on: at most this many
HOPS = ("1", "2", "3+")


@dataclass(frozen=True, slots=True)
class Loss:
    key: str
    label: str


def losses(unowned_minutes: int) -> tuple[Loss, ...]:
    return (
        Loss("desk_overdue", N_("Waited at the desk past its deadline")),
        Loss("escalated", N_("Escalated to another manager")),
        Loss("chain_uncontacted", N_("Chain ended with no contact")),
        Loss("unowned", note("No owner for over {minutes} min", minutes=unowned_minutes)),
        Loss("other_first_contact", N_("First contact by another manager")),
    )


def build(conn: Connection, app: Leadflow, window: Window, now: datetime) -> Report:
    minutes = app.rules.reports.unowned_minutes
    kinds = losses(minutes)
    cohort = int(
        conn.execute(select(func.count()).where(*window.created_in(), leads.c.status != "merged")).scalar_one()
    )
    counts, listed = _losses(conn, app, window, now, timedelta(minutes=minutes), kinds)
    troubled = counts["with_a_loss"]
    summary: dict[str, Any] = {"leads": cohort, "with_a_loss": troubled, "with_a_loss_share": share(troubled, cohort)}
    for k in kinds:
        summary[k.key] = counts[k.key]
        summary[f"{k.key}_share"] = share(counts[k.key], cohort)
    summary["unowned_minutes"] = minutes
    escalated = counts["escalated"]
    tables = [
        Table("losses", N_("Losses at hand-offs"),
              [Col("loss", N_("Loss"), "text"), Col("leads", N_("Leads")),
               Col("share", N_("Share of leads"), "percent")],
              [{"loss": k.label, "leads": counts[k.key], "share": share(counts[k.key], cohort), "_key": k.key}
               for k in kinds],
              note=N_("Leads that arrived in the period; one lead can have several losses.")),
        Table("escalation_hops", N_("Escalated leads by hops"),
              [Col("hops", N_("Hops"), "text"), Col("leads", N_("Leads")),
               Col("share", N_("Share of escalated"), "percent")],
              [{"hops": h, "leads": counts[f"hops_{h}"], "share": share(counts[f"hops_{h}"], escalated)} for h in HOPS],
              note=N_("A hop is one escalation: the lead moved on because nobody reached the client in time.")),
        _escalated_to(conn, window),
        Table("to_act", N_("Leads to act on"),
              [Col("id", N_("Lead")), Col("created_at", N_("Arrived"), "datetime"),
               Col("problems", N_("Losses"), "text"), Col("owner", N_("Owner now"), "text"),
               Col("status", N_("Status"), "text")], listed,
              note=note("Up to {count} leads with a loss: open ones first, newest first.", count=LIST_SIZE)),
    ]  # fmt: skip
    chart = Chart("loss_shares", N_("Share of leads lost at each hand-off"), "bar", [k.label for k in kinds],
                  [{"label": N_("Share of leads, %"),
                    "data": [_percent(share(counts[k.key], cohort)) for k in kinds]}])  # fmt: skip
    notes: list[str] = [note("Leads are counted by when they arrived, in {zone} days; requests merged into an open "
                             "lead are left out.", zone=window.zone.key)]  # fmt: skip
    if troubled > LIST_SIZE:
        notes.append(note("The list shows {shown} of the {count} leads with a loss: open ones first, newest first.",
                          shown=LIST_SIZE, count=troubled))  # fmt: skip
    return Report(name="handoffs", title=N_("Hand-off losses"), window=window.echo(), generated_at=now,
                  summary=summary, tables=tables, charts=[chart], notes=notes)  # fmt: skip


# -- The losses of each lead ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Cohort:
    """The period's leads joined with what the losses are read from, and each loss as a condition on them."""

    source: FromClause
    lead: Any  # the columns of the leads (id, created_at, status, manager_id, hops)
    losses: dict[str, ColumnElement[bool]]
    is_open: ColumnElement[bool]


def _cohort(conn: Connection, app: Leadflow, window: Window, now: datetime, unowned: timedelta) -> _Cohort:
    since = window.start  # nothing happens to a lead before it arrives: every row about it is at or after this
    # The desk's overdue leads and the ended chains, read by type and time from the partial index that holds only
    # them (the condition is the index's own, word for word, so SQLite sees that the index applies).
    handoff = (
        select(events.c.lead_id,
               func.max(case((events.c.type == "lead.desk_overdue", 1))).label("desk_overdue"),
               func.min(case((events.c.type == "lead.chain_exhausted", events.c.at))).label("chain_at"))
        .where(text(HANDOFF_WHERE), events.c.at >= since)
        .group_by(events.c.lead_id)
        .subquery("handoff")
    )  # fmt: skip
    joined, hops, first_id = _with_assignments(conn, window)
    first = assignments.alias("first")  # the first assignment to a manager
    lead = select(leads.c.id, leads.c.created_at, leads.c.status, leads.c.manager_id, leads.c.first_contact_at,
                  leads.c.first_contact_by, hops.label("hops"), first_id.label("first_id")).select_from(joined)  # fmt: skip
    # Worked out once per lead, then read: a query planner that folded it into the statement would repeat the
    # lookups of each lead's assignments wherever a loss names them.
    cohort = lead.where(*window.created_in(), leads.c.status != "merged").cte("cohort").prefix_with("MATERIALIZED")
    c = cohort.c
    is_open = c.status.in_(sorted(app.rules.open_statuses))
    found: dict[str, ColumnElement[bool]] = {
        "desk_overdue": handoff.c.desk_overdue.is_not(None),
        "escalated": c.hops > 0,
        "chain_uncontacted": and_(handoff.c.chain_at.is_not(None),
                                  or_(c.first_contact_at.is_(None), c.first_contact_at >= handoff.c.chain_at)),
        # Given to a manager more than N minutes after arriving; or, open and never given to one, older than that.
        "unowned": or_(and_(first.c.id.is_not(None), _longer_than(conn, first.c.at, c.created_at, unowned)),
                       and_(first.c.id.is_(None), is_open, c.created_at < now - unowned)),
        "other_first_contact": and_(c.first_contact_by.is_not(None), first.c.manager_id.is_not(None),
                                    c.first_contact_by != first.c.manager_id),
    }  # fmt: skip
    # (first.at >= since holds anyway; it lets PostgreSQL read the period's assignments by time, not all of them)
    first_owner = and_(first.c.id == c.first_id, first.c.at >= since)
    source = cohort.outerjoin(handoff, handoff.c.lead_id == c.id).outerjoin(first, first_owner)
    return _Cohort(source, c, found, is_open)


def _with_assignments(conn: Connection, window: Window) -> tuple[FromClause, ColumnElement[Any], ColumnElement[Any]]:
    """`leads` with each lead's escalation count (hops) and the id of its first assignment to a manager (the
    lowest: assignments are only ever appended).

    PostgreSQL groups the period's assignments, read by time (the covering index that starts with `at`), in a hash. SQLite looks each lead
    of the period up by lead (ix_assignments_lead_id_kind_manager_id, which holds all it needs) in a correlated
    subquery: given a grouped one to join, its planner reads every assignment there is."""
    escalations = case((assignments.c.kind == "escalation", 1))
    to_manager = case((assignments.c.manager_id.is_not(None), assignments.c.id))
    if conn.dialect.name == "sqlite":
        mine = assignments.c.lead_id == leads.c.id
        return (leads, select(func.count(escalations)).where(mine).scalar_subquery(),
                select(func.min(to_manager)).where(mine).scalar_subquery())  # fmt: skip
    per_lead = (
        select(assignments.c.lead_id, func.count(escalations).label("hops"), func.min(to_manager).label("first_id"))
        .where(assignments.c.at >= window.start)
        .group_by(assignments.c.lead_id)
        .subquery("per_lead")
    )
    joined = leads.outerjoin(per_lead, per_lead.c.lead_id == leads.c.id)
    return joined, func.coalesce(per_lead.c.hops, 0), per_lead.c.first_id


def _longer_than(conn: Connection, later: Any, earlier: Any, limit: timedelta) -> ColumnElement[bool]:
    """later - earlier > limit. SQLite keeps times as text and reads them to the millisecond."""
    if conn.dialect.name == "sqlite":
        millis = func.round((func.julianday(later) - func.julianday(earlier)) * 86_400_000)
        return millis > int(limit.total_seconds() * 1000)
    return later - earlier > limit


def _losses(
    conn: Connection, app: Leadflow, window: Window, now: datetime, unowned: timedelta, kinds: tuple[Loss, ...]
) -> tuple[dict[str, int], list[dict[str, Any]]]:
    """How many leads have each loss (and any), the escalated ones by hops, and up to LIST_SIZE of them to act on.

    One statement reads the period once: it keeps the leads with a loss, counts them over all of those rows (window
    sums, taken before the limit) and returns the first LIST_SIZE, open ones first, newest first."""
    co = _cohort(conn, app, window, now, unowned)
    lead = co.lead
    hops = {"1": lead.hops == 1, "2": lead.hops == 2, "3+": lead.hops >= 3}
    flag = {key: case((cond, 1), else_=0) for key, cond in co.losses.items()}
    owner = managers.alias("owner")
    rows = conn.execute(
        select(lead.id, lead.created_at, lead.status, owner.c.key.label("owner_key"), owner.c.name.label("owner"),
               case((co.is_open, 1), else_=0).label("open"),
               *(value.label(key) for key, value in flag.items()),
               func.count().over().label("with_a_loss"),
               *(func.sum(value).over().label(f"all_{key}") for key, value in flag.items()),
               *(func.sum(case((cond, 1), else_=0)).over().label(f"hops_{h}") for h, cond in hops.items()))
        .select_from(co.source.outerjoin(owner, owner.c.id == lead.manager_id))
        .where(or_(*co.losses.values()))
        .order_by(case((co.is_open, 0), else_=1), lead.created_at.desc(), lead.id.desc())
        .limit(LIST_SIZE)
    ).mappings().all()  # fmt: skip
    keys = ["with_a_loss", *(f"all_{k.key}" for k in kinds), *(f"hops_{h}" for h in HOPS)]
    totals = {k.removeprefix("all_"): int(rows[0][k]) if rows else 0 for k in keys}
    statuses = {s.key: s.label or s.key for s in app.rules.funnel}
    listed = []
    for r in rows:
        found = [k for k in kinds if r[k.key]]
        listed.append({"id": r["id"], "created_at": r["created_at"], "problems": joined([k.label for k in found]),
                       "owner": r["owner"], "status": statuses.get(r["status"], r["status"]),
                       "_problems": [k.key for k in found], "_owner": r["owner_key"], "_status": r["status"],
                       "_open": bool(r["open"])})  # fmt: skip
    return totals, listed


def _escalated_to(conn: Connection, window: Window) -> Table:
    """Every escalation of a lead of the period, by the manager it went to."""
    rows = conn.execute(
        select(assignments.c.manager_id, managers.c.key, managers.c.name, func.count().label("escalations"),
               func.count(func.distinct(assignments.c.lead_id)).label("leads"))
        .select_from(leads.join(assignments, assignments.c.lead_id == leads.c.id)
                     .outerjoin(managers, managers.c.id == assignments.c.manager_id))
        .where(*window.created_in(), leads.c.status != "merged", assignments.c.kind == "escalation",
               assignments.c.at >= window.start)
        .group_by(assignments.c.manager_id, managers.c.key, managers.c.name)
    ).all()  # fmt: skip
    found = [{"manager": r.name if r.manager_id is not None else N_("No one (left unassigned)"),
              "escalations": int(r.escalations), "leads": int(r.leads), "_manager": r.key} for r in rows]  # fmt: skip
    found.sort(key=lambda r: (-r["escalations"], r["manager"].lower()))
    return Table("escalated_to", N_("Escalations by who received them"),
                 [Col("manager", N_("Manager"), "text"), Col("escalations", N_("Escalations")),
                  Col("leads", N_("Leads"))],
                 found, note=N_("Each escalation of a lead of the period, by the manager it went to."))  # fmt: skip


def _percent(value: float | None) -> float | None:
    return None if value is None else round(value * 100, 1)
