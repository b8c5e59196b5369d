"""Route the unassigned backlog in one run: as many leads as the caps allow, the most important first, fair.

Routing a backlog lead by lead through ``assign_existing`` re-reads the team state and sends about ten statements
per lead, and places leads greedily: a lead several managers may take can use up the one place a later lead had.
This module plans the whole backlog first and writes it in chunks:

1. The queue is read once: status ``new``, no manager, in no queue (the quality desk keeps its own), in the batch
   order (``routing.batch_order`` or the caller's: by default the highest budget first, none last, then the
   oldest), then by id, so that the order is total and a dry run and the real run see the same order. The team
   state is read once with it, and the managers who already work one of the backlog's clients.
2. Every lead is decided by ``Router.route`` on an in-memory state updated after each decision (the picked
   manager's load, the rotation pointer, the weighted credits), as intake would decide it: that is the strategy's
   own pick. Who may take a lead is the eligible of that decision; once some manager is full, it is read from a
   decision on the state the run started with (same verdicts for leads of the same kind, so it is worked out once
   per kind), and a lead whose managers all end up full also gets the next matching rule's and the fallback's.
3. ``core.assignment.place`` solves the placement as a min-cost maximum flow: the most leads, then the most
   important, then the strategies' picks kept wherever that strands no lead. A decision the flow changed says so
   in its reason. Leads of one client (same phone, same e-mail, duplicate link) go with the client's first lead,
   or to the manager who already works the client.
4. Each chunk is one transaction. It locks the chunk's leads (PostgreSQL: ``FOR UPDATE SKIP LOCKED``, so a lead
   the worker is routing right now is left to it), then every team the rules can send a lead to: the order intake
   and the worker lock in. It reads the managers' loads again under those locks, so a manager whom intake filled
   meanwhile takes no more (that lead stays in the queue, and says why). The chunk's rows are written with one
   executemany per table, and each manager's counters are updated once with the chunk's summed deltas. A dry run
   writes nothing and reports the plan.

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

import dataclasses
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
from sqlalchemy import bindparam, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from leadflow.core.assignment import Placement, Want, place, placeable
from leadflow.core.errors import InvalidInput
from leadflow.core.lead import CleanLead
from leadflow.core.policy import Action, Principal
from leadflow.core.routing import (
    FALLBACK,
    CandidateStore,
    Decision,
    LiveState,
    ManagerState,
    Router,
    TeamState,
    matching_rules,
    sticky_choice,
    sticky_policy,
)
from leadflow.core.rules import RulesFile, Target, batch_order_keys
from leadflow.services.access import every_team
from leadflow.services.context import Leadflow
from leadflow.services.intake import announce, decision_event, tells_anyone
from leadflow.services.sla import INSERT_TIMER, Clock, clock_columns, plan_clock, timer_row
from leadflow.store.db import READ_ONLY
from leadflow.store.events import INSERT_ASSIGNMENT, INSERT_EVENT, append_events, assignment_row, new_event
from leadflow.store.fast import Fast
from leadflow.store.lead_rows import lead_row_to_clean
from leadflow.store.tables import events, leads, rr_pointers
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
    leads.c.department, leads.c.win_probability, leads.c.duplicate_of_id,
)  # fmt: skip
_IN_QUEUE = (leads.c.status == "new", leads.c.manager_id.is_(None), leads.c.queue.is_(None))
_QUEUE = select(*_QUEUE_COLUMNS).where(*_IN_QUEUE)
# Leads of the backlog's clients that someone already works: their owner keeps the client's new leads.
_OWNED = (
    select(leads.c.id, leads.c.phone, leads.c.email, leads.c.duplicate_of_id, leads.c.manager_id)
    .where(
        leads.c.manager_id.is_not(None),
        or_(
            leads.c.phone.in_(bindparam("phones", expanding=True)),
            leads.c.email.in_(bindparam("emails", expanding=True)),
            leads.c.id.in_(bindparam("links", expanding=True)),
        ),
    )
    .order_by(leads.c.id)
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
_INSERT_EVENT_IDS = INSERT_EVENT.returning(events.c.id, sort_by_parameter_order=True)  # ids in the rows' order
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
    row: Mapping[str, Any]
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
    order: Sequence[str] | None = None,
    progress: Callable[[int], None] | None = None,
    who: Principal,
) -> BatchReport:
    """Route the unassigned queue, the most important leads first; commit every `chunk` leads.

    `order` is the batch order (the rules file's ``routing.batch_order`` when None), e.g. ``["score desc",
    "budget desc"]``. `limit` takes only the first leads of the queue. `progress` is called after each chunk with
    the number of leads that chunk handled. A dry run writes nothing and reports what the run would do now.
    """
    every_team(who, Action.ROUTING_BATCH, "the batch")
    if chunk < 1:
        raise InvalidInput.one("chunk", "a chunk holds at least one lead")
    if limit is not None and limit < 0:
        raise InvalidInput.one("limit", "the limit cannot be negative")
    rules = app.rules
    try:
        keys = batch_order_keys(list(order) if order is not None else rules.routing.batch_order)
    except ValueError as e:
        raise InvalidInput.one("order", str(e)) from None
    started = time.perf_counter()
    report = BatchReport(dry_run=dry_run)
    with _gc_paused():
        _run(app, now, report, dry_run=dry_run, chunk=chunk, limit=limit, keys=keys, progress=progress, who=who)
    report.elapsed = time.perf_counter() - started
    return report


def _run(
    app: Leadflow, now: datetime, report: BatchReport, *, dry_run: bool, chunk: int, limit: int | None,
    keys: Sequence[tuple[str, bool]], progress: Callable[[int], None] | None, who: Principal,
) -> None:  # fmt: skip
    """assign_backlog's work: read, plan, then write chunk by chunk, filling in `report`."""
    rules = app.rules
    clocks = _Clocks(rules, now)
    # The rotation pointers of every rule are a few rows; reading them all keeps this independent of the leads.
    rule_keys = [r.key for r in rules.routing.rules] + [FALLBACK]
    team_keys = _routing_teams(rules)
    with app.engine.connect().execution_options(**READ_ONLY) as conn:
        queue = _read_queue(conn, keys, limit, rules)
        state = load_team_state(conn, team_keys, rule_keys, rules.default_timezone)
        owned = _owners(conn, queue, state)
    plans = _plan(queue, owned, Router(rules, now), state, clocks, chunk)
    chunks = [plans[i : i + chunk] for i in range(0, len(plans), chunk)]
    for n, part in enumerate(chunks):
        if dry_run:
            _tally(report, part)
        else:
            with app.engine.begin() as conn:
                # Lead rows, then teams: the order the worker (route_at) and restore_lead lock in, so that none of
                # them can deadlock with a batch. SKIP LOCKED leaves a lead someone is routing right now to them.
                free = set(conn.execute(_STILL_QUEUED, {"ids": [p.queued.row["id"] for p in part]}).scalars())
                still_queued = [p for p in part if p.queued.row["id"] in free]
                report.skipped += len(part) - len(still_queued)
                lock_teams(conn, team_keys)
                fresh = load_team_state(conn, team_keys, rule_keys, rules.default_timezone)
                checked = _within_caps(still_queued, fresh)
                _write(conn, app, checked, now=now)
                _tally(report, checked)
                report.chunks += 1
                if n == len(chunks) - 1:
                    _write_run_event(conn, report, now, who)
        if dry_run:
            report.chunks += 1
        if progress is not None:
            progress(len(part))


@contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection during a run.

    A run allocates tens of thousands of short-lived objects per chunk (decisions, candidates, their rows), and
    keeps the plan of every lead until its chunk is written. None of them form cycles, so reference counting frees
    them. Their allocation count still sets off collections, and the full ones scan the whole long-lived heap
    (the run's plans, and whatever the host process holds) each time: a fifth of a run's CPU when paused per chunk
    only, and more in a process with a large heap. Collection resumes when the run ends. If the collector was
    already off (another batch in this process, or the host application), it stays off.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _read_queue(
    conn: Connection, keys: Sequence[tuple[str, bool]], limit: int | None, rules: RulesFile
) -> list[_Queued]:
    columns = [getattr(leads.c, name).desc() if desc else getattr(leads.c, name).asc() for name, desc in keys]
    query = _QUEUE.order_by(*[c.nulls_last() for c in columns], leads.c.id)
    if _reads_extra(rules):
        query = query.add_columns(leads.c.raw)  # extra.* fields live in the raw request
    result = conn.execute(query if limit is None else query.limit(limit))
    names = list(result.keys())
    # Plain dicts: a backlog reads every column of every row, and a dict answers by name several times faster.
    rows = [dict(zip(names, row, strict=True)) for row in result.all()]
    return [_Queued(row, lead_row_to_clean(row)) for row in rows]


def _reads_extra(rules: RulesFile) -> bool:
    """Whether a rule's condition, or a manager's `accepts:`, looks at a field beyond leadflow's own (extra.*)."""
    conditions = [r.when for r in rules.ordered_rules] + [m.accepts for m in rules.managers if m.accepts is not None]
    return any(name.startswith("extra.") for c in conditions for name in c.fields)


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


class _Clients:
    """The backlog's leads grouped by client: the same phone, the same e-mail, or a duplicate link between them."""

    def __init__(self, queue: Sequence[_Queued]) -> None:
        self._parent: dict[Any, Any] = {}
        for q in queue:
            for token in _tokens(q.row):
                self._union(("lead", q.row["id"]), token)

    def _find(self, x: Any) -> Any:
        parent = self._parent
        root = parent.setdefault(x, x)
        while root != parent[root]:
            root = parent[root]
        while x != root:
            parent[x], x = root, parent[x]
        return root

    def _union(self, a: Any, b: Any) -> None:
        ra, rb = self._find(a), self._find(b)
        if ra != rb:
            self._parent[rb] = ra

    def of(self, lead_id: int) -> Any:
        return self._find(("lead", lead_id))

    def client_of(self, row: Mapping[Any, Any]) -> Any | None:
        """The backlog client an outside lead row belongs to, if any."""
        for token in _tokens(row):
            if token in self._parent:
                return self._find(token)
        return None


def _tokens(row: Mapping[Any, Any]) -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = [("id", row["id"])]
    if row["phone"]:
        found.append(("phone", row["phone"]))
    if row["email"]:
        found.append(("email", row["email"].casefold()))
    if row["duplicate_of_id"] is not None:
        found.append(("id", row["duplicate_of_id"]))
    return found


@dataclass(frozen=True, slots=True)
class _Owned:
    clients: _Clients
    owners: dict[Any, tuple[str, int]]  # client -> (manager key, the lead of theirs that makes them the owner)


def _owners(conn: Connection, queue: Sequence[_Queued], state: TeamState) -> _Owned:
    """Group the backlog by client, and find who already works each client (the latest such lead says)."""
    clients = _Clients(queue)
    owners: dict[Any, tuple[str, int]] = {}
    if not queue:
        return _Owned(clients, owners)
    phones = sorted({q.row["phone"] for q in queue if q.row["phone"]})
    emails = sorted({q.row["email"] for q in queue if q.row["email"]})
    links = sorted({q.row["duplicate_of_id"] for q in queue if q.row["duplicate_of_id"] is not None})
    by_id = {m.id: m.key for m in state.managers.values()}
    for row in conn.execute(_OWNED, {"phones": phones, "emails": emails, "links": links}).mappings():
        client = clients.client_of(row)
        key = by_id.get(row["manager_id"])
        if client is not None and key is not None:
            owners[client] = (key, row["id"])  # ordered by id: the latest lead's owner stays
    return _Owned(clients, owners)


@dataclass(slots=True)
class _Draft:
    """One lead while the run is planned: its routing decision, and what the flow needs to know."""

    queued: _Queued
    decision: Decision  # route()'s, on the state as the leads before it left it
    eligible: Decision | None = None  # route()'s on the state the run started with, when the first one is not enough
    head: int | None = None  # the lead id of the client's first lead in the backlog, for the others


def _plan(
    queue: Sequence[_Queued], owned: _Owned, router: Router, state: TeamState, clocks: _Clocks, chunk: int
) -> list[_Plan]:
    """Route every lead as intake would, then place them all at once (core.assignment) and say why for each.

    Routing lead after lead on the state carried forward gives each lead the strategy's own pick. Once some
    manager is full, a later lead's decision no longer shows who may take it ignoring that: those leads are routed
    again on the state the run started with (which does not change, so the router remembers nearly everything),
    and that decision's eligible managers are who may take them. The flow then places as many leads as possible,
    the most important first, keeping the picks wherever that strands no lead. A client's other leads follow their
    first one to its manager while there is room.
    """
    live = LiveState(state)
    start = LiveState(state).view  # never changed: who may take a lead with the managers as they were
    again = _Again(Router(router.rules, router.now))
    room = {m.key: max(m.capacity - m.open_leads, 0) for m in state.managers.values()}
    drafts: list[_Draft] = []
    heads: dict[Any, int] = {}  # client -> lead id of its first lead
    kept: dict[int, ManagerState] = {}  # lead id -> the client's owner, who keeps them
    for n, q in enumerate(queue):
        if n and n % chunk == 0:
            router.forget_states()  # what the router keeps per state object lasts a chunk's worth of leads
        lead_id: int = q.row["id"]
        client = owned.clients.of(lead_id)
        head = heads.get(client)
        if head is not None:
            drafts.append(_Draft(q, _follower(head), again.route(q.lead, start, ("start",)), head=head))
            continue
        owner_key, owner_lead = owned.owners.get(client, (None, 0))
        owner = state.managers.get(owner_key) if owner_key else None
        sticky = _sticky(q.lead, router, owner, owner_lead) if owner is not None else None
        if sticky is not None and owner is not None and room.get(owner.key, 0) > 0:
            heads[client] = lead_id
            kept[lead_id] = owner
            drafts.append(_Draft(q, sticky))
            continue
        decision = router.route(q.lead, live.view)
        live.take(decision, q.row["budget"])
        # Who may take it is read from the state the run started with, which leads of one kind share (see _Again).
        draft = _Draft(q, decision, again.route(q.lead, start, ("start",), decision.matched_rules))
        # The client's first lead someone may take leads the client; one nobody may take goes its own way.
        if decision.manager_key is not None or any(c.eligible for c in (draft.eligible or decision).candidates):
            heads[client] = lead_id
        drafts.append(draft)
    # Each lead starts with the eligible of the rule that decided it. If some lead could then not be placed (all
    # its managers full), every lead is also given the managers of the rules routing would pass it on to (the next
    # matching rules, the fallback), at a cost above any change within its own rule. So a lead goes to another
    # rule's manager only where that places more leads, or more important ones. A plain maximum flow answers the
    # question; the flow with costs is solved once.
    reach: dict[int, _Reach] = {}
    firsts = _Firsts()
    for d in drafts:
        lead_id = d.queued.row["id"]
        if d.head is None:
            own = (kept[lead_id].key,) if lead_id in kept else None
            reach[lead_id] = _Reach(d, own if own else firsts.of(d), last=None if own else "")
    wants = [Want(i, r.found, kept[i].key if i in kept else r.draft.decision.manager_key) for i, r in reach.items()]
    if placeable(wants, room) < sum(1 for w in wants if w.eligible):  # some lead would be left with all full
        expand = _Expand(again, start)
        for n, r in enumerate(reach.values()):
            first = len(r.found)
            grown = False
            while expand.step(r):  # every rule it may pass on to, at once
                grown = True
            if grown:
                wants[n] = dataclasses.replace(wants[n], eligible=r.found, own=first)
    placement = place(wants, room)
    return _explain(drafts, placement, state, room, clocks, partial(again.router.route, state=start))


@dataclass(slots=True)
class _Reach:
    draft: _Draft
    found: tuple[str, ...]  # who may take the lead so far, in order of preference
    last: str | None  # the last rule looked at ("" for the one that decided); None: no rule after it


class _Firsts:
    """The eligible of the decision that settles who may take a lead, worked out once per decision: leads of one
    kind share their decision on the starting state (see _Again), and so the same tuple."""

    def __init__(self) -> None:
        self._known: dict[int, tuple[Decision, tuple[str, ...]]] = {}  # id(decision) -> (it, its eligible keys)

    def of(self, d: _Draft) -> tuple[str, ...]:
        source = d.eligible or d.decision
        known = self._known.get(id(source))
        if known is None:
            keys = tuple(c.key for c in source.candidates if c.eligible)
            known = self._known[id(source)] = (source, keys)  # holding the decision keeps its id
        return known[1]


class _Again:
    """route() on fixed states, once per kind of lead: who may take a lead is the same for leads that match the same
    rules and ask the same of the managers (region, product, language, score band).

    When a manager has an ``accepts`` condition, which may look at any field, every lead is routed on its own.
    """

    def __init__(self, router: Router) -> None:
        self.router = router
        self.rules = router.rules
        self.known: dict[tuple[Any, ...], Decision] | None = (
            None if any(getattr(m, "accepts", None) is not None for m in router.rules.managers) else {}
        )

    def route(
        self, lead: CleanLead, state: TeamState, where: tuple[Any, ...], matched: tuple[str, ...] | None = None
    ) -> Decision:
        """route(), or the decision for an earlier lead of the same kind; `matched`: the rules the lead matches."""
        if self.known is None:
            return self.router.route(lead, state)
        if matched is None:
            matched = tuple(r.key for r in matching_rules(lead, self.rules))
        key = (where, matched, lead.region, lead.product, lead.language, lead.score, lead.win_probability)
        found = self.known.get(key)
        if found is None:
            found = self.known[key] = self.router.route(lead, state)
        return found


class _Expand:
    """The next matching rule's eligible for a lead: route() with the managers found so far set aside."""

    def __init__(self, router: _Again, start: TeamState) -> None:
        self.router = router
        self.start = start
        self.without: dict[frozenset[str], TeamState] = {}
        self.off: dict[str, ManagerState] = {}  # each manager set aside, made once
        # (id(source decision), last rule, found) -> (found after the step, its last rule), None: no step
        self.known: dict[tuple[int, str | None, tuple[str, ...]], tuple[tuple[str, ...], str | None] | None] = {}
        self._held: list[Decision] = []
        self.chains: dict[tuple[str, ...], list[tuple[str, Target]] | None] = {}  # matched rules -> see _chain

    def _chain(self, matched: tuple[str, ...]) -> list[tuple[str, Target]] | None:
        """The targets route() tries for a lead matching these rules, in order (the fallback last); None when one of
        them does something else than pass the lead on if everyone is off shift (out_of_hours: on_call, team:,
        queue), which only route() itself knows how to follow."""
        if matched not in self.chains:
            rules = self.router.rules
            chain: list[tuple[str, Target]] = [(r.key, r) for r in rules.ordered_rules if r.key in matched]
            if rules.routing.fallback is not None:
                chain.append((FALLBACK, rules.routing.fallback))
            self.chains[matched] = chain if all(t.out_of_hours == "next" for _, t in chain) else None
        return self.chains[matched]

    def step(self, r: _Reach) -> bool:
        """Pass the lead on to the next rule that has someone else for it; False when there is none.

        Leads of one kind share the source decision, so the step is worked out once per kind and place."""
        source = r.draft.eligible or r.draft.decision
        at = (id(source), r.last, r.found)
        if at in self.known:
            done = self.known[at]
        else:
            done = self.known[at] = self._step(r, source)
            self._held.append(source)  # keeps the decision, and so its id, for as long as the entry
        if done is None:
            r.last = None
            return False
        r.found, r.last = done
        return True

    def _step(self, r: _Reach, source: Decision) -> tuple[tuple[str, ...], str | None] | None:
        last = source.rule_key if r.last == "" else r.last
        has_fallback = self.router.router.rules.routing.fallback is not None
        if last is None or last == FALLBACK or (not has_fallback and source.matched_rules[-1:] == (last,)):
            return None
        taken = frozenset(r.found)
        lead = r.draft.queued.lead
        chain = self._chain(r.draft.decision.matched_rules)
        if chain is not None:
            # Every rule passes a lead on when nobody may take it: route() with the managers found so far set aside
            # picks under the first rule that has anyone else, whom the starting state's verdicts already name.
            for key, target in chain:
                more = tuple(k for k in self.router.router.eligible(lead, key, target, self.start) if k not in taken)
                if more:
                    return r.found + more, key
            return None
        state = self.without.get(taken)
        if state is None:
            start, off = self.start, self.off
            for k in taken - off.keys():
                off[k] = dataclasses.replace(start.managers[k], active=False)
            managers = {k: off[k] if k in taken else m for k, m in start.managers.items()}
            state = self.without[taken] = TeamState(managers, start.rr_pointers, start.credits)
        after = self.router.route(lead, state, (taken, last), r.draft.decision.matched_rules)
        more = tuple(c.key for c in after.candidates if c.eligible and c.key not in taken)
        if after.manager_key is None or not more:
            return None
        return r.found + more, after.rule_key


def _sticky(lead: CleanLead, router: Router, owner: ManagerState, owner_lead: int) -> Decision | None:
    """To the client's owner, as intake would send a repeat lead under the sticky policy; None: by the rules."""
    policy, wait = sticky_policy(lead, router.rules, owner.team)
    return sticky_choice(owner, f"same client as lead {owner_lead}", policy, router.now, wait).decision


def _follower(head: int | None) -> Decision:
    return Decision(None, None, None, None, None, f"unassigned: same client as lead {head}, which has no owner yet")


def _explain(
    drafts: Sequence[_Draft], placement: Placement, state: TeamState, room: Mapping[str, int], clocks: _Clocks,
    fresh: Callable[[CleanLead], Decision],
) -> list[_Plan]:  # fmt: skip
    """The final decision of each lead, saying so where the flow changed the strategy's pick."""
    left = dict(room)
    for key in placement.managers.values():
        left[key] -= 1
    finals: dict[int, Decision] = {}
    plans: list[_Plan] = []
    for d in drafts:
        lead_id: int = d.queued.row["id"]
        if d.head is not None:
            final = _with_client(finals[d.head], d, state, left)
        else:
            final = _final(d, placement, state, room, fresh)
        finals[lead_id] = final
        owner = state.managers.get(final.manager_key) if final.manager_key else None
        clock = clocks.plan(d.queued.lead, final, owner) if owner is not None else None
        plans.append(_Plan(d.queued, final, owner, clock))
    return plans


def _final(
    d: _Draft, placement: Placement, state: TeamState, room: Mapping[str, int], fresh: Callable[[CleanLead], Decision]
) -> Decision:
    lead_id: int = d.queued.row["id"]
    key = placement.managers.get(lead_id)
    decision = d.decision
    if key is None:
        if decision.manager_key is None and decision.strategy != "sticky":
            return decision  # its reason already names who is full
        source = d.eligible or decision
        full = [f"{m.name} {m.capacity}/{m.capacity}"
                for c in source.candidates if c.eligible and (m := state.managers.get(c.key)) is not None]  # fmt: skip
        return Decision(None, None, None, source.rule_key, source.strategy,
                        f"unassigned: the places of all {len(full)} eligible went to leads ahead in the batch order "
                        f"(at capacity: {', '.join(full)})", source.candidates, source.matched_rules,
                        checked=source.checked)  # fmt: skip
    if key == decision.manager_key:
        return decision
    manager = state.managers[key]
    # A shared decision (see _Again) describes another lead of the same kind: this lead's own is worked out again.
    base = decision if decision.manager_key is not None else fresh(d.queued.lead)
    moved_from = decision.manager_key or base.manager_key
    note = ""
    if moved_from is not None and moved_from != key:
        was = state.managers[moved_from].name
        other = placement.moved.get(lead_id)
        why = f"so that lead {other} could be placed" if other is not None else f"{was} had no room left for it"
        note = f"; moved from {was} to {manager.name} {why}"
    credits = decision.credits if decision.manager_key is not None else None  # the start state's are stale
    return dataclasses.replace(base, manager_key=key, manager_id=manager.id, manager_name=manager.name,
                               reason=base.reason + note, pointer=(base.rule_key or FALLBACK, key), credits=credits)  # fmt: skip


def _with_client(head: Decision, d: _Draft, state: TeamState, left: dict[str, int]) -> Decision:
    """A client's later lead goes where the first one went, while that manager may take it and has room."""
    key = head.manager_key
    head_id = d.head
    if key is None:
        return _follower(head_id)
    manager = state.managers[key]
    eligible = d.eligible is not None and any(c.key == key and c.eligible for c in d.eligible.candidates)
    if d.eligible is not None and not any(c.eligible for c in d.eligible.candidates):
        return d.eligible  # nobody may take it: its own reason says why
    if head.strategy != "sticky" and not eligible:
        return Decision(None, None, None, head.rule_key, head.strategy,
                        f"unassigned: same client as lead {head_id}, and {manager.name} may not take this one",
                        d.eligible.candidates if d.eligible else (), head.matched_rules)  # fmt: skip
    if left.get(key, 0) <= 0:
        return Decision(None, None, None, head.rule_key, head.strategy,
                        f"unassigned: same client as lead {head_id}, and {manager.name} has no room left for it",
                        head.candidates, head.matched_rules)  # fmt: skip
    left[key] -= 1
    return dataclasses.replace(head, reason=f"same client as lead {head_id}: {manager.name}, one owner for the client",
                               pointer=None, credits=None)  # fmt: skip


def _within_caps(plans: Sequence[_Plan], state: TeamState) -> list[_Plan]:
    """The chunk's plans as the state read under its locks allows: a manager filled meanwhile takes no more."""
    taken: dict[str, int] = {}
    checked = []
    for p in plans:
        key = p.decision.manager_key
        m = state.managers.get(key) if key is not None else None
        if key is None or m is None:
            checked.append(p)
            continue
        if m.open_leads + taken.get(key, 0) >= m.capacity or not m.active or m.absent:
            d = p.decision
            why = f"unassigned: {m.name} could take no more meanwhile ({m.open_leads}/{m.capacity})"
            checked.append(_Plan(p.queued, Decision(None, None, None, d.rule_key, d.strategy, why, d.candidates,
                                                    d.matched_rules), None, None))  # fmt: skip
            continue
        taken[key] = taken.get(key, 0) + 1
        checked.append(p)
    return checked


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
    store = CandidateStore()  # the chunk's candidate records, each stored once
    written: list[_Plan] = []  # the plans of event_rows, in their order
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
        assignment_rows.append(assignment_row(lead_id, d, KIND, now, store))
        event_rows.append(decision_event(lead_id, d, now))
        written.append(p)
        if p.clock is not None and p.owner is not None:
            timer_rows.append(timer_row(lead_id, p.clock, p.owner, d.rule_key, now))
        count, value = load.get(d.manager_id, (0, _ZERO))
        load[d.manager_id] = (count + 1, value + (budget or _ZERO))
        if d.pointer is not None and d.moves_rotation:
            rule_key, manager_key = d.pointer
            # A rule's strategy is fixed, so its decisions carry credits or none do: keep the last credits seen (a
            # lead the flow placed after routing it on the state the run started with carries none).
            before = pointers.get(rule_key)
            credits = d.credits[1] if d.credits is not None else (before[1] if before is not None else None)
            pointers[rule_key] = (manager_key, credits)
    if not lead_rows:
        return
    _ASSIGN_LEADS.run_many(conn, lead_rows)
    _INSERT_ASSIGNMENTS.run_many(conn, assignment_rows)
    event_ids: list[int | None] = [None] * len(written)
    if any(tells_anyone(app, p.decision, p.owner) for p in written):
        event_ids = list(conn.execute(_INSERT_EVENT_IDS, event_rows).scalars())  # the messages carry them
    else:
        _INSERT_EVENTS.run_many(conn, event_rows)
    _INSERT_TIMERS.run_many(conn, timer_rows)
    # Sorted by id: two writers updating the same managers then lock the rows in the same order.
    _ADD_LOADS.run_many(conn, [{"manager_id": m, "delta": c, "value": v} for m, (c, v) in sorted(load.items())])
    _save_pointers(conn, pointers)
    for p, event_id in zip(written, event_ids, strict=True):
        announce(conn, app, p.queued.row["id"], p.queued.lead, p.decision, p.owner, p.clock, now, event_id)


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


def _write_run_event(conn: Connection, report: BatchReport, now: datetime, who: Principal) -> None:
    """The run's one record: who ran it, counts, the distribution, and why the rest stays in the queue."""
    data = {k: v for k, v in report.summary().items() if k not in ("dry_run", "elapsed_ms")}  # not final yet
    append_events(conn, [new_event(None, RUN_EVENT, now, KIND if who.kind == "system" else who, **data)])
