"""Routing benchmark: one decision in process, per strategy, and a whole backlog routed by ``assign_backlog``.

    .venv/bin/python -m bench.routing [--decisions 20000] [--repeat 5] [--database sqlite|postgresql|all]
                                      [--chunk 500] [--profile] [--json PATH]

Part (a), decisions, pure Python, no database: 500 managers in 10 teams, and 50 rules whose conditions look at the
region, the product and the budget. Every rule needs managers who serve the lead's region and product. A fallback
goes to one team. For each strategy, every rule and the fallback use that strategy. A warm-up of 500 decisions is
followed by N random leads, each timed alone (``perf_counter_ns``). Each decision is taken by the pure ``route`` on
a prepared TeamState. The state is then updated as the batch updates it (``LiveState.take``: the picked manager's
load, the rotation pointer and the credits), so the rotation and the loads move as they would in production.
Garbage collection stays on, so the p99 and the max include its pauses. Three baselines are measured in the same
run, on the same machine:

* bare scan: a dict look-up of the lead's team, then one pass over the list of all 500 managers, taking the first
  active manager in that team with room who serves the region. This is about the least work any router can do;
* one ``SELECT`` of a manager by primary key with the stdlib ``sqlite3`` (a SQLite file, WAL, warm cache);
* the same ``SELECT`` through SQLAlchemy Core, as leadflow sends its statements. A design that read each
  candidate from the database would pay this once per candidate: 50 per lead here.

Part (b), the batch: 2,759 unassigned leads and 82 managers in 5 teams. Caps are 30-50 and the managers start
with 0-15 open leads. Eligibility filters cover regions and products. There are 7 rules plus a fallback, using
round robin, weighted round robin, least loaded (by count and by value) and by rating. The backlog is written as
intake writes leads nobody could take. Each repeat works on a fresh copy of the same database: SQLite with WAL and
``synchronous=NORMAL``, or PostgreSQL (CREATE DATABASE ... TEMPLATE). The timed sides are:

* ``assign_backlog`` with its commits: reading the queue, locking, reading the state once per chunk, deciding,
  and writing with executemany per table in chunks of 500;
* the dry run (reads and decisions only, no writes), on its own fresh copy;
* raw driver, same rows: every row the batch wrote, read back from its database, replayed with the bare driver
  (stdlib ``sqlite3`` / ``psycopg``) on another fresh copy, in the same chunks (BEGIN ... COMMIT, executemany per
  table). Parameters are prepared up front. The two databases are then compared table by table.

Statements are counted with a ``before_cursor_execute`` listener; an executemany counts as one. The count is taken
for the same backlog with 82 managers and with 5x as many (410, each repeated in the same team), to show that the
count depends on the number of chunks and not on the number of candidates.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import os
import pstats
import random
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import Engine, create_engine, event, select, text, update

from bench.common import (
    DEFAULT_PG_URL,
    PostgresScratch,
    console,
    libpq_url,
    machine_info,
    median,
    percentile,
    postgres_scratch,
    print_table,
    spread,
    sqlite_checkpoint,
    sqlite_connect,
)
from leadflow.core.lead import CleanLead
from leadflow.core.policy import SYSTEM
from leadflow.core.routing import ManagerState, TeamState, route
from leadflow.core.rules import RulesFile
from leadflow.services.batch import BatchReport, LiveState, assign_backlog
from leadflow.services.context import Leadflow
from leadflow.store.db import make_engine, migrate
from leadflow.store.tables import assignments, events, leads, managers
from leadflow.store.team_state import apply_rules_people

SEED = 20261124
NOW = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)  # Tuesday 10:00 in Kyiv: everyone is on shift
TARGET_P99_MS = 1.0
TARGET_BATCH_S = 0.5
STRATEGIES = ("round_robin", "weighted_round_robin", "least_loaded", "by_conversion", "by_rating", "best_to_best")
REGIONS = ("KY", "LV", "OD", "KH", "DP", "ZP", "VN", "IF")
PRODUCTS = ("credit", "leasing", "deposit", "cards", "insurance")
RawConn = Any  # sqlite3.Connection or psycopg.Connection


def ms(ns: float) -> float:
    return ns / 1e6


def dist_ms(values_ns: Sequence[int]) -> dict[str, float]:
    return {
        "p50_ms": round(ms(percentile(values_ns, 50)), 4),
        "p99_ms": round(ms(percentile(values_ns, 99)), 4),
        "max_ms": round(ms(max(values_ns)), 4),
    }


# --- (a) one decision -------------------------------------------------------------------------------------------


def decision_rules(strategy: str, rng: random.Random) -> RulesFile:
    """500 managers in 10 teams and 50 rules on region/product/budget, every target using `strategy`."""
    teams = [f"team{i:02d}" for i in range(10)]
    people = []
    for i in range(500):
        people.append(
            {
                "key": f"m{i:03d}",
                "name": f"Manager {i:03d}",
                "team": teams[i % 10],
                "regions": rng.sample(REGIONS, 3),
                "products": rng.sample(PRODUCTS, 2 + (i % 2)),
                "capacity": 1000,
                "weight": rng.randint(1, 5),
                "tier": rng.randint(1, 3),
            }
        )
    rules = []
    for i in range(50):
        when: dict[str, Any] = {"region": rng.sample(REGIONS, 2), "product": rng.choice(PRODUCTS)}
        floor = rng.choice((0, 1_000, 10_000, 50_000))
        if floor:
            when["budget"] = {"gte": floor}
        rules.append({"key": f"r{i:02d}", "team": teams[i % 10], "priority": rng.randint(0, 5), "when": when,
                      "require": ["region", "product"], "strategy": strategy})  # fmt: skip
    data = {
        "default_timezone": "Europe/Kyiv",
        "teams": [{"key": t, "name": t} for t in teams],
        "managers": people,
        "routing": {"rules": rules, "fallback": {"team": teams[0], "strategy": strategy}},
    }
    return RulesFile.model_validate(data)


def prepared_state(rules: RulesFile, rng: random.Random) -> TeamState:
    """What load_team_state would give: every manager with some load and a record of results."""
    people = {}
    for i, m in enumerate(rules.managers, start=1):
        closed = rng.randint(0, 200)
        contacts = rng.randint(0, 300)
        people[m.key] = ManagerState(
            id=i, key=m.key, name=m.name, team=m.team, capacity=m.capacity, open_leads=rng.randint(0, 20),
            hours=rules.hours_of(m), regions=frozenset(m.regions), products=frozenset(m.products),
            languages=frozenset(m.languages), weight=m.weight, tier=m.tier,
            open_value=Decimal(rng.randint(0, 500_000)), closed_leads=closed, won_leads=rng.randint(0, closed),
            first_contacts=contacts, fast_contacts=rng.randint(0, contacts),
        )  # fmt: skip
    return TeamState(people, {})


def random_leads(n: int, rng: random.Random) -> list[CleanLead]:
    return [
        CleanLead(
            channel="web",
            phone=f"+38067{i:07d}",
            region=rng.choice(REGIONS),
            product=rng.choice(PRODUCTS),
            budget=Decimal(rng.randint(0, 100_000)),
            score=rng.randint(0, 20),
        )
        for i in range(n)
    ]


def time_decisions(strategy: str, n: int) -> dict[str, Any]:
    rng = random.Random(SEED)
    rules = decision_rules(strategy, rng)
    live = LiveState(prepared_state(rules, rng))
    warm, measured = random_leads(500, rng), random_leads(n, rng)
    for lead in warm:
        live.take(route(lead, rules, live.view, NOW), lead.budget)
    decide: list[int] = []
    decide_cpu: list[int] = []  # this thread's CPU time: what the decision costs, without the machine's preemption
    with_update: list[int] = []
    pool_sizes: list[int] = []
    assigned = 0
    clock, cpu_clock = time.perf_counter_ns, time.thread_time_ns
    for lead in measured:
        t0, c0 = clock(), cpu_clock()
        decision = route(lead, rules, live.view, NOW)
        c1, t1 = cpu_clock(), clock()
        live.take(decision, lead.budget)
        t2 = clock()
        decide.append(t1 - t0)
        decide_cpu.append(c1 - c0)
        with_update.append(t2 - t0)
        pool_sizes.append(len(decision.candidates))
        assigned += decision.assigned
    return {
        "strategy": strategy,
        "decisions": n,
        "assigned": assigned,
        "candidates_per_decision": round(sum(pool_sizes) / len(pool_sizes), 1),
        "decide": dist_ms(decide),
        "decide_cpu": dist_ms(decide_cpu),
        "decide_and_update": dist_ms(with_update),
    }


def time_bare_scan(n: int) -> dict[str, Any]:
    """The floor: a dict look-up of the team, then one pass over all 500 managers."""
    rng = random.Random(SEED)
    rules = decision_rules("round_robin", rng)
    state = prepared_state(rules, rng)
    people = list(state.managers.values())
    team_of: dict[tuple[str | None, str | None], str] = {
        (r, p): rules.routing.rules[(i * 7 + j) % 50].team
        for i, r in enumerate(REGIONS)
        for j, p in enumerate(PRODUCTS)
    }
    measured = random_leads(n, rng)
    times: list[int] = []
    clock = time.perf_counter_ns
    for lead in measured:
        t0 = clock()
        team = team_of.get((lead.region, lead.product), "team00")
        region = lead.region
        pick = None
        for m in people:
            if m.team == team and m.active and m.open_leads < m.capacity and region in m.regions:
                pick = m
                break
        t1 = clock()
        times.append(t1 - t0)
        assert pick is None or pick.team == team
    return dist_ms(times)


def time_select_by_pk(root: Path, n: int) -> tuple[dict[str, float], dict[str, float]]:
    """One manager by primary key: stdlib sqlite3, then SQLAlchemy Core, on a migrated file with 500 managers."""
    rng = random.Random(SEED)
    path = root / "select.db"
    url = f"sqlite:///{path}"
    migrate(url)
    engine = make_engine(url)
    with engine.begin() as conn:
        apply_rules_people(conn, decision_rules("round_robin", rng), NOW)
    ids = [rng.randint(1, 500) for _ in range(n)]
    clock = time.perf_counter_ns
    raw = sqlite_connect(path, "NORMAL")
    raw_times: list[int] = []
    for i in ids[:200]:
        raw.execute("SELECT * FROM managers WHERE id = ?", (i,)).fetchone()
    for i in ids:
        t0 = clock()
        raw.execute("SELECT * FROM managers WHERE id = ?", (i,)).fetchone()
        raw_times.append(clock() - t0)
    raw.close()
    core_times: list[int] = []
    query = select(managers).where(managers.c.id == 1)
    with engine.connect() as conn:
        for i in ids[:200]:
            conn.execute(select(managers).where(managers.c.id == i)).first()
        for i in ids:
            t0 = clock()
            conn.execute(query.where(managers.c.id == i)).first()
            core_times.append(clock() - t0)
    engine.dispose()
    return dist_ms(raw_times), dist_ms(core_times)


# --- (b) the batch: the workload ----------------------------------------------------------------------------------

BATCH_TEAMS = (("retail", 24), ("smb", 20), ("corporate", 12), ("leasing", 14), ("west", 12))  # 82 managers
BATCH_LEADS = 2759


@dataclass(frozen=True, slots=True)
class Person:
    key: str
    team: str
    regions: tuple[str, ...]
    products: tuple[str, ...]
    capacity: int
    open_leads: int
    weight: int


def batch_people(scale: int) -> list[Person]:
    """82 managers (times `scale`, each copy in the same team with the same filters and cap)."""
    rng = random.Random(SEED + 1)
    base = []
    for team, size in BATCH_TEAMS:
        for _ in range(size):
            regions = ("LV", "IF", *rng.sample(REGIONS[:6], 1)) if team == "west" else rng.sample(REGIONS, 3)
            products = ("leasing",) if team == "leasing" else tuple(rng.sample(PRODUCTS, 3))
            base.append((team, tuple(regions), products, rng.randint(30, 50), rng.randint(0, 15), rng.randint(1, 4)))
    people = []
    for copy in range(scale):
        for i, (team, regions, products, cap, load, weight) in enumerate(base):
            people.append(
                Person(f"m{i:03d}" + (f"x{copy}" if copy else ""), team, regions, products, cap, load, weight)
            )
    return people


def batch_rules(people: Sequence[Person]) -> RulesFile:
    data = {
        "default_timezone": "Europe/Kyiv",
        "teams": [{"key": t, "name": t.title(), "hours": "always"} for t, _ in BATCH_TEAMS],
        "managers": [
            {
                "key": p.key,
                "name": f"Manager {p.key}",
                "team": p.team,
                "regions": list(p.regions),
                "products": list(p.products),
                "capacity": p.capacity,
                "weight": p.weight,
            }
            for p in people
        ],
        "routing": {
            "rules": [
                {
                    "key": "corporate",
                    "priority": 50,
                    "when": {"budget": {"gte": 500_000}},
                    "team": "corporate",
                    "strategy": "least_loaded",
                    "load": "value",
                    "require": ["region"],
                },
                {
                    "key": "leasing",
                    "priority": 40,
                    "when": {"product": "leasing"},
                    "team": "leasing",
                    "strategy": "weighted_round_robin",
                    "require": ["region"],
                },
                {
                    "key": "west",
                    "priority": 30,
                    "when": {"region": ["LV", "IF"]},
                    "team": "west",
                    "require": ["product"],
                },
                {
                    "key": "smb-credit",
                    "priority": 20,
                    "when": {"product": "credit", "budget": {"gte": 50_000}},
                    "team": "smb",
                    "require": ["region", "product"],
                },
                {
                    "key": "smb",
                    "priority": 10,
                    "when": {"budget": {"gte": 50_000}},
                    "team": "smb",
                    "strategy": "least_loaded",
                    "require": ["product"],
                },
                {
                    "key": "retail-cards",
                    "when": {"product": ["cards", "deposit"]},
                    "team": "retail",
                    "strategy": "by_rating",
                    "require": ["region"],
                },
                {"key": "retail", "team": "retail", "require": ["region", "product"]},
            ],
            "fallback": {"team": "retail", "strategy": "least_loaded"},
        },
        "sla": {"default": {"first_contact": "15m"}},
    }
    return RulesFile.model_validate(data)


def backlog_rows(n: int) -> list[dict[str, Any]]:
    """Leads as intake stored them when nobody could take them; budgets spread from 1k to 2M, 5% without."""
    rng = random.Random(SEED + 2)
    rows = []
    for i in range(n):
        at = NOW - timedelta(days=3) + timedelta(seconds=90 * i)
        budget = None if rng.random() < 0.05 else Decimal(round(10 ** rng.uniform(3, 6.3), 2)).quantize(Decimal("0.01"))
        phone = f"+38067{i:07d}"
        rows.append({"channel": rng.choice(("web", "facebook", "import")), "source": "bench", "name": f"Client {i}",
                     "phone": phone, "phone_type": "mobile", "region": rng.choice(REGIONS),
                     "product": rng.choice(PRODUCTS), "budget": budget, "utm": {}, "raw": {"phone": phone},
                     "status": "new", "created_at": at, "updated_at": at, "sla_hops": 0})  # fmt: skip
    return rows


def fill(url: str, people: Sequence[Person], n_leads: int) -> RulesFile:
    """Migrate, write the people and their loads, then the backlog with intake's rows for an unassigned lead."""
    migrate(url)
    rules = batch_rules(people)
    engine = make_engine(url)
    rows = backlog_rows(n_leads)
    reason = "unassigned: no one eligible when the lead arrived"
    with engine.begin() as conn:
        apply_rules_people(conn, rules, NOW - timedelta(days=4))
        for p in people:
            conn.execute(update(managers).where(managers.c.key == p.key).values(open_leads=p.open_leads))
        conn.execute(leads.insert(), rows)
        written = conn.execute(select(leads.c.id, leads.c.created_at, leads.c.channel).order_by(leads.c.id)).all()
        history = [{"lead_id": i, "type": t, "actor": None, "data": d, "at": at} for i, at, ch in written
                   for t, d in (("lead.received", {"channel": ch, "source": "bench"}),
                                ("lead.unassigned", {"reason": reason}))]  # fmt: skip
        conn.execute(events.insert(), history)
        nobody = [{"lead_id": i, "manager_id": None, "kind": "initial", "rule_key": None, "strategy": None,
                   "reason": reason, "candidates": [], "at": at} for i, at, _ in written]  # fmt: skip
        conn.execute(assignments.insert(), nobody)
    engine.dispose()
    return rules


# --- (b) counting statements --------------------------------------------------------------------------------------


@dataclass
class Statements:
    total: int = 0
    executemany: int = 0
    rows_in_executemany: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)


@contextmanager
def counting(engine: Engine) -> Iterator[Statements]:
    seen = Statements()

    def before(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, executemany: bool) -> None:
        seen.total += 1
        seen.by_kind[statement.lstrip().split(None, 1)[0].upper()] += 1
        if executemany:
            seen.executemany += 1
            seen.rows_in_executemany += len(parameters)

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", before)


# --- (b) the raw replay -------------------------------------------------------------------------------------------

QUEUE_ORDER = (
    "SELECT id FROM leads WHERE status = 'new' AND manager_id IS NULL AND queue IS NULL "
    "ORDER BY budget DESC NULLS LAST, created_at, id"
)
LEAD_COLUMNS = ("status", "manager_id", "assigned_at", "updated_at", "sla_hops", "queue", "sla_state", "sla_due_at",
                "rule_key")  # fmt: skip


@dataclass
class Dialect:
    """What differs between the stdlib sqlite3 and psycopg for the replay: placeholders and JSON casts."""

    name: str

    @property
    def ph(self) -> str:
        return "?" if self.name == "sqlite" else "%s"

    def js(self, column: str) -> str:
        return column if self.name == "sqlite" else f"{column}::text"

    def jp(self) -> str:
        return "?" if self.name == "sqlite" else "%s::json"

    def money(self, column: str) -> str:
        return f"round({column}, 2)" if self.name == "sqlite" else f"round({column}::numeric, 2)"


@dataclass
class Replay:
    """Every row the batch wrote, grouped into the batch's chunks, ready to be sent with the bare driver."""

    chunks: list[dict[str, list[tuple[Any, ...]]]]

    @property
    def rows(self) -> int:
        return sum(len(rows) for chunk in self.chunks for rows in chunk.values())


def _fetch(conn: RawConn, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    cur = conn.cursor()
    cur.execute(sql, params)
    rows = [tuple(r) for r in cur.fetchall()]
    cur.close()
    return rows


def max_ids(conn: RawConn) -> dict[str, int]:
    return {t: _fetch(conn, f"SELECT coalesce(max(id), 0) FROM {t}")[0][0] for t in ("assignments", "events", "timers")}


def build_replay(template: RawConn, done: RawConn, d: Dialect, chunk: int) -> Replay:
    """Read back what the batch wrote (done) and split it by the chunk each lead was in (queue order, template)."""
    order = [r[0] for r in _fetch(template, QUEUE_ORDER)]
    chunk_of = {lead_id: i // chunk for i, lead_id in enumerate(order)}
    n_chunks = (len(order) + chunk - 1) // chunk
    budget = dict(_fetch(template, "SELECT id, budget FROM leads"))
    before = max_ids(template)
    p = d.ph
    parts: list[dict[str, list[tuple[Any, ...]]]] = [defaultdict(list) for _ in range(n_chunks)]
    cols = ", ".join(LEAD_COLUMNS)
    for row in _fetch(done, f"SELECT {cols}, id FROM leads WHERE status = 'assigned' ORDER BY id"):
        parts[chunk_of[row[-1]]]["leads"].append(row)
    for row in _fetch(done, f"SELECT lead_id, manager_id, kind, rule_key, strategy, reason, {d.js('candidates')}, at "
                            f"FROM assignments WHERE id > {p} ORDER BY id", (before["assignments"],)):  # fmt: skip
        parts[chunk_of[row[0]]]["assignments"].append(row)
    for row in _fetch(done, f"SELECT lead_id, type, actor, {d.js('data')}, at FROM events WHERE id > {p} ORDER BY id",
                      (before["events"],)):  # fmt: skip
        parts[chunk_of[row[0]] if row[0] is not None else n_chunks - 1]["events"].append(row)
    for row in _fetch(done, f"SELECT lead_id, kind, due_at, {d.js('data')}, created_at FROM timers WHERE id > {p} "
                            "ORDER BY id", (before["timers"],)):  # fmt: skip
        parts[chunk_of[row[0]]]["timers"].append(row)
    pointers = {r[0]: r for r in _fetch(done, f"SELECT rule_key, last_manager_key, {d.js('state')} FROM rr_pointers")}
    for part in parts:
        load: dict[int, tuple[int, Decimal]] = {}
        touched: set[str] = set()
        for lead_id, manager_id, _kind, rule_key, *_ in part["assignments"]:
            n, value = load.get(manager_id, (0, Decimal(0)))
            load[manager_id] = (n + 1, value + Decimal(str(budget[lead_id] or 0)))
            touched.add(rule_key)
        money: Callable[[Decimal], Any] = float if d.name == "sqlite" else (lambda v: v)
        part["managers"] = [(n, money(v), m) for m, (n, v) in sorted(load.items())]
        part["pointers"] = [pointers[k] for k in sorted(touched)]
    return Replay([dict(p) for p in parts])


def replay(conn: RawConn, d: Dialect, data: Replay) -> tuple[float, float]:
    """Write the batch's rows chunk by chunk with the bare driver; returns (wall, CPU) seconds."""
    p, j = d.ph, d.jp()
    sets = ", ".join(f"{c} = {p}" for c in LEAD_COLUMNS)
    statements = {
        "leads": f"UPDATE leads SET {sets} WHERE id = {p}",
        "assignments": "INSERT INTO assignments (lead_id, manager_id, kind, rule_key, strategy, reason, candidates, "
        f"at) VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {j}, {p})",
        "events": f"INSERT INTO events (lead_id, type, actor, data, at) VALUES ({p}, {p}, {p}, {j}, {p})",
        "timers": f"INSERT INTO timers (lead_id, kind, due_at, data, created_at) VALUES ({p}, {p}, {p}, {j}, {p})",
        "managers": f"UPDATE managers SET open_leads = open_leads + {p}, open_value = open_value + {p} WHERE id = {p}",
        "pointers": f"INSERT INTO rr_pointers (rule_key, last_manager_key, state) VALUES ({p}, {p}, {j}) ON CONFLICT "
        "(rule_key) DO UPDATE SET last_manager_key = excluded.last_manager_key, state = excluded.state",
    }
    cpu, started = time.process_time(), time.perf_counter()
    for chunk in data.chunks:
        cur = conn.cursor()
        cur.execute("BEGIN IMMEDIATE" if d.name == "sqlite" else "BEGIN")
        for table, sql in statements.items():
            if chunk.get(table):
                cur.executemany(sql, chunk[table])
        cur.execute("COMMIT")
        cur.close()
    return time.perf_counter() - started, time.process_time() - cpu


def dump(conn: RawConn, d: Dialect) -> dict[str, list[tuple[Any, ...]]]:
    """The tables a batch writes, in a form both databases can be compared in."""
    cols = ", ".join(LEAD_COLUMNS)
    queries = {
        "leads": f"SELECT id, {cols} FROM leads ORDER BY id",
        "assignments": f"SELECT lead_id, manager_id, kind, rule_key, strategy, reason, {d.js('candidates')}, at "
        "FROM assignments ORDER BY id",
        "events": f"SELECT lead_id, type, actor, {d.js('data')}, at FROM events ORDER BY id",
        "timers": f"SELECT lead_id, kind, due_at, {d.js('data')}, created_at FROM timers ORDER BY id",
        "managers": f"SELECT id, open_leads, {d.money('open_value')} FROM managers ORDER BY id",
        "rr_pointers": f"SELECT rule_key, last_manager_key, {d.js('state')} FROM rr_pointers ORDER BY rule_key",
    }
    return {name: _fetch(conn, sql) for name, sql in queries.items()}


# --- (b) the backends ---------------------------------------------------------------------------------------------


class Backend:
    name: str

    def template(self, people: Sequence[Person], n_leads: int, label: str) -> RulesFile:
        raise NotImplementedError

    def fresh(self, label: str) -> str:
        """A fresh copy of the template `label`; returns its SQLAlchemy URL."""
        raise NotImplementedError

    def raw(self, url: str) -> RawConn:
        raise NotImplementedError

    def template_raw(self, label: str) -> RawConn:
        raise NotImplementedError

    def done(self, url: str) -> None:
        """The copy is no longer needed."""


class SqliteBackend(Backend):
    name = "sqlite"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.n = 0

    def _path(self, label: str) -> Path:
        return self.root / f"template-{label}.db"

    def template(self, people: Sequence[Person], n_leads: int, label: str) -> RulesFile:
        rules = fill(f"sqlite:///{self._path(label)}", people, n_leads)
        sqlite_checkpoint(self._path(label))
        return rules

    def fresh(self, label: str) -> str:
        self.n += 1
        target = self.root / f"run-{self.n}.db"
        shutil.copy(self._path(label), target)
        return f"sqlite:///{target}"

    def raw(self, url: str) -> RawConn:
        return sqlite_connect(Path(url.removeprefix("sqlite:///")), "NORMAL")

    def template_raw(self, label: str) -> RawConn:
        return sqlite_connect(self._path(label), "NORMAL")

    def done(self, url: str) -> None:
        path = Path(url.removeprefix("sqlite:///"))
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


class PostgresBackend(Backend):
    name = "postgresql"

    def __init__(self, scratch: PostgresScratch) -> None:
        self.scratch = scratch
        self.templates: dict[str, str] = {}
        self.n = 0
        self.names: dict[str, str] = {}

    def template(self, people: Sequence[Person], n_leads: int, label: str) -> RulesFile:
        name, url = self.scratch.create(f"t_{label}")
        self.templates[label] = name
        self.names[url] = name
        return fill(url, people, n_leads)

    def fresh(self, label: str) -> str:
        self.n += 1
        name, url = self.scratch.create(f"r{self.n}", template=self.templates[label])
        self.names[url] = name
        return url

    def raw(self, url: str) -> RawConn:
        return psycopg.connect(libpq_url(url), autocommit=True)

    def template_raw(self, label: str) -> RawConn:
        name = self.templates[label]
        url = next(u for u, n in self.names.items() if n == name)
        return psycopg.connect(libpq_url(url), autocommit=True)

    def done(self, url: str) -> None:
        self.scratch.drop(self.names.pop(url))


# --- (b) runs -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BatchRun:
    seconds: float
    cpu: float  # this process only: on SQLite that is all of it, on PostgreSQL the server's work is not in it
    report: BatchReport
    statements: Statements


def run_batch(url: str, rules: RulesFile, chunk: int, *, dry_run: bool = False) -> BatchRun:
    engine = make_engine(url)
    app = Leadflow(engine=engine, rules=rules)
    gc.collect()
    with counting(engine) as seen:
        cpu, started = time.process_time(), time.perf_counter()
        report = assign_backlog(app, NOW, dry_run=dry_run, chunk=chunk, who=SYSTEM)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    engine.dispose()
    return BatchRun(seconds, cpu, report, seen)


def bench_batch(backend: Backend, args: argparse.Namespace) -> dict[str, Any]:
    d = Dialect(backend.name)
    console.print(f"[bold]{backend.name}[/]: building the backlog ({BATCH_LEADS} leads, 82 and 410 managers)")
    rules = backend.template(batch_people(1), BATCH_LEADS, "m82")
    rules5 = backend.template(batch_people(5), BATCH_LEADS, "m410")
    runs: list[dict[str, Any]] = []
    for r in range(args.repeat):
        url = backend.fresh("m82")
        run = run_batch(url, rules, args.chunk)
        template, done = backend.template_raw("m82"), backend.raw(url)
        data = build_replay(template, done, d, args.chunk)
        written = dump(done, d)
        template.close()
        done.close()
        backend.done(url)
        replay_url = backend.fresh("m82")
        conn = backend.raw(replay_url)
        raw_seconds, raw_cpu = replay(conn, d, data)
        same = dump(conn, d) == written
        conn.close()
        backend.done(replay_url)
        dry_url = backend.fresh("m82")
        dry = run_batch(dry_url, rules, args.chunk, dry_run=True)
        backend.done(dry_url)
        scaled_url = backend.fresh("m410")
        scaled = run_batch(scaled_url, rules5, args.chunk)
        backend.done(scaled_url)
        rep = run.report
        runs.append({"batch_s": run.seconds, "batch_cpu_s": run.cpu, "raw_s": raw_seconds, "raw_cpu_s": raw_cpu,
                     "dry_s": dry.seconds, "dry_cpu_s": dry.cpu, "batch410_s": scaled.seconds,
                     "batch410_cpu_s": scaled.cpu, "same_rows": same, "dry_predicts": dry.report.picks == rep.picks,
                     "assigned": rep.assigned, "left": rep.left_unassigned, "chunks": rep.chunks, "rows": data.rows,
                     "statements": run.statements.total, "executemany": run.statements.executemany,
                     "statement_kinds": dict(run.statements.by_kind), "statements410": scaled.statements.total,
                     "statement_kinds410": dict(scaled.statements.by_kind), "assigned410": scaled.report.assigned,
                     "max_share": max(c for c, _ in rep.per_manager.values()), "managers_used": len(rep.per_manager),
                     "loadavg": os.getloadavg()[0]})  # fmt: skip
        console.print(f"  run {r + 1}: batch {run.seconds:.3f} s (cpu {run.cpu:.3f}), raw {raw_seconds:.3f} s "
                      f"(cpu {raw_cpu:.3f}), dry {dry.seconds:.3f} s, 410 managers {scaled.seconds:.3f} s; "
                      f"same rows: {same}; load {os.getloadavg()[0]:.1f}")  # fmt: skip
    first = runs[0]
    summary_keys = (
        "batch_s",
        "batch_cpu_s",
        "raw_s",
        "raw_cpu_s",
        "dry_s",
        "dry_cpu_s",
        "batch410_s",
        "batch410_cpu_s",
    )
    first_keys = ("assigned", "left", "chunks", "rows", "statements", "statements410", "statement_kinds",
                  "statement_kinds410", "executemany", "max_share", "managers_used")  # fmt: skip
    return {
        "leads": BATCH_LEADS,
        "managers": 82,
        "chunk": args.chunk,
        "runs": runs,
        **{k: median([r[k] for r in runs]) for k in summary_keys},
        "ratio": median([r["batch_s"] / r["raw_s"] for r in runs]),
        "cpu_ratio": median([r["batch_cpu_s"] / r["raw_cpu_s"] for r in runs]),
        "same_rows": all(r["same_rows"] for r in runs),
        "dry_predicts": all(r["dry_predicts"] for r in runs),
        **{k: first[k] for k in first_keys},
    }


def profile_batch(backend: Backend, rules: RulesFile, chunk: int, top: int = 25) -> str:
    url = backend.fresh("m82")
    engine = make_engine(url)
    app = Leadflow(engine=engine, rules=rules)
    profiler = cProfile.Profile()
    profiler.enable()
    assign_backlog(app, NOW, chunk=chunk, who=SYSTEM)
    profiler.disable()
    engine.dispose()
    backend.done(url)
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(top)
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()


# --- output -------------------------------------------------------------------------------------------------------


def report(result: dict[str, Any]) -> None:
    if result["decisions"]:
        report_decisions(result["decisions"], result["baselines"])
    for name, b in result["batch"].items():
        report_batch(name, b)


def report_decisions(decisions: Sequence[dict[str, Any]], base: dict[str, Any]) -> None:
    rows = []
    for s in decisions:
        dd, dc, du = s["decide"], s["decide_cpu"], s["decide_and_update"]
        rows.append([s["strategy"], f"{s['candidates_per_decision']:.0f}", f"{dd['p50_ms']:.3f}", f"{dd['p99_ms']:.3f}",
                     f"{dd['max_ms']:.2f}", f"{dc['p50_ms']:.3f}", f"{dc['p99_ms']:.3f}", f"{du['p99_ms']:.3f}",
                     f"{dd['p50_ms'] / base['bare_scan']['p50_ms']:.0f}x",
                     f"{dd['p50_ms'] / base['sqlalchemy_select_pk']['p50_ms']:.1f}x",
                     f"{'yes' if dd['p99_ms'] < TARGET_P99_MS else 'NO'} / "
                     f"{'yes' if dc['p99_ms'] < TARGET_P99_MS else 'NO'}"])  # fmt: skip
    baselines = (("baseline: bare scan of 500", "bare_scan"), ("baseline: sqlite3 SELECT by pk", "sqlite3_select_pk"),
                 ("baseline: SQLAlchemy SELECT by pk", "sqlalchemy_select_pk"))  # fmt: skip
    for label, key in baselines:
        b = base[key]
        rows.append([label, "", f"{b['p50_ms']:.4f}", f"{b['p99_ms']:.4f}", f"{b['max_ms']:.2f}", *[""] * 6])
    n = decisions[0]["decisions"] if decisions else 0
    columns = ["strategy", "cand.", "p50", "p99", "max", "cpu p50", "cpu p99", "+update p99", "/ bare", "/ SA select",
               f"p99 < {TARGET_P99_MS:g} ms wall / cpu"]  # fmt: skip
    print_table(
        f"(a) one routing decision, in process: 500 managers in 10 teams, 50 rules, {n:,} random leads (ms)",
        columns,
        rows,
        caption="cand. = candidates judged per decision. p50/p99/max: wall clock (perf_counter_ns), which includes "
        "the machine's preemption; cpu: this thread's CPU time (thread_time_ns), which includes GC pauses. "
        "/ bare and / SA select: decision p50 over that baseline's p50.",
    )


def report_batch(name: str, b: dict[str, Any]) -> None:
    runs = b["runs"]

    def line(label: str, key: str, note: str) -> list[str]:
        return [label, f"{b[key]:.3f}", spread([r[key] * 1000 for r in runs]) + " ms", f"{b[key[:-2] + '_cpu_s']:.3f}",
                f"{b['leads'] / b[key]:,.0f}", note]  # fmt: skip

    per_chunk = b["statements"] / b["chunks"] if b["chunks"] else 0
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(b["statement_kinds"].items()))
    print_table(
        f"(b) batch on {name}: {b['leads']:,} leads, 82 managers with caps 30-50, chunks of {b['chunk']} "
        f"(median of {len(runs)})",
        ["", "wall s", "range", "cpu s", "leads/s", "note"],
        [
            line(
                "assign_backlog, with commits",
                "batch_s",
                f"{b['assigned']} assigned, {b['left']} left; {b['managers_used']} managers, at most {b['max_share']}",
            ),
            line("dry run (read + decide)", "dry_s", f"predicts the run exactly: {b['dry_predicts']}"),
            line("raw driver, same rows + chunks", "raw_s", f"{b['rows']:,} rows; identical tables: {b['same_rows']}"),
            line("assign_backlog, 410 managers", "batch410_s", f"statements: {b['statements410']}"),
        ],
        caption=f"batch / raw: {b['ratio']:.1f}x wall, {b['cpu_ratio']:.1f}x cpu (this process). Target under "
        f"{TARGET_BATCH_S} s: {'met' if b['batch_s'] < TARGET_BATCH_S else 'NOT met'}. Statements: {b['statements']} "
        f"with 82 managers, {b['statements410']} with 410; {per_chunk:.1f} per chunk, {b['executemany']} executemany "
        f"({kinds})",
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.routing", description=__doc__.split("\n\n")[0] if __doc__ else "")
    p.add_argument("--decisions", type=int, default=20_000, help="timed decisions per strategy (default 20000)")
    p.add_argument("--strategies", default=",".join(STRATEGIES), help="comma-separated; '' skips part (a)")
    p.add_argument("--repeat", type=int, default=5, help="batch runs per database; medians are reported (default 5)")
    p.add_argument("--database", choices=("sqlite", "postgresql", "all", "none"), default="all")
    p.add_argument("--pg-url", default=DEFAULT_PG_URL, help="server and maintenance database for PostgreSQL")
    p.add_argument("--chunk", type=int, default=500, help="leads per transaction in the batch (default 500)")
    p.add_argument("--profile", action="store_true", help="profile one more SQLite batch and print where time goes")
    p.add_argument("--dir", type=Path, default=None, help="directory for the SQLite files (default: system temp)")
    p.add_argument("--json", type=Path, help="write every figure to this JSON file")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="leadflow-bench-", dir=args.dir) as tmp:
        root = Path(tmp)
        result: dict[str, Any] = {"machine": machine_info(root), "decisions": [], "baselines": {}, "batch": {}}
        strategies = [s for s in args.strategies.split(",") if s]
        if strategies:
            console.print(f"(a) {len(strategies)} strategies x {args.decisions:,} decisions")
            raw_pk, core_pk = time_select_by_pk(root, 5000)
            result["baselines"] = {"bare_scan": time_bare_scan(args.decisions), "sqlite3_select_pk": raw_pk,
                                   "sqlalchemy_select_pk": core_pk}  # fmt: skip
            for strategy in strategies:
                result["decisions"].append(time_decisions(strategy, args.decisions))
                console.print(f"  {strategy}: p50 {result['decisions'][-1]['decide']['p50_ms']:.3f} ms")
        if args.database in ("sqlite", "all"):
            sqlite_backend = SqliteBackend(root)
            result["batch"]["sqlite"] = bench_batch(sqlite_backend, args)
            if args.profile:
                result["profile"] = profile_batch(sqlite_backend, batch_rules(batch_people(1)), args.chunk)
        if args.database in ("postgresql", "all"):
            try:
                with create_engine(args.pg_url, connect_args={"connect_timeout": 3}).connect() as conn:
                    result["machine"]["postgresql"] = conn.execute(text("SHOW server_version")).scalar()
            except Exception as exc:
                console.print(f"[yellow]PostgreSQL skipped: {exc}[/]")
            else:
                with postgres_scratch(args.pg_url) as scratch:
                    result["batch"]["postgresql"] = bench_batch(PostgresBackend(scratch), args)
    report(result)
    if "profile" in result:
        console.print(result["profile"], markup=False, highlight=False)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
        console.print(f"[dim]figures written to {args.json}[/dim]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
