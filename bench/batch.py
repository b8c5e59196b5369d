"""Batch placement: the backlog of bench/routing.py part (b) for every strategy, 82 and 500 managers, on SQLite.

For each strategy (every rule of the workload switched to it) and each team size:

* `assign_backlog` with its commits (chunks of 500) on a fresh copy of the database, wall and CPU seconds;
* how many leads it placed, beside how many the lead-by-lead routing places (`route` on the state carried
  forward, the batch before placement by flow), computed in process on the same state;
* the bare driver writing exactly the rows that run wrote, in the same chunks (the baseline, same run).

    .venv/bin/python -m bench.batch --repeat 3 [--growth weighted_round_robin]

With ``--growth``, the same team and rules with 1, 2 and 4 times the backlog (and the caps, so as large a share
fits), at both team sizes, beside the bare driver writing each run's rows: the cost per lead should stay flat.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bench.common import console, machine_info, median, print_table
from bench.routing import (
    BATCH_LEADS,
    NOW,
    STRATEGIES,
    TARGET_BATCH_S,
    Dialect,
    SqliteBackend,
    batch_people,
    build_replay,
    replay,
)
from leadflow.core.policy import SYSTEM
from leadflow.core.routing import FALLBACK, LiveState, Router, matching_rules
from leadflow.core.rules import RulesFile
from leadflow.services.batch import assign_backlog
from leadflow.services.context import Leadflow
from leadflow.store.db import READ_ONLY, make_engine
from leadflow.store.lead_rows import lead_row_to_clean
from leadflow.store.tables import leads
from leadflow.store.team_state import load_team_state

SIZES = (("m82", 82), ("m500", 500))


def with_strategy(rules: RulesFile, strategy: str) -> RulesFile:
    """The workload's rules with every rule (and the fallback) routing by `strategy`."""
    routing = rules.routing
    changed = routing.model_copy(
        update={
            "rules": tuple(r.model_copy(update={"strategy": strategy}) for r in routing.rules),
            "fallback": routing.fallback.model_copy(update={"strategy": strategy}) if routing.fallback else None,
        }
    )
    return rules.model_copy(update={"routing": changed})


def lead_by_lead(url: str, rules: RulesFile) -> int:
    """How many leads routing one after the other on the state carried forward places (no flow)."""
    engine = make_engine(url)
    queue = (
        select(leads)
        .where(leads.c.status == "new", leads.c.manager_id.is_(None), leads.c.queue.is_(None))
        .order_by(leads.c.budget.desc().nulls_last(), leads.c.created_at, leads.c.id)
    )
    fallback = [rules.routing.fallback.team] if rules.routing.fallback else []
    teams = sorted({r.team for r in rules.routing.rules} | set(fallback))
    rule_keys = [r.key for r in rules.routing.rules] + [FALLBACK]
    with engine.connect().execution_options(**READ_ONLY) as conn:
        rows = conn.execute(queue).mappings().all()
        state = load_team_state(conn, teams, rule_keys, rules.default_timezone)
    engine.dispose()
    live = LiveState(state)
    router = Router(rules, NOW)
    placed = 0
    for row in rows:
        decision = router.route(lead_row_to_clean(row), live.view)
        live.take(decision, row["budget"])
        placed += decision.manager_key is not None
    return placed


def run(backend: SqliteBackend, label: str, rules: RulesFile, chunk: int) -> dict[str, Any]:
    url = backend.fresh(label)
    engine = make_engine(url)
    app = Leadflow(engine=engine, rules=rules)
    gc.collect()
    cpu, started = time.process_time(), time.perf_counter()
    report = assign_backlog(app, NOW, chunk=chunk, who=SYSTEM)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    engine.dispose()
    d = Dialect("sqlite")
    template, done = backend.template_raw(label), backend.raw(url)
    data = build_replay(template, done, d, chunk)
    template.close()
    done.close()
    backend.done(url)
    replay_url = backend.fresh(label)
    conn = backend.raw(replay_url)
    raw_seconds, raw_cpu = replay(conn, d, data)
    conn.close()
    backend.done(replay_url)
    return {"s": seconds, "cpu_s": cpu, "raw_s": raw_seconds, "raw_cpu_s": raw_cpu, "assigned": report.assigned,
            "left": report.left_unassigned, "rows": data.rows}  # fmt: skip


def kinds(url: str, rules: RulesFile) -> int:
    """Distinct eligibility classes in the backlog: leads that match the same rules and ask the same of the managers
    (region, product, language, score, win probability) are interchangeable for who may take them."""
    engine = make_engine(url)
    queue = select(leads).where(leads.c.status == "new", leads.c.manager_id.is_(None), leads.c.queue.is_(None))
    with engine.connect().execution_options(**READ_ONLY) as conn:
        found = set()
        for row in conn.execute(queue).mappings():
            lead = lead_row_to_clean(row)
            matched = tuple(r.key for r in matching_rules(lead, rules))
            found.add((matched, lead.region, lead.product, lead.language, lead.score, lead.win_probability))
    engine.dispose()
    return len(found)


def growth(backend: SqliteBackend, strategy: str, repeat: int, chunk: int) -> list[dict[str, Any]]:
    """The same team and rules with 1, 2 and 4 times the backlog and the caps (so as large a share fits), at 82 and
    500 managers: the cost per lead, and per lead and eligibility class, should stay flat."""
    rows = []
    for label, n in SIZES:
        for times in (1, 2, 4):
            people = [dataclasses.replace(p, capacity=p.capacity * times) for p in batch_people(7)[:n]]
            grown = f"{label}x{times}"
            rules = with_strategy(backend.template(people, BATCH_LEADS * times, grown), strategy)
            url = backend.fresh(grown)
            classes = kinds(url, rules)
            backend.done(url)
            runs = [run(backend, grown, rules, chunk) for _ in range(repeat)]
            row = {"managers": n, "leads": BATCH_LEADS * times, "classes": classes,
                   **{k: median([r[k] for r in runs]) for k in ("s", "cpu_s", "raw_s")},
                   "assigned": runs[0]["assigned"]}  # fmt: skip
            rows.append(row)
            console.print(f"  growth, {n} managers, {row['leads']:,} leads: {row['s']:.3f} s (raw {row['raw_s']:.3f} s)"
                          f", {classes} classes; load {os.getloadavg()[0]:.1f}")  # fmt: skip
    return rows


def print_growth(rows: Sequence[dict[str, Any]], strategy: str, repeat: int) -> None:
    base = {r["managers"]: r for r in rows if r["leads"] == BATCH_LEADS}
    print_table(
        f"growth: {strategy}, backlog and caps times 1, 2, 4 (median of {repeat})",
        ["managers", "leads", "classes", "wall s", "raw driver s", "/ raw", "µs per lead", "per lead, vs ×1"],
        [
            [
                str(r["managers"]),
                f"{r['leads']:,}",
                str(r["classes"]),
                f"{r['s']:.3f}",
                f"{r['raw_s']:.3f}",
                f"{r['s'] / r['raw_s']:.1f}x",
                f"{r['s'] / r['leads'] * 1e6:.0f}",
                f"{(r['s'] / r['leads']) / (base[r['managers']]['s'] / BATCH_LEADS):.2f}",
            ]
            for r in rows
        ],
        caption="Linear in leads: the cost per lead stays at 1.0 of the ×1 row (the classes are the same here).",
    )


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.batch", description=__doc__.split("\n\n")[0] if __doc__ else "")
    p.add_argument("--repeat", type=int, default=3, help="runs per strategy and size; medians are reported")
    p.add_argument("--strategies", default=",".join(STRATEGIES))
    p.add_argument("--chunk", type=int, default=500)
    p.add_argument("--json", type=Path, help="write every figure to this JSON file")
    p.add_argument("--growth", metavar="STRATEGY", help="also time 1, 2 and 4 times the backlog with this strategy")
    args = p.parse_args(argv)
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="leadflow-bench-") as tmp:
        backend = SqliteBackend(Path(tmp))
        base = {label: backend.template(batch_people(7)[:n], BATCH_LEADS, label) for label, n in SIZES}
        for strategy in [s for s in args.strategies.split(",") if s]:
            for label, n in SIZES:
                rules = with_strategy(base[label], strategy)
                url = backend.fresh(label)
                before = lead_by_lead(url, rules)
                backend.done(url)
                runs = [run(backend, label, rules, args.chunk) for _ in range(args.repeat)]
                row = {"strategy": strategy, "managers": n, "lead_by_lead": before, "runs": runs,
                       **{k: median([r[k] for r in runs]) for k in ("s", "cpu_s", "raw_s", "raw_cpu_s")},
                       "assigned": runs[0]["assigned"], "left": runs[0]["left"]}  # fmt: skip
                results.append(row)
                console.print(f"  {strategy}, {n} managers: {row['s']:.3f} s (raw {row['raw_s']:.3f} s), "
                              f"{row['assigned']} placed (lead by lead {before}); load {os.getloadavg()[0]:.1f}")  # fmt: skip
        grew = growth(backend, args.growth, args.repeat, args.chunk) if args.growth else []
    print_table(
        f"batch placement on SQLite: {BATCH_LEADS:,} leads, caps 30-50, chunks of {args.chunk} "
        f"(median of {args.repeat})",
        ["strategy", "managers", "wall s", "cpu s", "raw driver s", "/ raw", "placed", "lead by lead", "left"],
        [
            [
                r["strategy"],
                str(r["managers"]),
                f"{r['s']:.3f}",
                f"{r['cpu_s']:.3f}",
                f"{r['raw_s']:.3f}",
                f"{r['s'] / r['raw_s']:.1f}x",
                str(r["assigned"]),
                str(r["lead_by_lead"]),
                str(r["left"]),
            ]
            for r in results
        ],
        caption=f"Target: under {TARGET_BATCH_S} s with 82 managers for every strategy: "
        + ("met" if all(r["s"] < TARGET_BATCH_S for r in results if r["managers"] == 82) else "NOT met"),
    )
    if grew:
        print_growth(grew, args.growth, args.repeat)
    if args.json:
        payload = {"machine": machine_info(), "results": results, "growth": grew}
        args.json.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
