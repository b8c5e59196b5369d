"""Plan and forecast: deals planned against deals won per local day, and the month-end forecast with its range.
Every figure is defined in docs/reports.md (Plan and forecast).

A deal is a lead entering a won-outcome status from one that is not (moving between two won statuses is the same
deal), counted on the local day it entered, once: a lead won, reopened and won again counts where it was last won,
and one reopened since (now in a status that is not won) not at all. The database counts and sums: the deals per
quarter hour (Python places each quarter on a local day), the pipeline and the stage entries per status.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Float, Integer, and_, case, cast, exists, func, or_, select
from sqlalchemy.engine import Connection

from leadflow.core.stats import Z80, share
from leadflow.services.context import Leadflow
from leadflow.services.leads import OUTSIDE_FUNNEL
from leadflow.services.reports.plans import PlanInForce, days_in_month, month_of, plans_in_force
from leadflow.services.reports.query import Window
from leadflow.services.reports.shape import CENT, N_, Chart, Col, Note, Report, Table, named_status, note
from leadflow.store.tables import lead_stages, leads, managers, teams

HISTORY_DAYS = 90  # stage probabilities, the conversion and the average check look this far back from now
RUN_RATE_DAYS = 28  # new leads a day: over the last four weeks (every weekday counted alike)
QUARTER = 900  # seconds: the database counts deals by the quarter hour, Python places each quarter on a local day

_later = lead_stages.alias("later")


@dataclass(frozen=True, slots=True)
class Expected:
    """An expected number of deals and of revenue, each with its variance."""

    deals: float = 0.0
    deals_var: float = 0.0
    revenue: float = 0.0
    revenue_var: float = 0.0

    def __add__(self, other: Expected) -> Expected:
        return Expected(self.deals + other.deals, self.deals_var + other.deals_var, self.revenue + other.revenue,
                        self.revenue_var + other.revenue_var)  # fmt: skip


@dataclass(frozen=True, slots=True)
class OpenGroup:
    """The pipeline's leads in one open status, summed by the database: with their own win probability p (and
    budget b) or without, so that sum p v and sum p(1-p) v^2 can be had for any stage probability and check."""

    status: str
    leads: int = 0
    with_p: int = 0  # leads with a win probability of their own
    p_b: float = 0.0  # sum p*b over leads with both
    pq_b2: float = 0.0  # sum p(1-p)b^2 over leads with both
    p: float = 0.0  # sum p over leads with a probability
    pq: float = 0.0  # sum p(1-p) over leads with a probability
    p_no_b: float = 0.0  # sum p over leads with a probability and no budget
    pq_no_b: float = 0.0
    b_no_p: float = 0.0  # sum b over leads with a budget and no probability
    b2_no_p: float = 0.0
    neither: int = 0  # leads with neither


def expected_open(group: OpenGroup, stage_p: float | None, check: float | None) -> Expected:
    """What one status's open leads are expected to bring: each lead wins with its own probability, else the
    stage's; each is worth its budget, else the average check (unknown: 0). Variances of independent Bernoulli
    trials: p(1-p) a deal, p(1-p)v^2 in revenue."""
    q = stage_p or 0.0
    c = check or 0.0
    without_p = group.leads - group.with_p
    deals = group.p + q * without_p
    deals_var = group.pq + q * (1 - q) * without_p
    revenue = group.p_b + c * group.p_no_b + q * group.b_no_p + q * c * group.neither
    revenue_var = group.pq_b2 + c * c * group.pq_no_b + q * (1 - q) * (group.b2_no_p + c * c * group.neither)
    return Expected(deals, deals_var, revenue, revenue_var)


def expected_new(per_day: float, days_left: float, conversion: float | None, check: float | None) -> Expected:
    """Leads still to arrive this month: per_day x days_left of them, each won at `conversion`, worth the average
    check. A Poisson count of deals: its variance is its mean (v^2 times it in revenue)."""
    deals = per_day * days_left * (conversion or 0.0)
    c = check or 0.0
    return Expected(deals, deals, deals * c, deals * c * c)


def spread(point: float, variance: float, floor: float) -> tuple[float, float]:
    """The 10th and 90th percentiles of a normal around `point`; never below `floor` (what is already won)."""
    half = Z80 * math.sqrt(max(variance, 0.0))
    return max(point - half, floor), point + half


DAILY = [
    Col("day", N_("Day"), "date"),
    Col("planned", N_("Planned deals"), "number"),
    Col("actual", N_("Deals won")),
    Col("revenue", N_("Revenue"), "money"),
    Col("planned_total", N_("Planned so far"), "number"),
    Col("actual_total", N_("Won so far")),
    Col("gap", N_("Gap"), "number"),
]
MONTH = [Col("part", N_("Part"), "text"), Col("deals", N_("Deals"), "number"), Col("revenue", N_("Revenue"), "money")]
PIPELINE = [
    Col("status", N_("Status"), "text"),
    Col("leads", N_("Open leads")),
    Col("with_probability", N_("With own probability")),
    Col("entered", note("Entered in {days} days", days=HISTORY_DAYS)),
    Col("won", N_("By leads won now")),
    Col("stage_probability", N_("Stage probability"), "percent"),
    Col("expected_deals", N_("Expected deals"), "number"),
    Col("expected_revenue", N_("Expected revenue"), "money"),
]
PLANS = [
    Col("month", N_("Month"), "text"),
    Col("scope", N_("Plan of"), "text"),
    Col("name", N_("Name"), "text"),
    Col("deals_per_day", N_("Deals a day"), "number"),
    Col("revenue_per_month", N_("Revenue a month"), "money"),
    Col("source", N_("Set in"), "text"),
]
# Where a plan in force was set: the rules file, or by someone through the API or the desk.
SOURCES = {"rules": N_("rules"), "set": N_("set")}


def build(conn: Connection, app: Leadflow, window: Window, now: datetime) -> Report:
    won = tuple(s.key for s in app.rules.funnel if s.outcome == "won")
    notes: list[str] = []
    if not won:
        notes.append(N_("The funnel has no won status: there are no deals to count or forecast."))
    scopes = _plan_scopes(conn, window)
    first_of_month = window.last_day.replace(day=1)
    months = sorted({month_of(d) for d in window.days} | {month_of(first_of_month)})
    plans = {m: plans_in_force(conn, app.rules, m) for m in months}
    planned_a_day = {m: _sum(plans[m], scopes, "deals_per_day") or Decimal(0) for m in months}
    for m in months:
        missing = [s for s in scopes if plans[m].get(s) is None or plans[m][s].deals_per_day is None]
        if missing:
            notes.append(note("No plan of deals for {scopes} in {month}: planned counts them as 0.",
                              scopes=", ".join(missing), month=m))  # fmt: skip

    # Every deal a figure needs (the period's, the month's so far, the last 90 days'), counted once.
    month_start = datetime.combine(first_of_month, time(0), window.zone)
    month_end = datetime.combine(first_of_month + timedelta(days=days_in_month(month_of(first_of_month))), time(0),
                                 window.zone)  # fmt: skip
    back = now - timedelta(days=HISTORY_DAYS)
    spans = [(window.start, window.end), (month_start, min(max(now, month_start), month_end)), (back, now)]
    deals = _Deals.count(conn, window, won, spans, back, now)

    # Planned against actual, day by day.
    by_day: Counter[date] = Counter()
    revenue_by_day: dict[date, Decimal] = {}
    for at, n, amount in deals.quarters(window.start, window.end):
        day = window.local_day(at)
        by_day[day] += n
        revenue_by_day[day] = revenue_by_day.get(day, Decimal(0)) + amount
    rows: list[dict[str, Any]] = []
    planned_total, actual_total = Decimal(0), 0
    for day in window.days:
        planned = planned_a_day[month_of(day)]
        planned_total += planned
        actual_total += by_day[day]
        rows.append({"day": day, "planned": float(planned), "actual": by_day[day],
                     "revenue": revenue_by_day.get(day, Decimal("0.00")), "planned_total": float(planned_total),
                     "actual_total": actual_total, "gap": float(actual_total - planned_total)})  # fmt: skip

    month = _month_forecast(conn, app, window, now, deals, first_of_month, plans[month_of(first_of_month)], scopes)
    notes += month.notes
    summary = {
        "planned": float(planned_total), "actual": actual_total,
        "revenue": sum(revenue_by_day.values(), Decimal("0.00")), "gap": float(actual_total - planned_total),
        **month.summary,
    }  # fmt: skip
    chart = Chart("cumulative", N_("Deals so far: planned and won"), "line", [d.isoformat() for d in window.days],
                  [{"label": N_("Planned"), "data": [r["planned_total"] for r in rows]},
                   {"label": N_("Won"), "data": [r["actual_total"] for r in rows]}])  # fmt: skip
    plan_rows = [{"month": m, "scope": p.scope, "name": _name(conn, p), "deals_per_day": _float(p.deals_per_day),
                  "revenue_per_month": p.revenue_per_month, "source": _source(p)}
                 for m in months for s, p in sorted(plans[m].items()) if s in scopes]  # fmt: skip
    tables = [
        Table("daily", N_("Planned against won, by day"), DAILY, rows,
              note("Deals won on each local day ({zone}) against the plan's deals a day; so far: from {first} on; "
                   "gap: won so far minus planned so far.", zone=window.zone.key, first=window.first_day)),
        Table("month", note("Month-end forecast, {month}", month=month_of(first_of_month)), MONTH, month.rows,
              month.note),
        Table("pipeline", N_("Open pipeline"), PIPELINE, month.pipeline,
              note("Open leads that arrived in the {days} days before now; stage probability: of the times leads "
                   "entered the status in those days, the share by leads won now.", days=HISTORY_DAYS)),
        Table("plans", N_("Plans in force"), PLANS, plan_rows,
              N_("Team plans, or the named managers' own plans when the report is asked for managers.")),
    ]  # fmt: skip
    return Report("forecast", N_("Plan and forecast"), window.echo(), now, summary, tables, [chart], notes)


@dataclass
class _Month:
    rows: list[dict[str, Any]]
    pipeline: list[dict[str, Any]]
    summary: dict[str, Any]
    notes: list[str]
    note: Note


def _month_forecast(
    conn: Connection, app: Leadflow, window: Window, now: datetime, deals: _Deals, first: date,
    plans: dict[str, PlanInForce], scopes: Sequence[str],
) -> _Month:  # fmt: skip
    """Won so far in the month holding the window's last day, plus the open pipeline and the new leads still to come
    (only while the month runs), with the range; the plan beside it."""
    name = month_of(first)
    start = datetime.combine(first, time(0), window.zone)
    end = datetime.combine(first + timedelta(days=days_in_month(name)), time(0), window.zone)
    notes: list[str] = []
    won_deals, _, won_revenue = deals.so_far(start, end)
    back = now - timedelta(days=HISTORY_DAYS)
    wins, with_amount, amounts = deals.history()
    check = float(amounts) / with_amount if with_amount else None
    arrived, arrived_lately = _arrivals(conn, window, back, now - timedelta(days=RUN_RATE_DAYS), now)
    conversion = min(wins / arrived, 1.0) if arrived else None
    per_day = arrived_lately / RUN_RATE_DAYS
    days_left = max((end - max(now, start)).total_seconds(), 0.0) / 86400
    running = start <= now < end
    pipeline_rows: list[dict[str, Any]] = []
    open_part = Expected()
    if running:
        groups = _open_groups(conn, app, window, back, now)
        stale = _open_now(conn, app, window) - sum(g.leads for g in groups)
        if stale:
            notes.append(note("Open leads that arrived before the {days} days the stage probabilities are measured "
                              "on, left out of the forecast as stale: {count}.", days=HISTORY_DAYS, count=stale))  # fmt: skip
        entries = _stage_entries(conn, app, window, deals.won, back, now)
        for group in groups:
            entered, won_of = entries.get(group.status, (0, 0))
            p = share(won_of, entered)
            part = expected_open(group, p, check)
            open_part += part
            if p is None and group.with_p < group.leads:
                named = named_status(group.status, _label(app, group.status))
                notes.append(note("No lead entered {status} in the {days} days before now: its open leads without a "
                                  "probability of their own count at 0.", status=named, days=HISTORY_DAYS))  # fmt: skip
            pipeline_rows.append({"status": _label(app, group.status), "_key": group.status, "leads": group.leads,
                                  "with_probability": group.with_p, "entered": entered, "won": won_of,
                                  "stage_probability": p, "expected_deals": round(part.deals, 2),
                                  "expected_revenue": _money(part.revenue)})  # fmt: skip
    elif now >= end:
        notes.append(note("{month} is over: its forecast is what was won.", month=name))
    else:
        notes.append(note("{month} has not begun: its forecast is the new leads' alone, the pipeline open now is not "
                          "counted in it.", month=name))  # fmt: skip
    new_part = expected_new(per_day, days_left, conversion, check)
    if check is None and (open_part.deals or new_part.deals):
        notes.append(note("No deal with an amount was won in the {days} days before now: leads without a budget "
                          "count 0 in the revenue forecast.", days=HISTORY_DAYS))  # fmt: skip
    total = Expected(won_deals, 0.0, float(won_revenue), 0.0) + open_part + new_part
    deals_low, deals_high = spread(total.deals, total.deals_var, won_deals)
    revenue_low, revenue_high = spread(total.revenue, total.revenue_var, float(won_revenue))
    a_day = _sum(plans, scopes, "deals_per_day")
    plan_deals = None if a_day is None else float(a_day * days_in_month(name))
    plan_revenue = _sum(plans, scopes, "revenue_per_month")
    plan_revenue = None if plan_revenue is None else plan_revenue.quantize(CENT)
    rows: list[dict[str, Any]] = [
        {"part": N_("Won so far"), "_key": "won", "deals": won_deals, "revenue": won_revenue},
        {"part": N_("Open pipeline"), "_key": "pipeline", "deals": round(open_part.deals, 2),
         "revenue": _money(open_part.revenue)},
        {"part": N_("New leads to come"), "_key": "new", "deals": round(new_part.deals, 2),
         "revenue": _money(new_part.revenue)},
        {"part": N_("Forecast"), "_key": "forecast", "deals": round(total.deals, 2), "revenue": _money(total.revenue)},
        {"part": N_("Low (10th percentile)"), "_key": "low", "deals": round(deals_low, 2),
         "revenue": _money(revenue_low)},
        {"part": N_("High (90th percentile)"), "_key": "high", "deals": round(deals_high, 2),
         "revenue": _money(revenue_high)},
        {"part": N_("Plan"), "_key": "plan", "deals": plan_deals, "revenue": plan_revenue},
    ]  # fmt: skip
    summary = {
        "month": name, "won_so_far": won_deals, "revenue_so_far": won_revenue,
        "forecast_deals": round(total.deals, 2), "forecast_deals_low": round(deals_low, 2),
        "forecast_deals_high": round(deals_high, 2), "forecast_revenue": _money(total.revenue),
        "forecast_revenue_low": _money(revenue_low), "forecast_revenue_high": _money(revenue_high),
        "plan_deals": plan_deals, "plan_revenue": plan_revenue,
        "forecast_against_plan": share(total.deals, plan_deals) if plan_deals is not None else None,
        "days_left": round(days_left, 4), "leads_per_day": round(per_day, 4),
        "conversion": conversion, "average_check": _money(check) if check is not None else None,
    }  # fmt: skip
    about = note("Won so far: deals won from {first} to now; open pipeline: each open lead that arrived in the last "
                 "{days} days, its win probability (its own, else its stage's) times its budget (else the average "
                 "check); new leads to come: new leads a day over the last {recent} days x the days left x the "
                 "{days} days' conversion x the average check. Low and high: the 10th and 90th percentiles.",
                 first=first, days=HISTORY_DAYS, recent=RUN_RATE_DAYS)  # fmt: skip
    return _Month(rows, pipeline_rows, summary, notes, about)


def _manager_filter(window: Window, column: Any) -> list[ColumnElement[bool]]:
    return [] if window.manager_ids is None else [column.in_(window.manager_ids)]


def _stage_scope(window: Window, stage: Any = lead_stages) -> list[ColumnElement[bool]]:
    """A stage row in the window's scope, read from the row itself where it can be: the team the lead was with and
    the manager who owned it when it entered the status; the lead's channel, source and campaign (the few leads of
    those, looked up once)."""
    found: list[ColumnElement[bool]] = []
    if window.team_ids is not None:
        found.append(stage.c.team_id.in_(window.team_ids))
    found += _manager_filter(window, stage.c.manager_id)
    q = window.query
    on_lead = [column.in_(wanted) for column, wanted in ((leads.c.channel, q.channels), (leads.c.source, q.sources),
                                                         (leads.c.utm_campaign, q.campaigns)) if wanted]  # fmt: skip
    if on_lead:
        found.append(stage.c.lead_id.in_(select(leads.c.id).where(*on_lead)))
    return found


def _deal_conditions(window: Window, won: tuple[str, ...], start: datetime, end: datetime) -> list[Any]:
    """The deals won in [start, end) in the window's scope."""
    not_undone = ~exists().where(_later.c.lead_id == lead_stages.c.lead_id, _later.c.id > lead_stages.c.id,
                                 _later.c.status.not_in(won))  # fmt: skip
    return [
        lead_stages.c.status.in_(won), lead_stages.c.entered_at >= start, lead_stages.c.entered_at < end,
        or_(lead_stages.c.previous.is_(None), lead_stages.c.previous.not_in(won)),
        or_(lead_stages.c.left_at.is_(None), not_undone),  # most deals are still in their won status: no look further
        *_stage_scope(window),
    ]  # fmt: skip


# A deal's amount, looked up by the lead's key one deal at a time: a join would make PostgreSQL read every lead.
_AMOUNT = select(leads.c.won_amount).where(leads.c.id == lead_stages.c.lead_id).scalar_subquery()


Counts = tuple[int, int, Decimal]  # deals, of them with an amount, the sum of the amounts


@dataclass(frozen=True)
class _Deals:
    """Deals counted by the database per quarter hour of UTC (every zone's midnight falls on one), and by whether
    they came at or after `back` and before `now` (which need not fall on a quarter), over some spans of time read
    once: (quarter number: epoch seconds / 900, since back, before now) -> counts."""

    won: tuple[str, ...]
    counts: dict[tuple[int, bool, bool], Counts]

    @classmethod
    def count(cls, conn: Connection, window: Window, won: tuple[str, ...], spans: list[tuple[datetime, datetime]],
              back: datetime, now: datetime) -> _Deals:  # fmt: skip
        merged: list[tuple[datetime, datetime]] = []
        for start, end in sorted(span for span in spans if span[0] < span[1]):
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], end))
            else:
                merged.append((start, end))
        entered = lead_stages.c.entered_at
        if conn.dialect.name == "postgresql":
            quarter: Any = cast(func.floor(func.extract("epoch", entered) / QUARTER), BigInteger)
        else:
            quarter = cast(func.strftime("%s", entered), Integer) // QUARTER
        counts: dict[tuple[int, bool, bool], Counts] = {}
        for start, end in merged if won else []:
            # OFFSET 0 keeps PostgreSQL from folding this into the outer query, which would look each amount up twice.
            each = select(quarter.label("q"), (entered >= back).label("since"), (entered < now).label("before"),
                          _AMOUNT.label("amount")).where(*_deal_conditions(window, won, start, end)).offset(0).subquery()  # fmt: skip
            keys = (each.c.q, each.c.since, each.c.before)
            query = select(*keys, func.count(), func.count(each.c.amount), func.sum(each.c.amount)).group_by(*keys)
            for q, since, before, n, priced, total in conn.execute(query):
                # SQLite sums money as a float: a quarter's few amounts, back to the cent.
                money = Decimal(str(total or 0)).quantize(CENT)
                counts[(int(q), bool(since), bool(before))] = (int(n), int(priced), money)
        return cls(won, counts)

    def quarters(self, start: datetime, end: datetime) -> list[tuple[datetime, int, Decimal]]:
        """Per quarter beginning in [start, end) (both on a quarter): when it begins, its deals, their amounts."""
        found: dict[int, tuple[int, Decimal]] = {}
        for (q, _, _), (n, _, amount) in self.counts.items():
            if start.timestamp() <= q * QUARTER < end.timestamp():
                was = found.get(q, (0, Decimal(0)))
                found[q] = (was[0] + n, was[1] + amount)
        return [(datetime.fromtimestamp(q * QUARTER, UTC), n, a) for q, (n, a) in sorted(found.items())]

    def so_far(self, start: datetime, end: datetime) -> Counts:
        """The deals of [start, end) (both on a quarter) that came before now."""
        return _add(v for (q, _, before), v in self.counts.items() if before and start.timestamp() <= q * QUARTER
                    < end.timestamp())  # fmt: skip

    def history(self) -> Counts:
        """The deals from `back` to `now`."""
        return _add(v for (_, since, before), v in self.counts.items() if since and before)


def _add(counts: Iterable[Counts]) -> Counts:
    found = list(counts)
    return sum(c[0] for c in found), sum(c[1] for c in found), sum((c[2] for c in found), Decimal("0.00"))


def _arrivals(conn: Connection, window: Window, start: datetime, lately: datetime, end: datetime) -> tuple[int, int]:
    """Leads that arrived in [start, end) in scope (owner now, for a manager), and of them since `lately`; repeats
    merged into another lead left out."""
    counted = (func.count(), func.count(case((leads.c.created_at >= lately, 1))))
    arrived = (leads.c.created_at >= start, leads.c.created_at < end)
    if window.lead_filters():
        query = select(*counted).where(*arrived, leads.c.status.not_in(OUTSIDE_FUNNEL), *window.lead_filters())
        total, late = conn.execute(query).one()
        return int(total), int(late)
    # No filter: every arrival less the merged ones, both counted on an index alone.
    total, late = conn.execute(select(*counted).where(*arrived)).one()
    merged, merged_late = conn.execute(select(*counted).where(*arrived, leads.c.status.in_(OUTSIDE_FUNNEL))).one()
    return int(total) - int(merged), int(late) - int(merged_late)


def _open_groups(conn: Connection, app: Leadflow, window: Window, start: datetime, end: datetime) -> list[OpenGroup]:
    """The open pipeline: the leads in scope (owned now by the managers asked for) that arrived in [start, end) and
    are open now, summed by status in one pass (ix_leads_status_created_at)."""
    p = leads.c.win_probability
    b = cast(leads.c.budget, Float)
    has_p, has_b = p.is_not(None), b.is_not(None)
    query = (
        select(
            leads.c.status, func.count(), func.count(p), func.sum(p * b), func.sum(p * (1 - p) * b * b),
            func.sum(p), func.sum(p * (1 - p)),
            func.sum(case((and_(has_p, ~has_b), p))), func.sum(case((and_(has_p, ~has_b), p * (1 - p)))),
            func.sum(case((~has_p, b))), func.sum(case((~has_p, b * b))),
            func.count(case((and_(~has_p, ~has_b), 1))),
        )
        .where(leads.c.status.in_(sorted(app.rules.open_statuses)), leads.c.created_at >= start,
               leads.c.created_at < end, *window.lead_filters())
        .group_by(leads.c.status)
    )  # fmt: skip
    order = {st.key: i for i, st in enumerate(app.rules.funnel)}
    groups = []
    for r in conn.execute(query):
        f = [float(v or 0) for v in r[3:11]]
        groups.append(OpenGroup(r[0], int(r[1]), int(r[2]), f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], int(r[11])))
    return sorted(groups, key=lambda g: order.get(g.status, len(order)))


def _stage_entries(
    conn: Connection, app: Leadflow, window: Window, won: tuple[str, ...], start: datetime, end: datetime
) -> dict[str, tuple[int, int]]:
    """Per open status: how many times leads in scope entered it in [start, end), and how many of those entries
    were by leads won now. The first is counted on ix_lead_stages_status_entered_at_manager_id_lead_id; the second starts from the
    leads won now (one that entered a status in the period and is won now was won in it too, after) and reads
    their stages by the covering index that starts with lead_id, so the period's stages are not each joined to their
    lead."""
    s = lead_stages
    statuses = sorted(app.rules.open_statuses)
    entered = select(s.c.status, func.count()).where(s.c.status.in_(statuses), s.c.entered_at >= start,
                                                     s.c.entered_at < end, *_stage_scope(window))  # fmt: skip
    found = {status: (int(n), 0) for status, n in conn.execute(entered.group_by(s.c.status))}
    if not won:
        return found
    now_won = lead_stages.alias("now_won")
    # The status is picked out here rather than in the WHERE, so the stages are read by lead, not by status.
    per_status = (
        select(s.c.status, func.count())
        .select_from(now_won.join(s, s.c.lead_id == now_won.c.lead_id))
        .where(now_won.c.status.in_(won), now_won.c.left_at.is_(None), now_won.c.entered_at >= start,
               now_won.c.entered_at < end, s.c.entered_at >= start, s.c.entered_at < end, *_stage_scope(window))
        .group_by(s.c.status)
    )  # fmt: skip
    for status, n in conn.execute(per_status):
        if status in found:
            found[status] = (found[status][0], int(n))
    return found


def _open_now(conn: Connection, app: Leadflow, window: Window) -> int:
    """Every lead open now in scope (owned now by the managers asked for), however long it has been in its status."""
    query = select(func.count()).select_from(leads).where(leads.c.status.in_(sorted(app.rules.open_statuses)),
                                                          *window.lead_filters())  # fmt: skip
    return int(conn.execute(query).scalar_one())


def _plan_scopes(conn: Connection, window: Window) -> list[str]:
    """Whose plans count: the managers asked for (or the manager reading their own), else the teams in scope."""
    if window.manager_ids is not None:
        keys = conn.execute(select(managers.c.key).where(managers.c.id.in_(window.manager_ids))).scalars()
        return sorted(f"manager:{k}" for k in keys)
    return sorted(f"team:{t.key}" for t in window.team_info.values())


def _sum(plans: dict[str, PlanInForce], scopes: Sequence[str], figure: str) -> Decimal | None:
    """The figure summed over the scopes' plans; None when none of them has it."""
    values = [getattr(plans.get(scope), figure, None) for scope in scopes]
    given = [v for v in values if v is not None]
    return sum(given, Decimal(0)) if given else None


def _label(app: Leadflow, status: str) -> str:
    return next((s.label or s.key for s in app.rules.funnel if s.key == status), status)


def _source(plan: PlanInForce) -> str:
    """Where a plan was set, and by whom when someone set it."""
    if plan.set_by is None:
        return SOURCES.get(plan.source, plan.source)
    return note("{source} by {who}", source=SOURCES.get(plan.source, plan.source), who=plan.set_by)


def _name(conn: Connection, plan: PlanInForce) -> str | None:
    table = managers if plan.kind == "manager" else teams
    name: str | None = conn.execute(select(table.c.name).where(table.c.key == plan.key)).scalar()
    return name


def _money(value: float) -> Decimal:
    return Decimal(str(round(value, 2))).quantize(CENT)


def _float(value: Decimal | None) -> float | None:
    return None if value is None else float(value)
