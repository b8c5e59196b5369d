"""The worker for real: a thread with the wall clock, several processes on PostgreSQL, and SIGKILL mid-burst."""

import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from leadflow.core.lead import LeadIn
from leadflow.core.policy import SYSTEM
from leadflow.services.context import Leadflow, utcnow
from leadflow.services.intake import take_lead
from leadflow.services.leads import get_lead
from leadflow.store.db import READ_ONLY
from leadflow.store.tables import assignments, events, leads, timers
from leadflow.worker import Worker
from tests.support import SLA_TEAM

# A 10-minute deadline so escalated leads do not come due again during the test; room for 2,000 leads.
SLOW_CHAIN = SLA_TEAM.replace("first_contact: 2s", "first_contact: 10m").replace(
    "team: sales, email", "team: sales, capacity: 5000, email"
)
LEADFLOW = shutil.which("leadflow") or str(Path(sys.executable).parent / "leadflow")


def test_real_worker_moves_the_lead_within_a_second_of_each_deadline(make_app: Callable[[str], Leadflow]) -> None:
    lf = make_app(SLA_TEAM)
    worker = Worker(lf, poll_seconds=0.25)
    worker.start()
    try:
        lead = take_lead(lf, LeadIn(name="Ivan", phone="0671234567"), utcnow())
        deadline = time.monotonic() + 20
        while get_lead(lf, lead.lead_id, who=SYSTEM)["sla_state"] != "exhausted":
            assert time.monotonic() < deadline, "the chain did not finish in time"
            time.sleep(0.1)
    finally:
        worker.stop.set()
    detail = get_lead(lf, lead.lead_id, who=SYSTEM)
    moves = [e for e in detail["events"] if e["type"] in ("lead.escalated", "lead.chain_exhausted")]
    assert [e["data"]["manager"] for e in moves] == ["bohdan", "chrystia", "head"]
    assert all(0 <= e["data"]["late_ms"] < 1000 for e in moves), [e["data"]["late_ms"] for e in moves]


def due_burst(lf: Leadflow, n: int) -> None:
    """n leads whose 10-minute deadline passed a minute ago."""
    past = utcnow() - timedelta(minutes=11)
    for i in range(n):
        take_lead(lf, LeadIn(phone=f"+38067{i:07d}"), past)


def worker_env(lf: Leadflow, rules: Path) -> dict[str, str]:
    url = lf.engine.url.render_as_string(hide_password=False)
    return {**os.environ, "LEADFLOW_DATABASE_URL": url, "LEADFLOW_RULES": str(rules)}


def assert_each_escalated_exactly_once(lf: Leadflow, n: int) -> None:
    with lf.engine.connect() as conn:
        per_lead = Counter(
            conn.execute(select(events.c.lead_id).where(events.c.type == "lead.escalated")).scalars().all()
        )
        moved_assignments = conn.execute(
            select(func.count()).select_from(assignments).where(assignments.c.kind == "escalation")
        ).scalar_one()
        hops = Counter(conn.execute(select(leads.c.sla_hops)).scalars().all())
        waiting = conn.execute(select(func.count()).select_from(timers)).scalar_one()
    assert len(per_lead) == n, "some leads were not escalated"
    assert set(per_lead.values()) == {1}, "some leads were escalated twice"
    assert moved_assignments == n and hops == {1: n} and waiting == n


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_four_worker_processes_escalate_2000_leads_exactly_once(
    make_app: Callable[[str], Leadflow], tmp_path: Path
) -> None:
    lf = make_app(SLOW_CHAIN)
    rules = tmp_path / "rules.yaml"
    rules.write_text(SLOW_CHAIN)
    due_burst(lf, 2000)
    env = worker_env(lf, rules)
    procs = [
        subprocess.Popen(
            [LEADFLOW, "worker", "--drain", "--batch", "25"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outputs = [p.communicate(timeout=240) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, outputs
    counts = [int(out.split("escalated ")[1].split()[0]) for out, _ in outputs]
    assert sum(counts) == 2000, outputs
    assert sum(1 for c in counts if c > 0) >= 2, f"the work was not shared: {counts}"
    assert_each_escalated_exactly_once(lf, 2000)


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_worker_killed_mid_burst_loses_and_repeats_nothing(make_app: Callable[[str], Leadflow], tmp_path: Path) -> None:
    lf = make_app(SLOW_CHAIN)
    rules = tmp_path / "rules.yaml"
    rules.write_text(SLOW_CHAIN)
    n = 2000
    due_burst(lf, n)
    env = worker_env(lf, rules)
    proc = subprocess.Popen([LEADFLOW, "worker", "--drain", "--batch", "10"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 120
    done = 0
    # Kill early in the burst: on a busy machine a starved test could otherwise see the worker finish first.
    while done < 100:
        assert time.monotonic() < deadline and proc.poll() is None, "the worker ended before it could be killed"
        # A read-only transaction: a writer's BEGIN IMMEDIATE would queue behind the worker's write lock.
        with lf.engine.connect().execution_options(**READ_ONLY) as conn:
            done = conn.execute(select(func.count()).where(events.c.type == "lead.escalated")).scalar_one()
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    with lf.engine.connect().execution_options(**READ_ONLY) as conn:
        at_kill = conn.execute(select(func.count()).where(events.c.type == "lead.escalated")).scalar_one()
    assert 100 <= at_kill < n, "the kill did not land in the middle of the burst"
    restarted = subprocess.run([LEADFLOW, "worker", "--drain"], env=env, capture_output=True, text=True, timeout=240)
    assert restarted.returncode == 0, restarted.stderr
    assert int(restarted.stdout.split("escalated ")[1].split()[0]) == n - at_kill
    assert_each_escalated_exactly_once(lf, n)


def test_an_idle_worker_does_not_take_sqlites_write_lock(make_app: Callable[[str], Leadflow]) -> None:
    """With nothing due, a round only reads: it goes through while another connection holds the write lock (intake's
    writer, say), where taking the lock would wait for it."""
    import sqlite3
    import threading

    from leadflow.services.delivery import deliver_due
    from leadflow.services.sla import escalate_due

    lf = make_app(SLA_TEAM)
    if not lf.is_sqlite:
        pytest.skip("SQLite's one write lock")
    path = lf.engine.url.database
    assert path is not None
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # the write lock, held
    done: list[object] = []
    rounds = threading.Thread(target=lambda: done.extend(
        [escalate_due(lf, utcnow()), deliver_due(lf.engine, {}, lf.notify, utcnow()).handled]))  # fmt: skip
    rounds.start()
    rounds.join(timeout=5)
    while_held = list(done)  # what the rounds did while the lock was held by someone else
    holder.execute("ROLLBACK")
    holder.close()
    rounds.join(timeout=60)
    assert while_held == [0, 0], "a round with nothing due waited for the write lock"
