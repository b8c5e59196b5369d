"""Load evenness (seed 004): how many leads each manager was given per local day, against their capacity and
weight; how even each routing rule and strategy spread them (max - min, coefficient of variation, Gini); and who
routing skipped, and why. Every figure is defined in docs/reports.md (Load evenness)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    Select,
    String,
    Text,
    case,
    cast,
    func,
    literal_column,
    or_,
    select,
    type_coerce,
)
from sqlalchemy.engine import Connection

from leadflow.core.routing import verdict_kind
from leadflow.core.stats import coefficient_of_variation, gini, share, spread
from leadflow.services.context import Leadflow
from leadflow.services.reports.query import Person, Window
from leadflow.services.reports.shape import N_, Chart, Col, Report, Table, grouped, note
from leadflow.store.tables import assignments, leads, managers

VERDICT_CLASSES = (N_("absent"), N_("off shift"), N_("at capacity"), N_("other"))
VERDICT_LABELS = {"absent": N_("Absent"), "off shift": N_("Off shift"), "at capacity": N_("At capacity"),
                  "other": N_("Other")}  # fmt: skip
# The most decisions whose candidates are read: beyond it, one block of ids in k is, and the notes say so. Reading
# one (fetching its text, parsing a score of candidates, counting the skipped) costs 10-30 µs.
SKIPS_READ_LIMIT = 10_000
SAMPLE_BLOCK = 64  # decisions next to each other by id are read together
TOP_LINES = 10  # the line chart draws the managers with the most leads, no more
ALL = N_("all")  # a team's spread: over all its rules and strategies


# -- shared with the other manager reports ------------------------------------------------------------------------


def local_day_index(column: ColumnElement[Any], window: Window) -> ColumnElement[int]:
    """The local day (0: window.first_day) an instant in `column` falls on, in the window's zone, daylight saving
    included: a balanced CASE over the UTC instants at which each local day starts, so neither database needs time
    zones of its own and a row costs a handful of comparisons however long the period."""
    starts = [datetime.combine(d, time(0), window.zone) for d in window.days[1:]]

    def between(low: int, high: int) -> ColumnElement[int]:
        if low == high:
            return literal_column(str(low), Integer)
        middle = (low + high + 1) // 2  # the first day of the upper half, which starts at starts[middle - 1]
        return case((column < starts[middle - 1], between(low, middle - 1)), else_=between(middle, high))

    return between(0, len(window.days) - 1)


def asked(window: Window) -> tuple[int, ...] | None:
    """The managers whose figures can be shown: those asked for, else (for a reader of some teams) the people of
    those teams; None: anyone. A team's leads handled by someone outside it are left out early, in the database."""
    if window.manager_ids is not None:
        return window.manager_ids
    return tuple(sorted(window.people)) if window.team_ids is not None else None


FEW = 3  # managers few enough that reading all their rows by the index on the manager beats the period's by time


def for_people(column: ColumnElement[Any], window: Window) -> list[ColumnElement[bool]]:
    """The rows about a manager whose figures can be shown (asked). For more than a few, the condition is on
    `column + 0`: SQLite, which keeps no statistics, would otherwise read every row these managers ever had by the
    index on the column rather than the period's rows by time."""
    ids = asked(window)
    if ids is None:
        return [column.is_not(None)]
    return [column.in_(ids)] if len(ids) <= FEW else [(column + 0).in_(ids)]


def in_window(column: ColumnElement[Any], window: Window) -> list[ColumnElement[bool]]:
    return [column >= window.start, column < window.end]


def raw_time(conn: Connection, column: ColumnElement[Any]) -> ColumnElement[Any]:
    """An instant in a form cheap to read and to compare with another read the same way: on SQLite the text it is
    kept as (one format, UTC); on PostgreSQL microseconds since 1970 (the driver would make an aware datetime of
    each, which costs more than the query over a hundred thousand rows)."""
    if conn.dialect.name == "postgresql":
        return cast(func.extract("epoch", column) * 1_000_000, BigInteger).label(column.key)
    return type_coerce(column, String).label(column.key)


def raw_start(conn: Connection, window: Window) -> Any:
    """The window's start as raw_time reads an instant."""
    if conn.dialect.name == "postgresql":
        return (window.start - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    return window.start.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def plain_rows(conn: Connection, stmt: Select[Any]) -> list[tuple[Any, ...]]:
    """The rows as the driver gives them: for a hundred thousand rows of numbers, short text and raw_time values,
    building SQLAlchemy's rows and passing each value through its types costs as much as the query. Only for
    columns whose driver value is what the caller wants."""
    result = conn.execute(stmt)
    try:
        return list(result.cursor.fetchall())
    finally:
        result.close()


def of_leads(stmt: Select[Any], lead_id: ColumnElement[Any], window: Window) -> Select[Any]:
    """`stmt` limited to the leads the window's filters (team, channel, source, campaign) let through; leads is
    joined only when a filter asks for it."""
    found = window.lead_filters(owner=False)
    return stmt.join(leads, leads.c.id == lead_id).where(*found) if found else stmt


def sellers(conn: Connection, window: Window) -> set[int]:
    """The people in scope who take leads: active, and managers (not quality desk operators)."""
    ids = [p.id for p in window.people_of() if p.active]
    if not ids:
        return set()
    return set(
        conn.execute(select(managers.c.id).where(managers.c.id.in_(ids), managers.c.role == "manager")).scalars()
    )


def shown(people: Iterable[Person], working: set[int], busy: Iterable[int]) -> list[Person]:
    """The rows a manager report shows: everyone who takes leads, and anyone else with a figure in the period."""
    keep = working | set(busy)
    return [p for p in people if p.id in keep]


# -- the report ----------------------------------------------------------------------------------------------------

Rule = tuple[str | None, str | None]  # (rule key, strategy) as the assignment recorded them


def build(conn: Connection, app: Leadflow, window: Window, now: datetime) -> Report:
    days = window.days
    per_day, by_rule = _given(conn, window)
    totals: Counter[int] = Counter()
    for (manager_id, _), n in per_day.items():
        totals[manager_id] += n
    working = sellers(conn, window)
    people = shown(window.people_of(), working, totals)
    skips = _skips(conn, window)
    pools = _pools(window, working, by_rule, skips)
    takers = {m for pool in pools.values() for m in pool}
    report = Report("load", N_("Load evenness"), window.echo(), now)
    report.tables += [
        _managers_table(people, takers, totals, per_day, days, window),
        _daily_table(people, per_day, days),
        _spread_table(window, pools, by_rule, totals),
        *_skip_tables(skips, window.people_of()),
    ]
    report.charts += _charts(people, per_day, totals, days)
    everyone = sum(totals[p.id] for p in people)
    report.summary = {
        "leads_assigned": everyone,
        "managers": len(people),
        "mean_per_manager_day": round(everyone / (len(people) * len(days)), 2) if people else None,
        "decisions": skips.decisions,
        "decisions_read": skips.read,
        **{f"skipped_{c.replace(' ', '_')}": skips.total[c] for c in VERDICT_CLASSES},
    }
    report.notes += [
        note("Leads are counted by assignment: each time routing, an escalation, a restore or a person gave a lead to "
             "a manager, on the local day ({zone}) it happened.", zone=window.zone.key),
        N_("Capacity is the most open leads a manager may hold at once (what routing checks), not a daily quota."),
    ]  # fmt: skip
    if window.own:
        report.notes.append(N_("A manager sees their own figures: the team's shares and the spread compare managers "
                               "and are left out."))  # fmt: skip
    report.notes += skips.notes(window.own)
    return report


def _given(conn: Connection, window: Window) -> tuple[dict[tuple[int, date], int], dict[Rule, Counter[int]]]:
    """Leads each manager was given in the period, in one pass: per local day, and per rule and strategy."""
    a = assignments
    inner = select(a.c.manager_id, a.c.rule_key, a.c.strategy, local_day_index(a.c.at, window).label("day")).where(
        *in_window(a.c.at, window), *for_people(a.c.manager_id, window)
    )
    rows = of_leads(inner, a.c.lead_id, window).subquery("given")
    grouped = select(rows.c.manager_id, rows.c.rule_key, rows.c.strategy, rows.c.day, func.count()).group_by(
        rows.c.manager_id, rows.c.rule_key, rows.c.strategy, rows.c.day
    )
    days = window.days
    per_day: dict[tuple[int, date], int] = defaultdict(int)
    per_rule: dict[Rule, Counter[int]] = defaultdict(Counter)
    for manager_id, rule, strategy, day, n in conn.execute(grouped):
        per_day[(manager_id, days[day])] += n
        per_rule[(rule, strategy)][manager_id] += n
    return dict(per_day), per_rule


def _pools(window: Window, working: set[int], by_rule: dict[Rule, Counter[int]], skips: Skips) -> dict[Rule, set[int]]:
    """Whom each rule's spread is measured over: the active managers its decisions weighed (named among their
    candidates, eligible or skipped) and those it gave leads to; where a decision kept its many skipped as counts,
    without names, every active manager of the teams the rule gave leads to. Managers in scope only (a manager filter
    narrows them)."""
    by_key = {p.key: p.id for p in window.people_of()}
    members: dict[int, set[int]] = defaultdict(set)
    for p in window.people_of():
        if p.id in working:
            members[p.team_id].add(p.id)
    pools: dict[Rule, set[int]] = {}
    for rule, counts in by_rule.items():
        pool = {m for m in counts if m in by_key.values()}
        pool |= {by_key[k] for k in skips.weighed.get(rule, ()) if k is not None and by_key.get(k) in working}
        if rule in skips.unnamed:
            for team_id in {window.people[m].team_id for m in counts if m in window.people}:
                pool |= members[team_id]
        if pool:
            pools[rule] = pool
    return pools


def _managers_table(
    people: Sequence[Person], takers: set[int], totals: Counter[int], per_day: dict[tuple[int, date], int],
    days: list[date], window: Window,
) -> Table:  # fmt: skip
    team_total: Counter[int] = Counter()
    team_weight: Counter[int] = Counter()
    for p in people:
        team_total[p.team_id] += totals[p.id]
        if p.id in takers:
            team_weight[p.team_id] += p.weight
    busiest: dict[int, tuple[int, date]] = {}
    for (m, day), n in sorted(per_day.items(), key=lambda kv: kv[0][1]):
        if n > busiest.get(m, (0, day))[0]:
            busiest[m] = (n, day)
    rows = []
    for p in people:
        top = busiest.get(p.id)
        rows.append({
            "manager": p.name, "team": _team_name(window, p.team_id), "capacity": p.capacity, "weight": p.weight,
            "leads": totals[p.id], "per_day": round(totals[p.id] / len(days), 2),
            "busiest_day": top[1] if top else None, "busiest": top[0] if top else 0,
            "share": None if window.own else share(totals[p.id], team_total[p.team_id]),
            "weight_share": None if window.own or p.id not in takers else share(p.weight, team_weight[p.team_id]),
            "_id": p.id, "_key": p.key,
        })  # fmt: skip
    columns = [Col("manager", N_("Manager"), "text"), Col("team", N_("Team"), "text"),
               Col("capacity", N_("Capacity")), Col("weight", N_("Weight")), Col("leads", N_("Leads")),
               Col("per_day", N_("Per day"), "number"), Col("busiest_day", N_("Busiest day"), "date"),
               Col("busiest", N_("Leads that day")), Col("share", N_("Share of team"), "percent"),
               Col("weight_share", N_("Weight share"), "percent")]  # fmt: skip
    return Table("managers", N_("Leads per manager"), columns, rows,
                 N_("Leads assigned in the period. The share of the team's leads beside the share of its weight (what "
                    "a weighted strategy aims at), among the managers routing weighed."))  # fmt: skip


def _daily_table(people: Sequence[Person], per_day: dict[tuple[int, date], int], days: list[date]) -> Table:
    rows = [{"day": d, "manager": p.name, "leads": per_day[(p.id, d)], "capacity": p.capacity, "_id": p.id}
            for d in days for p in people if per_day.get((p.id, d))]  # fmt: skip
    columns = [Col("day", N_("Day"), "date"), Col("manager", N_("Manager"), "text"), Col("leads", N_("Leads")),
               Col("capacity", N_("Capacity"))]  # fmt: skip
    return Table("daily", N_("Leads per manager per day"), columns, rows,
                 N_("Days a manager was given no lead are left out."))  # fmt: skip


def _spread_table(
    window: Window, pools: dict[Rule, set[int]], by_rule: dict[Rule, Counter[int]], totals: Counter[int]
) -> Table:
    columns = [Col("scope", N_("Over"), "text"), Col("rule", N_("Rule"), "text"),
               Col("strategy", N_("Strategy"), "text"), Col("team", N_("Team"), "text"),
               Col("managers", N_("Managers")), Col("leads", N_("Leads")), Col("max", N_("Most")),
               Col("min", N_("Fewest")), Col("spread", N_("Max - min")),
               Col("cv", N_("Coefficient of variation"), "number"),
               Col("cv_weighted", N_("CV per unit of weight"), "number"), Col("gini", N_("Gini"), "number")]  # fmt: skip
    table = Table("spread", N_("Spread per rule, strategy and team"), columns, [],
                  N_("Per rule: over the managers its decisions weighed, those given none included. Per team: over "
                     "the team's managers any rule weighed, all their leads."))  # fmt: skip
    if window.own:
        return table
    people = window.people
    for rule, pool in sorted(pools.items(), key=lambda kv: (kv[0][0] or "", kv[0][1] or "")):
        chosen = [people[m] for m in sorted(pool)]
        team_ids = sorted({p.team_id for p in chosen})
        table.rows.append({"scope": N_("rule"), "rule": rule[0] or "—", "strategy": rule[1] or "—",
                           "team": ", ".join(_team_name(window, t) for t in team_ids),
                           **_spread_of(chosen, by_rule[rule])})  # fmt: skip
    teams: dict[int, set[int]] = defaultdict(set)
    for pool in pools.values():
        for m in pool:
            teams[people[m].team_id].add(m)
    for team_id, pool in sorted(teams.items(), key=lambda kv: _team_name(window, kv[0])):
        chosen = [people[m] for m in sorted(pool)]
        table.rows.append({"scope": N_("team"), "rule": ALL, "strategy": ALL, "team": _team_name(window, team_id),
                           **_spread_of(chosen, totals)})  # fmt: skip
    return table


def _spread_of(pool: Sequence[Person], counts: Counter[int]) -> dict[str, Any]:
    values = [counts[p.id] for p in pool]
    return {"managers": len(pool), "leads": sum(values), "max": max(values), "min": min(values),
            "spread": spread(values), "cv": _round(coefficient_of_variation(values)),
            "cv_weighted": _round(coefficient_of_variation([counts[p.id] / max(p.weight, 1) for p in pool])),
            "gini": _round(gini(values))}  # fmt: skip


# -- who was skipped -----------------------------------------------------------------------------------------------


def verdict_class(kind: str) -> str:
    """The class of a verdict kind (as core/routing's summaries name it): absent (absent, on vacation), off shift
    (off shift; not on call, when only those on call were asked because everyone was off shift), at capacity, or
    other (inactive, does not serve the lead, under the conversion floor, another tier, does not accept it ...)."""
    if kind in ("absent", "on vacation"):
        return "absent"
    if kind in ("off-shift", "is not on call"):
        return "off shift"
    if kind == "at capacity":
        return "at capacity"
    return "other"


@dataclass
class Skips:
    """What the candidates of the period's decisions say: whom routing passed over and why, and whom each rule
    weighed. Decisions are gathered raw (`add`, the part that runs per decision) and classified once (`count`)."""

    weighed: dict[Rule, set[str | None]] = field(default_factory=lambda: defaultdict(set))  # rule -> candidate keys
    named: Counter[tuple[str | None, str, str]] = field(default_factory=Counter)  # (key, name, why) -> skips
    unnamed_kinds: Counter[str] = field(default_factory=Counter)  # verdict kind -> skips kept as counts only
    unnamed: set[Rule] = field(default_factory=set)  # rules with a decision that summarised its skipped
    decisions: int = 0  # decisions in the period (with the filters)
    read: int = 0  # of which read
    with_skips: int = 0  # of those read, decisions that passed someone over
    summarised: int = 0  # decisions that kept their many skipped as counts per verdict, without keys
    every: int = 1  # one block of decisions in `every` was read
    estimated: bool = False  # `decisions` is the sample's count times `every`
    # What count() works out:
    total: Counter[str] = field(default_factory=Counter)  # verdict class -> skips
    kinds: Counter[str] = field(default_factory=Counter)  # verdict kind ("off-shift", "does not serve region PL")
    by_manager: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))  # key -> class -> n
    own_only: bool = False

    def add(self, rule: Rule, entries: list[dict[str, Any]]) -> None:
        """Gather one decision's candidates (a few dictionary look-ups each: this runs for every decision read)."""
        if rule not in self.unnamed:  # once unnamed, the rule is measured over its teams, which hold these
            self.weighed[rule].update([e.get("key") for e in entries])
        skipped = [e for e in entries if e.get("eligible") is False]
        if not skipped:
            return
        self.with_skips += 1
        for e in skipped:
            detail = e.get("skipped")
            if detail is None:
                self.named[(e.get("key"), str(e.get("name") or ""), str(e.get("why") or ""))] += 1
            else:  # many skipped: counts per verdict, a few names, no keys
                self.unnamed.add(rule)
                self.summarised += 1
                for kind, v in detail.items():
                    self.unnamed_kinds[kind] += int(v.get("count", 0))

    def count(self, keys: frozenset[str] | None) -> None:
        """Classify what was gathered; with `keys`, only the skips that name these managers."""
        self.own_only = keys is not None
        if keys is None:
            for kind, n in self.unnamed_kinds.items():
                self.total[verdict_class(kind)] += n
                self.kinds[kind] += n
        for (key, name, why), n in self.named.items():
            if keys is not None and key not in keys:
                continue
            kind = verdict_kind(name, why)
            cls = verdict_class(kind)
            self.total[cls] += n
            self.kinds[kind] += n
            if key is not None:
                self.by_manager[key][cls] += n

    def notes(self, own: bool) -> list[str]:
        said: list[str] = []
        if self.every > 1:
            of = note("about {count}", count=grouped(self.decisions)) if self.estimated else grouped(self.decisions)
            said.append(note("Who was skipped is counted on a sample: one block of {block} decisions (by id) in "
                             "{every}, {read} of {total}. The counts are the sample's, not scaled up.",
                             block=SAMPLE_BLOCK, every=self.every, read=grouped(self.read), total=of))  # fmt: skip
        if self.summarised and not self.own_only:
            said.append(note("{count} of the decisions passed over so many managers that they kept them as counts per "
                             "verdict ({skips} skips): these are in the totals, not in the per-manager table.",
                             count=grouped(self.summarised), skips=grouped(sum(self.unnamed_kinds.values()))))  # fmt: skip
        if self.own_only and own:
            said.append(N_("Only the skips that name you are counted; decisions that summarised many skipped "
                           "managers do not name them."))  # fmt: skip
        elif self.own_only:
            said.append(N_("Only the skips that name the managers asked for are counted; decisions that summarised "
                           "many skipped managers do not name them."))  # fmt: skip
        return said


def _skips(conn: Connection, window: Window) -> Skips:
    """Read the candidates of the period's decisions (a sample of blocks beyond SKIPS_READ_LIMIT), as text, with
    orjson. The sample is sized on every decision of the period, counted on the index alone; with filters on the
    lead, those decisions read are the filter's, and the notes give the total as an estimate."""
    a = assignments
    everyone = conn.execute(select(func.count()).select_from(a).where(*in_window(a.c.at, window))).scalar_one()
    skips = Skips(every=max(1, -(-everyone // SKIPS_READ_LIMIT)))
    # As text: SQLite keeps JSON as text; PostgreSQL's driver would parse it with the slower standard json.
    text = a.c.candidates if conn.dialect.name == "sqlite" else cast(a.c.candidates, Text)
    stmt = select(a.c.rule_key, a.c.strategy, type_coerce(text, Text)).where(*in_window(a.c.at, window))
    if skips.every > 1:
        stmt = stmt.where(_sample(conn, window, skips.every))
    stmt = of_leads(stmt, a.c.lead_id, window)
    loads = orjson.loads
    add = skips.add
    # In batches: the text of a hundred thousand decisions is not held at once (a server-side cursor on PostgreSQL).
    for rule, strategy, value in conn.execute(stmt.execution_options(yield_per=5_000)):
        skips.read += 1
        entries = loads(value) if isinstance(value, str | bytes) else value
        if entries:
            add((rule, strategy), entries)
    filtered = bool(window.lead_filters(owner=False))
    skips.decisions = skips.read * skips.every if filtered else everyone
    skips.estimated = filtered and skips.every > 1
    keys = None
    if window.manager_ids is not None:
        keys = frozenset(window.people[m].key for m in window.manager_ids if m in window.people)
    skips.count(keys)
    return skips


def _sample(conn: Connection, window: Window, every: int) -> ColumnElement[bool]:
    """One block of SAMPLE_BLOCK ids in `every`, from the first id of the period (ids follow time), so that only the
    rows sampled are read: on SQLite a condition on the id, which its index on `at` carries; on PostgreSQL, whose
    index does not, ranges of the primary key."""
    a = assignments
    ends = [int(found) for order in (a.c.at, a.c.at.desc())
            if (found := conn.execute(select(a.c.id).where(*in_window(a.c.at, window)).order_by(order).limit(1))
                .scalar()) is not None]  # fmt: skip
    if not ends:
        return a.c.id.is_(None)
    first, last = min(ends) // SAMPLE_BLOCK, max(ends) // SAMPLE_BLOCK
    if conn.dialect.name == "sqlite":
        return (a.c.id // SAMPLE_BLOCK - first) % every == 0
    return or_(*(a.c.id.between(b * SAMPLE_BLOCK, (b + 1) * SAMPLE_BLOCK - 1) for b in range(first, last + 1, every)))


def _skip_tables(skips: Skips, people: Sequence[Person]) -> list[Table]:
    rows = [{"verdict": c, "skips": skips.total[c], "share": share(skips.total[c], sum(skips.total.values())),
             "_kinds": {k: n for k, n in skips.kinds.most_common() if verdict_class(k) == c}}
            for c in VERDICT_CLASSES]  # fmt: skip
    overall = Table("skipped", N_("Skipped, and why"),
                    [Col("verdict", N_("Why"), "text"), Col("skips", N_("Times skipped")),
                     Col("share", N_("Share"), "percent")], rows,
                    note("Of {read} decisions read, {count} passed someone over.", read=grouped(skips.read),
                         count=grouped(skips.with_skips)))  # fmt: skip
    per = []
    for p in people:
        got = skips.by_manager.get(p.key)
        if got:
            per.append({"manager": p.name, **{c.replace(" ", "_"): got[c] for c in VERDICT_CLASSES},
                        "total": sum(got.values()), "_id": p.id, "_key": p.key})  # fmt: skip
    columns = [Col("manager", N_("Manager"), "text"),
               *(Col(c.replace(" ", "_"), VERDICT_LABELS[c]) for c in VERDICT_CLASSES), Col("total", N_("Total"))]  # fmt: skip
    return [overall, Table("skipped_by_manager", N_("Skipped, per manager"), columns, per,
                           N_("Decisions that named the manager among the skipped."))]  # fmt: skip


def _charts(
    people: Sequence[Person], per_day: dict[tuple[int, date], int], totals: Counter[int], days: list[date]
) -> list[Chart]:
    top = sorted(people, key=lambda p: (-totals[p.id], p.name))[:TOP_LINES]
    lines = Chart("per_day", note("Leads per day (the {count} with the most)", count=len(top)), "line",
                  [d.isoformat() for d in days],
                  [{"label": p.name, "data": [per_day.get((p.id, d), 0) for d in days]} for p in top])  # fmt: skip
    bars = Chart("totals", N_("Leads in the period against capacity"), "bar", [p.name for p in people],
                 [{"label": N_("Leads"), "data": [totals[p.id] for p in people]},
                  {"label": N_("Capacity"), "data": [p.capacity for p in people]}])  # fmt: skip
    return [lines, bars]


def _team(window: Window, p: Person) -> str:
    return _team_name(window, p.team_id)


def _team_name(window: Window, team_id: int) -> str:
    info = window.team_info.get(team_id)
    return info.name if info is not None else str(team_id)


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)
