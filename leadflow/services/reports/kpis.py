"""Manager KPIs (seed 001): per manager, the leads received, first contacts and how fast they came, conversion to
every stage and to the sale, talk time, sales (turnover, average check, units, margin, cycle length), losses by
reason, escalations to and away from them; and the leaderboard by the rating routing ranks with. Every figure is
defined in docs/reports.md (Manager KPIs)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import distinct, func, select
from sqlalchemy.engine import Connection

from leadflow.core.rules import Status
from leadflow.core.sla import BANDS, LATE_BAND
from leadflow.core.stats import median, percentile, share
from leadflow.services.context import Leadflow
from leadflow.services.reports.load import (
    asked,
    for_people,
    in_window,
    local_day_index,
    of_leads,
    plain_rows,
    raw_start,
    raw_time,
    sellers,
    shown,
)
from leadflow.services.reports.query import Person, Window
from leadflow.services.reports.shape import CENT, N_, Chart, Col, Note, Report, Table, named_status, note
from leadflow.store.tables import activities, assignments, lead_stages, leads
from leadflow.store.team_state import load_team_state

ARRIVAL_STATUSES = ("new", "assigned")  # a lead is in these by arriving and being routed, not by anyone's work
BAND_LABELS = (*(label for _, label in BANDS), LATE_BAND)
TALK_DAY_MINUTES = 180  # seed 001: no one is on the phone for more than three hours a day
FINAL = "final"  # the conversion to any won status


@dataclass
class Figures:
    """One manager's figures in the period."""

    received: int = 0
    bands: Counter[str] = field(default_factory=Counter)
    response: list[float] = field(default_factory=list)  # seconds to first contact, of their first contacts
    reached: Counter[str] = field(default_factory=Counter)  # status (or FINAL) -> received leads that got there
    calls: int = 0
    talk_days: dict[int, int] = field(default_factory=dict)  # local day index -> seconds on calls
    won: int = 0
    turnover: Decimal = Decimal("0.00")
    with_amount: int = 0
    units: int = 0
    with_units: int = 0
    margin: Decimal = Decimal("0.00")
    with_margin: int = 0
    margin_of: Decimal = Decimal("0.00")  # the amounts of the wins with both an amount and a margin
    cycles: list[float] = field(default_factory=list)  # seconds from arrival to the win
    lost: int = 0
    escalated_to: int = 0
    escalated_away: int = 0

    @property
    def first_contacts(self) -> int:
        return sum(self.bands.values())

    def any(self) -> bool:
        return bool(self.received or self.first_contacts or self.calls or self.won or self.lost or self.escalated_to
                    or self.escalated_away)  # fmt: skip


def build(conn: Connection, app: Leadflow, window: Window, now: datetime) -> Report:
    funnel = app.rules.funnel
    progress = [s for s in funnel if s.open and s.key not in ARRIVAL_STATUSES]
    won = [s.key for s in funnel if s.outcome == "won"]
    lost = [s.key for s in funnel if s.outcome == "lost"]
    figures: dict[int, Figures] = defaultdict(Figures)
    received = _assignments(conn, window, figures)
    _conversions(conn, window, figures, received, [s.key for s in progress], won)
    _first_contacts(conn, window, figures)
    _talk(conn, window, figures)
    _wins(conn, window, figures, won)
    reasons = _losses(conn, window, figures, lost)
    people = shown(window.people_of(), sellers(conn, window), [m for m, f in figures.items() if f.any()])
    rows = {p.id: figures[p.id] for p in people}

    report = Report("managers", N_("Manager KPIs"), window.echo(), now)
    report.tables += [
        _speed_table(people, rows, progress, window),
        _sales_table(people, rows, window),
        _work_table(people, rows, window),
        _lost_table(people, reasons, window),
        _leaderboard(conn, app, people, window),
    ]
    report.charts += _charts(people, rows)
    everyone = list(rows.values())
    pooled = [s for f in everyone for s in f.response]
    contacts = sum(f.first_contacts for f in everyone)
    turnover = sum((f.turnover for f in everyone), Decimal("0.00"))
    with_amount = sum(f.with_amount for f in everyone)
    report.summary = {
        "managers": len(people),
        "received": len({lead for manager, lead in received if manager in rows}),
        "first_contacts": contacts,
        "response_median": median(pooled),
        "within_20_min": share(sum(f.bands[BAND_LABELS[0]] for f in everyone), contacts),
        "won": sum(f.won for f in everyone),
        "turnover": turnover,
        "average_check": _per(turnover, with_amount),
        "talk_minutes": round(sum(sum(f.talk_days.values()) for f in everyone) / 60, 1),
        "lost": sum(f.lost for f in everyone),
        "escalations": sum(f.escalated_to for f in everyone),
    }
    report.notes += [
        N_(
            "A manager's conversion follows the leads assigned to them in the period (any kind of assignment) to the "
            "statuses those leads entered with them as owner from then on, up to now."
        ),
        N_(
            "Won and lost count the leads that entered a won or lost status in the period with the manager as owner; "
            "the first contacts, those the manager made in the period; talk time, their calls in the period."
        ),
        note("Days are local days in {zone}.", zone=window.zone.key),
    ]
    return report


# -- the figures: each part one query, over the rows of the period an index finds ---------------------------------


Received = dict[tuple[int, int], Any]  # (manager, lead) -> when they first received it in the period (raw_time)


def _assignments(conn: Connection, window: Window, figures: dict[int, Figures]) -> Received:
    """One pass over the period's assignments: what each manager received (and when), the escalations to them and
    away from them."""
    a = assignments
    at = raw_time(conn, a.c.at)
    stmt = of_leads(select(a.c.id, a.c.lead_id, a.c.manager_id, a.c.kind, at).where(*in_window(a.c.at, window)),
                    a.c.lead_id, window)  # fmt: skip
    rows = sorted(plain_rows(conn, stmt))
    wanted = set(ids) if (ids := asked(window)) is not None else None
    received: Received = {}
    last: dict[int, int | None] = {}  # lead -> the manager of its latest assignment so far (by id)
    before: list[tuple[int, int]] = []  # (escalation id, lead) with no earlier assignment in the period
    for id_, lead_id, manager_id, kind, at in rows:
        mine = manager_id is not None and (wanted is None or manager_id in wanted)
        if mine:
            received.setdefault((manager_id, lead_id), at)
        if kind == "escalation":
            if mine:
                figures[manager_id].escalated_to += 1
            if lead_id in last:
                previous = last[lead_id]
                if previous is not None and (wanted is None or previous in wanted):
                    figures[previous].escalated_away += 1
            else:
                before.append((id_, lead_id))
        last[lead_id] = manager_id
    for previous in _held_before(conn, before):
        if previous is not None and (wanted is None or previous in wanted):
            figures[previous].escalated_away += 1
    for manager_id, _ in received:
        figures[manager_id].received += 1
    return received


def _held_before(conn: Connection, escalations: list[tuple[int, int]]) -> list[int | None]:
    """For escalations whose lead had no earlier assignment in the period: the manager of the one before."""
    e, earlier, previous = assignments, assignments.alias("earlier"), assignments.alias("previous")
    latest = select(func.max(earlier.c.id)).where(earlier.c.lead_id == e.c.lead_id, earlier.c.id < e.c.id)
    found: list[int | None] = []
    ids = [id_ for id_, _ in escalations]
    for chunk in (ids[i : i + 500] for i in range(0, len(ids), 500)):
        stmt = select(previous.c.manager_id).join_from(e, previous, previous.c.id == latest.scalar_subquery())
        found += conn.execute(stmt.where(e.c.id.in_(chunk))).scalars()
    return found


def _conversions(
    conn: Connection, window: Window, figures: dict[int, Figures], received: Received, progress: list[str],
    won: list[str],
) -> None:  # fmt: skip
    """Of each manager's received leads, how many entered each progress status, and any won one (FINAL), with the
    manager as owner, at or after they received it. The stages are matched to the received leads here: a join in
    the database would group the period's assignments once more (PostgreSQL once per worker)."""
    final = set(won)
    reached: set[tuple[int, int, str]] = set()
    when, add = received.get, reached.add  # a hundred thousand rows: no attribute look-ups in the loop
    for manager_id, lead_id, status, entered_at in _stages_of(conn, window, received, [*progress, *won]):
        since = when((manager_id, lead_id))
        if since is not None and entered_at >= since:
            add((manager_id, lead_id, FINAL if status in final else status))
    for manager_id, _, status in reached:
        figures[manager_id].reached[status] += 1


STAGES_PER_LEAD = 4  # beyond this many stages entered since the period began per received lead, look leads up
LEADS_PER_LOOKUP = 1000


def _stages_of(conn: Connection, window: Window, received: Received, statuses: list[str]) -> Iterator[Any]:
    """The stages of these statuses that the received leads may have entered since: for a recent period, every
    such stage entered since it began (by the index on status and entered_at); for an older one, where that would
    be most of the stages since, the received leads' own (by lead, a thousand at a time)."""
    if not received:
        return
    s = lead_stages
    columns = (s.c.manager_id, s.c.lead_id, s.c.status, raw_time(conn, s.c.entered_at))
    since = [s.c.status.in_(statuses), s.c.entered_at >= window.start]
    entered = conn.execute(select(func.count()).select_from(s).where(*since)).scalar_one()
    if entered <= STAGES_PER_LEAD * len(received):
        yield from plain_rows(conn, select(*columns).where(*since, *for_people(s.c.manager_id, window)))
        return
    # By lead alone: with the status and time in the query, a planner may walk the index on them for every chunk.
    wanted, start = set(statuses), raw_start(conn, window)
    ids = sorted({lead for _, lead in received})
    for i in range(0, len(ids), LEADS_PER_LOOKUP):
        chunk = ids[i : i + LEADS_PER_LOOKUP]
        for row in plain_rows(conn, select(*columns).where(s.c.lead_id.in_(chunk))):
            if row[2] in wanted and row[3] >= start:
                yield row


def _first_contacts(conn: Connection, window: Window, figures: dict[int, Figures]) -> None:
    """First contacts made in the period: who, how long the lead had waited, and its band (three small columns of
    the leads the index on first_contact_at finds)."""
    lc = leads.c
    made = select(lc.first_contact_by, lc.response_seconds, lc.response_band).where(
        *in_window(lc.first_contact_at, window), *for_people(lc.first_contact_by, window),
        *window.lead_filters(owner=False),
    )  # fmt: skip
    for manager_id, seconds, band in plain_rows(conn, made):
        f = figures[manager_id]
        f.bands[band or LATE_BAND] += 1
        if seconds is not None:
            f.response.append(seconds)


def _talk(conn: Connection, window: Window, figures: dict[int, Figures]) -> None:
    """Calls in the period, and their recorded talk time per local day."""
    ac = activities
    calls = select(ac.c.manager_id, local_day_index(ac.c.at, window).label("day"), ac.c.duration_seconds).where(
        ac.c.kind == "call", *in_window(ac.c.at, window), *for_people(ac.c.manager_id, window)
    )
    rows = of_leads(calls, ac.c.lead_id, window).subquery("calls")
    per_day = select(rows.c.manager_id, rows.c.day, func.count(), func.sum(rows.c.duration_seconds)).group_by(
        rows.c.manager_id, rows.c.day
    )
    for manager_id, day, n, seconds in conn.execute(per_day):
        f = figures[manager_id]
        f.calls += n
        if seconds:
            f.talk_days[day] = int(seconds)


def _wins(conn: Connection, window: Window, figures: dict[int, Figures], won: list[str]) -> None:
    """Leads that entered a won status in the period with the manager as owner: each once, at its first such entry
    in the period, with what it brought."""
    if not won:
        return
    s, lc = lead_stages, leads.c
    stmt = (
        select(s.c.manager_id, func.min(s.c.entered_at), lc.created_at, lc.won_amount, lc.won_units, lc.won_margin)
        .select_from(s)
        .join(leads, lc.id == s.c.lead_id)
        .where(s.c.status.in_(won), *in_window(s.c.entered_at, window), *for_people(s.c.manager_id, window),
               *window.lead_filters(owner=False))
        .group_by(s.c.manager_id, lc.id)
    )  # fmt: skip
    for manager_id, won_at, created_at, amount, units, margin in conn.execute(stmt):
        f = figures[manager_id]
        f.won += 1
        f.cycles.append(max((won_at - created_at).total_seconds(), 0.0))
        if amount is not None:
            f.turnover += amount
            f.with_amount += 1
        if units is not None:
            f.units += units
            f.with_units += 1
        if margin is not None:
            f.margin += margin
            f.with_margin += 1
            if amount is not None:
                f.margin_of += amount


def _losses(
    conn: Connection, window: Window, figures: dict[int, Figures], lost: list[str]
) -> dict[int, Counter[str | None]]:
    """Leads that entered a lost status in the period with the manager as owner, per the lead's lost reason."""
    reasons: dict[int, Counter[str | None]] = defaultdict(Counter)
    if not lost:
        return reasons
    s, lc = lead_stages, leads.c
    stmt = (
        select(s.c.manager_id, lc.lost_reason, func.count(distinct(s.c.lead_id)))
        .select_from(s)
        .join(leads, lc.id == s.c.lead_id)
        .where(s.c.status.in_(lost), *in_window(s.c.entered_at, window), *for_people(s.c.manager_id, window),
               *window.lead_filters(owner=False))
        .group_by(s.c.manager_id, lc.lost_reason)
    )  # fmt: skip
    for manager_id, reason, n in conn.execute(stmt):
        reasons[manager_id][reason] += n
        figures[manager_id].lost += n
    return reasons


# -- the tables ----------------------------------------------------------------------------------------------------


def _who(p: Person, window: Window) -> dict[str, Any]:
    info = window.team_info.get(p.team_id)
    return {"manager": p.name, "team": info.name if info is not None else None, "_id": p.id, "_key": p.key}


_WHO = [Col("manager", N_("Manager"), "text"), Col("team", N_("Team"), "text")]


def _speed_table(people: Sequence[Person], rows: dict[int, Figures], progress: Sequence[Any], window: Window) -> Table:
    body = []
    for p in people:
        f = rows[p.id]
        body.append({
            **_who(p, window), "received": f.received, "first_contacts": f.first_contacts,
            "response_median": median(f.response), "response_p90": percentile(f.response, 90),
            **{_band_key(b): share(f.bands[b], f.first_contacts) for b in BAND_LABELS},
            **{f"to_{s.key}": share(f.reached[s.key], f.received) for s in progress},
            "to_final": share(f.reached[FINAL], f.received),
            "_bands": {b: f.bands[b] for b in BAND_LABELS}, "_reached": dict(f.reached),
        })  # fmt: skip
    columns = [*_WHO, Col("received", N_("Received")), Col("first_contacts", N_("First contacts")),
               Col("response_median", N_("Median response"), "seconds"),
               Col("response_p90", N_("p90 response"), "seconds"),
               *(Col(_band_key(b), b, "percent") for b in BAND_LABELS),
               *(Col(f"to_{s.key}", _to(s), "percent") for s in progress),
               Col("to_final", N_("→ Won (final)"), "percent")]  # fmt: skip
    return Table("managers", N_("Speed and conversion"), columns, body,
                 N_("Response: the first contacts the manager made in the period, by how long the lead had waited. "
                    "Conversion: of the leads they received, the share that reached each status while theirs."))  # fmt: skip


def _to(status: Status) -> Note:
    """A conversion's column: an arrow and the status, named by its label."""
    return Note("→ {status}", {"status": named_status(status.key, status.label or status.key)}, translated=False)


def _sales_table(people: Sequence[Person], rows: dict[int, Figures], window: Window) -> Table:
    body = []
    for p in people:
        f = rows[p.id]
        body.append({
            **_who(p, window), "won": f.won, "turnover": f.turnover, "average_check": _per(f.turnover, f.with_amount),
            "units": f.units, "units_per_check": round(f.units / f.with_units, 2) if f.with_units else None,
            "margin": f.margin if f.with_margin else None, "margin_share": share(float(f.margin), float(f.margin_of)),
            "cycle_median": median(f.cycles), "cycle_p90": percentile(f.cycles, 90),
        })  # fmt: skip
    columns = [*_WHO, Col("won", N_("Won")), Col("turnover", N_("Turnover"), "money"),
               Col("average_check", N_("Average check"), "money"), Col("units", N_("Units")),
               Col("units_per_check", N_("Units per check"), "number"), Col("margin", N_("Margin"), "money"),
               Col("margin_share", N_("Margin share"), "percent"), Col("cycle_median", N_("Median cycle"), "seconds"),
               Col("cycle_p90", N_("p90 cycle"), "seconds")]  # fmt: skip
    return Table("sales", N_("Sales"), columns, body,
                 N_("Leads won in the period with the manager as owner, with the amount, units and margin recorded at "
                    "the win; the cycle runs from the lead's arrival to the win."))  # fmt: skip


def _work_table(people: Sequence[Person], rows: dict[int, Figures], window: Window) -> Table:
    body = []
    for p in people:
        f = rows[p.id]
        minutes = [s / 60 for s in f.talk_days.values()]
        body.append({
            **_who(p, window), "calls": f.calls, "talk_minutes": round(sum(minutes), 1),
            "talk_per_day": round(sum(minutes) / len(minutes), 1) if minutes else None,
            "days_over_3h": sum(m > TALK_DAY_MINUTES for m in minutes), "lost": f.lost,
            "escalated_to": f.escalated_to, "escalated_away": f.escalated_away,
        })  # fmt: skip
    columns = [*_WHO, Col("calls", N_("Calls")), Col("talk_minutes", N_("Talk minutes"), "number"),
               Col("talk_per_day", N_("Talk minutes a day"), "number"), Col("days_over_3h", N_("Days over 3 h")),
               Col("lost", N_("Lost")), Col("escalated_to", N_("Escalated to them")),
               Col("escalated_away", N_("Escalated away"))]  # fmt: skip
    return Table("work", N_("Calls, losses and escalations"), columns, body,
                 N_("Talk minutes a day: over the local days with recorded talk time. Escalated away: escalations of "
                    "leads the manager held just before."))  # fmt: skip


def _lost_table(people: Sequence[Person], reasons: dict[int, Counter[str | None]], window: Window) -> Table:
    body = [{**_who(p, window), "reason": reason or N_("(no reason given)"), "leads": n}
            for p in people for reason, n in sorted(reasons.get(p.id, Counter()).items(),
                                                    key=lambda kv: (-kv[1], kv[0] or ""))]  # fmt: skip
    return Table("lost_reasons", N_("Lost, by reason"),
                 [*_WHO, Col("reason", N_("Reason"), "text"), Col("leads", N_("Leads"))],
                 body, N_("The reason recorded on the lead when it was closed as lost."))  # fmt: skip


def _leaderboard(conn: Connection, app: Leadflow, people: Sequence[Person], window: Window) -> Table:
    """Ranked by ManagerState.rating, read exactly as routing reads it."""
    team_keys = sorted({window.team_info[p.team_id].key for p in people if p.team_id in window.team_info})
    states = {m.id: m for m in load_team_state(conn, team_keys, (), app.rules.default_timezone).managers.values()}
    rated = sorted(((states[p.id].rating, states[p.id], p) for p in people if p.id in states),
                   key=lambda rsp: (-rsp[0], rsp[2].name.lower(), rsp[2].key))  # fmt: skip
    body: list[dict[str, Any]] = []
    for i, (rating, state, p) in enumerate(rated):
        # Equal ratings share the rank of the first of them; a manager reading their own row is not ranked.
        rank = body[-1]["rank"] if body and rating == rated[i - 1][0] else i + 1
        body.append({
            "rank": rank, **_who(p, window), "rating": rating, "won_leads": state.won_leads,
            "closed_leads": state.closed_leads, "conversion": state.conversion, "first_contacts": state.first_contacts,
            "fast_contacts": state.fast_contacts, "fast_share": share(state.fast_contacts, state.first_contacts),
        })  # fmt: skip
    if window.own:
        for row in body:
            row["rank"] = None
    columns = [Col("rank", "#"), *_WHO, Col("rating", N_("Rating"), "number"), Col("won_leads", N_("Won")),
               Col("closed_leads", N_("Closed")), Col("conversion", N_("Conversion"), "percent"),
               Col("first_contacts", N_("First contacts")), Col("fast_contacts", N_("Within 20 min")),
               Col("fast_share", N_("Share within 20 min"), "percent")]  # fmt: skip
    return Table("leaderboard", N_("Leaderboard"), columns, body,
                 N_("By the rating routing ranks managers with (0-100, from conversion and fast first contacts), from "
                    "each manager's results since they started, as routing reads them now: not this period's only."))  # fmt: skip


def _charts(people: Sequence[Person], rows: dict[int, Figures]) -> list[Chart]:
    names = [p.name for p in people]
    bands = Chart("first_contacts", N_("First contacts per response band"), "bar", names,
                  [{"label": b, "data": [rows[p.id].bands[b] for p in people]} for b in BAND_LABELS])  # fmt: skip
    turnover = Chart("turnover", N_("Turnover"), "bar", names,
                     [{"label": N_("Turnover"), "data": [rows[p.id].turnover for p in people]}])  # fmt: skip
    return [bands, turnover]


def _band_key(band: str) -> str:
    return {"≤20m": "within_20m", "≤3h": "within_3h", "≤12h": "within_12h", ">12h": "over_12h"}.get(band, band)


def _per(total: Decimal, n: int) -> Decimal | None:
    return (total / n).quantize(CENT) if n else None
