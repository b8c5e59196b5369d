"""Route the unassigned backlog in one run: fair across managers, within caps, the most valuable leads first.

Routing a backlog lead by lead through ``assign_existing`` re-reads the team state and sends about ten statements
per lead. This module writes the same rows, but for whole chunks at a time:

1. The queue is read once: status ``new``, no manager, in no queue (the quality desk keeps its own), the highest
   budget first (none last), then the oldest, then by id so that the order is total and a dry run and the real
   run see the same order.
2. Each chunk is one transaction. It locks the chunk's leads (PostgreSQL: ``FOR UPDATE SKIP LOCKED``, so a lead
   the worker is routing right now is left to it), then every team the rules can send a lead to. That is the
   order intake and the worker lock in: lead first, then teams. It then reads the team state once. Every lead is
   decided by the pure ``route`` on an in-memory state that is updated after each decision: the picked manager's
   ``open_leads`` and ``open_value``, the rotation pointer and the weighted credits. So caps and fairness hold
   across the chunk without reading the database again. The chunk's rows are written with one executemany per
   table, and each manager's counters are updated once with the chunk's summed deltas.
3. The state is read again at the start of every chunk, under that chunk's locks. Between two chunks the locks
   are released, and intake may give those managers new leads. Reading under the lock keeps caps exact, for two
   small queries per chunk. A dry run writes nothing, so it reads the state once and carries it across its chunks.
   With nobody else writing, both runs therefore see the same state and make the same decisions.

The number of statements depends on the number of chunks (and on notifications, one outbox row per message, as in
intake). It does not depend on the number of managers a lead could go to: ``route`` never reads the database.

Leads nobody can take stay in the queue untouched: no assignment row, no ``lead.unassigned`` event and no team
chat message. Otherwise a backlog that waits for free capacity would get a new row and a new message on every run.
Each lead already has the ``lead.unassigned`` record from the moment it arrived. Each run (not each dry run)
records one summary event instead: ``batch.routed``, with no lead, giving the counts and the reasons (grouped
by the managers' verdicts) with sample lead ids. The report carries every lead's reason, and a dry run shows the
current ones. A lead that waits for its team to open (``out_of_hours: queue``) keeps the ``route_at`` timer intake
gave it; none is added.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import partial
from typing import Any

from rich.table import Table
from sqlalchemy import bindparam, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, RowMapping

from leadflow.core.errors import InvalidInput
from leadflow.core.lead import CleanLead
from leadflow.core.routing import FALLBACK, Decision, LiveState, ManagerState, Router
from leadflow.core.rules import RulesFile, Target
from leadflow.services.context import Leadflow
from leadflow.services.intake import announce, decision_event
from leadflow.services.sla import INSERT_TIMER, Clock, clock_columns, plan_clock, timer_row
from leadflow.store.db import READ_ONLY
from leadflow.store.events import INSERT_ASSIGNMENT, INSERT_EVENT, append_events, assignment_row
from leadflow.store.fast import Fast
from leadflow.store.lead_rows import lead_row_to_clean
from leadflow.store.tables import leads, rr_pointers
from leadflow.store.team_state import ADD_LOAD, load_team_state, lock_teams

KIND = "batch"  # assignments.kind of a lead routed by a batch run
RUN_EVENT = "batch.routed"
_REASON_GROUPS = 20  # distinct reasons kept in the run event (the report keeps all of them)
_SAMPLE_IDS = 20  # lead ids kept per reason in the run event
_ZERO = Decimal(0)

# Only the columns routing reads: the raw payload (JSON) would be parsed for every lead and never used. The
# qualification (score, temperature, department, win probability) is read as assign_existing reads it: rule
# conditions, best_to_best's score bands and the SLA overrides by temperature look at it.
_QUEUE_COLUMNS = (
    leads.c.id, leads.c.channel, leads.c.source, leads.c.external_id, leads.c.name, leads.c.phone,
    leads.c.phone_type, leads.c.email, leads.c.company, leads.c.region, leads.c.product, leads.c.language,
    leads.c.budget, leads.c.message, leads.c.utm, leads.c.created_at, leads.c.score, leads.c.temperature,
    leads.c.department, leads.c.win_probability,
)  # fmt: skip
_IN_QUEUE = (leads.c.status == "new", leads.c.manager_id.is_(None), leads.c.queue.is_(None))
_QUEUE = (
    select(*_QUEUE_COLUMNS)
    .where(*_IN_QUEUE)
    .order_by(leads.c.budget.desc().nulls_last(), leads.c.created_at, leads.c.id)
)
_STILL_QUEUED = (
    select(leads.c.id)
    .where(leads.c.id.in_(bindparam("ids", expanding=True)), *_IN_QUEUE)
    .with_for_update(skip_locked=True)
)
# The same columns assign_existing sets for an assigned lead (clock_columns supplies the sla_* and rule_key).
_ASSIGN_LEAD = (
    update(leads)
    .where(leads.c.id == bindparam("b_id"))
    .values(
        status="assigned",
        manager_id=bindparam("b_manager_id"),
        assigned_at=bindparam("b_now"),
        updated_at=bindparam("b_now"),
        sla_hops=0,
        queue=None,
        sla_state=bindparam("b_sla_state"),
        sla_due_at=bindparam("b_sla_due_at"),
        rule_key=bindparam("b_rule_key"),
    )
)
_ASSIGN_LEADS = Fast(_ASSIGN_LEAD)
_INSERT_ASSIGNMENTS = Fast(INSERT_ASSIGNMENT)
_INSERT_EVENTS = Fast(INSERT_EVENT)
_INSERT_TIMERS = Fast(INSERT_TIMER)
_ADD_LOADS = Fast(ADD_LOAD)


@dataclass
class BatchReport:
    """What a run did (or, dry, would do): the distribution, the leads left in the queue and why."""

    dry_run: bool
    assigned: int = 0
    left_unassigned: int = 0
    per_manager: dict[str, tuple[int, Decimal]] = field(default_factory=dict)  # key -> (leads, their budgets)
    names: dict[str, str] = field(default_factory=dict)  # key -> name, for the table
    picks: dict[int, str] = field(default_factory=dict)  # lead id -> manager key, in routing order
    unassigned: list[tuple[int, str]] = field(default_factory=list)  # (lead id, reason), in routing order
    # Leads left for the same reason, whatever order the rotation listed the managers in: key -> (reason, ids).
    why_groups: dict[tuple[Any, ...], tuple[str, list[int]]] = field(default_factory=dict)
    skipped: int = 0  # left the queue (or were locked by another writer) between the read and their chunk
    chunks: int = 0
    elapsed: float = 0.0

    def table(self, title: str | None = None) -> Table:
        """The distribution per manager, most leads first, with the totals."""
        verb = "would assign" if self.dry_run else "assigned"
        table = Table(title=title or f"batch routing: {verb} {self.assigned}, {self.left_unassigned} left in queue")
        table.add_column("manager")
        table.add_column("leads", justify="right")
        table.add_column("value", justify="right")
        ordered = sorted(self.per_manager.items(), key=lambda kv: (-kv[1][0], kv[0]))
        for key, (count, value) in ordered:
            name = self.names.get(key, key)
            table.add_row(f"{name} ({key})" if name != key else key, str(count), f"{value:,.2f}")
        total_value = sum((v for _, v in self.per_manager.values()), _ZERO)
        table.add_section()
        table.add_row("assigned", str(self.assigned), f"{total_value:,.2f}")
        table.add_row("left unassigned", str(self.left_unassigned), "")
        if self.skipped:
            table.add_row("taken meanwhile by others", str(self.skipped), "")
        return table

    def reasons(self) -> list[tuple[str, int, list[int]]]:
        """Why leads stay in the queue: (reason, how many, their ids), the most common first."""
        return sorted(((r, len(ids), ids) for r, ids in self.why_groups.values()), key=lambda g: -g[1])

    def summary(self, groups: int = _REASON_GROUPS, sample: int = _SAMPLE_IDS) -> dict[str, Any]:
        """JSON-ready: what an API answers and what the run event stores (reasons grouped, a few ids each)."""
        reasons = self.reasons()
        return {
            "dry_run": self.dry_run,
            "assigned": self.assigned,
            "left_unassigned": self.left_unassigned,
            "skipped": self.skipped,
            "chunks": self.chunks,
            "elapsed_ms": round(self.elapsed * 1000, 1),
            "per_manager": [
                {"key": k, "name": self.names.get(k, k), "leads": n, "value": str(v)}
                for k, (n, v) in sorted(self.per_manager.items())
            ],
            "unassigned": [{"reason": r, "leads": n, "ids": ids[:sample]} for r, n, ids in reasons[:groups]],
            "more_reasons": max(len(reasons) - groups, 0),
        }

    def reasons_table(self, limit: int = 10) -> Table:
        table = Table(title="left in the queue")
        table.add_column("leads", justify="right")
        table.add_column("reason")
        table.add_column("e.g. lead ids")
        for reason, count, ids in self.reasons()[:limit]:
            table.add_row(str(count), reason, ", ".join(map(str, ids[:5])))
        return table


@dataclass(frozen=True, slots=True)
class _Queued:
    row: RowMapping
    lead: CleanLead


@dataclass(frozen=True, slots=True)
class _Plan:
    queued: _Queued
    decision: Decision
    owner: ManagerState | None
    clock: Clock | None


class _Clocks:
    """plan_clock, remembered: with one `now` for the run, a deadline depends only on the policy and the owner."""

    def __init__(self, rules: RulesFile, now: datetime) -> None:
        self.rules = rules
        self.now = now
        self._known: dict[tuple[Any, ...], Clock | None] = {}

    def plan(self, lead: CleanLead, decision: Decision, owner: ManagerState) -> Clock | None:
        # policy_for reads the channel (case-folded), the temperature, the rule and the owner's team.
        key = (lead.channel.casefold(), lead.temperature, decision.rule_key, owner.team, owner.hours)
        if key not in self._known:
            self._known[key] = plan_clock(self.rules, lead, decision, owner, self.now)
        return self._known[key]


def count_backlog(app: Leadflow) -> int:
    """How many leads wait in the unassigned queue (for a progress bar's total)."""
    with app.engine.connect().execution_options(**READ_ONLY) as conn:
        return int(conn.execute(select(func.count()).select_from(leads).where(*_IN_QUEUE)).scalar_one())


def assign_backlog(
    app: Leadflow,
    now: datetime,
    *,
    dry_run: bool = False,
    chunk: int = 500,
    limit: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> BatchReport:
    """Route the unassigned queue, the highest budgets first; commit every `chunk` leads.

    `limit` takes only the first leads of the queue. `progress` is called after each chunk with the number of
    leads that chunk handled. A dry run writes nothing and reports what the run would do now.
    """
    if chunk < 1:
        raise InvalidInput.one("chunk", "a chunk holds at least one lead")
    if limit is not None and limit < 0:
        raise InvalidInput.one("limit", "the limit cannot be negative")
    started = time.perf_counter()
    report = BatchReport(dry_run=dry_run)
    rules = app.rules
    clocks = _Clocks(rules, now)
    # route() itself, remembering what does not change from one lead to the next (see Router).
    router = Router(rules, now)
    # The rotation pointers of every rule are a few rows; reading them all keeps this independent of the leads.
    rule_keys = [r.key for r in rules.routing.rules] + [FALLBACK]
    team_keys = _routing_teams(rules)
    with _gc_paused():
        queue = _read_queue(app, limit)
    chunks = [queue[i : i + chunk] for i in range(0, len(queue), chunk)]
    if dry_run:
        with app.engine.connect().execution_options(**READ_ONLY) as conn:
            live = LiveState(load_team_state(conn, team_keys, rule_keys, rules.default_timezone))
        for part in chunks:
            with _gc_paused():
                _decide_chunk(report, part, router, live, clocks, None)
            report.chunks += 1
            if progress is not None:
                progress(len(part))
    else:
        for n, part in enumerate(chunks):
            with app.engine.begin() as conn:
                # Lead rows, then teams: the order the worker (route_at) and restore_lead lock in, so that none of
                # them can deadlock with a batch. SKIP LOCKED leaves a lead someone is routing right now to them.
                free = set(conn.execute(_STILL_QUEUED, {"ids": [q.row["id"] for q in part]}).scalars())
                still_queued = [q for q in part if q.row["id"] in free]
                report.skipped += len(part) - len(still_queued)
                lock_teams(conn, team_keys)
                live = LiveState(load_team_state(conn, team_keys, rule_keys, rules.default_timezone))
                with _gc_paused():
                    _decide_chunk(report, still_queued, router, live, clocks, partial(_write, conn, app, now=now))
                report.chunks += 1
                if n == len(chunks) - 1:
                    _write_run_event(conn, report, now)
            if progress is not None:
                progress(len(part))
    report.elapsed = time.perf_counter() - started
    return report


@contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while the queue is read, or one chunk is decided and written.

    A chunk allocates tens of thousands of short-lived objects (decisions, candidates, their rows). None of them
    form cycles, so reference counting frees them. Their allocation count still sets off collections, and the full
    ones scan the whole long-lived heap each time. That was a fifth of a run's CPU. The pause lasts one chunk (500
    leads: tens of milliseconds), and collection resumes between chunks. The chunk's objects are freed before it
    resumes (_decide_chunk), and the queue is read paused too: otherwise the collections that followed each pause
    went through all of them (3% of a run). If the collector was already off (another batch in this process, or the
    host application), it stays off.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _read_queue(app: Leadflow, limit: int | None) -> list[_Queued]:
    query = _QUEUE if limit is None else _QUEUE.limit(limit)
    with app.engine.connect().execution_options(**READ_ONLY) as conn:
        rows = conn.execute(query).mappings().all()
    return [_Queued(row, lead_row_to_clean(row)) for row in rows]


def _routing_teams(rules: RulesFile) -> list[str]:
    """Every team a rule or the fallback can send a lead to, off-shift teams included.

    This is the union of route_now's per-lead teams_involved over any backlog. Taking it from the rules instead of
    from each lead saves matching every lead twice (a tenth of the run). It costs locking teams the backlog might
    not reach, and only for one chunk's transaction.
    """
    targets: list[Target] = [*rules.routing.rules, *([rules.routing.fallback] if rules.routing.fallback else [])]
    found = {t.team for t in targets}
    found.update(t.out_of_hours.removeprefix("team:") for t in targets if t.out_of_hours.startswith("team:"))
    return sorted(found)


def _decide_chunk(
    report: BatchReport, part: Sequence[_Queued], router: Router, live: LiveState, clocks: _Clocks,
    write: Callable[[list[_Plan]], None] | None,
) -> None:  # fmt: skip
    """Decide a chunk, write it (unless dry), count it in the report, and let go of what it made.

    Run with the collector paused: the decisions, candidates and rows of the chunk are freed here, before it resumes,
    so that they do not count towards its next collection (see _gc_paused).
    """
    plans = _decide(part, router, live, clocks)
    if write is not None:
        write(plans)
    _tally(report, plans)
    router.forget_states()  # what the router keeps per state object lasts a chunk: the next reads its own state


def _decide(part: Sequence[_Queued], router: Router, live: LiveState, clocks: _Clocks) -> list[_Plan]:
    plans = []
    for q in part:
        decision = router.route(q.lead, live.view)
        # The owner as the decision saw them, before this lead counts in their load: what assign_existing uses.
        owner = live.managers.get(decision.manager_key) if decision.manager_key else None
        clock = clocks.plan(q.lead, decision, owner) if owner is not None else None
        live.take(decision, q.row["budget"])
        plans.append(_Plan(q, decision, owner, clock))
    return plans


def _tally(report: BatchReport, plans: Iterable[_Plan]) -> None:
    for p in plans:
        d = p.decision
        if d.manager_key is None:
            report.left_unassigned += 1
            report.unassigned.append((p.queued.row["id"], d.reason))
            # The reason text lists the managers from the rotation's current position; the verdicts do not move.
            key = (d.rule_key, d.matched_rules, tuple(sorted(c.why for c in d.candidates)), d.wait_until is not None)
            report.why_groups.setdefault(key, (d.reason, []))[1].append(p.queued.row["id"])
            continue
        count, value = report.per_manager.get(d.manager_key, (0, _ZERO))
        report.per_manager[d.manager_key] = (count + 1, value + (p.queued.row["budget"] or _ZERO))
        report.names[d.manager_key] = d.manager_name or d.manager_key
        report.picks[p.queued.row["id"]] = d.manager_key
        report.assigned += 1


def _write(conn: Connection, app: Leadflow, plans: Sequence[_Plan], *, now: datetime) -> None:
    """The rows assign_existing writes for each assigned lead, one executemany per table for the whole chunk."""
    lead_rows: list[dict[str, Any]] = []
    assignment_rows: list[dict[str, Any]] = []
    event_rows: list[dict[str, Any]] = []
    timer_rows: list[dict[str, Any]] = []
    load: dict[int, tuple[int, Decimal]] = {}
    pointers: dict[str, tuple[str, Mapping[str, float] | None]] = {}
    for p in plans:
        d = p.decision
        if d.manager_id is None or d.manager_key is None:
            continue  # stays in the queue untouched; the run event says why
        lead_id: int = p.queued.row["id"]
        budget: Decimal | None = p.queued.row["budget"]
        columns = clock_columns(p.clock, d.rule_key)
        lead_rows.append({"b_id": lead_id, "b_manager_id": d.manager_id, "b_now": now,
                          "b_sla_state": columns["sla_state"], "b_sla_due_at": columns["sla_due_at"],
                          "b_rule_key": columns["rule_key"]})  # fmt: skip
        assignment_rows.append(assignment_row(lead_id, d, KIND, now))
        event_rows.append(decision_event(lead_id, d, now))
        if p.clock is not None and p.owner is not None:
            timer_rows.append(timer_row(lead_id, p.clock, p.owner, d.rule_key, now))
        count, value = load.get(d.manager_id, (0, _ZERO))
        load[d.manager_id] = (count + 1, value + (budget or _ZERO))
        if d.pointer is not None and d.moves_rotation:
            rule_key, manager_key = d.pointer
            # A rule's strategy is fixed, so either all of its decisions carry credits or none do: keep the last.
            pointers[rule_key] = (manager_key, d.credits[1] if d.credits is not None else None)
    if not lead_rows:
        return
    _ASSIGN_LEADS.run_many(conn, lead_rows)
    _INSERT_ASSIGNMENTS.run_many(conn, assignment_rows)
    _INSERT_EVENTS.run_many(conn, event_rows)
    _INSERT_TIMERS.run_many(conn, timer_rows)
    # Sorted by id: two writers updating the same managers then lock the rows in the same order.
    _ADD_LOADS.run_many(conn, [{"manager_id": m, "delta": c, "value": v} for m, (c, v) in sorted(load.items())])
    _save_pointers(conn, pointers)
    for p in plans:
        if p.decision.manager_id is not None:
            announce(conn, app, p.queued.row["id"], p.queued.lead, p.decision, p.owner, p.clock, now)


def _save_pointers(conn: Connection, pointers: Mapping[str, tuple[str, Mapping[str, float] | None]]) -> None:
    """save_pointer for every rule the chunk moved, as at most two executemany upserts (with and without credits)."""
    insert = (postgresql if conn.dialect.name == "postgresql" else sqlite).insert
    with_credits = [{"rule_key": k, "last_manager_key": m, "state": {"credits": dict(c)}}
                    for k, (m, c) in sorted(pointers.items()) if c is not None]  # fmt: skip
    plain = [{"rule_key": k, "last_manager_key": m} for k, (m, c) in sorted(pointers.items()) if c is None]
    if with_credits:
        stmt = insert(rr_pointers)
        set_ = {"last_manager_key": stmt.excluded.last_manager_key, "state": stmt.excluded.state}
        conn.execute(stmt.on_conflict_do_update(index_elements=["rule_key"], set_=set_), with_credits)
    if plain:
        stmt = insert(rr_pointers)
        set_ = {"last_manager_key": stmt.excluded.last_manager_key}
        conn.execute(stmt.on_conflict_do_update(index_elements=["rule_key"], set_=set_), plain)


def _write_run_event(conn: Connection, report: BatchReport, now: datetime) -> None:
    """The run's one record: counts, the distribution, and why the rest stays in the queue."""
    data = {k: v for k, v in report.summary().items() if k not in ("dry_run", "elapsed_ms")}  # not final yet
    append_events(conn, [{"lead_id": None, "type": RUN_EVENT, "actor": KIND, "data": data, "at": now}])
