"""Backlog triage at size: 60,000 stale leads junked through the CLI, killed with SIGKILL mid-way, resumed, undone.

Nothing may be lost or done twice: every selected lead changed exactly once, the managers' load counters equal a
recount after each step, and the undo brings back every lead and every counter as they were."""

import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import bindparam, func, select, update

from leadflow.core.backlog import Action, Selection
from leadflow.core.policy import SYSTEM
from leadflow.services import backlog
from leadflow.services.context import Leadflow, utcnow
from leadflow.store.db import READ_ONLY
from leadflow.store.tables import backlog_changes, backlog_runs, events, leads, managers
from tests.services.test_worker import LEADFLOW, worker_env

N = 60_000
MANAGERS = 12
RULES = (
    "teams:\n  - {key: sales, name: Sales, hours: always}\nmanagers:\n"
    + "".join(f"  - {{key: m{i}, name: M{i}, team: sales, capacity: 20000}}\n" for i in range(MANAGERS))
    + "routing:\n  rules:\n    - {key: all, team: sales}\n"
)
OPEN = ("assigned", "contacted", "qualified")


def fill(lf: Leadflow) -> list[int]:
    """N leads: most stale (200 days old) and open, some closed, some fresh; the load counters in step."""
    rng = random.Random(2)
    now = utcnow()
    with lf.engine.begin() as conn:
        ids = [m for (m,) in conn.execute(select(managers.c.id).order_by(managers.c.id))]
        rows = []
        for i in range(N):
            stale = i % 10 != 0  # every tenth is fresh
            status = rng.choice(OPEN) if i % 7 else "lost"
            at = now - timedelta(days=200 if stale else 5)
            rows.append({"channel": rng.choice(("web", "telegram", "call")), "phone": f"+38050{i:07d}",
                         "utm": {}, "raw": {}, "status": status, "manager_id": rng.choice(ids),
                         "created_at": at, "updated_at": at, "budget": None})  # fmt: skip
        conn.execute(leads.insert(), rows)
        load = Counter(r["manager_id"] for r in rows if r["status"] in OPEN)
        conn.execute(update(managers).where(managers.c.id == bindparam("m")).values(
            open_leads=bindparam("n")), [{"m": m, "n": load[m]} for m in ids])  # fmt: skip
    return ids


def loads(lf: Leadflow) -> tuple[dict[int, int], dict[int, int]]:
    """The counters, and a recount of the open leads per manager."""
    with lf.engine.connect() as conn:
        kept = dict(conn.execute(select(managers.c.id, managers.c.open_leads)).all())
        counted = dict(conn.execute(select(leads.c.manager_id, func.count()).where(leads.c.status.in_(OPEN))
                                    .group_by(leads.c.manager_id)).all())  # fmt: skip
    return kept, {m: counted.get(m, 0) for m in kept}


@pytest.mark.timeout(180)
def test_sixty_thousand_stale_leads_junked_killed_resumed_and_undone(
    make_app: Callable[[str], Leadflow], tmp_path: Path
) -> None:
    lf = make_app(RULES)
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    fill(lf)
    kept, counted = loads(lf)
    assert kept == counted
    with lf.engine.connect() as conn:
        original = dict(conn.execute(select(leads.c.id, leads.c.status)).all())
        expected = set(conn.execute(select(leads.c.id).where(
            leads.c.status.in_(("assigned", "contacted")), leads.c.created_at < utcnow() - timedelta(days=90))).scalars())  # fmt: skip
    selection = Selection(statuses=("assigned", "contacted"), older_than=timedelta(days=90))
    seen = backlog.preview(lf, selection, Action("junk", "stale"), utcnow(), who=SYSTEM)
    assert seen["total"] == len(expected) and sum(r["leads"] for r in seen["by_channel"]) == len(expected)
    assert sum(seen["effect"]["load_drop"].values()) == len(expected)

    env = worker_env(lf, rules)
    args = ["backlog", "apply", "--action", "junk", "--reason", "stale", "--status", "assigned", "--status",
            "contacted", "--older-than", "90d", "--chunk", "500", "--yes"]  # fmt: skip
    proc = subprocess.Popen([LEADFLOW, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    done = 0
    while done < 5000:
        assert time.monotonic() < deadline and proc.poll() is None, "the run ended before it could be killed"
        with lf.engine.connect().execution_options(**READ_ONLY) as conn:
            done = conn.execute(select(func.coalesce(func.max(backlog_runs.c.done_count), 0))).scalar_one()
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    with lf.engine.connect() as conn:
        run_id, at_kill, total = conn.execute(select(backlog_runs.c.id, backlog_runs.c.done_count,
                                                     backlog_runs.c.total_at_start)).one()  # fmt: skip
    assert total == len(expected) and 5000 <= at_kill < total, "the kill did not land mid-way"
    kept, counted = loads(lf)
    assert kept == counted  # a whole chunk or none of it

    resumed = subprocess.run([LEADFLOW, "backlog", "resume", str(run_id)], env=env, capture_output=True, text=True,
                             timeout=120)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert f"run {run_id} is done" in resumed.stdout
    with lf.engine.connect() as conn:
        per_lead = Counter(
            conn.execute(select(events.c.lead_id).where(events.c.type == backlog.CHANGE_EVENT)).scalars()
        )
        changes = Counter(conn.execute(select(backlog_changes.c.state)).scalars())
        junked = set(conn.execute(select(leads.c.id).where(leads.c.junk_reason == "stale")).scalars())
        run = conn.execute(select(backlog_runs)).mappings().one()
    assert set(per_lead) == expected and set(per_lead.values()) == {1}  # none missed, none twice
    assert changes == {"done": len(expected)} and junked == expected
    assert (run["state"], run["done_count"], run["skipped_count"]) == ("done", len(expected), 0)
    kept, counted = loads(lf)
    assert kept == counted

    undone = subprocess.run([LEADFLOW, "backlog", "undo", str(run_id)], env=env, capture_output=True, text=True,
                            timeout=120)  # fmt: skip
    assert undone.returncode == 0, undone.stderr
    with lf.engine.connect() as conn:
        assert dict(conn.execute(select(leads.c.id, leads.c.status)).all()) == original
        restored = Counter(conn.execute(select(events.c.lead_id).where(events.c.type == backlog.UNDO_EVENT)).scalars())
    assert set(restored) == expected and set(restored.values()) == {1}
    kept, counted = loads(lf)
    assert kept == counted
