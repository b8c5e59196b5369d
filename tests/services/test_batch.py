"""Batch routing of the unassigned backlog, on real SQLite and real PostgreSQL."""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, Table, func, select, update

from leadflow.core.lead import LeadIn
from leadflow.core.policy import SYSTEM
from leadflow.services.batch import RUN_EVENT, BatchReport, assign_backlog, count_backlog
from leadflow.services.context import Leadflow
from leadflow.services.intake import assign_existing, take_lead
from leadflow.services.leads import get_lead
from leadflow.store.tables import assignments, events, leads, managers, metadata, outbox, rr_pointers, timers

ARRIVED = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)  # Monday 09:00 in Kyiv
NOW = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)  # the batch runs the next morning
KEYS = ("m1", "m2", "m3", "m4", "m5", "m6")


def six(capacities: tuple[int, ...] = (10_000,) * 6, strategy: str = "round_robin", extra: str = "") -> str:
    people = "\n".join(
        f"  - {{key: {k}, name: Manager {k[1]}, team: sales, capacity: {c}, regions: [UA]{extra}}}"
        for k, c in zip(KEYS, capacities, strict=True)
    )
    return f"""
default_timezone: Europe/Kyiv
teams:
  - {{key: sales, name: Sales, hours: always}}
managers:
{people}
routing:
  rules:
    - {{key: all, team: sales, strategy: {strategy}, require: [region]}}
sla:
  default: {{first_contact: 15m, count: wall_clock}}
"""


def budgets(n: int, seed: int = 7) -> list[Decimal | None]:
    """Distinct-looking budgets in cents, one in twenty without a budget."""
    rng = random.Random(seed)
    return [None if rng.random() < 0.05 else Decimal(rng.randrange(10_000, 100_000_000)).scaleb(-2) for _ in range(n)]


def _lead_row(i: int, budget: Decimal | None, region: str) -> dict[str, Any]:
    at = ARRIVED + timedelta(seconds=i)
    phone = f"+38067{i:07d}"
    return {"channel": "web", "name": f"Client {i}", "phone": phone, "phone_type": "mobile", "region": region,
            "product": "credit", "budget": budget, "utm": {}, "raw": {"phone": phone}, "status": "new",
            "created_at": at, "updated_at": at, "sla_hops": 0}  # fmt: skip


def insert_backlog(engine: Engine, values: list[Decimal | None], region: str = "UA") -> list[int]:
    """Unassigned leads written as take_lead writes a lead nobody could take: the lead, its two events and the
    initial assignment to nobody. (The first test takes its backlog in through take_lead itself.)"""
    rows = [_lead_row(i, b, region) for i, b in enumerate(values)]
    reason = "unassigned: rule 'all' matched any lead but no one eligible among 6"
    received, unassigned = {"channel": "web", "source": None}, {"reason": reason}
    with engine.begin() as conn:
        conn.execute(leads.insert(), rows)
        query = select(leads.c.id, leads.c.created_at).order_by(leads.c.id.desc()).limit(len(rows))
        written = sorted(conn.execute(query).all())
        kinds = (("lead.received", received), ("lead.unassigned", unassigned))
        history = [{"lead_id": i, "type": t, "actor": None, "data": d, "at": at}
                   for i, at in written for t, d in kinds]  # fmt: skip
        conn.execute(events.insert(), history)
        nobody = [{"lead_id": i, "manager_id": None, "kind": "initial", "rule_key": None, "strategy": None,
                   "reason": reason, "candidates": [], "at": at} for i, at in written]  # fmt: skip
        conn.execute(assignments.insert(), nobody)
    return [i for i, _ in written]


def count(engine: Engine, table: Table, *where: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


def loads(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {k: n for k, n in conn.execute(select(managers.c.key, managers.c.open_leads))}


def snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, to show that something wrote nothing."""
    with engine.connect() as conn:
        return {
            t.name: sorted(map(tuple, conn.execute(select(t)).all()), key=repr)
            for t in metadata.sorted_tables
            if t.name != "alembic_version"
        }


def owners(engine: Engine) -> dict[int, str | None]:
    with engine.connect() as conn:
        query = select(leads.c.id, managers.c.key).outerjoin(managers, managers.c.id == leads.c.manager_id)
        return {i: k for i, k in conn.execute(query)}


def test_backlog_left_by_intake_is_routed_evenly_with_timers(make_app: Callable[[str], Leadflow]) -> None:
    app = make_app(six(capacities=(0,) * 6))  # nobody can take a lead while they arrive
    taken = [take_lead(app, LeadIn(phone=f"+38067{i:07d}", region="UA", budget=Decimal(i)), ARRIVED) for i in range(60)]
    assert {t.status for t in taken} == {"new"}
    with app.engine.begin() as conn:
        conn.execute(update(managers).values(capacity=100))  # back at work
    assert count_backlog(app) == 60

    steps: list[int] = []
    first = assign_backlog(app, NOW, chunk=7, limit=12, progress=steps.append, who=SYSTEM)
    assert (first.assigned, first.chunks, steps) == (12, 2, [7, 5])
    assert set(first.picks) == {t.lead_id for t in taken[-12:]}  # the twelve largest budgets
    rest = assign_backlog(app, NOW, chunk=7, who=SYSTEM)
    assert (rest.assigned, rest.left_unassigned, count_backlog(app)) == (48, 0, 0)

    assert Counter(owners(app.engine).values()) == dict.fromkeys(KEYS, 10)
    assert loads(app.engine) == dict.fromkeys(KEYS, 10)
    assert count(app.engine, timers, timers.c.kind == "first_contact") == 60
    with app.engine.connect() as conn:
        clocks = conn.execute(select(leads.c.status, leads.c.sla_state, leads.c.sla_due_at, leads.c.assigned_at)).all()
    assert set(clocks) == {("assigned", "running", NOW + timedelta(minutes=15), NOW)}
    detail = get_lead(app, taken[0].lead_id, who=SYSTEM)
    assert [e["type"] for e in detail["events"]][-2:] == ["lead.unassigned", "lead.assigned"]
    assert [(a["kind"], a["manager_key"] is not None) for a in detail["assignments"]] == [
        ("initial", False),
        ("batch", True),
    ]


def test_round_robin_among_equals_is_even_across_chunks(make_app: Callable[[str], Leadflow]) -> None:
    app = make_app(six())
    insert_backlog(app.engine, budgets(3000))
    report = assign_backlog(
        app, NOW, chunk=333, who=SYSTEM
    )  # chunks that do not divide by six: the rotation carries over
    per = Counter(report.picks.values())
    assert report.assigned == 3000 and report.chunks == 10
    assert max(per.values()) - min(per.values()) <= 1
    assert loads(app.engine) == dict(per)
    with app.engine.connect() as conn:
        pointer = conn.execute(select(rr_pointers.c.last_manager_key).where(rr_pointers.c.rule_key == "all")).scalar()
    assert pointer == list(report.picks.values())[-1]


def test_caps_hold_and_the_cheapest_leads_are_left(make_app: Callable[[str], Leadflow]) -> None:
    caps = (300, 400, 450, 500, 550, 600)  # 2,800 places for 3,000 leads
    app = make_app(six(capacities=caps))
    values = budgets(3000)
    ids = insert_backlog(app.engine, values)
    budget_of = dict(zip(ids, values, strict=True))
    with app.engine.begin() as conn:  # m6 already works 100 leads: 500 places left
        conn.execute(update(managers).where(managers.c.key == "m6").values(open_leads=100))

    report = assign_backlog(app, NOW, who=SYSTEM)
    assert (report.assigned, report.left_unassigned, report.chunks) == (2700, 300, 6)
    assert {k: c for k, (c, _) in report.per_manager.items()} == {
        "m1": 300, "m2": 400, "m3": 450, "m4": 500, "m5": 550, "m6": 500,
    }  # fmt: skip
    assert loads(app.engine) == dict(zip(KEYS, caps, strict=True))
    for key, (_, value) in report.per_manager.items():
        assert value == sum((budget_of[i] or 0 for i, k in report.picks.items() if k == key), Decimal(0))

    def rank(b: Decimal | None) -> Decimal:
        return Decimal(-1) if b is None else b

    left = [budget_of[i] for i, _ in report.unassigned]
    assert max(map(rank, left)) <= min(rank(budget_of[i]) for i in report.picks)
    assert left.count(None) == values.count(None)  # no budget: last in line
    assert all("at capacity" in reason for _, reason in report.unassigned)
    assert count(app.engine, timers, timers.c.kind == "first_contact") == 2700
    assert count(app.engine, leads, leads.c.status == "assigned", leads.c.sla_state == "running") == 2700


def test_dry_run_writes_nothing_and_predicts_the_run_and_a_rerun_adds_nothing(
    make_app: Callable[[str], Leadflow],
) -> None:
    app = make_app(six(capacities=(300, 400, 450, 500, 550, 600), strategy="least_loaded"))
    insert_backlog(app.engine, budgets(3000, seed=11))
    before = snapshot(app.engine)
    dry = assign_backlog(app, NOW, dry_run=True, chunk=400, who=SYSTEM)
    assert snapshot(app.engine) == before
    assert (dry.assigned, dry.left_unassigned) == (2800, 200)

    real = assign_backlog(app, NOW, chunk=400, who=SYSTEM)
    assert real.picks == dry.picks  # same leads, same managers, same order
    assert real.per_manager == dry.per_manager
    assert real.unassigned == dry.unassigned
    assert count(app.engine, events, events.c.type == RUN_EVENT) == 1

    assignments_after = count(app.engine, assignments)
    again = assign_backlog(app, NOW + timedelta(minutes=5), who=SYSTEM)
    assert (again.assigned, again.left_unassigned) == (0, 200)
    assert count(app.engine, assignments) == assignments_after  # no row per lead for those still waiting
    assert count(app.engine, events, events.c.type == RUN_EVENT) == 2  # just the run's own record
    with app.engine.connect() as conn:
        last = conn.execute(
            select(events.c.data).where(events.c.type == RUN_EVENT).order_by(events.c.id.desc())
        ).first()
    assert last is not None
    assert (last.data["assigned"], last.data["left_unassigned"]) == (0, 200)
    assert sum(g["leads"] for g in last.data["unassigned"]) == 200


def test_ten_thousand_leads_level_the_load_instead_of_piling_on_one(make_app: Callable[[str], Leadflow]) -> None:
    # The failure of tools that rank on counts read once before a bulk run: every lead goes to whoever was least
    # loaded at the start. Here the batch counts each lead in, so the load ends level.
    app = make_app(six(strategy="least_loaded"))
    start = dict(zip(KEYS, (0, 50, 100, 500, 1000, 2000), strict=True))
    with app.engine.begin() as conn:
        for key, n in start.items():
            conn.execute(update(managers).where(managers.c.key == key).values(open_leads=n))
    insert_backlog(app.engine, budgets(10_000, seed=3))
    report = assign_backlog(app, NOW, chunk=1000, who=SYSTEM)
    assert report.assigned == 10_000
    final = loads(app.engine)
    assert max(final.values()) - min(final.values()) <= 1
    assert max(c for c, _ in report.per_manager.values()) < 2300  # 13,650 over six is 2,275
    assert {k: start[k] + c for k, (c, _) in report.per_manager.items()} == final


def test_leads_nobody_serves_stay_in_the_queue_with_their_reason(make_app: Callable[[str], Leadflow]) -> None:
    app = make_app(six())
    insert_backlog(app.engine, budgets(5), region="PL")
    ua = insert_backlog(app.engine, budgets(4, seed=2))
    report = assign_backlog(app, NOW, who=SYSTEM)
    assert (report.assigned, set(report.picks)) == (4, set(ua))
    assert report.left_unassigned == 5
    [(reason, n, _)] = report.reasons()
    assert n == 5 and "does not serve region PL" in reason
    assert count(app.engine, leads, leads.c.status == "new", leads.c.region == "PL") == 5
    assert count(app.engine, assignments, assignments.c.kind == "batch") == 4
    assert report.table().row_count == 4 + 2
    assert report.reasons_table().row_count == 1
    summary = json.loads(json.dumps(report.summary()))  # what an API would answer
    assert (summary["assigned"], sum(m["leads"] for m in summary["per_manager"])) == (4, 4)
    with app.engine.connect() as conn:
        recorded = conn.execute(select(events.c.data).where(events.c.type == RUN_EVENT)).scalar_one()
    assert recorded["unassigned"] == summary["unassigned"]
    assert recorded["unassigned"][0]["ids"] == [i for i, _ in report.unassigned]
    left = get_lead(app, report.unassigned[0][0], who=SYSTEM)
    assert [e["type"] for e in left["events"]] == ["lead.received", "lead.unassigned"]  # untouched by the run
    assert [a["kind"] for a in left["assignments"]] == ["initial"]


def rows_of(conn: Any, lead_id: int) -> dict[str, Any]:
    """What routing wrote for one lead, without ids and lead ids (which differ from run to run)."""

    def strip(row: Any, *drop: str) -> dict[str, Any]:
        return {k: v for k, v in row._mapping.items() if k not in {"id", "lead_id", "event_id", *drop}}

    def many(table: Table) -> list[dict[str, Any]]:
        query = select(table).where(table.c.lead_id == lead_id).order_by(table.c.id)
        return [strip(r) for r in conn.execute(query)]

    lead = conn.execute(select(leads).where(leads.c.id == lead_id)).one()
    payloads = [strip(r) for r in conn.execute(select(outbox).order_by(outbox.c.id))]
    for p in payloads:  # the link and the card carry the lead's id, event_id the event's
        p["payload"] = {k: v for k, v in p["payload"].items() if k not in ("lead", "link", "event_id")}
        p["body"] = p["body"].replace(str(lead_id), "#")
    return {
        "lead": strip(lead),
        "assignments": [a for a in many(assignments) if a["kind"] != "initial"],
        "events": [e for e in many(events) if e["type"] == "lead.assigned"],
        "timers": many(timers),
        "managers": sorted(conn.execute(select(managers.c.key, managers.c.open_leads, managers.c.open_value)).all()),
        "pointers": sorted(conn.execute(select(rr_pointers)).all()),
        "outbox": payloads,
    }


def test_a_batch_writes_what_assign_existing_writes(make_app: Callable[[str], Leadflow]) -> None:
    # Weighted rotation (credits in the pointer), a working-hours clock, and managers with e-mail (an outbox row).
    app = make_app(
        six(strategy="weighted_round_robin", extra=", email: m@example.test, hours: {mon-fri: '09:00-18:00'}")
        .replace("count: wall_clock", "count: working_hours")
        .replace("m6, name: Manager 6", "m6, name: Manager 6, weight: 3")
    )
    [lead_id] = insert_backlog(app.engine, [Decimal("12500.50")])
    with app.engine.begin() as conn:
        conn.execute(update(managers).where(managers.c.key == "m2").values(open_leads=7, open_value=Decimal("99.99")))
        conn.execute(rr_pointers.insert().values(rule_key="all", last_manager_key="m1", state={"credits": {"m6": 2.0}}))
    at = NOW.replace(hour=15, minute=55)  # 17:55 in Kyiv: the 15-minute clock runs into tomorrow morning

    with app.engine.connect() as conn:
        trans = conn.begin()
        row = conn.execute(select(leads).where(leads.c.id == lead_id)).mappings().one()
        one_by_one = assign_existing(conn, app, row, at, kind="batch")
        expected = rows_of(conn, lead_id)
        trans.rollback()

    report = assign_backlog(app, at, who=SYSTEM)
    assert report.picks == {lead_id: one_by_one.manager_key}
    with app.engine.connect() as conn:
        got = rows_of(conn, lead_id)
    assert got == expected
    assert expected["timers"] and expected["outbox"] and expected["pointers"][0].state["credits"]
    assert expected["lead"]["sla_due_at"] == datetime(2026, 11, 25, 7, 10, tzinfo=UTC)  # 09:10 Kyiv next day


def test_bad_arguments_are_refused(make_app: Callable[[str], Leadflow]) -> None:
    from leadflow.core.errors import InvalidInput

    app = make_app(six())
    with pytest.raises(InvalidInput):
        assign_backlog(app, NOW, chunk=0, who=SYSTEM)
    empty = assign_backlog(app, NOW, who=SYSTEM)
    assert isinstance(empty, BatchReport) and (empty.assigned, empty.chunks) == (0, 0)
    assert count(app.engine, events, events.c.type == RUN_EVENT) == 0  # an empty queue leaves no record


def test_a_batch_reads_the_qualification_as_assign_existing_does(make_app: Callable[[str], Leadflow]) -> None:
    # The score picks the tier (best_to_best), the temperature picks the SLA override, the department a rule.
    rules = (
        six(strategy="best_to_best")
        .replace("m1, name: Manager 1", "m1, name: Manager 1, tier: 2")
        .replace("m2, name: Manager 2", "m2, name: Manager 2, tier: 1")
        .replace("- {key: all,", "- {key: vip, team: sales, when: {department: vip}, strategy: least_loaded}\n    - {key: all,")
        .replace("count: wall_clock}", "count: wall_clock}\n  overrides:\n    - {temperature: red_hot, first_contact: 5m}")
    )  # fmt: skip
    app = make_app(rules)
    hot, vip = insert_backlog(app.engine, [Decimal("900.00"), Decimal("100.00")])
    with app.engine.begin() as conn:
        conn.execute(
            update(leads).where(leads.c.id == hot).values(score=18, temperature="red_hot", win_probability=0.8)
        )
        conn.execute(update(leads).where(leads.c.id == vip).values(score=3, temperature="cold", department="vip"))

    def own_rows(conn: Any, lead_id: int) -> dict[str, Any]:
        return {k: v for k, v in rows_of(conn, lead_id).items() if k in ("lead", "assignments", "events", "timers")}

    with app.engine.connect() as conn:
        trans = conn.begin()
        for lead_id in (hot, vip):
            row = conn.execute(select(leads).where(leads.c.id == lead_id)).mappings().one()
            assign_existing(conn, app, row, NOW, kind="batch")
        expected = {lead_id: own_rows(conn, lead_id) for lead_id in (hot, vip)}
        trans.rollback()

    report = assign_backlog(app, NOW, who=SYSTEM)
    assert report.picks == {hot: "m2", vip: "m1"}  # tier 1 for the score of 18; the vip rule, least loaded
    with app.engine.connect() as conn:
        got = {lead_id: own_rows(conn, lead_id) for lead_id in (hot, vip)}
    assert got == expected
    assert got[hot]["lead"]["sla_due_at"] == NOW + timedelta(minutes=5)  # the red-hot override
    assert got[vip]["assignments"][0]["rule_key"] == "vip"
