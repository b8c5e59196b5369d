"""The quality desk, lead conversion and manual reassignment over real HTTP on loopback, on SQLite and PostgreSQL."""

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from leadflow.core.lead import LeadIn
from leadflow.services.context import Leadflow
from leadflow.services.intake import take_lead
from leadflow.services.sla import escalate_due
from leadflow.store.tables import assignments, companies, contacts, deals, managers, metadata, timers
from tests.support import admin_headers, live_server

RULES = """
default_timezone: Europe/Kyiv
teams:
  - {key: sales, name: Sales, head: halyna, desk: true, desk_sla: 15m, hours: always}
  - {key: service, name: Service, hours: always}
managers:
  - {key: olena, name: Olena, team: sales, capacity: 10}
  - {key: taras, name: Taras, team: sales, capacity: 10}
  - {key: halyna, name: Halyna, team: sales, capacity: 10}
  - {key: petro, name: Petro, team: sales, capacity: 0}
  - {key: dana, name: Dana, team: sales, role: desk}
  - {key: sam, name: Sam, team: service, capacity: 10}
routing:
  rules:
    - {key: service, team: service, priority: 10, when: {product: service}}
    - {key: sales, team: sales, managers: [olena, taras], strategy: round_robin}
sla:
  default: {first_contact: 10m, count: wall_clock}
dedupe: {fold_window: off}  # the desk sees each request of a client as a lead of its own here
scoring:
  criteria:
    - key: budget
      points: [{when: {budget: {gte: 100000}}, points: 5}]
      default: 1
  temperatures:
    - {temperature: hot, min_score: 5, window: 3d, department: sales}
    - {temperature: cold, min_score: 0, window: 30d, department: marketing}
"""


@pytest.fixture
def lf(make_app: Callable[[str], Leadflow]) -> Leadflow:
    return make_app(RULES)


@pytest.fixture
def api(lf: Leadflow) -> Iterator[httpx.Client]:
    with live_server(lf) as url, httpx.Client(base_url=url, timeout=30, headers=admin_headers(lf)) as client:
        yield client


def rows(lf: Leadflow) -> dict[str, int]:
    with lf.engine.connect() as conn:
        return {t.name: conn.execute(select(func.count()).select_from(t)).scalar_one() for t in metadata.sorted_tables}


def load(lf: Leadflow, key: str) -> tuple[int, int]:
    """A manager's (open leads, open deals)."""
    with lf.engine.connect() as conn:
        row = conn.execute(select(managers.c.open_leads, managers.c.open_deals).where(managers.c.key == key)).one()
        return row.open_leads, row.open_deals


def manager_id(lf: Leadflow, key: str) -> int:
    with lf.engine.connect() as conn:
        return int(conn.execute(select(managers.c.id).where(managers.c.key == key)).scalar_one())


def at_desk(api: httpx.Client, **lead: Any) -> int:
    r = api.post("/api/v1/leads", json={"name": "Ivan", "phone": "0671234567"} | lead)
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["status"], body["manager"]) == ("new", None)
    assert body["reason"] == "waiting for the quality desk of team 'sales'"
    return int(body["id"])


def detail(api: httpx.Client, lead_id: int) -> dict[str, Any]:
    r = api.get(f"/api/v1/leads/{lead_id}")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def event(body: dict[str, Any], type_: str) -> dict[str, Any]:
    """The latest event of this type (intake may have written one before the desk did)."""
    return [e for e in body["events"] if e["type"] == type_][-1]


def seconds_left(body: dict[str, Any]) -> float:
    return float(body["sla"]["seconds_left"])


def test_new_leads_wait_at_the_desk_oldest_first_with_hints(api: httpx.Client, lf: Leadflow) -> None:
    taras = manager_id(lf, "taras")
    with lf.engine.begin() as conn:
        conn.execute(contacts.insert().values(name="Iryna", email="iryna@acme.ua", owner_id=taras,
                                              created_at=datetime.now(UTC)))  # fmt: skip
    first = at_desk(api, budget=250000)
    second = at_desk(api, name="Iryna", phone=None, email="Iryna@ACME.ua")
    page = api.get("/api/v1/desk").json()
    assert [i["id"] for i in page["items"]] == [first, second] and page["total"] == 2
    hot, dup = page["items"]
    assert (hot["team"], hot["score"], hot["temperature"], hot["overdue"]) == ("sales", 5, "hot", False)
    assert 0 <= hot["waiting_seconds"] < 60
    created = datetime.fromisoformat(hot["created_at"])
    assert datetime.fromisoformat(hot["due_at"]) == created + timedelta(minutes=15)
    assert hot["duplicate"] is None and hot["matches"] == []  # the lead itself is not its own duplicate
    assert dup["duplicate"]["owner"] == {"key": "taras", "name": "Taras"}
    assert dup["duplicate"]["reason"] == "duplicate of existing contact #1 by email iryna@acme.ua, owned by Taras"
    lead = detail(api, first)
    assert (lead["queue"], lead["manager"], lead["status"]) == ("desk", None, "new")
    assert [e["type"] for e in lead["events"]] == ["lead.received", "lead.scored", "lead.queued"]
    assert load(lf, "olena") == load(lf, "taras") == (0, 0)
    assert api.get("/api/v1/desk", params={"limit": 1, "offset": 1}).json()["items"][0]["id"] == second


def acted_for(event: dict[str, Any]) -> str:
    """The person an integration's key acted for: its events read "key:NAME for PERSON"."""
    actor: str = event["actor"]
    assert actor.startswith("key:"), actor
    return actor.rsplit(" for ", 1)[-1]


def test_junk_at_the_desk_is_kept_and_restorable(api: httpx.Client, lf: Leadflow) -> None:
    lead_id = at_desk(api)
    r = api.post(f"/api/v1/desk/{lead_id}/junk", json={"reason": "mail from our own address", "actor": "dana"})
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["queue"], r.json()["manager"]) == ("junk", None, None)
    body = detail(api, lead_id)
    assert body["junk_reason"] == "mail from our own address"
    junked = event(body, "lead.junked")
    assert (acted_for(junked), junked["data"]["by"]) == ("dana", "desk")
    left = event(body, "lead.left_desk")
    assert (acted_for(left), left["data"]["action"], left["data"]["within_sla"]) == ("dana", "junk", True)
    assert api.get("/api/v1/desk").json()["total"] == 0
    assert rows(lf)["timers"] == 0  # the desk deadline went with it
    restored = api.post(f"/api/v1/leads/{lead_id}/restore")
    assert restored.status_code == 200, restored.text
    # Restored as if it had just arrived: the team takes new leads through its desk, so it goes back there.
    assert restored.json() == {"id": lead_id, "status": "new", "queue": "desk",
                               "reason": "team 'sales' takes new leads through the quality desk"}  # fmt: skip
    body = detail(api, lead_id)
    assert (body["status"], body["queue"], body["manager"]) == ("new", "desk", None)
    assert [e["type"] for e in body["events"]][-2:] == ["lead.restored", "lead.queued"]
    assert api.get("/api/v1/desk").json()["items"][0]["id"] == lead_id
    with lf.engine.connect() as conn:
        assert conn.execute(select(timers.c.kind, timers.c.lead_id)).all() == [("desk", lead_id)]


def test_low_value_lead_becomes_contact_and_company_kept_for_later(api: httpx.Client, lf: Leadflow) -> None:
    lead_id = at_desk(api, company="ТОВ «Ромашка»")
    before = rows(lf)
    body = {"contact": {"email": "Ivan@Romashka.ua"}, "note": "small order, call in spring", "actor": "dana"}
    r = api.post(f"/api/v1/desk/{lead_id}/contact", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["status"], out["queue"], out["manager"]) == ("converted", None, None)
    assert out["contact"]["created"] and out["company"]["created"] and out["deal"] is None
    assert out["reason"] == "kept for later as a contact and company; note: small order, call in spring"
    after = rows(lf)
    assert (after["contacts"], after["companies"], after["deals"]) == (1, 1, 0)
    assert after["assignments"] == before["assignments"] == 0
    with lf.engine.connect() as conn:
        person = conn.execute(select(contacts)).mappings().one()
        firm = conn.execute(select(companies)).mappings().one()
    assert (person["phone"], person["email"], person["company_id"], person["owner_id"]) == (
        "+380671234567", "ivan@romashka.ua", firm["id"], None,
    )  # fmt: skip
    assert (firm["name"], firm["name_key"], firm["owner_id"]) == ("ТОВ «Ромашка»", "ромашка", None)
    lead = detail(api, lead_id)
    assert (lead["contact_id"], lead["company_id"]) == (person["id"], firm["id"])
    converted = event(lead, "lead.converted")
    assert acted_for(converted) == "dana"
    assert converted["data"]["contact"] == {"id": person["id"], "created": True}
    assert load(lf, "olena") == load(lf, "taras") == (0, 0)


@pytest.mark.parametrize(
    ("hand_to", "owner", "kind", "reason"),
    [
        ("head", "halyna", "manual",
         "handed over by the quality desk to Halyna, head of team 'sales': big fleet, call today"),
        ("auto", "olena", "desk", "handed over by the quality desk: big fleet, call today; rule 'sales' matched any "
         "lead; round robin among 2 eligible"),
        ("taras", "taras", "manual", "handed over by the quality desk to Taras: big fleet, call today"),
    ],
)  # fmt: skip
def test_hot_lead_becomes_a_deal_and_is_handed_on(
    api: httpx.Client, lf: Leadflow, hand_to: str, owner: str, kind: str, reason: str
) -> None:
    lead_id = at_desk(api, budget=250000, company="Acme Logistics")
    body = {
        "deal": {"title": "Fleet leasing, 12 trucks"},
        "contact": {"name": "Ivan Petrenko", "email": "ivan@acme.ua"},
        "hand_to": hand_to,
        "note": "big fleet, call today",
        "actor": "dana",
    }
    r = api.post(f"/api/v1/desk/{lead_id}/deal", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["status"], out["queue"], out["manager"]["key"]) == ("assigned", None, owner)
    assert out["reason"] == reason
    assert out["contact"]["created"] and out["company"]["created"]
    assert (out["deal"]["title"], out["deal"]["amount"], out["deal"]["stage"]) == (
        "Fleet leasing, 12 trucks", "250000.00", "new",
    )  # fmt: skip
    with lf.engine.connect() as conn:
        deal = conn.execute(select(deals)).mappings().one()
        person = conn.execute(select(contacts)).mappings().one()
        firm = conn.execute(select(companies)).mappings().one()
        last = conn.execute(select(assignments).order_by(assignments.c.id.desc())).mappings().first()
    mid = manager_id(lf, owner)
    assert (deal["lead_id"], deal["manager_id"], deal["contact_id"], deal["company_id"]) == (
        lead_id, mid, person["id"], firm["id"],
    )  # fmt: skip
    assert person["owner_id"] == firm["owner_id"] == mid
    assert last is not None and (last["kind"], last["manager_id"], last["reason"]) == (kind, mid, reason)
    assert load(lf, owner) == (1, 1)
    lead = detail(api, lead_id)
    assert lead["sla"]["state"] == "running" and 590 < seconds_left(lead) <= 600  # the new owner's clock
    types = [e["type"] for e in lead["events"]]
    assert types[-3:] == ["lead.converted", "lead.assigned", "lead.left_desk"]
    left = event(lead, "lead.left_desk")["data"]
    assert (left["action"], left["hand_to"], left["manager"]) == ("deal", hand_to, owner)
    with lf.engine.connect() as conn:
        kinds = [t.kind for t in conn.execute(select(timers.c.kind).where(timers.c.lead_id == lead_id))]
    assert kinds == ["first_contact"]  # the desk deadline is gone, the owner's is running
    contact = api.post(f"/api/v1/leads/{lead_id}/contact", json={"manager": owner, "kind": "call"})
    assert contact.status_code == 200 and contact.json()["first_contact"] is True


def test_a_lead_of_an_owned_contact_goes_to_its_owner_with_a_note(api: httpx.Client, lf: Leadflow) -> None:
    taras = manager_id(lf, "taras")
    with lf.engine.begin() as conn:
        firm = conn.execute(companies.insert().returning(companies.c.id), {
            "name": "Acme Logistics", "name_key": "acme logistics", "block_key": "acm", "owner_id": taras,
            "created_at": datetime.now(UTC)}).scalar_one()  # fmt: skip
        conn.execute(contacts.insert().values(name="Ivan", email="ivan@acme.ua", company_id=firm, owner_id=taras,
                                              created_at=datetime.now(UTC)))  # fmt: skip
    by_hand = at_desk(api, email="ivan@acme.ua", phone=None)
    r = api.post(f"/api/v1/desk/{by_hand}/to-owner", json={"note": "asks about a second truck", "actor": "dana"})
    assert r.status_code == 200, r.text
    expected = ("duplicate found at the desk: duplicate of existing contact #1 by email ivan@acme.ua, owned by Taras; "
                "please attach it to company 'Acme Logistics' #1 / contact Ivan #1; note: asks about a second truck; "
                "sent to the owner Taras (sticky: available)")  # fmt: skip
    assert (r.json()["manager"]["key"], r.json()["reason"], r.json()["status"]) == ("taras", expected, "assigned")
    lead = detail(api, by_hand)
    assert (lead["contact_id"], lead["company_id"]) == (1, 1)
    dup = event(lead, "lead.duplicate")
    assert acted_for(dup) == "dana" and dup["data"]["reason"] == expected
    assert lead["sla"]["state"] == "running"

    # Converting at the desk finds the owner by itself, whatever hand_to says; the contact is linked, not made again.
    converted = at_desk(api, email="ivan@acme.ua", phone="0501234567", budget=90000)
    r = api.post(f"/api/v1/desk/{converted}/deal", json={"hand_to": "auto", "actor": "dana"})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["manager"]["key"] == "taras" and out["reason"].startswith("duplicate found at the desk: duplicate of ")
    assert (out["contact"], out["company"]) == ({"id": 1, "created": False}, {"id": 1, "created": False})
    assert acted_for(event(detail(api, converted), "lead.duplicate")) == "dana"
    assert (rows(lf)["contacts"], rows(lf)["companies"]) == (1, 1)
    with lf.engine.connect() as conn:
        person = conn.execute(select(contacts)).mappings().one()
        deal = conn.execute(select(deals)).mappings().one()
    assert person["phone"] == "+380501234567"  # a blank filled, nothing overwritten
    assert (deal["manager_id"], deal["amount"]) == (taras, 90000)
    assert load(lf, "taras") == (2, 1)

    kept = at_desk(api, email="ivan@acme.ua", phone=None)
    r = api.post(f"/api/v1/desk/{kept}/contact", json={"actor": "dana"})
    assert (r.json()["status"], r.json()["manager"]["key"]) == ("assigned", "taras")  # not closed: the owner works it
    assert r.json()["contact"] == {"id": 1, "created": False}


def test_an_owner_on_vacation_gets_no_desk_lead_unless_the_team_always_sticks(
    make_app: Callable[[str], Leadflow],
) -> None:
    vacation = "{key: taras, name: Taras, team: sales, capacity: 10, vacations: [{from: 2026-01-01, to: 2099-12-31}]}"
    for sticky, expected in (("available", "olena"), ("always", "taras")):
        rules = RULES.replace("{key: taras, name: Taras, team: sales, capacity: 10}", vacation).replace(
            "desk_sla: 15m,", f"desk_sla: 15m, sticky: {sticky},"
        )
        lf = make_app(rules)
        with live_server(lf) as url, httpx.Client(base_url=url, timeout=30, headers=admin_headers(lf)) as api:
            taras = manager_id(lf, "taras")
            with lf.engine.begin() as conn:
                conn.execute(contacts.insert().values(name="Ivan", email="ivan@acme.ua", owner_id=taras,
                                                      created_at=datetime.now(UTC)))  # fmt: skip
            converted = at_desk(api, email="ivan@acme.ua", phone=None, budget=90000)
            r = api.post(f"/api/v1/desk/{converted}/deal", json={"hand_to": "auto", "actor": "dana"})
            assert r.status_code == 200, r.text
            assert r.json()["manager"]["key"] == expected, r.json()["reason"]
            if sticky == "available":
                assert (
                    "owned by Taras, who cannot take it now: owner Taras is on vacation until 2099-12-31"
                    in (r.json()["reason"])
                )
                asked = at_desk(api, email="ivan@acme.ua", phone=None)
                r = api.post(f"/api/v1/desk/{asked}/to-owner", json={"actor": "dana"})
                assert r.status_code == 409 and "on vacation until 2099-12-31" in r.json()["message"]


def test_a_second_lead_of_the_same_client_links_contact_and_company(api: httpx.Client, lf: Leadflow) -> None:
    first = at_desk(api, company="ТОВ «Ромашка-Плюс»", email="ivan@romashka.ua")
    assert api.post(f"/api/v1/desk/{first}/contact", json={"actor": "dana"}).status_code == 200
    second = at_desk(api, phone="+380 (67) 123-45-67", company="Ромашка-Плюс LLC")
    r = api.post(f"/api/v1/desk/{second}/deal", json={"hand_to": "auto", "actor": "dana"})
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["contact"], out["company"]) == ({"id": 1, "created": False}, {"id": 1, "created": False})
    assert out["deal"]["title"] == "ТОВ «Ромашка-Плюс»"  # the company as it is kept
    assert (rows(lf)["contacts"], rows(lf)["companies"], rows(lf)["deals"]) == (1, 1, 1)
    with lf.engine.connect() as conn:
        person = conn.execute(select(contacts)).mappings().one()
        firm = conn.execute(select(companies)).mappings().one()
    owner = manager_id(lf, out["manager"]["key"])
    assert person["owner_id"] == firm["owner_id"] == owner  # unowned until someone took the deal
    assert detail(api, second)["contact_id"] == detail(api, first)["contact_id"] == 1


def test_the_desk_has_its_own_deadline(api: httpx.Client, lf: Leadflow) -> None:
    now = datetime.now(UTC)
    late = take_lead(lf, LeadIn(name="Waited", phone="0671234567"), now - timedelta(minutes=20))
    fresh = take_lead(lf, LeadIn(name="Just came", phone="0501234567"), now - timedelta(minutes=1))
    handled = take_lead(lf, LeadIn(name="Handled", phone="0931234567"), now - timedelta(minutes=2))
    r = api.post(f"/api/v1/desk/{handled.lead_id}/junk", json={"reason": "offer unrelated to us", "actor": "dana"})
    assert r.status_code == 200
    assert escalate_due(lf, now) == 1
    overdue = event(detail(api, late.lead_id), "lead.desk_overdue")
    assert overdue["actor"] == "sla" and overdue["data"]["reason"].startswith("waiting at the quality desk for 20m")
    assert "lead.desk_overdue" not in [e["type"] for e in detail(api, fresh.lead_id)["events"]]
    queue = {i["id"]: i for i in api.get("/api/v1/desk").json()["items"]}
    assert queue[late.lead_id]["overdue"] is True and queue[fresh.lead_id]["overdue"] is False
    assert escalate_due(lf, now + timedelta(hours=1)) == 1  # only the fresh one: the handled one's deadline is gone
    r = api.post(f"/api/v1/desk/{late.lead_id}/deal", json={"hand_to": "olena", "actor": "dana"})
    assert r.status_code == 200, r.text
    left = event(detail(api, late.lead_id), "lead.left_desk")["data"]
    assert left["within_sla"] is False and left["waited_seconds"] >= 1200


BAD: list[tuple[str, str, dict[str, Any], int, str]] = [
    ("junk without a reason", "junk", {"actor": "dana"}, 422, "reason"),
    ("junk with a blank reason", "junk", {"reason": "   ", "actor": "dana"}, 422, "reason"),
    ("unknown hand_to", "deal", {"hand_to": "ghost", "actor": "dana"}, 422, "hand_to"),
    ("hand_to a desk operator", "deal", {"hand_to": "dana", "actor": "dana"}, 422, "hand_to"),
    ("hand_to not a key", "deal", {"hand_to": "Olena K.", "actor": "dana"}, 422, "hand_to"),
    ("bad contact e-mail", "deal", {"hand_to": "auto", "contact": {"email": "x@@y"}, "actor": "dana"}, 422,
     "contact.email"),
    ("bad contact phone", "contact", {"contact": {"phone": "12"}, "actor": "dana"}, 422, "contact.phone"),
    ("negative amount", "deal", {"hand_to": "auto", "deal": {"amount": -1}, "actor": "dana"}, 422, "deal.amount"),
    ("a company that is only a legal form", "contact", {"company": {"name": "LLC"}, "actor": "dana"}, 422,
     "company.name"),
    ("unknown field", "to-owner", {"actor": "dana", "note": "x", "urgent": True}, 422, "urgent"),
    ("no owner to go to", "to-owner", {"actor": "dana"}, 409, ""),
]  # fmt: skip


@pytest.mark.parametrize(("case", "action", "body", "status", "field"), BAD, ids=[c[0] for c in BAD])
def test_bad_desk_input_is_refused_and_writes_nothing(
    api: httpx.Client, lf: Leadflow, case: str, action: str, body: dict[str, Any], status: int, field: str
) -> None:
    lead_id = at_desk(api)
    before = rows(lf)
    r = api.post(f"/api/v1/desk/{lead_id}/{action}", json=body)
    assert r.status_code == status, r.text
    assert r.json()["message"]
    if field:
        assert field in [p["field"] for p in r.json()["problems"]], r.json()
    assert rows(lf) == before
    lead = detail(api, lead_id)
    assert (lead["queue"], lead["status"], lead["manager"]) == ("desk", "new", None)


def test_desk_actions_need_a_lead_at_the_desk(api: httpx.Client, lf: Leadflow) -> None:
    routed = api.post("/api/v1/leads", json={"phone": "0671234567", "product": "service"}).json()
    assert routed["manager"]["key"] == "sam"
    before = rows(lf)
    for action, body in (("junk", {"reason": "spam", "actor": "dana"}), ("contact", {"actor": "dana"}),
                         ("deal", {"hand_to": "auto", "actor": "dana"}), ("to-owner", {"actor": "dana"})):  # fmt: skip
        r = api.post(f"/api/v1/desk/{routed['id']}/{action}", json=body)
        assert r.status_code == 409, r.text
        assert r.json()["message"] == (
            f"lead {routed['id']} is not in the quality desk queue (it is 'assigned', with Sam): desk actions need "
            "a lead waiting at the desk"
        )
    assert api.post("/api/v1/desk/999/junk", json={"reason": "spam", "actor": "dana"}).status_code == 404
    assert rows(lf) == before


def test_auto_with_no_free_manager_keeps_the_lead_at_the_desk(api: httpx.Client, lf: Leadflow) -> None:
    lead_id = at_desk(api, budget=250000)
    for key in ("olena", "taras"):
        assert api.patch(f"/api/v1/managers/{key}", json={"absent": True}).status_code == 200
    before = rows(lf)
    r = api.post(f"/api/v1/desk/{lead_id}/deal", json={"hand_to": "auto", "actor": "dana"})
    assert r.status_code == 409, r.text
    assert r.json()["message"].startswith(f"no manager can take lead {lead_id} now (unassigned: rule 'sales'")
    assert r.json()["message"].endswith("hand it to the head or to a manager by key")
    assert rows(lf) == before and detail(api, lead_id)["queue"] == "desk"
    r = api.post(f"/api/v1/desk/{lead_id}/deal", json={"hand_to": "head", "actor": "dana"})
    assert r.status_code == 200 and r.json()["manager"]["key"] == "halyna"


def test_a_manager_converts_their_own_lead(api: httpx.Client, lf: Leadflow) -> None:
    lead = api.post("/api/v1/leads", json={"phone": "0671234567", "product": "service", "company": "Acme",
                                           "budget": 5000}).json()  # fmt: skip
    assert load(lf, "sam") == (1, 0)
    r = api.post(f"/api/v1/leads/{lead['id']}/convert", json={"to": "deal", "actor": "sam"})
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["status"], out["to"], out["deal"]["amount"], out["deal"]["title"]) == ("converted", "deal", "5000.00",
                                                                                       "Acme")  # fmt: skip
    assert out["deal"]["manager"] == {"key": "sam", "name": "Sam"}
    assert load(lf, "sam") == (0, 1)
    body = detail(api, lead["id"])
    assert (body["status"], body["sla"]["state"]) == ("converted", "stopped")
    again = api.post(f"/api/v1/leads/{lead['id']}/convert", json={"to": "deal", "actor": "sam"})
    assert again.status_code == 409
    desk_lead = at_desk(api)
    r = api.post(f"/api/v1/leads/{desk_lead}/convert", json={"to": "contact", "actor": "sam"})
    assert r.status_code == 409 and "waiting at the quality desk" in r.json()["message"]
    r = api.post(f"/api/v1/leads/{lead['id']}/convert", json={"to": "account", "actor": "sam"})
    assert r.status_code == 422 and r.json()["problems"][0]["field"] == "to"


# --- manual reassignment -------------------------------------------------------------------------------------


def handed_to_olena(api: httpx.Client) -> int:
    lead_id = at_desk(api, budget=1000)
    r = api.post(f"/api/v1/desk/{lead_id}/deal", json={"hand_to": "olena", "actor": "dana"})
    assert r.status_code == 200, r.text
    return lead_id


def test_a_head_reassigns_to_a_manager_at_capacity_and_the_load_moves(api: httpx.Client, lf: Leadflow) -> None:
    lead_id = handed_to_olena(api)
    assert load(lf, "olena") == (1, 1) and load(lf, "petro") == (0, 0)
    body = {"manager": "petro", "reason": "Petro knows this client", "actor": "halyna"}
    r = api.post(f"/api/v1/leads/{lead_id}/assign", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["manager"]["key"] == "petro" and out["status"] == "assigned"
    assert out["reason"] == (
        "reassigned by hand from Olena to Petro: Petro knows this client (Petro at capacity 0/0; assigned anyway)"
    )
    assert load(lf, "olena") == (0, 0) and load(lf, "petro") == (1, 1)
    with lf.engine.connect() as conn:
        last = conn.execute(select(assignments).order_by(assignments.c.id.desc())).mappings().first()
        deal = conn.execute(select(deals)).mappings().one()
        clocks = conn.execute(select(timers.c.data).where(timers.c.lead_id == lead_id)).all()
    assert last is not None and (last["kind"], last["reason"]) == ("manual", out["reason"])
    assert deal["manager_id"] == manager_id(lf, "petro")
    assert [c.data["manager"] for c in clocks] == ["petro"]  # one clock, the new owner's
    lead = detail(api, lead_id)
    assert lead["sla"]["state"] == "running" and 590 < seconds_left(lead) <= 600
    moved = event(lead, "lead.reassigned")
    assert (acted_for(moved), moved["data"]["previous"], moved["data"]["manager"]) == ("halyna", "olena", "petro")
    # Olena rings the client before she hears of it: the call counts, as hers; the lead stays with Petro.
    old = api.post(f"/api/v1/leads/{lead_id}/contact", json={"manager": "olena", "kind": "call"})
    assert old.status_code == 200 and (old.json()["late"], old.json()["first_contact"]) == (True, True)
    assert detail(api, lead_id)["manager"]["key"] == "petro"
    new = api.post(f"/api/v1/leads/{lead_id}/contact", json={"manager": "petro", "kind": "call"})
    assert new.status_code == 200 and new.json()["first_contact"] is False


def test_a_contacted_lead_keeps_its_progress_when_reassigned(api: httpx.Client, lf: Leadflow) -> None:
    lead_id = handed_to_olena(api)
    assert api.post(f"/api/v1/leads/{lead_id}/contact", json={"manager": "olena"}).json()["first_contact"] is True
    r = api.post(f"/api/v1/leads/{lead_id}/assign", json={"manager": "taras", "reason": "Olena is on leave",
                                                         "actor": "halyna"})  # fmt: skip
    assert r.status_code == 200, r.text
    lead = detail(api, lead_id)
    assert (lead["status"], lead["manager"]["key"], lead["sla"]["state"]) == ("contacted", "taras", "met")
    assert rows(lf)["timers"] == 0
    assert load(lf, "olena") == (0, 0) and load(lf, "taras") == (1, 1)


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"manager": "taras", "actor": "halyna"}, 422, "reason"),
        ({"manager": "taras", "reason": " ", "actor": "halyna"}, 422, "reason"),
        ({"manager": "ghost", "reason": "x", "actor": "halyna"}, 422, "manager"),
        ({"manager": "dana", "reason": "x", "actor": "halyna"}, 422, "manager"),
        ({"manager": "olena", "reason": "x", "actor": "halyna"}, 409, ""),
    ],
)
def test_bad_reassignments_are_refused_and_write_nothing(
    api: httpx.Client, lf: Leadflow, body: dict[str, Any], status: int, field: str
) -> None:
    lead_id = handed_to_olena(api)
    before = rows(lf)
    r = api.post(f"/api/v1/leads/{lead_id}/assign", json=body)
    assert r.status_code == status, r.text
    if field:
        assert field in [p["field"] for p in r.json()["problems"]]
    else:
        assert r.json()["message"] == f"lead {lead_id} is already with Olena"
    assert rows(lf) == before and load(lf, "olena") == (1, 1)


def test_closed_leads_are_not_reassigned(api: httpx.Client) -> None:
    lead_id = at_desk(api)
    api.post(f"/api/v1/desk/{lead_id}/junk", json={"reason": "spam", "actor": "dana"})
    r = api.post(f"/api/v1/leads/{lead_id}/assign", json={"manager": "taras", "reason": "x", "actor": "halyna"})
    assert r.status_code == 409
    assert (
        r.json()["message"] == f"lead {lead_id} is 'junk', not open: only open leads are reassigned: restore it first"
    )
    assert (
        api.post("/api/v1/leads/999/assign", json={"manager": "taras", "reason": "x", "actor": "h"}).status_code == 404
    )
