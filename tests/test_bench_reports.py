"""The reports' benchmark history (bench/report_history.py): a small one written into each database keeps the
promises the reports rely on, and the checks that say so catch a history that breaks them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, func, select, text, update

from bench.report_history import FIGURES, GENERATOR, MARK, built_for, load, verify
from leadflow.store.db import make_engine
from leadflow.store.stages import create_stage_triggers, drop_stage_triggers
from leadflow.store.tables import lead_stages, leads

N = 1500


@pytest.fixture
def history(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    load(engine, N)
    yield engine
    # A test below drops a trigger; on PostgreSQL the database is shared by the session, so put them back.
    with engine.begin() as conn:
        drop_stage_triggers(conn)
        create_stage_triggers(conn)
    engine.dispose()


def test_the_history_holds_every_promise_and_the_shape_asked_for(history: Engine) -> None:
    found = verify(history)
    assert found.problems and not any(found.problems.values()), found.problems
    per_lead = found.figures
    assert set(per_lead) == set(FIGURES)
    assert 8.5 <= per_lead["events"] <= 11  # about ten events a lead
    assert 1.05 <= per_lead["assignments"] <= 1.35  # about 1.2 assignments
    assert 1.6 <= per_lead["activities"] <= 2.5  # about two activities
    assert 0.003 <= per_lead["lead.desk_overdue"] <= 0.03  # about 1%
    assert 0 < per_lead["lead.chain_exhausted"] <= 0.02  # about 0.5%
    # Every status but `new` (a lead still waiting for an owner at the clock: too few of them in a small history).
    assert set(found.statuses) - {"new"} == {"assigned", "contacted", "qualified", "converted", "lost", "junk",
                                             "merged"}  # fmt: skip
    assert set(found.bands) == {"≤20m", "≤3h", "≤12h", ">12h"}
    assert built_for(history) == f"{GENERATOR}:{N}"
    with history.connect() as conn:
        # The stage triggers are back after the load: a new status is a new stage.
        lead_id = conn.execute(select(leads.c.id).where(leads.c.status == "contacted").limit(1)).scalar_one()
        before = conn.execute(select(func.count()).select_from(lead_stages)).scalar_one()
        conn.execute(update(leads).where(leads.c.id == lead_id).values(status="qualified"))
        assert conn.execute(select(func.count()).select_from(lead_stages)).scalar_one() == before + 1
        conn.rollback()


def test_the_checks_catch_a_history_that_breaks_them(history: Engine) -> None:
    with history.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER IF EXISTS leads_stage_update" + (" ON leads" if
                             history.dialect.name == "postgresql" else ""))  # fmt: skip
        lost = conn.execute(select(leads.c.id).where(leads.c.status == "lost").limit(1)).scalar_one()
        conn.execute(update(leads).where(leads.c.id == lost).values(status="qualified"))  # no stage says so
        stage = conn.execute(select(lead_stages.c.id).where(lead_stages.c.left_at.is_not(None)).limit(1)).scalar_one()
        conn.execute(update(lead_stages).where(lead_stages.c.id == stage).values(left_at=None))  # two open stages
        conn.execute(text("DELETE FROM instance WHERE name = :n"), {"n": MARK})
    problems = verify(history).problems
    assert problems["a lead whose open stage is not its status"] == 1
    assert problems["a lead with more than one open stage"] == 1
    assert problems["a stage that does not end when the next begins, or names another previous status"] == 1
    assert built_for(history) is None  # a database whose load did not complete is never reused
