"""`leadflow demo` for real: server, worker and simulated managers on a SQLite file, judged from the database."""

import io
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from sqlalchemy import create_engine, func, select

from leadflow.demo import DEMO_NOTE, DEMO_RULES, DemoSummary, run_demo
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
        met = conn.execute(select(func.count()).where(leads.c.sla_state == "met")).scalar_one()
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
    assert met >= 1, "no lead was contacted in time"
    escalated = [data for type_, data in moves if type_ == "lead.escalated"]
    assert any(data["reason"].startswith("no first contact by") for data in escalated), moves
    assert simulated >= met, "contacts were not recorded through the API by the simulated managers"
    assert summary == DemoSummary(
        received=received, contacted_in_time=met, escalations=len(moves), reached_head=at_head, junk=junk
    )

    text = out.getvalue()
    assert "no first contact by" in text  # the reassignments were shown with their reasons
    received_line = next(line for line in text.splitlines() if "leads received" in line)
    assert str(received) in received_line  # the printed summary is the database's count
