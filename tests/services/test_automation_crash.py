"""Scheduled actions survive SIGKILL: worker processes killed mid-way and restarted neither lose nor repeat any,
counted in tasks and outbox rows, on SQLite (one worker) and on PostgreSQL (several at once)."""

import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from leadflow.core.lead import LeadIn
from leadflow.services.automation import process_events
from leadflow.services.context import Leadflow, utcnow
from leadflow.services.intake import take_lead
from leadflow.store.db import READ_ONLY
from leadflow.store.tables import events, outbox, tasks, timers
from tests.services.test_worker import LEADFLOW, worker_env

RULES = """
teams: [{key: sales, timezone: Europe/Kyiv, head: head}]
managers:
  - {key: anna, name: Anna, team: sales, email: anna@example.test, hours: always, capacity: 5000}
  - {key: head, name: Head, team: sales, email: head@example.test, hours: always, capacity: 5000}
routing: {fallback: {team: sales, managers: [anna]}}
sla: {enabled: false}
automations:
  triggers:
    - key: call-now
      when: lead_created
      then:
        - task: {title: "Call {{ lead.id }}", kind: call, due: 1h}
    - key: not-contacted
      when: lead_created
      after: 1m
      if: {contacted: false}
      then:
        - task: {title: "Chase {{ lead.id }}", assignee: head, due: 1h}
        - notify: {to: owner, text: "Lead {{ lead.id }} waits for its first call"}
"""
N = 400


def burst(lf: Leadflow) -> None:
    """N leads that came in 5 minutes ago: their immediate trigger waits in the log, the delayed one will be due."""
    past = utcnow() - timedelta(minutes=5)
    for i in range(N):
        take_lead(lf, LeadIn(phone=f"+38067{i:07d}"), past)


def counted(lf: Leadflow) -> tuple[Counter[tuple[int, str]], Counter[str], int, int]:
    with lf.engine.connect().execution_options(**READ_ONLY) as conn:
        made = Counter((r.lead_id, r.source) for r in conn.execute(select(tasks.c.lead_id, tasks.c.source)))
        notices = Counter(p["lead"]["id"] for p in conn.execute(select(outbox.c.payload)).scalars()
                          if p["event"] == "automation.notice")  # fmt: skip
        waiting = conn.execute(select(func.count()).select_from(timers).where(timers.c.kind == "automation")).scalar()
        unread = conn.execute(select(func.count()).where(events.c.automate.is_not(None))).scalar()
    return made, notices, int(waiting or 0), int(unread or 0)


def fired(lf: Leadflow) -> int:
    with lf.engine.connect().execution_options(**READ_ONLY) as conn:
        return int(conn.execute(select(func.count()).where(events.c.type == "automation.fired")).scalar_one())


def kill_mid_way(proc: subprocess.Popen[Any], lf: Leadflow, at_least: int) -> int:
    deadline = time.monotonic() + 120
    while fired(lf) < at_least:
        assert time.monotonic() < deadline and proc.poll() is None, "the worker ended before it could be killed"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    return fired(lf)


def assert_each_exactly_once(lf: Leadflow) -> None:
    made, notices, waiting, unread = counted(lf)
    assert waiting == 0 and unread == 0
    calls = {lead for (lead, source) in made if source == "call-now"}
    chases = {lead for (lead, source) in made if source == "not-contacted"}
    assert len(calls) == N and len(chases) == N, "some actions were lost"
    assert set(made.values()) == {1}, "some tasks were made twice"
    assert len(notices) == N and set(notices.values()) == {1}, "some notices were lost or sent twice"


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_a_worker_killed_mid_way_through_scheduled_actions_loses_and_repeats_none(
    make_app: Callable[[str], Leadflow], tmp_path: Path
) -> None:
    lf = make_app(RULES)
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    burst(lf)
    env = worker_env(lf, rules)
    proc = subprocess.Popen([LEADFLOW, "worker", "--drain", "--batch", "10"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    at_kill = kill_mid_way(proc, lf, 50)
    assert at_kill < 2 * N, "the kill did not land in the middle of the work"
    restarted = subprocess.run([LEADFLOW, "worker", "--drain"], env=env, capture_output=True, text=True, timeout=240)
    assert restarted.returncode == 0, restarted.stderr
    assert_each_exactly_once(lf)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_several_workers_share_the_scheduled_actions_and_one_killed_loses_none(
    make_app: Callable[[str], Leadflow], tmp_path: Path
) -> None:
    lf = make_app(RULES)
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    burst(lf)
    process_events(lf, utcnow(), limit=10 * N)  # the log is read: every delayed action is a timer now
    env = worker_env(lf, rules)
    procs = [subprocess.Popen([LEADFLOW, "worker", "--drain", "--batch", "2"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]  # fmt: skip
    at_kill = kill_mid_way(procs[0], lf, N + 60)  # among the delayed ones, while the others work too
    assert at_kill < 2 * N, "the kill did not land in the middle of the work"
    outputs = [p.communicate(timeout=240) for p in procs[1:]]
    assert [p.returncode for p in procs[1:]] == [0, 0], outputs
    shares = [int(out.split("trigger(s) fired")[0].split()[-1]) for out, _ in outputs]
    assert sum(shares) > 0, f"the other workers did none of it: {shares}"
    restarted = subprocess.run([LEADFLOW, "worker", "--drain"], env=env, capture_output=True, text=True, timeout=240)
    assert restarted.returncode == 0, restarted.stderr
    assert_each_exactly_once(lf)
