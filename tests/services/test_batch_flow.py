"""The batch places as many leads as the caps allow, keeps a client with one owner, and takes a configurable order.

The property test builds a random team and backlog, works out on its own who may take which lead, and compares the
number the batch placed with a maximum flow computed by NetworkX over that eligibility.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import networkx as nx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select

from leadflow.core.errors import InvalidInput
from leadflow.core.policy import SYSTEM
from leadflow.services.batch import assign_backlog
from leadflow.services.context import Leadflow
from leadflow.store.tables import assignments, leads, managers, metadata

ARRIVED = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)


def add_leads(engine: Engine, specs: list[dict[str, Any]]) -> list[int]:
    """Backlog leads (status new, nobody's); each spec may set budget, phone, email, product, region, score."""
    if not specs:
        return []
    rows = []
    for i, spec in enumerate(specs):
        at = ARRIVED + timedelta(seconds=i)
        rows.append({"channel": "web", "name": f"Client {i}", "phone": spec.get("phone", f"+38067{i:07d}"),
                     "email": spec.get("email"), "region": spec.get("region", "UA"),
                     "product": spec.get("product", "credit"), "budget": spec.get("budget"),
                     "score": spec.get("score"), "manager_id": spec.get("manager_id"),
                     "status": spec.get("status", "new"), "utm": {}, "raw": {}, "created_at": at,
                     "updated_at": at, "sla_hops": 0})  # fmt: skip
    with engine.begin() as conn:
        conn.execute(leads.insert(), rows)
        found = conn.execute(select(leads.c.id).order_by(leads.c.id.desc()).limit(len(rows))).scalars().all()
    return sorted(found)


def owners(engine: Engine) -> dict[int, str | None]:
    with engine.connect() as conn:
        query = select(leads.c.id, managers.c.key).outerjoin(managers, managers.c.id == leads.c.manager_id)
        return {i: k for i, k in conn.execute(query)}


GEN_BIG = """
default_timezone: Europe/Kyiv
teams:
  - {key: sales, name: Sales, hours: always}
managers:
  - {key: gen, name: Gen, team: sales, capacity: 1}
  - {key: big, name: Big, team: sales, capacity: 1}
routing:
  rules:
    - {key: large, team: sales, managers: [gen, big], when: {budget: {gte: 1000}}, strategy: round_robin}
    - {key: any, team: sales, managers: [gen], strategy: round_robin}
sla:
  default: {first_contact: 15m, count: wall_clock}
"""


def test_a_lead_only_one_manager_may_take_is_placed_by_moving_another(make_app: Callable[[str], Leadflow]) -> None:
    app = make_app(GEN_BIG)
    large, small = add_leads(app.engine, [{"budget": Decimal(5000)}, {"budget": Decimal(10)}])
    dry = assign_backlog(app, NOW, dry_run=True, who=SYSTEM)
    report = assign_backlog(app, NOW, who=SYSTEM)
    assert report.picks == dry.picks == {large: "big", small: "gen"}
    assert report.left_unassigned == 0
    with app.engine.connect() as conn:
        reason = conn.execute(
            select(assignments.c.reason).where(assignments.c.lead_id == large, assignments.c.kind == "batch")
        ).scalar_one()
    assert reason.endswith(f"round robin among 2 eligible; moved from Gen to Big so that lead {small} could be placed")


TWO = """
default_timezone: Europe/Kyiv
teams:
  - {key: sales, name: Sales, hours: always}
managers:
  - {key: m1, name: One, team: sales, capacity: 10}
  - {key: m2, name: Two, team: sales, capacity: 10}
routing:
  rules:
    - {key: all, team: sales, strategy: round_robin}
sla:
  default: {first_contact: 15m, count: wall_clock}
"""


def test_one_client_gets_one_owner_and_an_existing_owner_keeps_them(make_app: Callable[[str], Leadflow]) -> None:
    app = make_app(TWO)
    with app.engine.connect() as conn:
        m2 = conn.execute(select(managers.c.id).where(managers.c.key == "m2")).scalar_one()
    [worked] = add_leads(app.engine, [{"phone": "+380501112233", "manager_id": m2, "status": "assigned"}])
    same_mail = add_leads(app.engine, [{"email": "ann@example.test", "phone": None, "budget": Decimal(9)},
                                       {"email": "ANN@example.test", "phone": None, "budget": Decimal(8)}])  # fmt: skip
    owned = add_leads(app.engine, [{"phone": "+380501112233", "budget": Decimal(1)}])
    others = add_leads(app.engine, [{"budget": Decimal(5)}, {"budget": Decimal(4)}])
    report = assign_backlog(app, NOW, who=SYSTEM)
    assert report.assigned == 5
    got = owners(app.engine)
    assert got[same_mail[0]] == got[same_mail[1]]
    assert got[owned[0]] == got[worked] == "m2"
    assert {got[i] for i in others} == {"m1", "m2"}  # the rotation goes on around the client


def test_the_batch_order_comes_from_the_rules_or_the_call(make_app: Callable[[str], Leadflow]) -> None:
    by_score = (
        TWO.replace("capacity: 10", "capacity: 1")
        .replace("    - {key: all,", "  batch_order: [score desc, budget desc]\n  rules:\n    - {key: all,")
        .replace("  rules:\n  batch_order", "  batch_order")
    )
    app = make_app(by_score)
    ids = add_leads(app.engine, [{"budget": Decimal(900), "score": 1}, {"budget": Decimal(10), "score": 9},
                                 {"budget": Decimal(500), "score": 5}, {"budget": None, "score": None}])  # fmt: skip
    assert set(assign_backlog(app, NOW, dry_run=True, who=SYSTEM).picks) == {ids[1], ids[2]}
    assert set(assign_backlog(app, NOW, dry_run=True, order=["budget desc"], who=SYSTEM).picks) == {ids[0], ids[2]}
    with pytest.raises(InvalidInput, match="not a batch order"):
        assign_backlog(app, NOW, order=["mood desc"], who=SYSTEM)


# --- the property ---------------------------------------------------------------------------------------------------

PRODUCTS = ("credit", "lease")
REGIONS = ("UA", "PL")


@st.composite
def teams_and_backlogs(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[dict[str, Any]], Rules, str]:
    n = draw(st.integers(1, 6))
    people = [
        {
            "key": f"m{i}",
            "capacity": draw(st.integers(0, 3)),
            "products": draw(st.lists(st.sampled_from(PRODUCTS), unique=True)),
            "regions": draw(st.lists(st.sampled_from(REGIONS), min_size=1, unique=True)),
            "absent": draw(st.booleans()),
        }
        for i in range(n)
    ]
    keys = [p["key"] for p in people]
    # The pools of the two rules: large budgets first, then any lead (an empty pool: the whole team).
    pools = (draw(st.lists(st.sampled_from(keys), unique=True)), draw(st.lists(st.sampled_from(keys), unique=True)))
    clients = draw(st.integers(1, 4))
    backlog = [
        {
            "product": draw(st.sampled_from(PRODUCTS)),
            "region": draw(st.sampled_from(REGIONS)),
            "budget": Decimal(draw(st.sampled_from([10, 500, 1000, 5000]))),
            "client": draw(st.integers(0, clients + 6)),  # above `clients`: a client with one lead
        }
        for _ in range(draw(st.integers(0, 14)))
    ]
    strategy = draw(st.sampled_from(["round_robin", "weighted_round_robin", "least_loaded", "by_rating"]))
    return people, backlog, pools, strategy


Rules = tuple[list[str], list[str]]


def rules_text(people: list[dict[str, Any]], pools: Rules, strategy: str) -> str:
    lines = [
        f"  - {{key: {p['key']}, name: {p['key'].upper()}, team: sales, capacity: {p['capacity']}, "
        f"products: [{', '.join(p['products'])}], regions: [{', '.join(p['regions'])}], absent: {str(p['absent']).lower()}, "
        f"weight: {1 + i % 3}}}"
        for i, p in enumerate(people)
    ]
    big, small = pools
    large = (
        f"    - {{key: large, team: sales, managers: [{', '.join(big)}], when: {{budget: {{gte: 1000}}}}, "
        f"strategy: {strategy}, require: [product, region]}}\n"
        if big
        else ""
    )
    pool = f"managers: [{', '.join(small)}], " if small else ""
    return f"""
default_timezone: Europe/Kyiv
teams:
  - {{key: sales, name: Sales, hours: always}}
managers:
{chr(10).join(lines)}
routing:
  rules:
{large}    - {{key: all, team: sales, {pool}strategy: {strategy}, require: [product, region]}}
sla:
  default: {{first_contact: 15m, count: wall_clock}}
"""


def may_take(people: list[dict[str, Any]], pools: Rules, lead: dict[str, Any]) -> set[str]:
    """Who may take the lead, from the team description alone: the able in the pool of every rule it matches (routing
    passes a lead on to the next matching rule when the first one's managers are full)."""
    able = {
        p["key"]
        for p in people
        if not p["absent"] and p["capacity"] > 0 and lead["product"] in p["products"] and lead["region"] in p["regions"]
    }
    big, small = pools
    reach = set(small or [p["key"] for p in people])
    if big and lead["budget"] >= 1000:
        reach |= set(big)
    return able & reach


def most_placeable(people: list[dict[str, Any]], pools: Rules, backlog: list[dict[str, Any]]) -> int:
    graph = nx.DiGraph()
    for i, lead in enumerate(backlog):
        graph.add_edge("source", ("lead", i), capacity=1)
        for key in may_take(people, pools, lead):
            graph.add_edge(("lead", i), ("manager", key), capacity=1)
    for p in people:
        graph.add_edge(("manager", p["key"]), "sink", capacity=p["capacity"])
    graph.add_node("source")
    graph.add_node("sink")
    return int(nx.maximum_flow_value(graph, "source", "sink"))


def clear(engine: Engine) -> None:
    with engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            if table.name != "alembic_version":
                conn.execute(table.delete())


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=teams_and_backlogs())
def test_the_batch_places_as_many_leads_as_a_maximum_flow(
    make_app: Callable[[str], Leadflow], engine: Engine, case: tuple[Any, ...]
) -> None:
    people, backlog, pools, strategy = case
    clear(engine)
    app = make_app(rules_text(people, pools, strategy))
    # A client's leads share a phone; one client in three shares an e-mail instead.
    specs = [{**lead, "phone": None if lead["client"] % 3 == 0 else f"+38050000{lead['client']:04d}",
              "email": f"c{lead['client']}@example.test" if lead["client"] % 3 == 0 else None}
             for lead in backlog]  # fmt: skip
    ids = add_leads(engine, specs)
    report = assign_backlog(app, NOW, chunk=5, who=SYSTEM)
    got = owners(engine)
    placed = {i: got[i] for i in ids if got[i] is not None}
    assert report.assigned == len(placed)
    for p in people:
        assert sum(1 for k in placed.values() if k == p["key"]) <= p["capacity"]
    for i, lead in zip(ids, backlog, strict=True):
        if i in placed:
            assert placed[i] in may_take(people, pools, lead)
    by_client: dict[int, set[str]] = {}
    for i, lead in zip(ids, backlog, strict=True):
        if i in placed:
            by_client.setdefault(lead["client"], set()).add(placed[i])
    assert all(len(keys) == 1 for keys in by_client.values())
    if len({lead["client"] for lead in backlog}) == len(backlog):  # every lead its own client: nothing ties them
        assert len(placed) == most_placeable(people, pools, backlog)
