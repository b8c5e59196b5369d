"""What the automations cost intake: the same leads with no triggers and with 50, beside each other in one run.

Every new event row waits for the automations (`events.automate`); the worker reads them in order, works out what
happened to each lead, evaluates the triggers and runs the actions. The promise checked here: trigger evaluation adds
under 10% to intake time with 50 triggers in the rules.

The team: 6 managers, round robin (bench/http.py's rules, with a head, a role, a cadence and a reply template that
the triggers name). The two rules files differ only in `automations:`. The 50 triggers use every `when:` kind, with
`if:` conditions, as a team would write them; a typical lead sets off two (a call task for a lead with a phone, a
tag for its product), the rest wait for what happens later (statuses, calls, the client, idle periods, overdue
tasks). The leads: distinct phones, 80% credit, 10% deposit, 10% leasing.

1. In process, on a SQLite file (and on a fresh PostgreSQL database with --postgres): --leads leads through
   `take_lead`, timed alone; then the worker's automation loop drained (`process_events` until it reads nothing,
   and `fire_due`, with the worker's batch sizes, as `Worker.drain_automations` does), timed, with its longest
   round (one transaction: on SQLite, the write lock intake waits for). Each rules file on a fresh
   database, --repeat times, interleaved (the order swapped every other time); the best and the spread are
   reported, per lead. Beside them, trigger evaluation alone: `Automations.fires` on what a new lead sets off, the
   lead read beforehand, no database: how much of the automations' cost is deciding and how much is doing.
2. Real HTTP: `leadflow serve` on SQLite (the worker in the process, as users run it), each rules file on its own
   database, one after the other, leads posted with an intake key at a fixed rate (an open loop, latency from the
   due time: bench/channels.py's driver) after a warm-up; then how far behind the automation loop was when the load
   stopped (events still waiting) and how long it took to catch up.

    .venv/bin/python -m bench.automation [--leads 5000] [--rate 100] [--seconds 20] [--postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import json
import pstats
import sqlite3
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from bench.channels import Target, drive
from bench.common import DEFAULT_PG_URL, console, machine_info, postgres_scratch, print_table, spread
from bench.http import LEADFLOW, RULES, Server, _env, intake_key
from leadflow.bootstrap import assemble
from leadflow.core.automation import Occurrence
from leadflow.core.lead import LeadIn
from leadflow.core.rules_text import parse_rules
from leadflow.services.automation import fire_due, lead_state, process_events
from leadflow.services.context import Leadflow, utcnow
from leadflow.services.intake import take_lead
from leadflow.settings import Settings
from leadflow.store.db import make_engine, migrate
from leadflow.store.tables import events, leads, managers, tasks
from leadflow.store.team_state import apply_rules_people
from leadflow.worker import Worker

TARGET = 0.10  # what the 50 triggers may add to intake time
WARM_UP = 50  # leads taken and automated before the timed ones, in every pass
PRODUCTS = ("credit",) * 8 + ("deposit", "leasing")

# What the triggers name, in both rules files so that intake sees the same rules either way.
SUPPORT = """\
roles:
  customer-success: [m5]
cadences:
  - {key: seven-calls, attempts: 7, window: "10:00-19:00", exhausted_status: lost}
reply_templates:
  - key: first-answer
    text: "Вітаємо{% if lead.name %}, {{ lead.name }}{% endif %}! Ми отримали вашу заявку."
"""

TRIGGERS = """\
automations:
  triggers:
    # lead_created: two fire for a typical lead (a phone; credit), the rest look at fields it seldom has.
    - {key: call-new-lead, when: lead_created, if: {phone_type: [mobile, landline, other], open: true},
       then: [{task: {title: "Call {{ lead.name }}", kind: call, due: 2h}}]}
    - {key: tag-credit, when: lead_created, if: {product: credit}, then: [{tag: credit}]}
    - {key: deposit-terms, when: lead_created, if: {product: deposit},
       then: [{task: {title: "Send {{ lead.name }} the deposit terms", due: next_working_day}}]}
    - {key: leasing-head, when: lead_created, if: {product: leasing},
       then: [{notify: {to: head, text: "Leasing lead #{{ lead.id }}: {{ lead.name }}"}}]}
    - {key: hot-call, when: lead_created, if: {temperature: [hot, red_hot], open: true},
       then: [{task: {title: "Call {{ lead.name }}: a hot lead", kind: call, due: 15m}}]}
    - {key: telegram-answer, when: lead_created, if: {channel: telegram, open: true}, then: [{reply: first-answer}]}
    - {key: whatsapp-answer, when: lead_created, if: {channel: whatsapp, open: true}, then: [{reply: first-answer}]}
    - {key: big-budget, when: lead_created, if: {budget: {gte: 1000000}},
       then: [{tag: vip}, {notify: {to: head, text: "A large budget on lead #{{ lead.id }}"}}]}
    - {key: english, when: lead_created, if: {language: en},
       then: [{task: {title: "An English-speaking client", assignee: "manager:m4", due: 1h}}]}
    - {key: partner-source, when: lead_created, if: {source: [partner, affiliate]}, then: [{tag: partner}]}
    - {key: abroad, when: lead_created, if: {region: [PL, DE, GB, US]},
       then: [{notify: {to: owner, text: "A client from abroad: {{ lead.region }}"}}]}
    - {key: not-contacted-2h, when: lead_created, after: 2h, if: {contacted: false, open: true, product: leasing},
       then: [{notify: {to: head, text: "Lead #{{ lead.id }} has had no contact for 2 hours"}}]}
    - {key: mentions-urgent, when: lead_created, if: {message: {contains: [терміново, срочно, urgent]}},
       then: [{tag: urgent}]}
    # status_entered / status_left
    - {key: assigned-leasing, when: {status_entered: assigned}, if: {product: leasing},
       then: [{notify: {to: owner, text: "A leasing lead is yours"}}]}
    - {key: contacted-followup, when: {status_entered: contacted}, if: {product: [leasing, deposit]},
       then: [{task: {title: "Follow up {{ lead.name }}", due: 1d}}]}
    - {key: qualified-call, when: {status_entered: qualified},
       then: [{task: {title: "Prepare an offer for {{ lead.name }}", kind: call, due: 1d}}]}
    - {key: qualified-head, when: {status_entered: qualified}, if: {budget: {gte: 500000}},
       then: [{notify: {to: head, text: "A large lead qualified"}}]}
    - {key: lost-survey, when: {status_entered: lost},
       then: [{task: {title: "Ask {{ lead.name }} why", assignee: "role:customer-success", due: next_working_day}}]}
    - {key: junk-review, when: {status_entered: junk}, if: {product: [leasing, deposit]},
       then: [{notify: {to: head, text: "Lead #{{ lead.id }} went to junk"}}]}
    - {key: left-new, when: {status_left: new}, if: {tags: fresh}, then: [{untag: fresh}]}
    - {key: left-qualified, when: {status_left: qualified}, if: {open: true},
       then: [{notify: {to: owner, text: "Lead #{{ lead.id }} is no longer qualified"}}]}
    - {key: left-contacted, when: {status_left: contacted}, if: {contacted: false},
       then: [{notify: {to: head, text: "Lead #{{ lead.id }} left contacted without a contact"}}]}
    - {key: left-assigned, when: {status_left: assigned}, if: {product: leasing}, then: [{tag: moved}]}
    # contact
    - {key: keep-calling, when: {contact: {kind: call, outcome: [no_answer, busy]}}, if: {contacted: false, open: true},
       then: [{cadence: start}]}
    - {key: wrong-number, when: {contact: {kind: call, outcome: wrong_number}},
       then: [{task: {title: "Find the right number of {{ lead.name }}", due: 1d}}]}
    - {key: connected-stop, when: {contact: {kind: call, outcome: connected}}, then: [{cadence: stop}]}
    - {key: meeting-set, when: {contact: {kind: meeting, outcome: set}}, if: {open: true},
       then: [{status: qualified}]}
    - {key: message-sent, when: {contact: {kind: message}}, if: {product: leasing}, then: [{tag: messaged}]}
    # the client
    - {key: offer-viewed, when: {client_event: offer_viewed}, if: {open: true},
       then: [{task: {title: "{{ lead.name }} is reading the offer: call now", kind: call, due: 15m}}]}
    - {key: meeting-booked, when: {client_event: meeting_booked}, if: {open: true}, then: [{status: qualified}]}
    - {key: email-opened, when: {client_event: email_opened}, if: {product: leasing}, then: [{tag: engaged}]}
    - {key: link-clicked, when: {client_event: link_clicked}, if: {open: true},
       then: [{notify: {to: owner, text: "{{ lead.name }} clicked the link"}}]}
    - {key: page-visited, when: {client_event: page_visited}, if: {temperature: [warm, hot, red_hot]},
       then: [{tag: browsing}]}
    - {key: form-again, when: {client_event: form_resubmitted},
       then: [{notify: {to: owner, text: "{{ lead.name }} sent the form again"}}]}
    - {key: client-wrote, when: message_received, if: {open: true},
       then: [{notify: {to: owner, text: "{{ lead.name }} wrote"}}]}
    # outcomes
    - {key: review-after-win, when: deal_won,
       then: [{task: {title: "Ask {{ lead.name }} for a review", assignee: "role:customer-success",
                      due: next_working_day}}]}
    - {key: won-big, when: deal_won, if: {budget: {gte: 1000000}},
       then: [{notify: {to: team, text: "A large deal won: {{ lead.name }}"}}]}
    - {key: lost-untag, when: deal_lost, if: {tags: vip}, then: [{untag: vip}]}
    - {key: lost-leasing, when: deal_lost, if: {product: leasing},
       then: [{notify: {to: head, text: "A leasing lead lost"}}]}
    # time
    - {key: idle-3d, when: {idle: 3d}, if: {open: true, contacted: false},
       then: [{notify: {to: owner, text: "Nothing on lead #{{ lead.id }} for 3 days"}}]}
    - {key: idle-7d, when: {idle: 7d}, if: {open: true},
       then: [{task: {title: "Wake {{ lead.name }} up", due: next_working_day}}]}
    - {key: task-overdue-owner, when: task_overdue, if: {open: true},
       then: [{notify: {to: owner, text: "A task on lead #{{ lead.id }} is overdue"}}]}
    - {key: task-overdue-head, when: task_overdue, if: {contacted: false, product: leasing},
       then: [{notify: {to: head, text: "Lead #{{ lead.id }}: an overdue task and no contact"}}]}
    - {key: sla-head, when: sla_breached, then: [{notify: {to: head, text: "Lead #{{ lead.id }} missed its deadline"}}]}
    - {key: sla-tag, when: sla_breached, if: {open: true}, then: [{tag: late}]}
    - {key: chain-ended, when: chain_ended, then: [{notify: {to: team, text: "Nobody took lead #{{ lead.id }}"}}]}
    # warmth
    - {key: hot-reached, when: {temperature_reached: hot}, if: {open: true, contacted: false},
       then: [{task: {title: "{{ lead.name }} is hot: call", kind: call, due: 30m}}]}
    - {key: red-hot, when: {temperature_reached: red_hot},
       then: [{notify: {to: head, text: "Lead #{{ lead.id }} is red hot"}}]}
    - {key: warm-leasing, when: {temperature_reached: warm}, if: {product: leasing}, then: [{tag: warm}]}
    - {key: score-15, when: {score_reached: 15}, if: {open: true}, then: [{tag: promising}]}
"""


def rules_text(triggers: bool) -> str:
    head = RULES.replace("hours: always}", "hours: always, head: m0}")
    return head + SUPPORT + (TRIGGERS if triggers else "")


CONFIGS = (("no triggers", False), ("50 triggers", True))


def lead_body(i: int) -> dict[str, Any]:
    return {"name": f"Client {i}", "phone": f"+38067{i % 10_000_000:07d}", "product": PRODUCTS[i % len(PRODUCTS)],
            "message": "Потрібна консультація"}  # fmt: skip


# --- part 1: in process ----------------------------------------------------------------------------------------------


@dataclass
class Pass:
    intake_s: float
    automation_s: float
    events: int
    fired: int
    tasks: int
    longest_round_s: float

    def per_lead_us(self, n: int) -> tuple[float, float]:
        return self.intake_s / n * 1e6, self.automation_s / n * 1e6


def open_leadflow(url: str, triggers: bool) -> Leadflow:
    """A migrated database with the rules' people, and the Leadflow bootstrap builds on it; every transaction its
    own (no group writer: one caller at a time)."""
    migrate(url)
    rules = parse_rules(rules_text(triggers), "bench-rules.yaml")
    assert len(rules.automations.triggers) == (50 if triggers else 0), len(rules.automations.triggers)
    engine = make_engine(url)
    with engine.begin() as conn:
        apply_rules_people(conn, rules, utcnow())
    return assemble(engine, rules, Settings(), serving=False)


def one_pass(app: Leadflow, n: int, offset: int, profile: cProfile.Profile | None = None) -> Pass:
    worker = Worker(app, senders={})
    # Untimed: the engine's statement cache and the rules' cached parts filled, as in a server that has been up.
    for i in range(WARM_UP):
        take_lead(app, LeadIn(**lead_body(offset + n + i)), utcnow())
    worker.drain_automations()
    with app.engine.connect() as conn:
        tasks_before = conn.execute(select(func.count()).select_from(tasks)).scalar() or 0
    arriving = [LeadIn(**lead_body(offset + i)) for i in range(n)]
    gc.collect()  # the earlier pass's garbage is not this one's cost (collection stays on while timed)
    t0 = time.perf_counter()
    for lead in arriving:
        take_lead(app, lead, utcnow())
    intake_s = time.perf_counter() - t0
    gc.collect()
    if profile is not None:
        profile.enable()
    t0 = time.perf_counter()
    read, fired, longest = drain(worker)
    automation_s = time.perf_counter() - t0
    if profile is not None:
        profile.disable()
    with app.engine.connect() as conn:
        waiting = conn.execute(select(func.count()).where(events.c.automate.is_not(None))).scalar()
        made = conn.execute(select(func.count()).select_from(tasks)).scalar() or 0
    assert waiting == 0, f"{waiting} events still wait for the automations"
    return Pass(intake_s, automation_s, read, fired, made - tasks_before, longest)


def drain(worker: Worker) -> tuple[int, int, float]:
    """The worker's automation loop until nothing waits: (events read, triggers fired, the longest round of the log
    in seconds: one transaction, which on SQLite holds the one write lock that intake waits for)."""
    read = fired = 0
    longest = 0.0
    while True:
        t0 = time.perf_counter()
        step = process_events(worker.app, worker.clock(), limit=worker.batch * 5)
        longest = max(longest, time.perf_counter() - t0)
        due = fire_due(worker.app, worker.clock(), limit=worker.batch)
        read, fired = read + step.events, fired + step.fired + due.fired
        if not step.events and not due.timers:
            return read, fired, longest


def evaluation_alone(app: Leadflow, repeat: int) -> float:
    """Seconds per lead of `Automations.fires` alone on what a new lead sets off (created, its first status), with
    the lead as triggers see it read beforehand: trigger evaluation without the database work around it."""
    with app.engine.connect() as conn:
        rows = conn.execute(select(leads).where(leads.c.merged_into_id.is_(None))).mappings().all()
        keys = dict(conn.execute(select(managers.c.id, managers.c.key)).all())
        states = [lead_state(row, app.rules, keys.get(row["manager_id"]), None) for row in rows]
    occurrences = [(Occurrence("lead_created"), Occurrence("status_entered", status=s.status)) for s in states]
    automations = app.rules.automations
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for state, occs in zip(states, occurrences, strict=True):
            for occ in occs:
                automations.fires(occ, state)
        best = min(best, time.perf_counter() - t0)
    return best / len(states)


def in_process(database: str, n: int, repeat: int, pg_url: str, profile: bool) -> list[dict[str, Any]]:
    """Every (rules, repeat) on a fresh database; returns a row per pass."""
    rows: list[dict[str, Any]] = []
    profiler = cProfile.Profile() if profile else None
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="leadflow-automation-")))
        scratch = stack.enter_context(postgres_scratch(pg_url)) if database == "postgresql" else None
        for r in range(repeat):
            # Every other repeat in the other order: whichever goes first in a repeat runs a little slower.
            for name, triggers in CONFIGS if r % 2 == 0 else CONFIGS[::-1]:
                if scratch is None:
                    url = f"sqlite:///{tmp / f'{r}-{int(triggers)}.db'}"
                else:
                    url = scratch.create(f"{r}_{int(triggers)}")[1]
                app = open_leadflow(url, triggers)
                try:
                    done = one_pass(app, n, offset=0, profile=profiler if triggers and r == repeat - 1 else None)
                    alone = evaluation_alone(app, 3) * 1e6 if triggers and r == 0 else None
                finally:
                    app.engine.dispose()
                intake_us, auto_us = done.per_lead_us(n)
                rows.append({"database": database, "rules": name, "repeat": r + 1, "intake_us": intake_us,
                             "automation_us": auto_us, "events": done.events, "fired": done.fired,
                             "tasks": done.tasks, "longest_round_ms": done.longest_round_s * 1000,
                             "evaluation_us": alone})  # fmt: skip
                console.print(f"  {database}, {name}, pass {r + 1}: intake {intake_us:,.0f} µs/lead, automations "
                              f"{auto_us:,.0f} µs/lead ({done.events:,} events read, {done.fired:,} triggers fired, "
                              f"{done.tasks:,} tasks; longest round {done.longest_round_s * 1000:,.0f} ms)")  # fmt: skip
    if profiler is not None:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(30)
        console.print(f"[bold]Profile of the last drain with 50 triggers ({database}), by cumulative time[/bold]")
        console.print(out.getvalue(), markup=False, highlight=False)
    return rows


def percents(ratios: Sequence[float]) -> str:
    return f"{min(ratios):.1%}-{max(ratios):.1%}" if len(ratios) > 1 else ""


def report_in_process(rows: Sequence[dict[str, Any]], n: int) -> dict[str, Any]:
    """Best figures per lead, their spread, and the ratios; per database."""
    summary: dict[str, Any] = {}
    for database in dict.fromkeys(r["database"] for r in rows):
        of = {name: [r for r in rows if r["database"] == database and r["rules"] == name] for name, _ in CONFIGS}
        intake = [r["intake_us"] for rs in of.values() for r in rs]
        auto0 = [r["automation_us"] for r in of["no triggers"]]
        auto50 = [r["automation_us"] for r in of["50 triggers"]]
        base = min(r["intake_us"] for r in of["no triggers"])
        # The ratios pass by pass too (each repeat's figures beside each other), to show how much they move.
        by_pass = [(a50["automation_us"] / a0["intake_us"], (a50["automation_us"] - a0["automation_us"]) / a0["intake_us"])
                   for a0, a50 in zip(of["no triggers"], of["50 triggers"], strict=True)]  # fmt: skip
        fired = of["50 triggers"][0]["fired"] / n
        alone = of["50 triggers"][0]["evaluation_us"]
        added = (min(auto50) - min(auto0)) / base
        summary[database] = {"intake_us": base, "auto0_us": min(auto0), "auto50_us": min(auto50),
                             "auto50_of_intake": min(auto50) / base, "added_of_intake": added,
                             "evaluation_us": alone, "fired_per_lead": fired}  # fmt: skip
        print_table(
            f"Automations beside intake, in process, {database}, {n:,} leads, per lead (best of {len(auto0)})",
            ["", "µs per lead", "spread", "of intake (no triggers)", "ratio pass by pass"],
            [
                ["intake, no triggers (take_lead)", f"{base:,.0f}", spread([r["intake_us"] for r in of["no triggers"]]),
                 "1.00×", ""],
                ["intake, 50 triggers (take_lead)", f"{min(r['intake_us'] for r in of['50 triggers']):,.0f}",
                 spread([r["intake_us"] for r in of["50 triggers"]]), "", ""],
                ["automation loop, no triggers", f"{min(auto0):,.0f}", spread(auto0), f"{min(auto0) / base:.1%}", ""],
                ["automation loop, 50 triggers", f"{min(auto50):,.0f}", spread(auto50), f"{min(auto50) / base:.1%}",
                 percents([p[0] for p in by_pass])],
                ["what the 50 triggers add (auto50 − auto0)", f"{min(auto50) - min(auto0):,.0f}", "",
                 f"{added:.1%}", percents([p[1] for p in by_pass])],
                ["of which evaluating them (Automations.fires alone)", f"{alone:,.1f}", "", f"{alone / base:.1%}", ""],
            ],
            caption=f"Intake over all passes: {spread(intake)} µs. With 50 triggers {fired:.2f} fired per lead "
            f"({of['50 triggers'][0]['tasks']:,} tasks made). Longest round of the log (one write transaction): "
            f"{max(r['longest_round_ms'] for r in of['no triggers']):,.0f} ms with no triggers, "
            f"{max(r['longest_round_ms'] for r in of['50 triggers']):,.0f} ms with 50. Promise, under {TARGET:.0%} "
            f"of intake: what the 50 triggers add to the loop {added:.1%} ({'met' if added < TARGET else 'NOT met'}); "
            f"evaluating them alone {alone / base:.1%} ({'met' if alone / base < TARGET else 'NOT met'}).",
        )  # fmt: skip
    return summary


# --- part 2: real HTTP -----------------------------------------------------------------------------------------------


def intake_target(key: str) -> Target:
    def build(i: int) -> tuple[bytes, dict[str, str]]:
        body = json.dumps(lead_body(i), ensure_ascii=False).encode()
        return body, {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}

    return Target("POST /api/v1/leads, intake key", "/api/v1/leads", build)


def waiting_events(db: Path) -> int:
    """Events the automations have not read yet, counted beside the running server (a reader does not block it)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return int(conn.execute("SELECT count(*) FROM events WHERE automate IS NOT NULL").fetchone()[0])
    finally:
        conn.close()


def catch_up(db: Path, limit: float = 120) -> tuple[int, float]:
    """(events waiting now, seconds until none wait); the seconds are NaN if it did not catch up within `limit`."""
    start = time.perf_counter()
    behind = left = waiting_events(db)
    while left and time.perf_counter() - start < limit:
        time.sleep(0.05)
        left = waiting_events(db)
    return behind, (time.perf_counter() - start) if not left else float("nan")


def over_http(rate: float, seconds: float, warmup: float) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    repo = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory(prefix="leadflow-automation-http-") as tmp:
        for name, triggers in CONFIGS:
            root = Path(tmp) / name.replace(" ", "-")
            root.mkdir()
            (root / "rules.yaml").write_text(rules_text(triggers), encoding="utf-8")
            db = root / "leadflow.db"
            env = _env(LEADFLOW_DATABASE_URL=f"sqlite:///{db}", LEADFLOW_RULES=str(root / "rules.yaml"))
            key = intake_key(env, root)
            target = intake_target(key)
            with Server(f"leadflow serve, {name}", [LEADFLOW, "serve", "--port", "{port}"], env, repo, root) as server:
                url = f"http://127.0.0.1:{server.port}"
                warm = asyncio.run(drive(url, target, rate, warmup, 0))
                if set(warm["statuses"]) - {200, 201}:
                    raise RuntimeError(f"the warm-up was answered {warm['statuses']}: see {server.log}")
                catch_up(db)  # the measured load starts with nothing waiting
                figures = asyncio.run(drive(url, target, rate, seconds, 1_000_000))
                behind, caught_up_s = catch_up(db)
            answered = sum(v for k, v in figures["statuses"].items() if 200 <= k < 300)
            rows.append({"rules": name, **figures, "per_s": answered / figures["seconds"], "behind": behind,
                         "caught_up_s": caught_up_s})  # fmt: skip
            console.print(f"  HTTP, {name}: p50 {figures['p50_ms']:.1f} ms, p95 {figures['p95_ms']:.1f} ms, p99 "
                          f"{figures['p99_ms']:.1f} ms, {figures['statuses']}, errors {figures['errors']}; "
                          f"{behind:,} events waiting at the end, caught up in {caught_up_s:.1f} s; "
                          f"load {figures['load']}")  # fmt: skip
    return rows


def report_http(rows: Sequence[dict[str, Any]], rate: float, seconds: float) -> None:
    base = rows[0]
    print_table(
        f"leadflow serve on SQLite, {rate:.0f} leads/s for {seconds:.0f} s (open loop), worker in the process",
        ["rules", "sent", "done/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "p99 ×", "answers", "errors",
         "waiting at end", "catch-up s", "load"],
        [[r["rules"], str(r["sent"]), f"{r['per_s']:.1f}", f"{r['p50_ms']:.1f}", f"{r['p95_ms']:.1f}",
          f"{r['p99_ms']:.1f}", f"{r['max_ms']:.0f}", f"{r['p99_ms'] / base['p99_ms']:.2f}×",
          ", ".join(f"{k}: {v}" for k, v in sorted(r["statuses"].items())), str(r["errors"]), f"{r['behind']:,}",
          f"{r['caught_up_s']:.1f}", str(r["load"])] for r in rows],
        caption="Latency counts from each request's due time; p99 ×: beside no triggers. p50 with / without: "
        + f"{rows[-1]['p50_ms'] / base['p50_ms']:.2f}×; throughput: {rows[-1]['per_s'] / base['per_s']:.2f}×.",
    )  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.automation", description=__doc__.split("\n\n")[0] if __doc__ else ""
    )
    p.add_argument("--leads", type=int, default=5000, help="leads per in-process pass (default 5000)")
    p.add_argument("--repeat", type=int, default=3, help="in-process passes per rules file (default 3)")
    p.add_argument("--rate", type=float, default=100, help="leads a second over HTTP (default 100)")
    p.add_argument("--seconds", type=float, default=20, help="seconds of HTTP load per rules file (default 20)")
    p.add_argument("--warmup", type=float, default=3)
    p.add_argument("--postgres", action="store_true", help="also in process on a fresh PostgreSQL database")
    p.add_argument("--pg-url", default=DEFAULT_PG_URL)
    p.add_argument("--no-http", action="store_true", help="the in-process part only")
    p.add_argument("--profile", action="store_true", help="profile the last drain with 50 triggers (cProfile)")
    p.add_argument("--json", type=Path, help="write every figure to this JSON file")
    args = p.parse_args(argv)
    console.print(f"machine: {machine_info()}")
    rows: list[dict[str, Any]] = []
    for database in ("sqlite", "postgresql") if args.postgres else ("sqlite",):
        rows += in_process(database, args.leads, args.repeat, args.pg_url, args.profile)
    summary = report_in_process(rows, args.leads)
    http = [] if args.no_http else over_http(args.rate, args.seconds, args.warmup)
    if http:
        report_http(http, args.rate, args.seconds)
    if args.json:
        result = {"machine": machine_info(), "in_process": rows, "summary": summary, "http": http}
        args.json.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
