"""First contact and the SLA over real HTTP: contact, the lead's SLA block, breaches, the outbox's dead letters."""

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select

from leadflow.core.lead import LeadIn
from leadflow.services.context import Leadflow
from leadflow.services.intake import take_lead
from leadflow.services.sla import escalate_due
from leadflow.store.tables import activities, outbox
from tests.support import SLA_TEAM, admin_headers, live_server


@pytest.fixture
def lf(make_app: Callable[[str], Leadflow]) -> Leadflow:
    return make_app(SLA_TEAM.replace("first_contact: 2s", "first_contact: 10m"))


@pytest.fixture
def api(lf: Leadflow) -> Iterator[httpx.Client]:
    with live_server(lf) as url, httpx.Client(base_url=url, timeout=30, headers=admin_headers(lf)) as client:
        yield client


def test_contact_stops_the_clock_and_the_lead_shows_its_sla(api: httpx.Client) -> None:
    lead = api.post("/api/v1/leads", json={"name": "Ivan", "phone": "0671234567"}).json()
    sla = api.get(f"/api/v1/leads/{lead['id']}").json()["sla"]
    assert sla["state"] == "running" and sla["hops"] == 0
    assert 590 < sla["seconds_left"] <= 600
    r = api.post(f"/api/v1/leads/{lead['id']}/contact", json={"manager": "anna", "kind": "call", "outcome": "busy"})
    assert r.status_code == 200 and r.json()["first_contact"] is False
    r = api.post(f"/api/v1/leads/{lead['id']}/contact", json={"manager": "anna", "kind": "message", "outcome": "sent"})
    assert r.json()["first_contact"] is True and r.json()["response_band"] == "≤20m"
    detail = api.get(f"/api/v1/leads/{lead['id']}").json()
    assert detail["status"] == "contacted"
    assert detail["sla"]["state"] == "met" and detail["sla"]["response_band"] == "≤20m"
    assert detail["sla"]["seconds_left"] is None


def test_a_call_carries_its_length_for_the_talk_minutes(api: httpx.Client, lf: Leadflow) -> None:
    lead = api.post("/api/v1/leads", json={"name": "Ivan", "phone": "0671234567"}).json()
    body = {"manager": "anna", "kind": "call", "outcome": "connected", "duration_seconds": 95}
    assert api.post(f"/api/v1/leads/{lead['id']}/contact", json=body).status_code == 200
    too_long = api.post(f"/api/v1/leads/{lead['id']}/contact", json=body | {"duration_seconds": 86401})
    assert too_long.status_code == 422 and too_long.json()["problems"][0]["field"] == "duration_seconds"
    with lf.engine.connect() as conn:
        assert conn.execute(select(activities.c.duration_seconds)).scalars().all() == [95]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"manager": "bohdan", "kind": "call", "outcome": "connected"}, 409, None),
        ({"manager": "anna", "kind": "fax", "outcome": "sent"}, 422, "kind"),
        ({"manager": "anna", "kind": "call", "outcome": "sent"}, 422, "outcome"),
        ({"manager": "nobody", "kind": "call", "outcome": "connected"}, 422, "manager"),
        ({"kind": "call", "outcome": "connected"}, 422, "manager"),
    ],
)
def test_bad_contacts_get_a_clear_error_and_change_nothing(
    api: httpx.Client, body: dict[str, str], status: int, field: str | None
) -> None:
    lead = api.post("/api/v1/leads", json={"phone": "0671234567"}).json()
    r = api.post(f"/api/v1/leads/{lead['id']}/contact", json=body)
    assert r.status_code == status, r.text
    if field:
        assert field in [p["field"] for p in r.json()["problems"]]
    else:
        assert r.json()["message"] == f"Bohdan has never owned lead {lead['id']}: it is with Anna"
    detail = api.get(f"/api/v1/leads/{lead['id']}").json()
    assert detail["sla"]["state"] == "running" and detail["status"] == "assigned"
    assert [e["type"] for e in detail["events"]] == ["lead.received", "lead.assigned"]
    assert api.post("/api/v1/leads/999/contact", json={"manager": "anna"}).status_code == 404


def test_breaches_list_overdue_and_exhausted_leads(api: httpx.Client, lf: Leadflow) -> None:
    now = datetime.now(UTC)
    base = now - timedelta(hours=3)
    exhausted = take_lead(lf, LeadIn(name="Nobody took it", phone="0501234567"), base)
    for minutes in (10, 21, 32):  # three missed 10-minute deadlines: Anna, Bohdan, Chrystia, then the head
        assert escalate_due(lf, base + timedelta(minutes=minutes, seconds=30)) == 1
    overdue = take_lead(lf, LeadIn(name="Late", phone="0671234567"), now - timedelta(hours=2))  # no worker ran
    fresh = take_lead(lf, LeadIn(name="Fresh", phone="0931234567"), now)
    body = api.get("/api/v1/sla/breaches").json()
    assert {item["id"]: item["kind"] for item in body["items"]} == {
        exhausted.lead_id: "chain_exhausted",
        overdue.lead_id: "overdue",
    }
    assert fresh.lead_id not in {item["id"] for item in body["items"]}
    by_id = {item["id"]: item for item in body["items"]}
    assert by_id[exhausted.lead_id]["manager"] == "head" and by_id[exhausted.lead_id]["sla_hops"] == 3
    assert by_id[overdue.lead_id]["waiting_seconds"] >= 7190


def test_breaches_count_every_breach_and_page_through_them(api: httpx.Client, lf: Leadflow) -> None:
    now = datetime.now(UTC)
    base = now - timedelta(hours=3)
    ended = [take_lead(lf, LeadIn(name=f"Ended {i}", phone=f"05012345{i:02d}"), base).lead_id for i in range(3)]
    for minutes in (10, 21, 32):
        assert escalate_due(lf, base + timedelta(minutes=minutes, seconds=30)) == 3
    late = [take_lead(lf, LeadIn(name=f"Late {i}", phone=f"06712{i:05d}"), now - timedelta(minutes=200 - i)).lead_id
            for i in range(130)]  # fmt: skip
    r = api.post(f"/api/v1/leads/{ended[1]}/contact", json={"manager": "head"})  # the head calls after all
    assert r.status_code == 200, r.text
    first = api.get("/api/v1/sla/breaches", params={"limit": 50}).json()
    assert (first["total"], first["chain_exhausted"], first["overdue"]) == (132, 2, 130)
    assert [i["id"] for i in first["items"][:2]] == [ended[0], ended[2]]  # chain ended, oldest first
    assert [i["id"] for i in first["items"][2:]] == late[:48]  # then the longest past the deadline
    last = api.get("/api/v1/sla/breaches", params={"limit": 50, "offset": 100}).json()
    assert last["total"] == 132 and [i["id"] for i in last["items"]] == late[98:]
    owner = api.get(f"/api/v1/leads/{late[0]}").json()["manager"]["key"]
    r = api.post(f"/api/v1/leads/{late[0]}/contact", json={"manager": owner})
    assert r.status_code == 200, r.text
    assert api.get("/api/v1/sla/breaches", params={"limit": 1}).json()["total"] == 131


def test_dead_letters_are_visible_and_can_be_retried(api: httpx.Client, lf: Leadflow) -> None:
    now = datetime.now(UTC)
    with lf.engine.begin() as conn:
        conn.execute(outbox.insert().values(channel="telegram", recipient="42", body="hi", payload={}, status="dead",
                                            attempts=6, next_attempt_at=now, last_error="telegram answered 403",
                                            created_at=now))  # fmt: skip
    dead = api.get("/api/v1/outbox", params={"status": "dead"}).json()["items"]
    assert [(m["recipient"], m["last_error"]) for m in dead] == [("42", "telegram answered 403")]
    retried = api.post(f"/api/v1/outbox/{dead[0]['id']}/retry").json()
    assert retried["status"] == "pending" and retried["attempts"] == 0
    assert api.post(f"/api/v1/outbox/{dead[0]['id']}/retry").status_code == 409
    assert api.post("/api/v1/outbox/999/retry").status_code == 404
    assert api.get("/api/v1/outbox", params={"status": "lost"}).status_code == 422
