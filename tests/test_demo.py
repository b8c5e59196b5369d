"""`leadflow demo` for real: server, worker and simulated managers on a SQLite file, judged from the database."""

import io
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from rich.console import Console
from sqlalchemy import create_engine, func, select

from leadflow.core.lead import LeadIn
from leadflow.core.policy import SYSTEM
from leadflow.demo import DEMO_NOTE, DEMO_RULES, DemoError, DemoSummary, run_demo
from leadflow.demo.board import Board
from leadflow.services.context import Leadflow
from leadflow.services.intake import take_lead
from leadflow.services.leads import get_lead
from leadflow.services.sla import escalate_due, record_contact
from leadflow.store.tables import activities, events, leads, managers
from tests.support import free_port

LEADFLOW = str(Path(sys.executable).parent / "leadflow")


def test_demo_rules_pass_check_rules() -> None:
    done = subprocess.run([LEADFLOW, "check-rules", str(DEMO_RULES)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "4 manager(s)" in done.stdout


def test_demo_contacts_some_leads_in_time_and_escalates_others(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    out = io.StringIO()
    started = time.monotonic()
    summary = run_demo(
        url,
        port=free_port(),
        deadline="2s",
        pace_seconds=0.3,
        duration_seconds=8,
        console=Console(file=out, width=200),
        live=False,
    )
    assert time.monotonic() - started < 15

    engine = create_engine(url)
    with engine.connect() as conn:
        received = conn.execute(select(func.count()).select_from(leads)).scalar_one()
        in_time = conn.execute(
            select(func.count()).where(leads.c.sla_state == "met", leads.c.sla_hops == 0)
        ).scalar_one()
        after_moving = conn.execute(
            select(func.count()).where(leads.c.first_contact_at.is_not(None), leads.c.sla_hops > 0)
        ).scalar_one()
        junk = conn.execute(select(func.count()).where(leads.c.status == "junk")).scalar_one()
        at_head = conn.execute(
            select(func.count())
            .select_from(leads.join(managers, managers.c.id == leads.c.manager_id))
            .where(leads.c.sla_state == "exhausted", managers.c.key == "iryna")
        ).scalar_one()
        moves = conn.execute(
            select(events.c.type, events.c.data).where(events.c.type.in_(["lead.escalated", "lead.chain_exhausted"]))
        ).all()
        simulated = conn.execute(select(func.count()).where(activities.c.note == DEMO_NOTE)).scalar_one()
    engine.dispose()

    assert received >= 15, "leads were not posted at the pace asked for"
    assert in_time >= 1, "no lead was contacted in time"
    escalated = [data for type_, data in moves if type_ == "lead.escalated"]
    assert any(data["reason"].startswith("no first contact by") for data in escalated), moves
    assert simulated >= in_time + after_moving, "contacts were not recorded through the API by the simulated managers"
    assert summary == DemoSummary(
        received=received,
        contacted_in_time=in_time,
        contacted_after_escalation=after_moving,
        escalations=len(moves),
        reached_head=at_head,
        junk=junk,
    )

    text = out.getvalue()
    assert "no first contact by" in text  # the reassignments were shown with their reasons
    received_line = next(line for line in text.splitlines() if "leads received" in line)
    assert str(received) in received_line  # the printed summary is the database's count
    late_line = next(line for line in text.splitlines() if "contacted after a move" in line)
    assert str(after_moving) in late_line


# --------------------------------------------------------------------------------------------------------------
# What counts as "in time"

T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_a_lead_contacted_after_a_move_is_not_counted_in_time(make_app: Callable[[str], Leadflow]) -> None:
    lf = make_app(DEMO_RULES.read_text())  # first contact within 20 s, wall clock, then the next manager
    first = take_lead(lf, LeadIn(name="Ivan", phone="0671234567", product="credit"), T0)
    second = take_lead(lf, LeadIn(name="Olha", phone="0501112233", product="credit"), T0)
    record_contact(lf, first.lead_id, str(first.manager_key), "call", "connected", at(5), who=SYSTEM)
    assert escalate_due(lf, at(20)) == 1  # nobody called Olha: she moves on
    owner = get_lead(lf, second.lead_id, who=SYSTEM)["manager_key"]
    assert owner != second.manager_key
    answer = record_contact(lf, second.lead_id, owner, "call", "connected", at(26), who=SYSTEM)
    assert answer["sla_state"] == "met"  # met by the new owner's own deadline, 26 s after she wrote

    totals = Board(lf.engine, lf.rules, baseline=0).totals()
    assert (totals.received, totals.contacted_in_time, totals.contacted_after_escalation) == (2, 1, 1)
    assert totals.escalations == 1


# --------------------------------------------------------------------------------------------------------------
# The port


def test_a_taken_port_is_replaced_by_a_free_one_when_none_was_asked_for(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        out = io.StringIO()
        run_demo(f"sqlite:///{tmp_path / 'demo.db'}", port=busy, any_free_port=True, deadline="2s", pace_seconds=0.5,
                 duration_seconds=1.5, console=Console(file=out, width=300), live=False)  # fmt: skip
        with pytest.raises(DemoError) as refused:
            run_demo(f"sqlite:///{tmp_path / 'demo.db'}", port=busy, duration_seconds=1, live=False,
                     console=Console(file=io.StringIO()))  # fmt: skip
    text = out.getvalue()
    assert f"port {busy} is taken" in text and "--port chooses one" in text
    assert f"http://127.0.0.1:{busy}/" not in text
    assert "--port" in str(refused.value) and f"port {busy} on 127.0.0.1 is taken" in str(refused.value)


def _admin_key(database: str) -> dict[str, str]:
    from leadflow.services.accounts import create_key
    from leadflow.services.context import utcnow

    engine = create_engine(database)
    with engine.begin() as conn:
        key, _ = create_key(conn, "test", "admin", utcnow(), actor=SYSTEM)
    engine.dispose()
    return {"Authorization": f"Bearer {key}"}


def test_the_demo_listens_on_leadflow_port_and_warns_about_nothing(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADFLOW_")} | {"LEADFLOW_PORT": str(port)}
    database = f"sqlite:///{tmp_path / 'demo.db'}"
    demo = subprocess.Popen([LEADFLOW, "demo", "--duration", "6", "--pace", "1", "--no-live", "--database", database],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    health = None
    headers: dict[str, str] | None = None
    deadline = time.monotonic() + 30
    while health is None and time.monotonic() < deadline and demo.poll() is None:
        try:
            if headers is None:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5, trust_env=False).raise_for_status()
                headers = _admin_key(database)  # the demo's server is up, its database migrated
            health = httpx.get(f"http://127.0.0.1:{port}/api/v1/health", headers=headers, timeout=5,
                               trust_env=False).json()  # fmt: skip
        except httpx.HTTPError:
            time.sleep(0.2)
    output, _ = demo.communicate(timeout=60)
    assert demo.returncode == 0, output
    assert health is not None, output
    assert health["notifications"] == {"channels": ["telegram"], "warnings": []}  # the local stand-in
    assert health["worker"]["in_process"] is True
    assert "warning" not in output.lower()
    assert f"http://127.0.0.1:{port}/api/v1/leads" in output
