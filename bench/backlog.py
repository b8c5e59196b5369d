"""Backlog triage: junk N stale leads through `backlog.run` and put them back with `backlog.undo`, beside a bare
UPDATE of the same rows (the baseline, same run, same database kind).

    .venv/bin/python -m bench.backlog --leads 60000 [--database postgresql]

Each side gets a fresh database with the same leads (tests/services/test_backlog_60k.py's generator: 12 managers,
nine in ten leads 200 days old, most open, the load counters in step). Reported: leads a second for apply (chunks of
1,000), for undo, and for `UPDATE leads SET status = 'junk', junk_reason = ... WHERE id IN (...)` in chunks of 1,000,
one transaction each.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from sqlalchemy import bindparam, select, update

from bench.common import DEFAULT_PG_URL, console, postgres_scratch, print_table
from leadflow.core.backlog import Action, Selection
from leadflow.core.policy import SYSTEM
from leadflow.core.rules_text import parse_rules
from leadflow.services import backlog
from leadflow.services.context import Leadflow, utcnow
from leadflow.store.db import make_engine, migrate
from leadflow.store.tables import leads
from leadflow.store.team_state import apply_rules_people

SELECTION = Selection(statuses=("assigned", "contacted"), older_than=timedelta(days=90))


def build(url: str, n: int) -> Leadflow:
    from tests.services import test_backlog_60k as gen

    migrate(url)
    engine = make_engine(url)
    rules = parse_rules(gen.RULES, "bench-rules.yaml")
    with engine.begin() as conn:
        apply_rules_people(conn, rules, utcnow())
    lf = Leadflow(engine=engine, rules=rules)
    gen.N = n
    gen.fill(lf)
    return lf


def timed(step: Callable[[], object]) -> float:
    started = time.perf_counter()
    step()
    return time.perf_counter() - started


def sides(make_url: Callable[[str], str], n: int) -> list[tuple[str, int, float]]:
    lf = build(make_url("run"), n)
    now = utcnow()
    run_id = backlog.start(lf, SELECTION, Action("junk", "stale"), now, who=SYSTEM)
    apply_s = timed(lambda: backlog.run(lf, run_id, now, who=SYSTEM))
    changed = backlog.get_run(lf, run_id, who=SYSTEM)["done_count"]
    undo_s = timed(lambda: backlog.undo(lf, run_id, now, who=SYSTEM))
    lf.engine.dispose()
    bare = build(make_url("bare"), n)
    cutoff = now - timedelta(days=90)
    with bare.engine.connect() as conn:
        ids = list(conn.execute(select(leads.c.id).where(leads.c.status.in_(SELECTION.statuses),
                                                         leads.c.created_at < cutoff).order_by(leads.c.id)).scalars())  # fmt: skip
    junk = update(leads).where(leads.c.id.in_(bindparam("ids", expanding=True))).values(status="junk",
                                                                                        junk_reason="stale")  # fmt: skip

    def bare_update() -> None:
        for i in range(0, len(ids), 1000):
            with bare.engine.begin() as conn:
                conn.execute(junk, {"ids": ids[i : i + 1000]})

    bare_s = timed(bare_update)
    bare.engine.dispose()
    return [("apply (backlog.run)", changed, apply_s), ("undo (backlog.undo)", changed, undo_s),
            ("bare UPDATE, same rows", len(ids), bare_s)]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leads", type=int, default=60_000)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL)
    args = parser.parse_args()
    if args.database == "sqlite":
        folder = Path(tempfile.mkdtemp(prefix="leadflow-bench-backlog-"))
        rows = sides(lambda name: f"sqlite:///{folder / name}.db", args.leads)
    else:
        with postgres_scratch(args.pg_url) as scratch:
            rows = sides(lambda name: scratch.create(name)[1], args.leads)
    print_table(f"Backlog triage, {args.database}, {args.leads:,} leads", ["side", "leads", "seconds", "leads/s"],
                [(label, f"{count:,}", f"{s:.2f}", f"{count / s:,.0f}") for label, count, s in rows])  # fmt: skip
    console.print(f"apply is {rows[2][1] / rows[2][2] / (rows[0][1] / rows[0][2]):.1f}x slower than the bare UPDATE")


if __name__ == "__main__":
    main()
