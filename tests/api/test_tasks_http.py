"""Tasks over real HTTP: set on a lead, listed per person, marked done, cancelled, handed over; each refusal in the
one error shape."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest

from leadflow.services.context import Leadflow
from tests.support import bearer, error_body, live_server, new_key, person

RULES = """
default_region: UA
default_timezone: Europe/Kyiv
teams:
  - {key: sales, name: Sales, timezone: Europe/Kyiv, head: halyna, hours: always}
  - {key: west, name: West, timezone: America/New_York, head: wanda, hours: always}
managers:
  - {key: anna, name: Anna, team: sales, products: [credit]}
  - {key: bohdan, name: Bohdan, team: sales, products: [leasing]}
  - {key: halyna, name: Halyna, team: sales, products: [none]}
  - {key: wanda, name: Wanda, team: west, products: [yacht]}
routing:
  rules:
    - {key: credit, team: sales, managers: [anna], when: {product: credit}, strategy: round_robin}
    - {key: leasing, team: sales, managers: [bohdan], when: {product: leasing}, strategy: round_robin}
    - {key: yacht, team: west, managers: [wanda], when: {product: yacht}, strategy: round_robin}
sla:
  enabled: false
"""


@dataclass
class Desk:
    url: str
    headers: dict[str, dict[str, str]]
    leads: dict[str, int]  # the owner's key -> their lead

    def client(self, who: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers[who], timeout=30)


@pytest.fixture
def desk(make_app: Callable[[str], Leadflow]) -> Iterator[Desk]:
    app = make_app(RULES)
    headers = {
        "anna": person(app, "anna", "manager", manager="anna"),
        "bohdan": person(app, "bohdan", "manager", manager="bohdan"),
        "halyna": person(app, "halyna", "head", manager="halyna", teams=["sales"]),
        "wanda": person(app, "wanda", "head", manager="wanda", teams=["west"]),
        "admin": person(app, "root", "admin"),
        "reader": bearer(new_key(app, "read")),
        "writer": bearer(new_key(app, "write")),
    }
    with live_server(app) as url:
        leads = {}
        for owner, product, phone in (("anna", "credit", "0671110001"), ("bohdan", "leasing", "0671110002"),
                                      ("wanda", "yacht", "0671110003")):  # fmt: skip
            made = httpx.post(f"{url}/api/v1/leads", json={"name": f"{owner}'s client", "phone": phone,
                                                           "product": product}, headers=headers["writer"])  # fmt: skip
            assert made.status_code == 201 and made.json()["manager"]["key"] == owner, made.text
            leads[owner] = made.json()["id"]
        yield Desk(url, headers, leads)


def _error(answer: httpx.Response, status: int, field: str | None = None) -> str:
    return str(error_body(answer, status, field)["message"])


def test_a_manager_sets_works_and_closes_their_task(desk: Desk) -> None:
    with desk.client("anna") as anna:
        made = anna.post("/api/v1/tasks", json={"lead_id": desk.leads["anna"], "title": "Call back about rates",
                                                "due_at": "2020-11-24T14:00:00+02:00", "kind": "call"})  # fmt: skip
        assert made.status_code == 201, made.text
        task = made.json()
        assert task["manager"] == {"key": "anna", "name": "Anna"} and task["status"] == "open"
        assert task["due_at_local"] == "2020-11-24T14:00:00+02:00" and task["overdue"] is True  # long past
        assert (task["source"], task["reason"], task["kind"]) == ("manual", "set by user:anna", "call")
        mine = anna.get("/api/v1/tasks").json()
        assert mine["scope"] == "mine" and mine["total"] == 1 and mine["items"][0]["id"] == task["id"]
        assert anna.get("/api/v1/tasks", params={"overdue": "true"}).json()["total"] == 1
        done = anna.post(f"/api/v1/tasks/{task['id']}/done", json={"note": "agreed on Friday"})
        assert done.status_code == 200 and done.json()["status"] == "done" and done.json()["note"] == "agreed on Friday"
        assert "is done already" in _error(anna.post(f"/api/v1/tasks/{task['id']}/done"), 409)
        assert _error(anna.post(f"/api/v1/tasks/{task['id']}/cancel", json={"reason": "no"}), 409)
        assert anna.get("/api/v1/tasks").json()["total"] == 0
        closed = anna.get("/api/v1/tasks", params={"status": "done"}).json()
        assert [t["id"] for t in closed["items"]] == [task["id"]]
        # The lead's history has both changes.
        history = [e["type"] for e in anna.get(f"/api/v1/leads/{desk.leads['anna']}").json()["events"]]
        assert history[-2:] == ["task.created", "task.done"]


def test_a_head_hands_a_task_over_and_lists_the_teams(desk: Desk) -> None:
    with desk.client("anna") as anna, desk.client("halyna") as halyna, desk.client("wanda") as wanda:
        task = anna.post("/api/v1/tasks", json={"lead_id": desk.leads["anna"], "title": "Send the offer"}).json()
        with desk.client("bohdan") as bohdan:
            assert bohdan.post("/api/v1/tasks", json={"lead_id": desk.leads["bohdan"], "title": "Call"}).is_success
        wanda.post("/api/v1/tasks", json={"lead_id": desk.leads["wanda"], "title": "Call"}).raise_for_status()
        team = halyna.get("/api/v1/tasks", params={"scope": "team"}).json()
        assert sorted(t["manager"]["key"] for t in team["items"]) == ["anna", "bohdan"]
        assert [t["manager"]["key"] for t in wanda.get("/api/v1/tasks", params={"scope": "team"}).json()["items"]] == [
            "wanda"]  # fmt: skip
        assert halyna.get("/api/v1/tasks", params={"manager": "anna", "scope": "all"}).json()["total"] == 1
        moved = halyna.post(f"/api/v1/tasks/{task['id']}/reassign", json={"manager": "halyna"})
        assert moved.status_code == 200 and moved.json()["manager"]["key"] == "halyna", moved.text
        assert "cannot see lead" in _error(
            halyna.post(f"/api/v1/tasks/{task['id']}/reassign", json={"manager": "bohdan"}), 422, "manager"
        )
        # Another team's head does not see the lead, so not its task either.
        _error(wanda.post(f"/api/v1/tasks/{task['id']}/cancel", json={"reason": "not needed"}), 404)
        _error(wanda.get("/api/v1/tasks", params={"lead_id": desk.leads["anna"]}), 404)
        cancelled = halyna.post(f"/api/v1/tasks/{task['id']}/cancel", json={"reason": "the client said no"})
        assert cancelled.json()["status"] == "cancelled" and cancelled.json()["closed_by"] == "user:halyna"


def test_keys_and_strangers(desk: Desk) -> None:
    with desk.client("writer") as writer, desk.client("reader") as reader:
        task = writer.post("/api/v1/tasks", json={"lead_id": desk.leads["wanda"], "title": "Call"})
        assert task.status_code == 201 and task.json()["manager"]["key"] == "wanda"  # the lead's owner
        page = reader.get("/api/v1/tasks").json()
        assert page["scope"] == "all" and page["total"] == 1
        _error(reader.post(f"/api/v1/tasks/{task.json()['id']}/done"), 403)
        _error(reader.post("/api/v1/tasks", json={"lead_id": desk.leads["wanda"], "title": "Call"}), 403)
    assert httpx.get(f"{desk.url}/api/v1/tasks", timeout=30).status_code == 401
    with desk.client("bohdan") as bohdan:
        _error(bohdan.post("/api/v1/tasks", json={"lead_id": desk.leads["anna"], "title": "Call"}), 404)


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("POST", "/api/v1/tasks", {"lead_id": 1, "title": "Call\u0000"}, "title"),
        ("POST", "/api/v1/tasks", {"lead_id": 1, "title": ""}, "title"),
        ("POST", "/api/v1/tasks", {"lead_id": 1, "title": "x" * 201}, "title"),
        ("POST", "/api/v1/tasks", {"lead_id": 1, "title": "Call", "due_at": "2026-11-24T14:00:00"}, "due_at"),
        ("POST", "/api/v1/tasks", {"lead_id": 1, "title": "Call", "kind": "fax"}, "kind"),
        ("POST", "/api/v1/tasks", {"lead_id": 1, "title": "Call", "manager": "an na"}, "manager"),
        ("POST", "/api/v1/tasks", {"lead_id": 1, "title": "Call", "nots": "typo"}, "nots"),
        ("POST", "/api/v1/tasks", {"lead_id": 0, "title": "Call"}, "lead_id"),
        ("POST", "/api/v1/tasks/1/cancel", {}, "reason"),
        ("POST", "/api/v1/tasks/1/reassign", {"manager": ""}, "manager"),
        ("POST", "/api/v1/tasks/9223372036854775808/done", None, "task_id"),
        ("GET", "/api/v1/tasks?scope=everyone", None, "scope"),
        ("GET", "/api/v1/tasks?status=later", None, "status"),
        ("GET", "/api/v1/tasks?manager=an%00na", None, "manager"),
        ("GET", "/api/v1/tasks?limit=0", None, "limit"),
        ("GET", "/api/v1/tasks?status=done&overdue=true", None, "overdue"),
        ("GET", "/api/v1/tasks?manager=nobody", None, "manager"),
    ],
)
def test_mistakes_are_422_naming_the_field(desk: Desk, method: str, path: str, body: object, field: str) -> None:
    with desk.client("admin") as admin:
        _error(admin.request(method, path, json=body), 422, field)


def test_a_missing_task_is_404(desk: Desk) -> None:
    with desk.client("admin") as admin:
        assert "task 4242 does not exist" in _error(admin.post("/api/v1/tasks/4242/done"), 404)
        _error(admin.post("/api/v1/tasks", json={"lead_id": 4242, "title": "Call"}), 404)
