"""Managers and teams over real HTTP on loopback, against real SQLite and PostgreSQL."""

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from leadflow.bootstrap import open_app
from leadflow.services.context import Leadflow
from leadflow.settings import Settings
from leadflow.store.tables import leads, managers, teams
from tests.support import THREE_MANAGERS, admin_headers, live_server

NORTH: dict[str, Any] = {
    "key": "north",
    "name": "North desk",
    "timezone": "Europe/Warsaw",
    "hours": "mon-fri 08:00-17:00",
}
DMYTRO: dict[str, Any] = {
    "key": "dmytro",
    "name": "Dmytro Kravets",
    "team": "north",
    "email": "dmytro@ourcompany.ua",
    "products": ["Credit", "LEASING"],
    "regions": ["pl", "ua"],
    "languages": ["PL", "en"],
    "capacity": 12,
}


@pytest.fixture
def lf(make_app: Callable[[str], Leadflow]) -> Leadflow:
    return make_app(THREE_MANAGERS)


@pytest.fixture
def api(lf: Leadflow) -> Iterator[httpx.Client]:
    with live_server(lf) as url, httpx.Client(base_url=url, timeout=30, headers=admin_headers(lf)) as client:
        yield client


def fields_of(r: httpx.Response) -> list[str]:
    return [p["field"] for p in r.json()["problems"]]


def manager_rows(lf: Leadflow, key: str) -> int:
    with lf.engine.connect() as conn:
        return conn.execute(select(func.count()).where(managers.c.key == key)).scalar_one()


def post_lead(api: httpx.Client, i: int) -> dict[str, Any]:
    """A lead from a new client (its own phone), so no duplicate sends it to an earlier owner."""
    r = api.post("/api/v1/leads", json={"name": f"Client {i}", "phone": f"+38067{i:07d}"})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def keys(rows: list[dict[str, Any]]) -> list[str]:
    return [row["key"] for row in rows]


# --------------------------------------------------------------------------------------------------------------
# Create, read, list


def test_create_a_team_and_a_manager_then_read_them_back(api: httpx.Client) -> None:
    r = api.post("/api/v1/teams", json=NORTH)
    assert r.status_code == 201, r.text
    team = r.json()
    assert {k: team[k] for k in ("key", "name", "timezone", "hours", "head_key")} == {**NORTH, "head_key": None}
    fetched = api.get("/api/v1/teams/north").json()
    assert {k: v for k, v in fetched.items() if k != "managers"} == {k: v for k, v in team.items() if k != "managers"}

    r = api.post("/api/v1/managers", json=DMYTRO)
    assert r.status_code == 201, r.text
    created = r.json()
    # Products and languages are stored lower case, regions upper case: routing compares them so.
    assert created["products"] == ["credit", "leasing"]
    assert created["regions"] == ["PL", "UA"]
    assert created["languages"] == ["pl", "en"]
    assert created["team"] == "north" and created["email"] == "dmytro@ourcompany.ua"
    assert (created["capacity"], created["open_leads"], created["active"], created["absent"]) == (12, 0, True, False)
    assert created["hours"] is None  # the team's hours apply

    assert api.get("/api/v1/managers/dmytro").json() == created
    teams_listed = {t["key"]: t["managers"] for t in api.get("/api/v1/teams").json()}
    assert teams_listed == {"sales": 4, "north": 1}


def test_list_managers_filters_by_team(api: httpx.Client) -> None:
    assert api.post("/api/v1/teams", json=NORTH).status_code == 201
    assert api.post("/api/v1/managers", json=DMYTRO).status_code == 201

    assert keys(api.get("/api/v1/managers").json()) == ["anna", "bohdan", "chrystia", "head", "dmytro"]
    assert keys(api.get("/api/v1/managers", params={"team": "north"}).json()) == ["dmytro"]
    assert keys(api.get("/api/v1/managers", params={"team": "sales"}).json()) == ["anna", "bohdan", "chrystia", "head"]
    r = api.get("/api/v1/managers", params={"team": "nowhere"})
    assert r.status_code == 200 and r.json() == []


def test_a_manager_declared_in_the_rules_file_is_served_as_written_there(api: httpx.Client) -> None:
    anna = api.get("/api/v1/managers/anna").json()
    assert anna["name"] == "Anna" and anna["team"] == "sales"
    assert anna["products"] == ["credit"] and anna["regions"] == ["UA"] and anna["capacity"] == 1000
    sales = api.get("/api/v1/teams/sales").json()
    assert (sales["name"], sales["timezone"], sales["head_key"]) == ("Sales", "Europe/Kyiv", "head")


# --------------------------------------------------------------------------------------------------------------
# Change


def test_patch_changes_capacity_absence_and_hours_and_nothing_else(api: httpx.Client) -> None:
    before = api.get("/api/v1/managers/anna").json()
    hours = {"timezone": "Europe/Kyiv", "mon-fri": "09:00-18:00", "sat": "10:00-14:00"}
    r = api.patch("/api/v1/managers/anna", json={"capacity": 7, "absent": True, "hours": hours})
    assert r.status_code == 200, r.text
    after = r.json()
    assert (after["capacity"], after["absent"], after["hours"]) == (7, True, hours)
    untouched = {k: v for k, v in before.items() if k not in ("capacity", "absent", "hours")}
    assert {k: after[k] for k in untouched} == untouched
    assert api.get("/api/v1/managers/anna").json() == after

    r = api.patch("/api/v1/managers/anna", json={"absent": False, "hours": "mon-fri 10:00-19:00"})
    assert r.status_code == 200
    assert (r.json()["absent"], r.json()["hours"], r.json()["capacity"]) == (False, "mon-fri 10:00-19:00", 7)


def test_patch_moves_a_manager_to_another_team(api: httpx.Client) -> None:
    assert api.post("/api/v1/teams", json=NORTH).status_code == 201
    r = api.patch("/api/v1/managers/chrystia", json={"team": "north", "products": ["Leasing", "CREDIT"]})
    assert r.status_code == 200, r.text
    assert r.json()["team"] == "north" and r.json()["products"] == ["leasing", "credit"]
    assert keys(api.get("/api/v1/managers", params={"team": "north"}).json()) == ["chrystia"]


BAD_HOURS: list[tuple[str, Any]] = [
    ("hour 25", "mon-fri 25:00-26:00"),
    ("unknown day", {"someday": "10:00-11:00"}),
    ("words", "nine to five"),
    ("empty", ""),
    ("unknown time zone", {"timezone": "Mars/Olympus", "mon-fri": "09:00-18:00"}),
    ("overlap", {"mon-fri": "09:00-13:00", "mon": "12:00-18:00"}),
    ("not a date", {"mon-fri": "09:00-18:00", "closed": ["christmas"]}),
]


@pytest.mark.parametrize("hours", [c[1] for c in BAD_HOURS], ids=[c[0] for c in BAD_HOURS])
def test_bad_hours_are_422_naming_hours_and_change_nothing(api: httpx.Client, lf: Leadflow, hours: Any) -> None:
    before = api.get("/api/v1/managers/anna").json()
    r = api.patch("/api/v1/managers/anna", json={"hours": hours, "capacity": 3})
    assert r.status_code == 422, r.text
    assert fields_of(r) == ["hours"]
    assert r.json()["error"] == "invalid_input" and r.json()["problems"][0]["reason"]
    assert api.get("/api/v1/managers/anna").json() == before  # capacity was not changed either

    r = api.post("/api/v1/managers", json={**DMYTRO, "team": "sales", "hours": hours})
    assert r.status_code == 422 and fields_of(r) == ["hours"]
    r = api.post("/api/v1/teams", json={**NORTH, "hours": hours})
    assert r.status_code == 422 and fields_of(r) == ["hours"]
    assert manager_rows(lf, "dmytro") == 0
    assert api.get("/api/v1/teams/north").status_code == 404


def test_hours_error_says_what_is_wrong(api: httpx.Client) -> None:
    r = api.patch("/api/v1/managers/anna", json={"hours": "mon-fri 25:00-26:00"})
    assert r.json()["problems"] == [
        {"field": "hours", "reason": "bad time '25:00' in 'mon-fri 25:00-26:00' (times go from 00:00 to 24:00)"}
    ]


def test_unknown_team_is_422_naming_team(api: httpx.Client, lf: Leadflow) -> None:
    r = api.post("/api/v1/managers", json={**DMYTRO, "team": "nowhere"})
    assert r.status_code == 422, r.text
    assert fields_of(r) == ["team"]
    assert r.json()["problems"][0]["reason"] == "team 'nowhere' does not exist"
    assert manager_rows(lf, "dmytro") == 0

    r = api.patch("/api/v1/managers/anna", json={"team": "nowhere"})
    assert r.status_code == 422 and fields_of(r) == ["team"]
    assert api.get("/api/v1/managers/anna").json()["team"] == "sales"


@pytest.mark.parametrize(
    ("change", "field"),
    [({"capacity": -1}, "capacity"), ({"capacity": "many"}, "capacity"), ({"nickname": "A"}, "nickname")],
    ids=["negative capacity", "capacity not a number", "unknown field"],
)
def test_invalid_patch_is_422_naming_the_field(api: httpx.Client, change: dict[str, Any], field: str) -> None:
    r = api.patch("/api/v1/managers/anna", json=change)
    assert r.status_code == 422, r.text
    assert fields_of(r) == [field]
    assert api.get("/api/v1/managers/anna").json()["capacity"] == 1000


def test_duplicate_keys_are_409_and_overwrite_nothing(api: httpx.Client) -> None:
    r = api.post("/api/v1/managers", json={**DMYTRO, "key": "anna", "team": "sales"})
    assert r.status_code == 409, r.text
    assert r.json()["error"] == "conflict" and "anna" in r.json()["message"]
    assert api.get("/api/v1/managers/anna").json()["name"] == "Anna"

    r = api.post("/api/v1/teams", json={**NORTH, "key": "sales"})
    assert r.status_code == 409 and r.json()["error"] == "conflict"
    assert api.get("/api/v1/teams/sales").json()["name"] == "Sales"


def test_unknown_manager_and_team_are_404(api: httpx.Client) -> None:
    answers = [
        api.get("/api/v1/managers/ghost"),
        api.patch("/api/v1/managers/ghost", json={"capacity": 1}),
        api.delete("/api/v1/managers/ghost"),
        api.get("/api/v1/teams/ghost"),
        api.patch("/api/v1/teams/ghost", json={"name": "Ghosts"}),
        api.delete("/api/v1/teams/ghost"),
    ]
    assert [r.status_code for r in answers] == [404] * 6
    assert {r.json()["error"] for r in answers} == {"not_found"}
    assert answers[0].json()["message"] == "manager 'ghost' does not exist"
    assert answers[3].json()["message"] == "team 'ghost' does not exist"


# --------------------------------------------------------------------------------------------------------------
# Delete


def test_delete_a_manager_without_leads_really_deletes(api: httpx.Client, lf: Leadflow) -> None:
    assert api.post("/api/v1/teams", json=NORTH).status_code == 201
    assert api.post("/api/v1/managers", json=DMYTRO).status_code == 201
    assert manager_rows(lf, "dmytro") == 1

    r = api.delete("/api/v1/managers/dmytro")
    assert r.status_code == 200, r.text
    assert r.json() == {"key": "dmytro", "deleted": True, "active": None}
    assert manager_rows(lf, "dmytro") == 0
    assert api.get("/api/v1/managers/dmytro").status_code == 404
    assert "dmytro" not in keys(api.get("/api/v1/managers").json())


def test_delete_a_manager_who_has_a_lead_deactivates_them(api: httpx.Client, lf: Leadflow) -> None:
    first = post_lead(api, 1)
    assert first["manager"]["key"] == "anna"

    r = api.delete("/api/v1/managers/anna")
    assert r.status_code == 200, r.text
    assert r.json() == {"key": "anna", "deleted": False, "active": False}
    assert manager_rows(lf, "anna") == 1
    anna = api.get("/api/v1/managers/anna").json()
    assert anna["active"] is False and anna["open_leads"] == 1
    assert "anna" in keys(api.get("/api/v1/managers").json())
    # The lead keeps its manager, so reports stay whole.
    assert api.get(f"/api/v1/leads/{first['id']}").json()["manager"] == {"key": "anna", "name": "Anna"}
    with lf.engine.connect() as conn:
        assert conn.execute(select(leads.c.manager_id).where(leads.c.id == first["id"])).scalar() == anna["id"]

    # An inactive manager gets no new leads.
    later = [post_lead(api, i) for i in range(2, 6)]
    assert [b["manager"]["key"] for b in later] == ["bohdan", "chrystia", "bohdan", "chrystia"]
    assert all("Anna inactive" in b["reason"] for b in later)


def test_a_team_with_managers_cannot_be_deleted_an_empty_one_can(api: httpx.Client, lf: Leadflow) -> None:
    r = api.delete("/api/v1/teams/sales")
    assert r.status_code == 409, r.text
    assert r.json()["error"] == "conflict" and "still has managers" in r.json()["message"]
    assert api.get("/api/v1/teams/sales").status_code == 200

    assert api.post("/api/v1/teams", json=NORTH).status_code == 201
    assert api.post("/api/v1/managers", json=DMYTRO).status_code == 201
    assert api.delete("/api/v1/teams/north").status_code == 409
    assert api.delete("/api/v1/managers/dmytro").json()["deleted"] is True

    r = api.delete("/api/v1/teams/north")
    assert r.status_code == 204 and r.content == b""
    assert api.get("/api/v1/teams/north").status_code == 404
    with lf.engine.connect() as conn:
        assert conn.execute(select(teams.c.key).order_by(teams.c.id)).scalars().all() == ["sales"]


# --------------------------------------------------------------------------------------------------------------
# What routing does with it


def test_an_absent_manager_gets_no_new_leads_until_back(api: httpx.Client) -> None:
    got = [post_lead(api, i)["manager"]["key"] for i in range(3)]
    assert got == ["anna", "bohdan", "chrystia"]

    r = api.patch("/api/v1/managers/bohdan", json={"absent": True})
    assert r.status_code == 200 and r.json()["absent"] is True
    while_away = [post_lead(api, i) for i in range(3, 9)]
    assert [b["manager"]["key"] for b in while_away] == ["anna", "chrystia"] * 3
    assert all(b["reason"].endswith("round robin among 2 eligible; 1 skipped: Bohdan absent") for b in while_away)

    r = api.patch("/api/v1/managers/bohdan", json={"absent": False})
    assert r.status_code == 200 and r.json()["absent"] is False
    back = [post_lead(api, i)["manager"]["key"] for i in range(9, 15)]
    assert back == ["anna", "bohdan", "chrystia"] * 2
    loads = {m["key"]: m["open_leads"] for m in api.get("/api/v1/managers").json()}
    assert loads == {"anna": 6, "bohdan": 3, "chrystia": 6, "head": 0}


def test_capacity_patched_to_zero_stops_new_leads(api: httpx.Client) -> None:
    assert api.patch("/api/v1/managers/anna", json={"capacity": 0}).status_code == 200
    got = [post_lead(api, i) for i in range(4)]
    assert [b["manager"]["key"] for b in got] == ["bohdan", "chrystia"] * 2
    assert all("Anna at capacity 0/0" in b["reason"] for b in got)


def test_a_restart_rewrites_the_files_managers_and_keeps_the_apis(
    api: httpx.Client, lf: Leadflow, database_url: str, tmp_path: Path
) -> None:
    first = post_lead(api, 1)
    assert first["manager"]["key"] == "anna"
    assert api.patch("/api/v1/managers/anna", json={"absent": True, "capacity": 5}).status_code == 200
    assert api.post("/api/v1/teams", json=NORTH).status_code == 201
    assert api.post("/api/v1/managers", json=DMYTRO).status_code == 201
    dmytro = api.patch("/api/v1/managers/dmytro", json={"absent": True}).json()

    rules = tmp_path / "rules.yaml"
    rules.write_text(THREE_MANAGERS, encoding="utf-8")
    restarted = open_app(Settings(database_url=database_url, rules=rules))  # what `leadflow serve` does first
    restarted.engine.dispose()

    anna = api.get("/api/v1/managers/anna").json()
    assert (anna["absent"], anna["capacity"]) == (False, 1000)  # the file wins for the managers it declares
    assert anna["open_leads"] == 1  # the load is the database's
    assert api.get("/api/v1/managers/dmytro").json() == dmytro  # made through the API: left as it was
    assert api.get("/api/v1/teams/north").json()["timezone"] == "Europe/Warsaw"


# --------------------------------------------------------------------------------------------------------------
# Regression tests for bugs found while writing this file (fixed since)

NOT_NULL_FIELDS = ["name", "capacity", "active", "absent", "regions", "products", "languages"]


@pytest.mark.parametrize("field", NOT_NULL_FIELDS)
def test_patch_with_null_for_a_required_field_is_422(lf: Leadflow, field: str) -> None:
    with live_server(lf) as url, httpx.Client(base_url=url, timeout=30, headers=admin_headers(lf)) as client:
        r = client.patch("/api/v1/managers/anna", json={field: None})
        assert r.status_code == 422, r.text
        assert fields_of(r) == [field]


def test_patch_team_with_null_name_is_422(lf: Leadflow) -> None:
    with live_server(lf) as url, httpx.Client(base_url=url, timeout=30, headers=admin_headers(lf)) as client:
        r = client.patch("/api/v1/teams/sales", json={"name": None})
        assert r.status_code == 422, r.text
        assert fields_of(r) == ["name"]


def test_unknown_team_timezone_is_422_naming_timezone(api: httpx.Client) -> None:
    r = api.post("/api/v1/teams", json={"key": "mars", "name": "Mars", "timezone": "Mars/Olympus"})
    assert r.status_code == 422, r.text
    assert fields_of(r) == ["timezone"]


def test_hours_of_the_wrong_type_is_422_naming_hours(api: httpx.Client) -> None:
    r = api.patch("/api/v1/managers/anna", json={"hours": 9})
    assert r.status_code == 422, r.text
    assert fields_of(r) == ["hours"]


def test_a_new_team_keeps_its_chat_desk_and_scoring_settings(api: httpx.Client) -> None:
    body = {"key": "desk-team", "name": "Desk team", "telegram_chat_id": "-100777", "desk": True, "desk_sla": "5m",
            "scoring": False}  # fmt: skip
    r = api.post("/api/v1/teams", json=body)
    assert r.status_code == 201, r.text
    got = api.get("/api/v1/teams/desk-team").json()
    assert (got["telegram_chat_id"], got["desk"], got["desk_sla_seconds"], got["scoring"]) == ("-100777", True, 300,
                                                                                                 False)  # fmt: skip


def test_an_extension_names_one_manager(api: httpx.Client) -> None:
    assert api.patch("/api/v1/managers/anna", json={"extension": "101"}).status_code == 200
    taken = api.patch("/api/v1/managers/bohdan", json={"extension": "101"})
    assert taken.status_code == 409 and "extension '101' is anna's" in taken.json()["message"]
    assert api.get("/api/v1/managers/bohdan").json()["extension"] is None  # nothing changed
    assert api.patch("/api/v1/managers/anna", json={"extension": "101"}).status_code == 200  # her own, again
    assert api.patch("/api/v1/managers/bohdan", json={"extension": "102"}).status_code == 200
