"""Error answers: one shape everywhere, never a 5xx for what a client sends, on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.dependencies.utils import get_flat_params
from fastapi.params import Form
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from leadflow.api.app import create_api
from leadflow.api.params import MAX_ID, LeadflowRoute
from leadflow.core.fields import CLEAN_TEXT_PATTERN
from leadflow.core.rules_text import parse_rules
from leadflow.core.text import is_clean
from leadflow.services.context import Leadflow
from leadflow.settings import Settings
from leadflow.store.tables import outbox
from tests.support import THREE_MANAGERS, admin_headers, live_server

BROWSER = {
    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    "Accept-Language": "uk,en;q=0.5",
}
TOO_BIG = "99999999999999999999"
JUST_OVER = str(MAX_ID + 1)


@pytest.fixture
def lf(make_app: Callable[[str], Leadflow]) -> Leadflow:
    return make_app(THREE_MANAGERS)


@pytest.fixture
def api(lf: Leadflow) -> FastAPI:
    return create_api(lf, Settings(allowed_hosts=["testserver"]))  # the test client's Host


@pytest.fixture
def client(api: FastAPI) -> Iterator[TestClient]:
    # raise_server_exceptions: an exception that escaped the app would fail the test instead of becoming a 500.
    with TestClient(api, raise_server_exceptions=True, headers=admin_headers(api.state.leadflow)) as c:
        yield c


def assert_error(r: Any, status: int, code: str, field: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = r.json()
    assert set(body) == {"error", "message", "problems"} and body["error"] == code, body
    assert isinstance(body["message"], str) and body["message"]
    if field is not None:
        assert field in [p["field"] for p in body["problems"]], body
    return body


def _static_api() -> FastAPI:
    """The app for looking at its routes and document only (nothing here touches the database)."""
    rules = parse_rules(THREE_MANAGERS, "test-rules.yaml")
    return create_api(Leadflow(engine=create_engine("sqlite://"), rules=rules), Settings())


def _api_routes(api: FastAPI) -> list[APIRoute]:
    return [r.original_route for r in iter_route_contexts(api.routes) if isinstance(r.original_route, APIRoute)]


# One shape --------------------------------------------------------------------------------------------------------


def test_framework_errors_have_the_one_shape(client: TestClient) -> None:
    body = assert_error(client.get("/api/v1/no-such-thing"), 404, "not_found")
    assert "/api/v1/no-such-thing" in body["message"]
    r = client.delete("/api/v1/leads")
    assert_error(r, 405, "method_not_allowed")
    # Starlette names only the first route that matched the path; the answer names every method the path takes.
    assert r.headers["allow"] == "GET, POST"
    assert client.post("/api/v1/managers/anna").headers["allow"] == "DELETE, GET, PATCH"
    assert client.put("/api/v1/leads/1").headers["allow"] == "GET"


def test_an_unhandled_exception_is_a_500_in_the_one_shape_with_the_logged_error_id(
    api: FastAPI, client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    def explode() -> None:
        raise RuntimeError("the disk is on fire")

    api.add_api_route("/explode", explode)
    with caplog.at_level(logging.ERROR, logger="leadflow.api"):
        r = client.get("/explode")
    body = assert_error(r, 500, "internal")
    error_id = re.fullmatch(r".*\(error id ([0-9a-f]{8})\)", body["message"])
    assert error_id, body["message"]
    assert "fire" not in body["message"]  # the traceback goes to the log, not to the client
    [record] = [r for r in caplog.records if r.name == "leadflow.api"]
    assert error_id.group(1) in record.getMessage() and record.exc_info and record.exc_info[0] is RuntimeError
    # Another failure, another id.
    assert client.get("/explode").json()["message"] != body["message"]


def test_a_real_internal_error_over_http_is_a_500_in_the_one_shape(
    lf: Leadflow, caplog: pytest.LogCaptureFixture
) -> None:
    # The outbox table goes missing under a running server: the query fails inside the database driver.
    headers = admin_headers(lf)
    with lf.engine.begin() as conn:
        conn.execute(text("ALTER TABLE outbox RENAME TO outbox_away"))
    try:
        with live_server(lf) as url, caplog.at_level(logging.ERROR, logger="leadflow.api"):
            r = httpx.get(f"{url}/api/v1/outbox", timeout=30, headers=headers)
    finally:
        with lf.engine.begin() as conn:
            conn.execute(text("ALTER TABLE outbox_away RENAME TO outbox"))
    body = assert_error(r, 500, "internal")
    error_id = re.search(r"\(error id ([0-9a-f]{8})\)$", body["message"])
    assert error_id and any(error_id.group(1) in rec.getMessage() for rec in caplog.records), body


def test_a_browser_gets_the_error_as_a_page_in_its_language(api: FastAPI, client: TestClient) -> None:
    r = client.get("/api/v1/leads/12345", headers=BROWSER)
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    assert 'lang="uk"' in r.text and "lead 12345 does not exist" in r.text
    r = client.get("/api/v1/leads?limit=0", headers=BROWSER)
    assert r.status_code == 422 and "limit" in r.text

    def explode() -> None:
        raise RuntimeError("boom")

    api.add_api_route("/explode", explode)
    r = client.get("/explode", headers=BROWSER)
    assert r.status_code == 500 and r.headers["content-type"].startswith("text/html")
    error_id = re.search(r"error id ([0-9a-f]{8})", r.text)
    assert error_id and r.text.count(error_id.group(1)) >= 2  # in the message and as the reference
    # An API client that takes anything still gets JSON.
    assert_error(client.get("/api/v1/leads/12345", headers={"Accept": "*/*"}), 404, "not_found")


# Integers within the columns' range -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "url", "field"),
    [
        ("GET", f"/api/v1/leads/{TOO_BIG}", "lead_id"),
        ("GET", f"/api/v1/leads/{JUST_OVER}", "lead_id"),
        ("GET", "/api/v1/leads/0", "lead_id"),
        ("GET", f"/api/v1/leads?offset={TOO_BIG}", "offset"),
        ("GET", f"/api/v1/leads/{JUST_OVER}/routing", "lead_id"),
        ("POST", f"/api/v1/leads/{JUST_OVER}/restore", "lead_id"),
        ("POST", f"/api/v1/outbox/{JUST_OVER}/retry", "message_id"),
        ("POST", f"/api/v1/tasks/{JUST_OVER}/done", "task_id"),
        ("GET", f"/api/v1/tasks?lead_id={JUST_OVER}", "lead_id"),
        ("GET", f"/api/v1/outbox?offset={JUST_OVER}", "offset"),
        ("GET", f"/api/v1/desk?offset={JUST_OVER}", "offset"),
        ("POST", f"/api/v1/assign/unassigned?dry_run=true&limit={JUST_OVER}", "limit"),
    ],
)
def test_integers_past_the_column_range_are_422(client: TestClient, method: str, url: str, field: str) -> None:
    assert_error(client.request(method, url), 422, "invalid_input", field)


@pytest.mark.parametrize(
    ("url", "body"),
    [
        ("/api/v1/leads/{id}/contact", {"manager": "anna"}),
        ("/api/v1/leads/{id}/status", {"status": "lost"}),
        ("/api/v1/leads/{id}/convert", {"to": "contact", "actor": "Olha"}),
        ("/api/v1/leads/{id}/assign", {"manager": "anna", "reason": "asked", "actor": "Olha"}),
        ("/api/v1/desk/{id}/junk", {"reason": "spam", "actor": "Olha"}),
        ("/api/v1/desk/{id}/contact", {"actor": "Olha"}),
        ("/api/v1/desk/{id}/deal", {"hand_to": "head", "actor": "Olha"}),
        ("/api/v1/desk/{id}/to-owner", {"actor": "Olha"}),
    ],
)
def test_lead_ids_past_the_column_range_are_422_on_write_routes(
    client: TestClient, url: str, body: dict[str, str]
) -> None:
    for lead_id in (TOO_BIG, JUST_OVER):
        assert_error(client.post(url.format(id=lead_id), json=body), 422, "invalid_input", "lead_id")
    assert_error(client.post(url.format(id=MAX_ID), json=body), 404, "not_found")


def test_the_largest_offset_is_an_empty_page(client: TestClient) -> None:
    for url in ("/api/v1/leads", "/api/v1/outbox", "/api/v1/desk"):
        r = client.get(url, params={"offset": MAX_ID})
        assert r.status_code == 200, r.text
        assert r.json()["items"] == [] and r.json()["offset"] == MAX_ID


def test_every_integer_parameter_of_every_route_is_bounded() -> None:
    unbounded = []
    for route in _api_routes(_static_api()):
        for param in get_flat_params(route.dependant):
            if param.field_info.annotation not in (int, int | None):
                continue
            bounds = {type(m).__name__ for m in param.field_info.metadata}
            if not {"Ge", "Le"} <= bounds and not {"Gt", "Le"} <= bounds:
                unbounded.append(f"{route.path} {param.name}")
    assert unbounded == []


# Control characters -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("/api/v1/leads?status=new%00", "status"),
        ("/api/v1/leads?manager=anna%00", "manager"),
        ("/api/v1/leads?channel=web%01", "channel"),
        ("/api/v1/managers?team=sales%00", "team"),
        ("/api/v1/managers/ol%00ena", "key"),
        ("/api/v1/teams/sa%1Fles", "key"),
        ("/api/v1/reports/funnel?channel=web%00", "channel.0"),
        ("/api/v1/reports/funnel?campaign=spring%01", "campaign.0"),
        ("/api/v1/reports/funnel?tz=Europe/Kyiv%00", "tz"),
    ],
)
def test_control_characters_in_the_address_are_422_naming_parameter_and_character(
    client: TestClient, url: str, field: str
) -> None:
    body = assert_error(client.get(url), 422, "invalid_input", field)
    assert re.search(r"U\+00(00|01|1F)", body["message"]), body


@pytest.mark.parametrize(
    ("method", "url", "body", "field"),
    [
        ("POST", "/api/v1/leads/1/contact", {"manager": "anna", "note": "called\u0000back"}, "note"),
        ("POST", "/api/v1/leads/1/status", {"status": "lost", "reason": "\u0007"}, "reason"),
        ("POST", "/api/v1/managers", {"key": "olena", "name": "Ole\u0000na", "team": "sales"}, "name"),
        ("POST", "/api/v1/managers", {"key": "olena", "name": "Olena", "team": "sales", "regions": ["U\x00A"]},
         "regions.0"),
        ("POST", "/api/v1/managers", {"key": "olena", "name": "Olena", "team": "sales", "hours": {"mon\x00": "9-5"}},
         "hours"),
        ("PATCH", "/api/v1/managers/anna", {"name": "A\u009bnna"}, "name"),
        ("PATCH", "/api/v1/managers/anna", '{"name": "\\ud800"}', "name"),  # a lone surrogate: not text at all
        ("POST", "/api/v1/teams", {"key": "west", "name": "W\u0000"}, "name"),
        ("PATCH", "/api/v1/teams/sales", {"timezone": "Europe/Kyiv\u0000"}, "timezone"),
        ("POST", "/api/v1/desk/1/junk", {"reason": "spam\u0000", "actor": "Olha"}, "reason"),
        ("POST", "/api/v1/leads/1/convert", {"to": "contact", "actor": "Olha", "contact": {"name": "I\u0000"}},
         "contact.name"),
        ("POST", "/api/v1/reports/costs", {"csv": "day,amount\n2026-03-01,1\u0000"}, "csv"),
    ],
)  # fmt: skip
def test_control_characters_in_management_bodies_are_422_naming_the_field(
    client: TestClient, method: str, url: str, body: dict[str, Any] | str, field: str
) -> None:
    sent = (
        {"content": body, "headers": {"Content-Type": "application/json"}} if isinstance(body, str) else {"json": body}
    )
    answer = assert_error(client.request(method, url, **sent), 422, "invalid_input", field)
    assert "U+" in answer["message"], answer


def test_text_with_tabs_and_line_breaks_is_kept(client: TestClient) -> None:
    r = client.post("/api/v1/managers", json={"key": "olena", "name": "Olena\tK.", "team": "sales"})
    assert r.status_code == 201 and r.json()["name"] == "Olena\tK."
    r = client.patch("/api/v1/managers/olena", json={"name": "Olena\r\nKovalenko"})
    assert r.status_code == 200 and r.json()["name"] == "Olena\r\nKovalenko"


def test_the_clean_text_pattern_refuses_exactly_what_scrub_removes() -> None:
    pattern = re.compile(CLEAN_TEXT_PATTERN)
    for code in [*range(0x3000), *range(0xE000, 0x10000, 7), 0x1F600, 0x10FFFF]:
        char = chr(code)
        assert (pattern.fullmatch(char) is not None) == is_clean(char), hex(code)


# JSON bodies ------------------------------------------------------------------------------------------------------


def _json_routes() -> list[tuple[str, str]]:
    routes = []
    for route in _api_routes(_static_api()):
        if route.body_field is not None and not isinstance(route.body_field.field_info, Form):
            routes += [
                (method, route.path.replace("{lead_id}", "1").replace("{key}", "anna")) for method in route.methods
            ]
    return sorted(routes)


JSON_ROUTES = _json_routes()


def test_the_json_routes_are_all_found() -> None:
    assert ("POST", "/api/v1/leads/1/contact") in JSON_ROUTES and ("PATCH", "/api/v1/teams/anna") in JSON_ROUTES
    assert len(JSON_ROUTES) >= 12


@pytest.mark.parametrize(("method", "url"), JSON_ROUTES)
def test_bodies_that_break_the_json_parser_are_422_on_every_json_route(
    client: TestClient, method: str, url: str
) -> None:
    headers = {"Content-Type": "application/json"}
    deep = assert_error(client.request(method, url, content="[" * 10_000 + "]" * 10_000, headers=headers),
                        422, "invalid_input", "body")  # fmt: skip
    assert "nested more than" in deep["message"]
    long = assert_error(client.request(method, url, content=b'{"a": ' + b"7" * 5000 + b"}", headers=headers),
                        422, "invalid_input", "body")  # fmt: skip
    assert "longer than" in long["message"]
    nested = '{"a": ' * 40 + "1" + "}" * 40
    assert "nested more than" in assert_error(client.request(method, url, content=nested, headers=headers),
                                              422, "invalid_input", "body")["message"]  # fmt: skip
    assert_error(client.request(method, url, content=b"\xff\xfe{}", headers=headers), 422, "invalid_input", "body")
    assert_error(client.request(method, url, content="{}", headers={"Content-Type": "text/plain"}),
                 415, "unsupported_media_type")  # fmt: skip


def test_a_broken_body_says_where_json_breaks(client: TestClient) -> None:
    r = client.post(
        "/api/v1/leads/1/contact", content='{"manager" "anna"}', headers={"Content-Type": "application/json"}
    )
    body = assert_error(r, 422, "invalid_input", "body")
    assert body["problems"][0]["reason"] == "the body is not valid JSON: Expecting ':' delimiter at line 1 column 12"


@pytest.mark.parametrize(
    ("url", "body"),
    [
        ("/api/v1/leads/1/contact", {"manager": "anna", "nots": "typo"}),
        ("/api/v1/leads/1/status", {"status": "lost", "actr": "Olha"}),
        ("/api/v1/managers", {"key": "olena", "name": "Olena", "team": "sales", "nots": "typo"}),
        ("/api/v1/teams", {"key": "west", "nots": "typo"}),
    ],
)
def test_unknown_fields_are_refused_naming_them(client: TestClient, url: str, body: dict[str, str]) -> None:
    field = next(k for k in body if k in ("nots", "actr"))
    answer = assert_error(client.post(url, json=body), 422, "invalid_input", field)
    assert "not a field" in answer["message"]


def test_every_request_body_model_forbids_unknown_fields() -> None:
    document = _static_api().openapi()
    schemas = document["components"]["schemas"]
    seen: set[str] = set()

    def visit(schema: Any) -> None:
        if isinstance(schema, dict):
            ref = schema.get("$ref")
            if ref and ref not in seen:
                seen.add(ref)
                visit(schemas[ref.rsplit("/", 1)[1]])
            for value in schema.values():
                visit(value)
        elif isinstance(schema, list):
            for value in schema:
                visit(value)

    for item in document["paths"].values():
        for operation in item.values():
            visit(operation.get("requestBody", {}))
    assert len(seen) >= 10
    loose = [ref for ref in seen if schemas[ref.rsplit("/", 1)[1]].get("additionalProperties") is not False]
    assert loose == []


# List filters -----------------------------------------------------------------------------------------------------


def test_an_unknown_status_filter_is_422_naming_the_statuses(client: TestClient) -> None:
    body = assert_error(client.get("/api/v1/leads", params={"status": "bogus"}), 422, "invalid_input", "status")
    assert "new, assigned, contacted, qualified, converted, junk, lost" in body["message"]
    assert client.get("/api/v1/leads", params={"status": "junk"}).status_code == 200


@pytest.mark.parametrize(
    "value", ["0.5", "1700000000", "2026-11-23", "2026-11-23T10:00:00", "yesterday", "9999-12-31T23:59:59-23:59"]
)
def test_created_filters_take_only_iso_times_with_a_zone(client: TestClient, value: str) -> None:
    for name in ("created_from", "created_to"):
        assert_error(client.get("/api/v1/leads", params={name: value}), 422, "invalid_input", name)


@pytest.mark.parametrize("value", ["2026-11-23T10:00:00Z", "2026-11-23T12:00:00+02:00", "2026-11-23T10:00:00.5+0000"])
def test_created_filters_take_iso_times(client: TestClient, value: str) -> None:
    r = client.get("/api/v1/leads", params={"created_from": value, "created_to": "2100-01-01T00:00:00Z"})
    assert r.status_code == 200, r.text


def test_the_outbox_is_a_page_like_every_other_list(client: TestClient, lf: Leadflow) -> None:
    now = datetime.now(UTC)
    with lf.engine.begin() as conn:
        for i in range(5):
            conn.execute(outbox.insert().values(channel="telegram", recipient=str(i), body="hi", payload={},
                                                status="dead" if i % 2 else "sent", attempts=1, next_attempt_at=now,
                                                created_at=now))  # fmt: skip
    page = client.get("/api/v1/outbox", params={"limit": 2, "offset": 1}).json()
    assert set(page) == {"items", "total", "limit", "offset"}
    assert page["total"] == 5 and page["limit"] == 2 and page["offset"] == 1
    assert [m["recipient"] for m in page["items"]] == ["3", "2"]
    dead = client.get("/api/v1/outbox", params={"status": "dead"}).json()
    assert dead["total"] == 2 and [m["recipient"] for m in dead["items"]] == ["3", "1"]


# The document -----------------------------------------------------------------------------------------------------


def test_every_operation_declares_its_error_answers() -> None:
    document = _static_api().openapi()
    missing = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            expected = {"413", "422", "500"}
            if "{" in path:
                expected.add("404")
            if "requestBody" in operation:
                expected.add("415")
            for status in expected - set(operation["responses"]):
                missing.append(f"{method.upper()} {path} {status}")
            for status, answer in operation["responses"].items():
                if status[0] in "45" and status in expected:
                    schema = answer["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/ErrorOut"}, (path, status)
    assert missing == []
    conflicts = {f"{m.upper()} {p}" for p, item in document["paths"].items() for m, o in item.items()
                 if "409" in o["responses"]}  # fmt: skip
    assert {"POST /api/v1/leads/{lead_id}/restore", "POST /api/v1/managers", "DELETE /api/v1/teams/{key}",
            "POST /api/v1/outbox/{message_id}/retry", "POST /api/v1/desk/{lead_id}/junk"} <= conflicts  # fmt: skip


def test_every_text_input_states_what_it_accepts() -> None:
    """A string parameter or body field without a pattern, a format or a list of values would let control
    characters through to the database; every one says what it takes."""
    document = _static_api().openapi()
    schemas = document["components"]["schemas"]
    open_text: list[str] = []

    def strings(schema: dict[str, Any], where: str, seen: frozenset[str] = frozenset()) -> None:
        if "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[1]
            if name not in seen:
                strings(schemas[name], where, seen | {name})
            return
        if schema.get("type") == "string" and not ({"pattern", "enum", "const", "format"} & set(schema)):
            open_text.append(where)
        for key in ("anyOf", "oneOf", "allOf"):
            for option in schema.get(key, []):
                strings(option, where, seen)
        for name, prop in schema.get("properties", {}).items():
            strings(prop, f"{where}.{name}", seen)
        if isinstance(schema.get("items"), dict):
            strings(schema["items"], f"{where}[]", seen)

    for path, item in document["paths"].items():
        for method, operation in item.items():
            for param in operation.get("parameters", []):
                # A header cannot carry control characters: the HTTP server refuses the request before the app.
                if param["in"] != "header":
                    strings(param["schema"], f"{method.upper()} {path} {param['name']}")
            body = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
            # Intake takes text as it comes and makes it safe itself (control characters removed, the lead
            # flagged): a lead is never refused for a stray character. Its own tests check that.
            if body and path not in INTAKE_PATHS:
                strings(body["schema"], f"{method.upper()} {path} body")
    assert open_text == []


INTAKE_PATHS = ("/api/v1/leads", "/api/v1/leads/dry-run")


def test_json_routes_use_the_route_class_that_reads_bodies_safely() -> None:
    for route in _api_routes(_static_api()):
        if route.body_field is not None:
            assert isinstance(route, LeadflowRoute), route.path


# Found while fuzzing ----------------------------------------------------------------------------------------------


def test_a_manager_created_with_vacations_does_not_break_routing(client: TestClient) -> None:
    body = {"key": "olena", "name": "Olena", "team": "sales", "products": ["credit"], "regions": ["UA"],
            "vacations": [{"from": "2020-01-01", "to": "2020-01-05"}]}  # fmt: skip
    assert client.post("/api/v1/managers", json=body).status_code == 201
    r = client.post("/api/v1/leads", json={"name": "Ivan", "phone": "+380671234567", "product": "credit"})
    assert r.status_code == 201, r.text
