"""Qualification, explain, dry-run and the out-of-hours queue over real HTTP, on both databases."""

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select

from leadflow.core.lead import LeadIn
from leadflow.core.policy import SYSTEM
from leadflow.services.context import Leadflow
from leadflow.services.intake import take_lead
from leadflow.services.leads import get_lead
from leadflow.services.sla import escalate_due
from leadflow.store.tables import events, metadata
from tests.support import ACCOUNT_TABLES, admin_headers, live_server

RULES = """
default_timezone: Europe/Kyiv
teams:
  - {key: vip, name: VIP desk, hours: always}
  - {key: sales, name: Sales, hours: always}
  - {key: night-off, name: Office only, hours: {mon-fri: "09:00-18:00"}}
  - {key: raw, name: No scores please, hours: always, scoring: false}
managers:
  - {key: vera, name: Vera, team: vip, capacity: 100}
  - {key: olha, name: Olha, team: sales, capacity: 100, weight: 2}
  - {key: petro, name: Petro, team: sales, capacity: 100}
  - {key: oksana, name: Oksana, team: night-off, capacity: 100}
  - {key: roman, name: Roman, team: raw, capacity: 100}
routing:
  rules:
    - {key: red-hot, team: vip, priority: 30, when: {temperature: red_hot}}
    - {key: office, team: night-off, priority: 20, when: {product: office}, out_of_hours: queue}
    - {key: unscored, team: raw, priority: 10, when: {product: raw}}
    - {key: everyone, team: sales, strategy: weighted_round_robin}
scoring:
  criteria:
    - key: budget
      points: [{when: {budget: {gte: 100000}}, points: 5}, {when: {budget: {gte: 10000}}, points: 3}]
      default: 1
    - key: readiness
      points: [{when: {message: {contains: [price, ціна]}}, points: 5, why: asks for a price}]
      default: 1
    - key: channel
      points: [{when: {source: referral}, points: 5}]
      default: 2
  temperatures:
    - {temperature: red_hot, min_score: 14, window: 2h, department: vip}
    - {temperature: hot, min_score: 10, window: 3d, department: sales}
    - {temperature: warm, min_score: 6, window: 7d, department: sales}
    - {temperature: cold, min_score: 0, window: 30d, department: marketing}
sla:
  default: {first_contact: 10m, count: wall_clock}
  overrides:
    - {temperature: red_hot, first_contact: 5m}
"""


@pytest.fixture
def lf(make_app: Callable[[str], Leadflow]) -> Leadflow:
    return make_app(RULES)


@pytest.fixture
def api(lf: Leadflow) -> Iterator[httpx.Client]:
    with live_server(lf) as url, httpx.Client(base_url=url, timeout=30, headers=admin_headers(lf)) as client:
        yield client


def test_a_red_hot_lead_is_scored_routed_to_vip_with_a_shorter_deadline(api: httpx.Client) -> None:
    body = {"name": "Big client", "phone": "0671234567", "budget": 250000, "message": "What is the price?",
            "source": "referral"}  # fmt: skip
    lead = api.post("/api/v1/leads", json=body).json()
    assert lead["manager"]["key"] == "vera"
    assert lead["reason"] == "rule 'red-hot' matched temperature=red_hot; round robin among 1 eligible"
    detail = api.get(f"/api/v1/leads/{lead['id']}").json()
    assert (detail["score"], detail["temperature"], detail["department"]) == (15, "red_hot", "vip")
    assert [c["points"] for c in detail["score_detail"]] == [5, 5, 5]
    created = datetime.fromisoformat(detail["created_at"])
    assert datetime.fromisoformat(detail["processing_due_at"]) == created + timedelta(hours=2)
    assert datetime.fromisoformat(detail["sla"]["due_at"]) == created + timedelta(minutes=5)
    scored = next(e for e in detail["events"] if e["type"] == "lead.scored")
    assert scored["data"]["reason"].startswith("15 points (budget 5, readiness 5, channel 5); red_hot by score 15")


def test_routing_explains_rules_candidates_and_rank_inputs(api: httpx.Client) -> None:
    ids = [api.post("/api/v1/leads", json={"phone": f"06712345{i:02d}"}).json()["id"] for i in range(3)]
    explained = api.get(f"/api/v1/leads/{ids[0]}/routing").json()
    assert explained["qualification"]["temperature"] == "cold"
    (decision,) = explained["decisions"]
    assert decision["picked"] == "olha" and decision["strategy"] == "weighted_round_robin"
    assert [(r["key"], r["matched"]) for r in decision["rules"]] == [
        ("red-hot", False), ("office", False), ("unscored", False), ("everyone", True)]  # fmt: skip
    assert decision["rules"][3]["outcome"] == "picked Olha"
    assert {c["key"]: c["inputs"]["weight"] for c in decision["candidates"]} == {"olha": 2.0, "petro": 1.0}
    picks = [api.get(f"/api/v1/leads/{i}/routing").json()["decisions"][0]["picked"] for i in ids]
    assert picks == ["olha", "petro", "olha"]  # weights 2:1, interleaved
    assert api.get("/api/v1/leads/999/routing").status_code == 404


def test_dry_run_decides_and_stores_nothing(api: httpx.Client, lf: Leadflow) -> None:
    r = api.post("/api/v1/leads/dry-run", json={"phone": "0671234567", "budget": 500000, "message": "ціна?",
                                                "source": "referral"})  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json()["picked"] == "vera" and r.json()["qualification"]["temperature"] == "red_hot"
    with lf.engine.connect() as conn:
        assert all(
            conn.execute(select(func.count()).select_from(t)).scalar_one() == 0
            for t in metadata.sorted_tables
            if t.name not in ("teams", "managers", *ACCOUNT_TABLES, "events")
        )
        assert conn.execute(select(func.count()).where(events.c.lead_id.is_not(None))).scalar_one() == 0
    assert api.post("/api/v1/leads/dry-run", json={"phone": "12"}).status_code == 422


def test_a_team_that_works_without_scores_gets_none(api: httpx.Client) -> None:
    lead = api.post("/api/v1/leads", json={"phone": "0671234567", "product": "raw", "budget": 500000}).json()
    detail = api.get(f"/api/v1/leads/{lead['id']}").json()
    assert detail["manager"]["key"] == "roman"
    assert detail["score"] is None and detail["temperature"] is None


def test_out_of_hours_lead_waits_for_opening_then_is_routed(lf: Leadflow) -> None:
    saturday = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    lead = take_lead(lf, LeadIn(phone="0671234567", product="office"), saturday)
    assert (
        lead.manager_key is None
        and "everyone off shift: waits for the opening at 2026-11-30T07:00:00+00:00" in lead.reason
    )
    assert escalate_due(lf, datetime(2026, 11, 30, 6, 59, tzinfo=UTC)) == 0
    assert escalate_due(lf, datetime(2026, 11, 30, 7, 0, tzinfo=UTC)) == 1
    detail = get_lead(lf, lead.lead_id, who=SYSTEM)
    assert detail["manager_key"] == "oksana" and detail["status"] == "assigned"
    assert [a["kind"] for a in detail["assignments"]] == ["initial", "opening"]
    assert detail["sla_due_at"] == datetime(2026, 11, 30, 7, 10, tzinfo=UTC)
