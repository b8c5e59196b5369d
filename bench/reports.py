"""The reports on a year of history: every report of `leadflow.services.reports.REPORTS` timed through `run_report`
over the last 30, 90 and 365 days, beside bare queries on the same rows in the same run; and what the stage
triggers cost intake.

    .venv/bin/python -m bench.reports [--leads 1000000] [--db sqlite|postgresql|both] [--reuse]

1. The history (bench/report_history.py): --leads leads over 365 days, about 10 events, 1.2 assignments, 2
   activities and 2.6 stages each, 200 managers in 10 teams, written with the bare driver into a migrated database
   (a SQLite file under --dir; the PostgreSQL database --pg-database, made with CREATE DATABASE), then checked
   (`verify`: the stages agree with the leads and with the triggers, the owners with the assignments, ...).
   With --reuse a database that a completed load of the same size left is taken as it is, its indexes brought to
   the schema's (leadflow.store.tables) first.
2. Each report for the window (local days in the rules' zone, Europe/Kyiv, ending on the day of the bench's clock),
   by the system principal (every team), --runs times, the median (and the spread) reported; a report still being
   written (NotImplementedError) is "not built yet". Beside them, in the same run on the same rows: `COUNT(*)` of
   the leads created in the window, their `GROUP BY channel`, and `GROUP BY status` of their lead_stages.
3. Intake with and without the stage triggers (--intake leads through `take_lead`, then `set_status` on each),
   each on a fresh database, interleaved, --runs times: the triggers' cost as a ratio.

Speed is measured, not asserted: the bench always exits 0. What the figures mean and the latest ones:
docs/performance.md, "Reports".
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import statistics
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import Engine

from bench.common import (
    DEFAULT_PG_URL,
    SIX_MANAGERS_RULES,
    console,
    machine_info,
    postgres_scratch,
    print_table,
    with_database,
)
from bench.report_history import GENERATOR, NOW, align_indexes, bench_rules, built_for, load, verify
from leadflow.core.lead import LeadIn
from leadflow.core.policy import SYSTEM
from leadflow.core.rules_text import parse_rules
from leadflow.services.context import Leadflow
from leadflow.services.intake import take_lead
from leadflow.services.leads import set_status
from leadflow.services.reports import REPORTS, run_report
from leadflow.services.reports.query import ReportQuery, Window, resolve
from leadflow.store.db import make_engine, migrate
from leadflow.store.stages import create_stage_triggers, drop_stage_triggers
from leadflow.store.tables import lead_stages, leads
from leadflow.store.team_state import apply_rules_people

TARGET_S = 2.0  # every report, 30-day window, 1,000,000 leads
WINDOWS = (30, 90, 365)
NOT_BUILT = "not built yet"
BARE_BLOCKS = 5  # blocks of bare writes per side, by turns


# --- the databases --------------------------------------------------------------------------------------------------


def say(kind: str, message: str) -> None:
    console.print(f"{kind}: {message}", markup=False, highlight=False)


def sqlite_url(folder: Path, n: int) -> str:
    return f"sqlite:///{folder / f'reports-{n}.db'}"


def fresh_sqlite(url: str) -> None:
    path = Path(str(create_engine(url).url.database))
    path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    migrate(url)


def fresh_postgres(admin_url: str, name: str) -> str:
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = with_database(admin_url, name)
    migrate(url)
    return url


def postgres_exists(admin_url: str, name: str) -> bool:
    admin = create_engine(admin_url)
    with admin.connect() as conn:
        found = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first()
    admin.dispose()
    return found is not None


def database_size(engine: Engine) -> int:
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one())
    path = Path(str(engine.url.database))
    return sum(Path(f"{path}{s}").stat().st_size for s in ("", "-wal") if Path(f"{path}{s}").exists())


@dataclass
class Built:
    kind: str
    url: str
    reused: bool
    load_seconds: float | None = None
    load_steps: dict[str, float] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    size_bytes: int = 0
    problems: dict[str, int] = field(default_factory=dict)
    figures: dict[str, float] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)
    bands: dict[str, int] = field(default_factory=dict)


def prepare(kind: str, args: argparse.Namespace) -> Built:
    """The database of `kind` holding the history of --leads leads: reused (--reuse, a completed load of that size)
    or built now."""
    n = args.leads
    if kind == "sqlite":
        url = sqlite_url(Path(args.dir), n)
        exists = Path(str(create_engine(url).url.database)).exists()
    else:
        name = args.pg_database or ("bench_reports" if n == 1_000_000 else f"bench_reports_{n}")
        url = with_database(args.pg_url, name)
        exists = postgres_exists(args.pg_url, name)
    if args.reuse and exists:
        engine = make_engine(url)
        mark = built_for(engine)
        if mark == f"{GENERATOR}:{n}":
            say(kind, f"reusing {url} ({mark})")
            for change in align_indexes(engine):
                say(kind, f"  the schema's indexes now: {change}")
            built = Built(kind, url, reused=True, size_bytes=database_size(engine))
            engine.dispose()
            return _checked(built, args.verify)
        engine.dispose()
        say(kind, f"{url} holds {mark or 'no completed load'}: building it again")
    if kind == "sqlite":
        fresh_sqlite(url)
    else:
        url = fresh_postgres(args.pg_url, name)
    engine = make_engine(url)
    say(kind, f"building {n:,} leads into {url} ...")
    last = [time.perf_counter()]

    def progress(done: int) -> None:
        if time.perf_counter() - last[0] > 30:
            last[0] = time.perf_counter()
            say(kind, f"  {done:,} leads written")

    loaded = load(engine, n, progress=progress)
    built = Built(kind, url, reused=False, load_seconds=loaded.seconds, load_steps=loaded.steps, rows=loaded.rows,
                  size_bytes=database_size(engine))  # fmt: skip
    engine.dispose()
    return _checked(built, args.verify != "no")


def _checked(built: Built, wanted: Any) -> Built:
    if wanted in (True, "yes"):
        engine = make_engine(built.url)
        started = time.perf_counter()
        found = verify(engine)
        engine.dispose()
        built.problems, built.figures, built.statuses, built.bands = (found.problems, found.figures, found.statuses,
                                                                      found.bands)  # fmt: skip
        say(built.kind, f"checked in {time.perf_counter() - started:.1f} s")
    return built


# --- timing ---------------------------------------------------------------------------------------------------------


@dataclass
class Timing:
    name: str
    days: int
    seconds: list[float] = field(default_factory=list)
    outcome: str = "ok"  # ok | not built yet | the error

    @property
    def median(self) -> float | None:
        return statistics.median(self.seconds) if self.seconds else None


def timed(step: Callable[[], object], runs: int) -> list[float]:
    found = []
    for _ in range(runs):
        gc.collect()
        started = time.perf_counter()
        step()
        found.append(time.perf_counter() - started)
    return found


def query_for(days: int, app: Leadflow) -> ReportQuery:
    """The last `days` local days up to the clock's, in the rules' zone."""
    today = NOW.astimezone(ZoneInfo(app.rules.default_timezone)).date()
    return ReportQuery(start=today - timedelta(days=days - 1), end=today)


def baselines(engine: Engine, window: Window) -> dict[str, Callable[[], object]]:
    """Bare queries on the rows the window's reports read: the leads created in it, and their stages."""
    created = [leads.c.created_at >= window.start, leads.c.created_at < window.end]
    count = select(func.count()).select_from(leads).where(*created)
    by_channel = select(leads.c.channel, func.count()).where(*created).group_by(leads.c.channel)
    by_status = (select(lead_stages.c.status, func.count()).join(leads, leads.c.id == lead_stages.c.lead_id)
                 .where(*created).group_by(lead_stages.c.status))  # fmt: skip

    def run(statement: Any) -> Callable[[], object]:
        def go() -> object:
            with engine.connect() as conn:
                return conn.execute(statement).all()

        return go

    return {"bare COUNT(*) of the leads": run(count), "bare GROUP BY channel": run(by_channel),
            "bare GROUP BY status of their stages": run(by_status)}  # fmt: skip


def time_reports(built: Built, runs: int, windows: tuple[int, ...], only: list[str]) -> list[Timing]:
    engine = make_engine(built.url)
    app = Leadflow(engine=engine, rules=bench_rules())
    found: list[Timing] = []
    for days in windows:
        query = query_for(days, app)
        with engine.connect() as conn:
            window = resolve(conn, query, SYSTEM, app.rules.default_timezone, NOW)
        for name, step in baselines(engine, window).items():
            found.append(Timing(name, days, timed(step, runs)))
        for name in REPORTS:
            if only and name not in only:
                continue
            timing = Timing(name, days)
            try:
                timing.seconds = timed(partial(run_report, app, name, query, NOW, who=SYSTEM), runs)
            except NotImplementedError:
                timing.outcome = NOT_BUILT
            except Exception as exc:  # a failing report is shown; the others are still timed
                timing.outcome = f"{type(exc).__name__}: {exc}"[:200]
                say(built.kind, f"{name}, {days} days failed:\n{traceback.format_exc(limit=6)}")
            found.append(timing)
        say(built.kind, f"{days}-day window timed")
    engine.dispose()
    return found


# --- what the stage triggers cost intake ----------------------------------------------------------------------------


@dataclass
class IntakeSide:
    triggers: bool
    intake_s: list[float] = field(default_factory=list)
    status_s: list[float] = field(default_factory=list)


def _intake_pass(url: str, triggers: bool, n: int) -> tuple[float, float]:
    engine = make_engine(url)
    rules = parse_rules(SIX_MANAGERS_RULES, "bench-intake-rules.yaml")
    with engine.begin() as conn:
        apply_rules_people(conn, rules, NOW)
        if not triggers:
            drop_stage_triggers(conn)
    app = Leadflow(engine=engine, rules=rules)
    for i in range(50):  # warm up: statements compiled, caches filled
        take_lead(app, LeadIn(name=f"Warm {i}", phone=f"+38050{i:07d}"), NOW)
    gc.collect()
    started = time.perf_counter()
    ids = [take_lead(app, LeadIn(name=f"Client {i}", phone=f"+38067{i:07d}"), NOW + timedelta(seconds=i)).lead_id
           for i in range(n)]  # fmt: skip
    intake_s = time.perf_counter() - started
    started = time.perf_counter()
    for k, lead_id in enumerate(ids):
        set_status(app, lead_id, "qualified", NOW + timedelta(seconds=n + k), who=SYSTEM)
    status_s = time.perf_counter() - started
    with engine.connect() as conn:
        stages = conn.execute(select(func.count()).select_from(lead_stages)).scalar_one()
    engine.dispose()
    expected = 2 * (n + 50) - 50 if triggers else 0  # arrival + qualified for the timed leads, arrival for warm-up
    if stages != expected:
        raise RuntimeError(f"{stages} stage rows after the pass, {expected} expected")
    return intake_s, status_s


@dataclass
class BareSide:
    """µs per lead for a bare INSERT of a lead row and one status UPDATE, a transaction each, per block."""

    triggers: bool
    us: list[float] = field(default_factory=list)


def _bare_writes(url: str, blocks: int, per_block: int) -> list[BareSide]:
    """The triggers' own cost, without the services around it: blocks of bare lead writes on one connection,
    triggers on and off by turns (so the machine's drift falls on both)."""
    engine = make_engine(url)
    sides = [BareSide(True), BareSide(False)]
    insert_lead = ("INSERT INTO leads (id, channel, utm, raw, status, created_at, updated_at, sla_hops) "
                   "VALUES ({p}, 'web', '{{}}', '{{}}', 'assigned', {p}, {p}, 0)")  # fmt: skip
    change = "UPDATE leads SET status = 'contacted', updated_at = {p} WHERE id = {p}"
    postgres = engine.dialect.name == "postgresql"
    mark = "%s" if postgres else "?"
    at = "2026-11-24 10:00:00.000000" if not postgres else NOW
    next_id = 1
    for b in range(blocks * 2):
        side = sides[b % 2]
        with engine.begin() as conn:
            drop_stage_triggers(conn)
            if side.triggers:
                create_stage_triggers(conn)
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            started = time.perf_counter()
            for _ in range(per_block):
                if not postgres:
                    cursor.execute("BEGIN IMMEDIATE")
                cursor.execute(insert_lead.format(p=mark), (next_id, at, at))
                cursor.execute(change.format(p=mark), (at, next_id))
                if postgres:
                    raw.commit()
                else:
                    cursor.execute("COMMIT")
                next_id += 1
            side.us.append((time.perf_counter() - started) / per_block * 1e6)
        finally:
            raw.close()
    with engine.begin() as conn:  # as the migration leaves it
        drop_stage_triggers(conn)
        create_stage_triggers(conn)
    engine.dispose()
    return sides


def trigger_cost(kind: str, args: argparse.Namespace) -> tuple[list[IntakeSide], list[BareSide]]:
    sides = [IntakeSide(True), IntakeSide(False)]
    if kind == "sqlite":
        folder = Path(tempfile.mkdtemp(prefix="leadflow-bench-stages-"))
        template = folder / "template.db"
        migrate(f"sqlite:///{template}")

        def fresh(label: str) -> str:
            target = folder / f"{label}.db"
            shutil.copyfile(template, target)
            return f"sqlite:///{target}"

        try:
            _interleave(sides, fresh, args)
            bare = _bare_writes(fresh("bare"), BARE_BLOCKS, args.intake)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return sides, bare
    with postgres_scratch(args.pg_url) as scratch:
        template_name, template_url = scratch.create("template")
        migrate(template_url)
        _interleave(sides, lambda label: scratch.create(label, template=template_name)[1], args)
        bare = _bare_writes(scratch.create("bare", template=template_name)[1], BARE_BLOCKS, args.intake)
    return sides, bare


def _interleave(sides: list[IntakeSide], fresh: Callable[[str], str], args: argparse.Namespace) -> None:
    for r in range(args.runs):
        for side in sides if r % 2 == 0 else list(reversed(sides)):
            intake_s, status_s = _intake_pass(fresh(f"{'on' if side.triggers else 'off'}_{r}"), side.triggers,
                                              args.intake)  # fmt: skip
            side.intake_s.append(intake_s)
            side.status_s.append(status_s)


# --- output ---------------------------------------------------------------------------------------------------------


def _ms(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds * 1000:,.0f}" if seconds >= 0.1 else f"{seconds * 1000:,.1f}"


def print_build(built: Built) -> None:
    if built.load_seconds is not None:
        rows = sum(built.rows.values())
        steps = ", ".join(f"{k} {v:,.0f} s" for k, v in built.load_steps.items())
        say(built.kind, f"the history written in {built.load_seconds:,.0f} s ({rows / built.load_seconds:,.0f} rows/s; "
                        f"{steps}), {built.size_bytes / 2**30:.2f} GiB")  # fmt: skip
        print_table(f"{built.kind}: rows written", ["table", "rows", "per lead"],
                    [(t, f"{c:,}", f"{c / built.rows['leads']:.2f}") for t, c in built.rows.items()])  # fmt: skip
    else:
        say(built.kind, f"{built.size_bytes / 2**30:.2f} GiB")
    if built.figures:
        print_table(f"{built.kind}: what the history holds, per lead", ["", "per lead"],
                    [(k, f"{v:.4f}") for k, v in built.figures.items()])  # fmt: skip
        total = sum(built.statuses.values())
        console.print("statuses: " + ", ".join(f"{k} {v / total:.1%}" for k, v in sorted(built.statuses.items())))
        bands = sum(built.bands.values())
        console.print("response bands: " + ", ".join(f"{k} {v / bands:.1%}" for k, v in sorted(built.bands.items())))
        broken = {k: v for k, v in built.problems.items() if v}
        if broken:
            console.print(f"[bold red]{built.kind}: the history breaks its promises:[/] {broken}")
        else:
            console.print(f"{built.kind}: all {len(built.problems)} checks hold")


def print_timings(built: Built, timings: list[Timing], windows: tuple[int, ...], n: int) -> None:
    names = list(dict.fromkeys(t.name for t in timings))
    by = {(t.name, t.days): t for t in timings}
    rows = []
    for name in names:
        cells = [name]
        for days in windows:
            t = by.get((name, days))
            if t is None:
                cells += ["", ""]
            elif t.outcome != "ok":
                cells += [t.outcome if t.outcome == NOT_BUILT else "failed", ""]
            else:
                count = by[("bare COUNT(*) of the leads", days)].median or 1e-9
                cells += [_ms(t.median), f"{(t.median or 0) / count:,.0f}×"]
        rows.append(cells)
    columns = ["ms, median"] + [c for d in windows for c in (f"{d} days", "÷ COUNT")]
    print_table(f"{built.kind}, {n:,} leads: ms, median of the runs", columns, rows)
    over = [
        t for t in timings if t.days == 30 and t.outcome == "ok" and t.name in REPORTS and (t.median or 0) > TARGET_S
    ]
    if over:
        console.print(f"over {TARGET_S:.0f} s on 30 days: " + ", ".join(f"{t.name} {t.median:.2f} s" for t in over))


def print_trigger_cost(kind: str, sides: list[IntakeSide], bare: list[BareSide], n: int) -> None:
    on, off = sides
    rows = []
    for label, attr in (("take_lead", "intake_s"), ("set_status", "status_s")):
        with_t, without = min(getattr(on, attr)), min(getattr(off, attr))
        ratios = [a / b for a, b in zip(getattr(on, attr), getattr(off, attr), strict=True)]
        rows.append((label, f"{without / n * 1e6:,.0f}", f"{with_t / n * 1e6:,.0f}", f"{with_t / without:.3f}",
                     f"{min(ratios):.3f}-{max(ratios):.3f}"))  # fmt: skip
    print_table(f"{kind}: the stage triggers' cost, {n:,} leads (best of {len(on.intake_s)})",
                ["step", "µs/lead, no triggers", "µs/lead, triggers", "ratio", "ratio per run"], rows)  # fmt: skip
    bare_on, bare_off = (statistics.median(side.us) for side in bare)
    added = bare_on - bare_off
    services = statistics.median([(a + b) / n * 1e6 for a, b in zip(off.intake_s, off.status_s, strict=True)])
    say(kind, f"bare INSERT of a lead + one status UPDATE, a transaction each: {bare_off:,.0f} µs without the triggers, "
              f"{bare_on:,.0f} µs with them (median of {len(bare[0].us)} blocks of {n:,} each, by turns): the "
              f"triggers add {added:,.0f} µs a lead, {added / services:.1%} of take_lead + set_status "
              f"({services:,.0f} µs a lead without them)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--reuse", action="store_true", help="take the database a completed load of this size left")
    parser.add_argument("--verify", choices=("yes", "no", "auto"), default="auto",
                        help="check the history (auto: after building it)")  # fmt: skip
    parser.add_argument("--build-only", action="store_true", help="build (or find) and check the history; time nothing")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--windows", default=",".join(map(str, WINDOWS)), help="days, comma separated")
    parser.add_argument("--reports", default="", help="only these reports, comma separated")
    parser.add_argument("--intake", type=int, default=2000, help="leads for the triggers' cost (0: skip it)")
    parser.add_argument("--dir", default="/var/tmp/leadflow-bench-reports", help="where the SQLite file is kept")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="a PostgreSQL server (its database is not touched)")
    parser.add_argument("--pg-database", default="", help="default: bench_reports (bench_reports_N for other sizes)")
    parser.add_argument("--json", default="", help="write the figures to this file")
    args = parser.parse_args()
    windows = tuple(int(d) for d in args.windows.split(",") if d)
    only = [r for r in args.reports.split(",") if r]
    kinds = ("sqlite", "postgresql") if args.db == "both" else (args.db,)
    console.print(f"machine: {machine_info()}")
    out: dict[str, Any] = {"leads": args.leads, "now": NOW.isoformat(), "machine": machine_info(), "databases": {}}
    for kind in kinds:
        built = prepare(kind, args)
        print_build(built)
        if args.build_only:
            out["databases"][kind] = {"build": asdict(built)}
            continue
        timings = time_reports(built, args.runs, windows, only)
        print_timings(built, timings, windows, args.leads)
        entry: dict[str, Any] = {"build": asdict(built), "timings": [asdict(t) | {"median": t.median} for t in timings]}
        if args.intake:
            sides, bare = trigger_cost(kind, args)
            print_trigger_cost(kind, sides, bare, args.intake)
            entry["stage_triggers"] = [asdict(s) for s in sides]
            entry["stage_triggers_bare"] = [asdict(s) for s in bare]
        out["databases"][kind] = entry
        console.print(f"load average now: {machine_info()['loadavg_at_start']}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    main()
