"""Backlog triage on real SQLite and PostgreSQL: each action on a few hand-checked leads, and its undo."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from leadflow.core.backlog import Action, Selection
from leadflow.core.errors import Conflict, Forbidden, InvalidInput
from leadflow.core.lead import LeadIn
from leadflow.core.policy import SYSTEM, Grant, Principal
from leadflow.core.rules_text import parse_rules
from leadflow.services import backlog
from leadflow.services.context import Leadflow
from leadflow.services.intake import take_lead
from leadflow.services.leads import set_status
from leadflow.services.privacy import client_of_lead, erase_client, export_client
from leadflow.store.tables import backlog_changes, events, leads, managers

T0 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
LATER = T0 + timedelta(days=120)
RULES = """
teams:
  - {key: sales, name: Sales, hours: always}
managers:
  - {key: anna, name: Anna, team: sales, capacity: 100}
  - {key: bob, name: Bob, team: sales, capacity: 100}
routing:
  rules:
    - {key: all, team: sales, strategy: round_robin}
"""
SCORED = (
    RULES
    + """
scoring:
  criteria:
    - key: budget
      points: [{when: {budget: {gte: 100000}}, points: 5}]
      default: 1
  temperatures:
    - {temperature: hot, min_score: 5, window: 3d, department: sales}
    - {temperature: cold, min_score: 0, window: 30d, department: marketing}
"""
)


@pytest.fixture
def lf(make_app: Callable[[str], Leadflow]) -> Leadflow:
    return make_app(RULES)


_made = iter(range(1_000_000))


def leads_for(lf: Leadflow, n: int, at: datetime = T0, budget: int | None = None) -> list[int]:
    """n leads of n new clients."""
    return [take_lead(lf, LeadIn(name=f"Client {i}", phone=f"+38067{i:07d}", budget=budget), at).lead_id
            for i in (next(_made) for _ in range(n))]  # fmt: skip


def state(lf: Leadflow) -> dict[str, object]:
    with lf.engine.connect() as conn:
        rows = conn.execute(select(leads.c.id, leads.c.status, leads.c.manager_id, leads.c.score,
                                   leads.c.temperature, leads.c.junk_reason, leads.c.lost_reason,
                                   leads.c.sla_state).order_by(leads.c.id)).all()  # fmt: skip
        loads = conn.execute(select(managers.c.key, managers.c.open_leads, managers.c.closed_leads)
                             .order_by(managers.c.key)).all()  # fmt: skip
    return {"leads": [tuple(r) for r in rows], "loads": [tuple(r) for r in loads]}


def count(lf: Leadflow, type_: str) -> int:
    with lf.engine.connect() as conn:
        return int(conn.execute(select(func.count()).where(events.c.type == type_)).scalar_one())


def apply(lf: Leadflow, selection: Selection, action: Action) -> dict[str, object]:
    run_id = backlog.start(lf, selection, action, LATER, who=SYSTEM)
    return backlog.run(lf, run_id, LATER, chunk=2, who=SYSTEM)


STALE = Selection(older_than=timedelta(days=90))


def test_junk_then_undo_puts_every_lead_and_load_back(lf: Leadflow) -> None:
    ids = leads_for(lf, 5)
    fresh = leads_for(lf, 1, at=LATER - timedelta(days=1))[0]  # not old enough
    was = state(lf)
    assert was["loads"] == [("anna", 3, 0), ("bob", 3, 0)]
    seen = backlog.preview(lf, STALE, Action("junk", "no answer for months"), LATER, who=SYSTEM)
    assert seen["total"] == 5 and seen["effect"]["changes"] == 5
    assert {r["owner"]: r["open"] for r in seen["by_owner"]} == {"anna": 3, "bob": 2}
    assert seen["effect"]["load_drop"] == {"anna": 3, "bob": 2}
    done = apply(lf, STALE, Action("junk", "no answer for months"))
    assert (done["state"], done["total_at_start"], done["done_count"], done["skipped_count"]) == ("done", 5, 5, 0)
    after = state(lf)
    assert after["loads"] == [("anna", 0, 0), ("bob", 1, 0)]  # the fresh lead stays open with Bob
    junked = [r for r in after["leads"] if r[0] in ids]  # type: ignore[attr-defined]
    assert {(r[1], r[5]) for r in junked} == {("junk", "no answer for months")}
    assert next(r for r in after["leads"] if r[0] == fresh)[1] == "assigned"  # type: ignore[attr-defined]
    assert count(lf, backlog.CHANGE_EVENT) == 5
    undone = backlog.undo(lf, done["id"], LATER + timedelta(hours=1), chunk=2, who=SYSTEM)
    assert (undone["state"], undone["undone_count"], undone["kept_count"]) == ("undone", 5, 0)
    assert state(lf) == was
    assert count(lf, backlog.UNDO_EVENT) == 5
    with pytest.raises(Conflict, match="already undone"):
        backlog.undo(lf, done["id"], LATER, who=SYSTEM)


def test_lose_counts_the_result_and_undo_takes_it_back(lf: Leadflow) -> None:
    leads_for(lf, 2)
    was = state(lf)
    done = apply(lf, Selection(owners=("anna",)), Action("lose", "went to a competitor"))
    assert done["done_count"] == 1
    assert state(lf)["loads"] == [("anna", 0, 1), ("bob", 1, 0)]
    with lf.engine.connect() as conn:
        assert conn.execute(select(leads.c.lost_reason).where(leads.c.status == "lost")).scalar_one() == (
            "went to a competitor")  # fmt: skip
    backlog.undo(lf, done["id"], LATER, who=SYSTEM)
    assert state(lf) == was


def test_requeue_routes_the_leads_again_and_undo_gives_them_back_to_their_owner(lf: Leadflow) -> None:
    ids = leads_for(lf, 4)
    was = state(lf)
    seen = backlog.preview(lf, Selection(owners=("anna",)), Action("requeue"), LATER, who=SYSTEM)
    assert seen["effect"]["queues"] == {"sales": 2}
    done = apply(lf, Selection(owners=("anna",)), Action("requeue"))
    assert done["done_count"] == 2 and done["report"]["routed"]["assigned"] == 2
    with lf.engine.connect() as conn:
        owners = dict(conn.execute(select(leads.c.id, leads.c.manager_id).where(leads.c.id.in_(ids))).all())
        loads = dict(conn.execute(select(managers.c.key, managers.c.open_leads)).all())
    assert all(m is not None for m in owners.values())
    assert loads["anna"] + loads["bob"] == 4  # routed again: nothing lost, nothing counted twice
    undone = backlog.undo(lf, done["id"], LATER, who=SYSTEM)
    assert undone["undone_count"] == 2
    assert state(lf)["loads"] == was["loads"]
    assert [r[:3] for r in state(lf)["leads"]] == [r[:3] for r in was["leads"]]  # type: ignore[index]


def test_rescore_with_the_rules_in_force_and_undo(lf: Leadflow) -> None:
    rich, modest = leads_for(lf, 1, budget=200000)[0], leads_for(lf, 1, budget=10)[0]
    lf.rules = parse_rules(SCORED, "scored.yaml")  # the scoring came after the leads
    seen = backlog.preview(lf, STALE, Action("rescore"), LATER, who=SYSTEM)
    assert seen["effect"]["changes"] == 2 and seen["effect"]["temperature_moves"] == {
        "none -> hot": 1,
        "none -> cold": 1,
    }
    done = apply(lf, STALE, Action("rescore"))
    with lf.engine.connect() as conn:
        scored = dict(conn.execute(select(leads.c.id, leads.c.temperature)).all())
    assert scored == {rich: "hot", modest: "cold"}
    again = apply(lf, STALE, Action("rescore"))  # nothing left to change
    assert again["done_count"] == 0 and again["report"]["skipped"]["scores the same with the rules in force"][
        "leads"] == 2  # fmt: skip
    backlog.undo(lf, done["id"], LATER, who=SYSTEM)
    with lf.engine.connect() as conn:
        assert set(conn.execute(select(leads.c.temperature)).scalars()) == {None}


def test_a_lead_changed_after_the_run_is_not_undone_and_is_reported(lf: Leadflow) -> None:
    ids = leads_for(lf, 3)
    done = apply(lf, STALE, Action("junk", "stale"))
    set_status(lf, ids[1], "new", LATER + timedelta(minutes=5), who=SYSTEM)  # someone took it up again
    undone = backlog.undo(lf, done["id"], LATER + timedelta(hours=1), who=SYSTEM)
    assert (undone["undone_count"], undone["kept_count"]) == (2, 1)
    kept = undone["report"]["kept"]
    assert kept == {"changed since the run: lead.status_changed by system:leadflow": {"leads": 1, "ids": [ids[1]]}}
    with lf.engine.connect() as conn:
        statuses = dict(conn.execute(select(leads.c.id, leads.c.status)).all())
        marks = dict(conn.execute(select(backlog_changes.c.lead_id, backlog_changes.c.state)).all())
    assert statuses == {ids[0]: "assigned", ids[1]: "new", ids[2]: "assigned"}
    assert marks == {ids[0]: "undone", ids[1]: "kept", ids[2]: "undone"}


def test_a_lead_that_stops_matching_before_its_chunk_is_skipped(lf: Leadflow) -> None:
    ids = leads_for(lf, 3)
    run_id = backlog.start(lf, Selection(statuses=("assigned",)), Action("junk", "stale"), LATER, who=SYSTEM)
    set_status(lf, ids[2], "contacted", LATER, who=SYSTEM)  # between the start and its chunk
    assert backlog.apply_chunk(lf, run_id, LATER, limit=2) == 2
    done = backlog.run(lf, run_id, LATER, who=SYSTEM)
    assert (done["done_count"], done["skipped_count"]) == (2, 1)
    assert done["report"]["skipped"] == {
        "changed since the run started: no longer matches the selection": {"leads": 1, "ids": [ids[2]]}
    }
    with pytest.raises(Conflict, match="only a running run"):
        backlog.resume(lf, run_id, LATER, who=SYSTEM)


def test_idle_for_counts_the_last_event(lf: Leadflow) -> None:
    ids = leads_for(lf, 2)
    set_status(lf, ids[0], "contacted", LATER - timedelta(days=2), who=SYSTEM)
    seen = backlog.preview(lf, Selection(idle_for=timedelta(days=30)), Action("junk", "idle"), LATER, who=SYSTEM)
    assert seen["total"] == 1


def test_mistakes_and_access(lf: Leadflow) -> None:
    with pytest.raises(InvalidInput, match="no manager has the key 'zed'"):
        backlog.preview(lf, Selection(owners=("zed",)), Action("requeue"), LATER, who=SYSTEM)
    head = Principal("user", "h", grants=(Grant("head", 1),))
    with pytest.raises(Forbidden, match="spans every team"):
        backlog.start(lf, STALE, Action("junk", "x"), LATER, who=head)
    with pytest.raises(InvalidInput, match="at least one lead"):
        backlog.apply_chunk(lf, 1, LATER, limit=0)


def test_erasure_reaches_what_a_run_kept_to_undo(lf: Leadflow) -> None:
    lead = take_lead(lf, LeadIn(name="Ivan Petrenko", phone="+380671234567"), T0).lead_id
    set_status(lf, lead, "junk", T0, who=SYSTEM, reason="Ivan Petrenko asked not to call")
    run_id = backlog.start(lf, Selection(statuses=("junk",)), Action("lose", "old junk"), LATER, who=SYSTEM)
    backlog.run(lf, run_id, LATER, who=SYSTEM)
    with lf.engine.begin() as conn:
        found = client_of_lead(conn, lead)
        assert found is not None
        done = erase_client(conn, found, LATER, SYSTEM)
        before = conn.execute(select(backlog_changes.c.before)).scalar_one()
    assert done["backlog_changes"] == 1
    assert "Petrenko" not in str(before) and before["status"] == "junk"


def test_the_client_export_holds_what_a_run_kept_and_the_statuses_the_lead_went_through(lf: Leadflow) -> None:
    lead = take_lead(lf, LeadIn(name="Ivan Petrenko", phone="+380671234567"), T0).lead_id
    set_status(lf, lead, "junk", T0 + timedelta(minutes=5), who=SYSTEM, reason="asked not to call")
    run_id = backlog.start(lf, Selection(statuses=("junk",)), Action("lose", "old junk"), LATER, who=SYSTEM)
    backlog.run(lf, run_id, LATER, who=SYSTEM)
    with lf.engine.connect() as conn:
        found = client_of_lead(conn, lead)
        assert found is not None
        exported = export_client(conn, found)["leads"][0]
    assert [(c["run_id"], c["state"], c["before"]["status"]) for c in exported["backlog_changes"]] == [
        (run_id, "done", "junk")
    ]
    assert [(s["status"], s["entered_at"][:16]) for s in exported["stages"]] == [
        ("assigned", "2026-01-05T10:00"), ("junk", "2026-01-05T10:05"), ("lost", LATER.isoformat()[:16])
    ]  # fmt: skip


def test_a_triage_does_not_set_off_the_automations(make_app: Callable[[str], Leadflow]) -> None:
    from leadflow.services.automation import run_once
    from leadflow.store.tables import tasks

    lf = make_app(
        RULES
        + """
funnel:
  - {key: new}
  - {key: assigned}
  - {key: contacted}
  - {key: junk, open: false}
  - {key: lost, open: false, outcome: lost}
automations:
  triggers:
    - {key: sorry, when: deal_lost, then: [{task: {title: "Say sorry to {{ lead.name }}"}}]}
"""
    )
    lost = leads_for(lf, 3)
    run_once(lf, T0)
    apply(lf, STALE, Action("lose", "no answer for months"))
    run_once(lf, LATER)
    with lf.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(tasks)).scalar() == 0  # 3 stale leads, no 3 messages
        assert conn.execute(select(leads.c.status).where(leads.c.id == lost[0])).scalar() == "lost"
    set_status(lf, lost[0], "contacted", LATER, who=SYSTEM)
    set_status(lf, lost[0], "lost", LATER, who=SYSTEM, reason="a person closes it")
    run_once(lf, LATER)  # a person closing a lead is news, as always
    with lf.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(tasks)).scalar() == 1
