"""The funnel: how the leads that arrived in the period moved through the statuses, where they dropped and stalled,
how long they stayed in each, and the bottleneck. Every figure is defined in docs/reports.md (Funnel).

Two reads. The cohort's stage rows (the period's leads by ix_leads_created_at, their `lead_stages` rows by the
covering index that starts with lead_id), three narrow columns a row, counted here in one pass: which statuses each
lead entered, its furthest stage, its status now (the stage row still open), each finished stay's length (computed
by the database). Then the previous period's stay lengths in the compared stages, for the bottleneck by time. No
leads row is read unless a filter needs it.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Float, Select, cast, func, select
from sqlalchemy.engine import Connection

from leadflow.core.rules import Status
from leadflow.core.stats import median, percentile, share
from leadflow.services.context import Leadflow
from leadflow.services.reports.query import Window
from leadflow.services.reports.shape import (
    N_,
    Chart,
    Col,
    Figure,
    Note,
    Report,
    Table,
    duration,
    joined,
    named_status,
    note,
    number,
    percent,
)
from leadflow.store.tables import lead_stages, leads


@dataclass(frozen=True)
class Stages:
    """The funnel as the rules declare it: every status in order, the progress statuses (the path to a sale) in
    order, and the closing ones (where leads drop: junk and lost outcomes)."""

    statuses: tuple[Status, ...]
    progress: tuple[str, ...]
    closing: frozenset[str]
    open: frozenset[str]

    @property
    def won(self) -> str | None:
        """The first won status: reaching it (or a later one) is a sale."""
        return next((s.key for s in self.statuses if s.outcome == "won"), None)

    def label(self, key: str) -> str:
        return next((s.label or s.key for s in self.statuses if s.key == key), key)

    def status(self, key: str) -> Figure:
        """A status named in a sentence: its label, which a page shows in the reader's language."""
        return named_status(key, self.label(key))

    def next_of(self, key: str) -> str | None:
        i = self.progress.index(key)
        return self.progress[i + 1] if i + 1 < len(self.progress) else None


def stages_of(funnel: Sequence[Status]) -> Stages:
    progress = tuple(s.key for s in funnel if (s.outcome is None and s.key != "junk") or s.outcome == "won")
    closing = frozenset(s.key for s in funnel if s.key == "junk" or s.outcome == "lost")
    return Stages(tuple(funnel), progress, closing, frozenset(s.key for s in funnel if s.open))


@dataclass
class Counts:
    cohort: int = 0
    entered: dict[str, int] = field(default_factory=dict)
    re_entries: dict[str, int] = field(default_factory=dict)
    reached: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    stalled: dict[str, int] = field(default_factory=dict)
    dropped_on_arrival: int = 0  # closed before any progress stage (junk on arrival)
    stays: dict[str, list[float]] = field(default_factory=dict)  # finished stays' lengths in seconds, by status


# A stage row of a cohort lead: the lead's id, a status it entered, and how long it stayed there in seconds (None:
# it is there now, the row `lead_stages` keeps open for the lead's current status).
StageRow = tuple[int, str, float | None]


def tally(stages: Stages, rows: Iterable[StageRow]) -> Counts:
    """The funnel's counts from the cohort's stage rows, in one pass over them. A lead counts in the cohort by its
    rows in the funnel's statuses: a repeat folded into another lead has only its `merged` row, and is left out."""
    bit = {s.key: 1 << i for i, s in enumerate(stages.statuses)}
    current: dict[int, str] = {}
    entered: defaultdict[int, int] = defaultdict(int)  # lead id -> the statuses it entered, as bits
    stays: dict[str, list[float]] = defaultdict(list)
    for lead, status, seconds in rows:
        flag = bit.get(status)
        if flag is None:
            continue
        entered[lead] |= flag
        if seconds is None:
            current[lead] = status
        else:
            stays[status].append(seconds)
    # Each stage row is a finished stay or the lead's current status.
    rows_of = Counter(current.values())
    rows_of.update({status: len(lengths) for status, lengths in stays.items()})
    # Leads alike in what they entered and where they are now count alike: a few kinds, however many leads.
    kinds = Counter((bits, current.get(lead)) for lead, bits in entered.items())
    out = Counts(cohort=len(entered), stays=dict(stays))
    out.entered = {s.key: 0 for s in stages.statuses}
    out.reached = {key: 0 for key in stages.progress}
    out.dropped = {key: 0 for key in stages.progress}
    out.stalled = {s.key: 0 for s in stages.statuses if s.key in stages.open}
    for (bits, now_in), n in kinds.items():
        for key in out.entered:
            if bits & bit[key]:
                out.entered[key] += n
        furthest = max((i for i, key in enumerate(stages.progress) if bits & bit[key]), default=None)
        for key in stages.progress[: 0 if furthest is None else furthest + 1]:
            out.reached[key] += n
        if now_in in stages.closing:
            if furthest is None:
                out.dropped_on_arrival += n
            else:
                out.dropped[stages.progress[furthest]] += n
        if now_in in out.stalled:
            out.stalled[now_in] += n
    out.re_entries = {key: rows_of[key] - out.entered[key] for key in out.entered}
    return out


@dataclass(frozen=True, slots=True)
class Bottleneck:
    status: str
    figure: float  # the share lost, or how many times longer the median stay
    reason: Note


def loss_bottleneck(stages: Stages, counts: Counts) -> Bottleneck | None:
    """The progress stage whose leads most often went no further: the largest (reached(S) - reached(next)) /
    reached(S). The first in funnel order on a tie."""
    found: Bottleneck | None = None
    for key in stages.progress:
        nxt = stages.next_of(key)
        lost_share = share(counts.reached[key] - counts.reached[nxt], counts.reached[key]) if nxt else None
        if nxt is None or lost_share is None or (found is not None and lost_share <= found.figure):
            continue
        lost = counts.reached[key] - counts.reached[nxt]
        reason = note("the largest loss is after {stage}: {lost} of the {reached} leads that reached it ({share}) "
                      "never reached {next}", stage=stages.status(key), lost=lost, reached=counts.reached[key],
                      share=percent(lost_share), next=stages.status(nxt))  # fmt: skip
        found = Bottleneck(key, lost_share, reason)
    return found


def time_bottleneck(
    stages: Stages, now_medians: dict[str, float | None], before: dict[str, float | None], period: Note
) -> Bottleneck | None:
    """Of the open progress stages, the one whose median stay grew most against the previous period (current /
    previous, above 1). A stage with no finished stay in either period, or none that took any time before, is not
    compared."""
    found: Bottleneck | None = None
    for key in stages.progress:
        current, previous = now_medians.get(key), before.get(key)
        if key not in stages.open or current is None or not previous:
            continue
        ratio = current / previous
        if ratio > 1 and (found is None or ratio > found.figure):
            reason = note("the time in {stage} rose most: a median of {now} against {before} {period} ({ratio} "
                          "times as long)", stage=stages.status(key), now=duration(current), before=duration(previous),
                          period=period, ratio=number(ratio))  # fmt: skip
            found = Bottleneck(key, ratio, reason)
    return found


COLUMNS = [
    Col("status", N_("Status"), "text"),
    Col("stage", N_("Stage"), "text"),
    Col("entered", N_("Entered")),
    Col("re_entries", N_("Re-entries")),
    Col("reached", N_("Reached")),
    Col("conversion", N_("To next stage"), "percent"),
    Col("loss", N_("Lost before next"), "percent"),
    Col("dropped", N_("Dropped here")),
    Col("stalled", N_("Still here")),
    Col("stays", N_("Finished stays")),
    Col("median_seconds", N_("Median time"), "seconds"),
    Col("p90_seconds", N_("P90 time"), "seconds"),
    Col("previous_median_seconds", N_("Median before"), "seconds"),
    Col("time_ratio", N_("Time against before"), "number"),
    Col("bottleneck", N_("Bottleneck"), "text"),
]
# What a row's stage is, and why it is flagged as the bottleneck.
PROGRESS, CLOSING = N_("progress"), N_("closing")
LARGEST_LOSS, SLOWER = N_("largest loss"), N_("slower than before")


def build(conn: Connection, app: Leadflow, window: Window, now: datetime) -> Report:
    stages = stages_of(app.rules.funnel)
    keys = [s.key for s in stages.statuses]
    counts = tally(stages, _stage_rows(conn, window.created_in(), window.start, keys))
    stays = counts.stays
    first, last, start = _previous(window)
    before_in = [leads.c.created_at >= start, leads.c.created_at < window.start, *window.lead_filters()]
    compared = [k for k in stages.progress if k in stages.open]  # the stages the bottleneck by time compares
    before = {k: median(v) for k, v in _stays(conn, before_in, start, compared).items()}
    period = note("in the previous period ({first} to {last})", first=first, last=last)

    for lengths in stays.values():
        lengths.sort()  # once: the median and the p90 then sort what is already in order
    medians = {k: median(v) for k, v in stays.items()}
    by_loss = loss_bottleneck(stages, counts)
    by_time = time_bottleneck(stages, medians, before, period)
    rows = []
    for s in stages.statuses:
        key = s.key
        progress = key in stages.progress
        nxt = stages.next_of(key) if progress else None
        conversion = share(counts.reached[nxt], counts.reached[key]) if nxt else None
        current, previous = medians.get(key), before.get(key)
        flags = [why for why, found in ((LARGEST_LOSS, by_loss), (SLOWER, by_time)) if found and found.status == key]
        rows.append({
            "status": stages.label(key), "_key": key,
            "stage": PROGRESS if progress else CLOSING,
            "entered": counts.entered[key], "re_entries": counts.re_entries[key],
            "reached": counts.reached.get(key), "conversion": conversion,
            "loss": None if conversion is None else 1 - conversion, "_next": nxt,
            "dropped": counts.dropped.get(key), "stalled": counts.stalled.get(key),
            "stays": len(stays.get(key, ())), "median_seconds": current,
            "p90_seconds": percentile(stays.get(key, ()), 90), "previous_median_seconds": previous,
            "time_ratio": current / previous if current is not None and previous else None,
            "bottleneck": joined(flags) if flags else None,
        })  # fmt: skip

    won = stages.won
    reached_won = counts.reached.get(won) if won else None
    notes: list[str] = [note("Bottleneck by loss: {reason}.", reason=by_loss.reason) if by_loss
                        else N_("Bottleneck by loss: no stage was reached.")]  # fmt: skip
    if by_time:
        notes.append(note("Bottleneck by time: {reason}.", reason=by_time.reason))
    elif any(medians.get(k) is not None and before.get(k) for k in compared):
        notes.append(note("Bottleneck by time: no stage took longer than {period}.", period=period))
    else:
        notes.append(note("Bottleneck by time: none, as no stage has finished stays both now and {period}.",
                          period=period))  # fmt: skip
    if counts.dropped_on_arrival:
        notes.append(note("{count} leads were closed on arrival (junk), before any stage: they count in the cohort "
                          "and in no stage's reached.", count=counts.dropped_on_arrival))  # fmt: skip
    if won is None:
        notes.append(N_("The funnel has no won status: there is no overall conversion."))
    summary = {
        "cohort": counts.cohort, "won": reached_won,
        "conversion": share(reached_won, counts.cohort) if reached_won is not None else None,
        "dropped_on_arrival": counts.dropped_on_arrival,
        "bottleneck_loss": by_loss.status if by_loss else None, "bottleneck_time": by_time.status if by_time else None,
        "previous_from": first, "previous_to": last,
    }  # fmt: skip
    about = note("Leads that arrived from {first} to {last} ({zone}), repeats merged into another lead left out. A "
                 "lead counts in every status it entered, up to now; reached: it entered the stage or a later one.",
                 first=window.first_day, last=window.last_day, zone=window.zone.key)  # fmt: skip
    chart = Chart("reached", N_("Leads reaching each stage"), "bar", [stages.label(k) for k in stages.progress],
                  [{"label": N_("Reached"), "data": [counts.reached[k] for k in stages.progress]}])  # fmt: skip
    return Report("funnel", N_("Funnel"), window.echo(), now, summary,
                  [Table("stages", N_("Stages"), COLUMNS, rows, about)], [chart], notes)  # fmt: skip


def _bounds(conn: Connection, since: datetime, statuses: Sequence[str]) -> list[ColumnElement[bool]]:
    """On PostgreSQL, the stage rows worth reading for leads that arrived at `since` or later: a lead enters each of
    its statuses at or after it arrives, so the bound lets it read the period's rows by
    ix_lead_stages_status_entered_at_manager_id_lead_id instead of the whole table. SQLite reads them by lead (the covering index that
    starts with lead_id), which is cheaper for it; given the bound, its planner would scan the status index instead,
    far longer."""
    if conn.dialect.name != "postgresql":
        return []
    return [lead_stages.c.entered_at >= since, lead_stages.c.status.in_(statuses)]


def _seconds(conn: Connection) -> ColumnElement[Any]:
    """A stay's length in seconds (NULL while the lead is still in it), in the database's own arithmetic."""
    if conn.dialect.name == "postgresql":
        # As a double: EXTRACT gives a numeric, which the driver would turn into a Decimal a row.
        length = func.extract("epoch", lead_stages.c.left_at) - func.extract("epoch", lead_stages.c.entered_at)
        return cast(length, Float)
    # julianday's float carries a few microseconds of noise: a stay is counted to the millisecond.
    return func.round((func.julianday(lead_stages.c.left_at) - func.julianday(lead_stages.c.entered_at)) * 86400.0, 3)


def _stage_rows(
    conn: Connection, cohort: list[ColumnElement[bool]], since: datetime, statuses: Sequence[str]
) -> list[StageRow]:
    """The stage rows of the cohort's leads, three narrow columns each (the statuses outside the funnel are left
    out here or, on SQLite, by `tally`)."""
    query = (
        select(lead_stages.c.lead_id, lead_stages.c.status, _seconds(conn))
        .select_from(leads.join(lead_stages, lead_stages.c.lead_id == leads.c.id))
        .where(*cohort, *_bounds(conn, since, statuses))
    )
    return _plain_rows(conn, query)


def _stays(
    conn: Connection, cohort: list[ColumnElement[bool]], since: datetime, statuses: Sequence[str]
) -> dict[str, list[float]]:
    """Each finished stay of the cohort's leads in these statuses, in seconds, by status."""
    query = (
        select(lead_stages.c.status, _seconds(conn))
        .select_from(leads.join(lead_stages, lead_stages.c.lead_id == leads.c.id))
        .where(*cohort, *_bounds(conn, since, statuses), lead_stages.c.left_at.is_not(None))
    )
    found: dict[str, list[float]] = defaultdict(list)
    wanted = set(statuses)
    for status, length in _plain_rows(conn, query):
        if status in wanted:
            found[status].append(length)
    return found


def _plain_rows(conn: Connection, query: Select[Any]) -> list[Any]:
    """The rows as the driver gives them, without building a Row for each: these columns (ids, statuses, seconds
    as floats) need no conversion, and a month of stages is some 300,000 rows."""
    result = conn.execute(query)
    try:
        return list(result.cursor.fetchall())
    finally:
        result.close()


def _previous(window: Window) -> tuple[date, date, datetime]:
    """The period of the same number of local days just before the window: its first and last day, and its start."""
    days = (window.last_day - window.first_day).days + 1
    first = window.first_day - timedelta(days=days)
    return first, window.first_day - timedelta(days=1), datetime.combine(first, time(0), window.zone)
