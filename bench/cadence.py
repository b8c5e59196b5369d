"""Call cadence benchmark: ``next_attempt`` for a large backlog of leads, in process, no database.

    .venv/bin/python -m bench.cadence [--leads 100000] [--repeat 3] [--json PATH]

The backlog: --leads leads, each with a random phone type (mobile, landline, other or none), a client time zone
from a mix of eight (with and without daylight saving time, on both sides of the team's), and 0 to 6 earlier
attempts 1 to 9 hours apart. Each lead has its own `now`, 5 to 120 minutes after its latest attempt (a lead with no
attempts: any time), spread over two weeks of November and December 2026 that include a holiday. The team works in
Europe/Kyiv, Monday to Friday; the policy is the default (7 attempts, 10:00-19:00 client time, mobiles 3 a day 2h
apart, other phones 2 a day 3h apart) with one holiday.

Timed: one pass of ``next_attempt`` over every lead, --repeat times; the best pass is reported, and the first pass
(empty caches) beside it. Baseline, in the same run on the same leads: the same loop doing only one zoneinfo
conversion per lead (``now.astimezone(zone)``), the least work that looks at the client's local time at all.
Garbage collection stays on.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bench.common import console, machine_info, print_table
from leadflow.core.cadence import CadencePolicy, Plan, next_attempt

SEED = 20261201
TARGET_S = 1.0
START = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)  # a Monday
SPAN = timedelta(days=14)
TEAM_TZ = "Europe/Kyiv"
TEAM_CLOSED = frozenset({5, 6})
ZONES = (
    "Europe/Kyiv",
    "Europe/Warsaw",
    "Europe/London",
    "Europe/Moscow",
    "Asia/Almaty",
    "Asia/Tokyo",
    "America/New_York",
    "Australia/Sydney",
)
PHONE_TYPES = ("mobile", "mobile", "landline", "other", None)
POLICY = CadencePolicy(key="bench", holidays=(date(2026, 12, 1),))

Lead = tuple[str | None, str, tuple[datetime, ...], datetime]


def backlog(n: int, rng: random.Random) -> list[Lead]:
    leads: list[Lead] = []
    for _ in range(n):
        zone = rng.choice(ZONES)
        made = rng.randint(0, 6)
        first = START + timedelta(seconds=rng.randrange(int(SPAN.total_seconds())))
        times = [first]
        for _ in range(made - 1):
            times.append(times[-1] + timedelta(minutes=rng.randint(60, 540)))
        attempts = tuple(times[:made])
        now = (attempts[-1] + timedelta(minutes=rng.randint(5, 120))) if attempts else first
        leads.append((rng.choice(PHONE_TYPES), zone, attempts, now))
    return leads


def run_planner(leads: Sequence[Lead]) -> tuple[float, list[Plan]]:
    plans: list[Plan] = []
    keep = plans.append
    clock = time.perf_counter
    t0 = clock()
    for phone_type, zone, attempts, now in leads:
        keep(
            next_attempt(
                POLICY,
                phone_type=phone_type,
                client_tz=zone,
                team_tz=TEAM_TZ,
                team_closed=TEAM_CLOSED,
                attempts=attempts,
                now=now,
            )
        )
    return clock() - t0, plans


def run_baseline(leads: Sequence[Lead]) -> float:
    zones = {name: ZoneInfo(name) for name in ZONES}
    out: list[datetime] = []
    keep = out.append
    clock = time.perf_counter
    t0 = clock()
    for _phone_type, zone, _attempts, now in leads:
        keep(now.astimezone(zones[zone]))
    return clock() - t0


def outcomes(plans: Sequence[Plan], leads: Sequence[Lead]) -> dict[str, int]:
    kinds: Counter[str] = Counter()
    for plan, (_, _, _, now) in zip(plans, leads, strict=True):
        if plan.at is None:
            kinds["none: " + ("all attempts made" if "attempts made" in plan.reason else "no time")] += 1
        elif plan.at == now:
            kinds["now"] += 1
        elif plan.at - now < timedelta(days=1):
            kinds["within a day"] += 1
        else:
            kinds["later"] += 1
    return dict(sorted(kinds.items()))


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.cadence", description=__doc__.split("\n\n")[0] if __doc__ else "")
    p.add_argument("--leads", type=int, default=100_000, help="leads in the backlog (default 100000)")
    p.add_argument("--repeat", type=int, default=3, help="timed passes; the best is reported (default 3)")
    p.add_argument("--json", type=Path, help="write every figure to this JSON file")
    args = p.parse_args(argv)

    leads = backlog(args.leads, random.Random(SEED))
    console.print(f"{args.leads:,} leads, {args.repeat} passes each")
    planner: list[float] = []
    baseline: list[float] = []
    plans: list[Plan] = []
    for r in range(args.repeat):
        seconds, plans = run_planner(leads)
        planner.append(seconds)
        baseline.append(run_baseline(leads))
        console.print(f"  pass {r + 1}: next_attempt {seconds:.3f} s, baseline {baseline[-1]:.3f} s")
    best, base = min(planner), min(baseline)
    result: dict[str, Any] = {
        "machine": machine_info(),
        "leads": args.leads,
        "planner_s": planner,
        "baseline_s": baseline,
        "best_s": best,
        "first_s": planner[0],
        "baseline_best_s": base,
        "ratio": best / base,
        "outcomes": outcomes(plans, leads),
    }
    n = args.leads
    print_table(
        f"next_attempt over {n:,} leads, in process (best of {args.repeat})",
        ["", "total s", "µs per lead", "leads/s"],
        [
            ["next_attempt", f"{best:.3f}", f"{best / n * 1e6:.2f}", f"{n / best:,.0f}"],
            [
                "next_attempt, first pass (empty caches)",
                f"{planner[0]:.3f}",
                f"{planner[0] / n * 1e6:.2f}",
                f"{n / planner[0]:,.0f}",
            ],
            ["baseline: one now.astimezone(zone)", f"{base:.3f}", f"{base / n * 1e6:.2f}", f"{n / base:,.0f}"],
        ],
        caption=f"next_attempt / baseline: {best / base:.1f}x. Target under {TARGET_S:g} s for {n:,} leads: "
        f"{'met' if best < TARGET_S else 'NOT met'}. Plans: "
        + ", ".join(f"{k} {v:,}" for k, v in result["outcomes"].items()),
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
        console.print(f"[dim]figures written to {args.json}[/dim]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
