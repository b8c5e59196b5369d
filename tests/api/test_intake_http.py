"""The intake endpoint over real HTTP on loopback, against real SQLite and PostgreSQL."""

from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from leadflow.services.context import Leadflow
from leadflow.store.tables import assignments, events, leads, managers, metadata
from tests.support import ACCOUNT_TABLES, THREE_MANAGERS, admin_headers, live_server


@pytest.fixture
def lf(make_app: Callable[[str], Leadflow]) -> Leadflow:
    return make_app(THREE_MANAGERS)


@pytest.fixture
def api(lf: Leadflow) -> Iterator[httpx.Client]:
    with (
        live_server(lf, max_body_bytes=4096) as url,
        httpx.Client(base_url=url, timeout=30, headers=admin_headers(lf)) as client,
    ):
        yield client


def rows_written(lf: Leadflow) -> dict[str, int]:
    """Rows in every table that intake writes to."""
    with lf.engine.connect() as conn:
        counts = {
            t.name: conn.execute(select(func.count()).select_from(t)).scalar_one()
            for t in metadata.sorted_tables
            if t.name not in ("teams", "managers", *ACCOUNT_TABLES)
        }
        # The events of leads: the key the client holds was made (and audited) before.
        counts["events"] = conn.execute(select(func.count()).where(events.c.lead_id.is_not(None))).scalar_one()
        return counts


def test_json_lead_comes_back_assigned_with_its_reason(api: httpx.Client) -> None:
    r = api.post("/api/v1/leads", json={"name": "Ivan", "phone": "+380 (67) 123-45-67", "product": "credit"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["created"] and body["status"] == "assigned"
    assert body["manager"] == {"key": "anna", "name": "Anna"}
    assert body["reason"] == "rule 'all' matched any lead; round robin among 3 eligible"
    detail = api.get(f"/api/v1/leads/{body['id']}").json()
    assert detail["phone"] == "+380671234567" and detail["phone_type"] == "mobile"
    assert detail["raw"]["phone"] == "+380 (67) 123-45-67"
    assert detail["assignments"][0]["reason"] == body["reason"]
    assert [c["key"] for c in detail["assignments"][0]["candidates"]] == ["anna", "bohdan", "chrystia"]


def test_plain_html_form_post_works(api: httpx.Client, lf: Leadflow) -> None:
    form = {"name": "Olha", "phone": "050 111 22 33", "product": "credit", "utm_source": "google", "city": "Lviv",
            "submit": "Send"}  # fmt: skip
    r = api.post("/api/v1/leads", data=form, headers={"Accept": "text/html,application/xhtml+xml"})
    assert r.status_code == 201 and "Thank you" in r.text
    r = api.post("/api/v1/leads", data={"name": "Petro", "email": "petro@ukr.net"})
    assert r.status_code == 201 and r.json()["status"] == "assigned"
    first = api.get("/api/v1/leads", params={"limit": 1, "offset": 1}).json()["items"][0]
    detail = api.get(f"/api/v1/leads/{first['id']}").json()
    assert detail["utm"] == {"utm_source": "google"}
    assert detail["raw"]["city"] == "Lviv"


def test_an_idempotency_key_reused_for_another_lead_is_refused_and_nothing_is_lost(
    api: httpx.Client, lf: Leadflow
) -> None:
    first = api.post("/api/v1/leads", json={"name": "Ivan", "phone": "0671234567"}, headers={"Idempotency-Key": "k"})
    other = {"name": "Petro", "phone": "0501112233", "product": "leasing"}
    r = api.post("/api/v1/leads", json=other, headers={"Idempotency-Key": "k"})
    assert r.status_code == 409 and r.json()["error"] == "idempotency_key_reused"
    assert r.json()["message"].startswith(
        f"Idempotency-Key 'k' was already used for a different request (lead {first.json()['id']})"
    )
    assert rows_written(lf)["leads"] == 1
    assert api.post("/api/v1/leads", json=other, headers={"Idempotency-Key": "k2"}).status_code == 201


def test_idempotency_key_header_repeats_nothing(api: httpx.Client, lf: Leadflow) -> None:
    lead = {"name": "Ivan", "phone": "0671234567"}
    first = api.post("/api/v1/leads", json=lead, headers={"Idempotency-Key": "abc-1"})
    before = rows_written(lf)
    second = api.post("/api/v1/leads", json=lead, headers={"Idempotency-Key": "abc-1"})
    assert first.status_code == 201 and second.status_code == 200
    assert second.json()["id"] == first.json()["id"] and second.json()["created"] is False
    assert second.json()["manager"] == first.json()["manager"]
    assert rows_written(lf) == before


BAD_INPUTS: list[tuple[str, dict[str, Any], int, str]] = [
    ("short phone", {"json": {"phone": "+38 067"}}, 422, "phone"),
    ("letters for phone", {"json": {"phone": "call me"}}, 422, "phone"),
    ("bad e-mail", {"json": {"email": "ivan@@mail"}}, 422, "email"),
    ("empty object", {"json": {}}, 422, "body"),
    ("only a name", {"json": {"name": "Ivan"}}, 422, "contact"),
    ("empty form", {"data": {"name": "", "phone": ""}}, 422, "body"),
    ("JSON array", {"json": [{"phone": "0671234567"}]}, 422, "body"),
    ("broken JSON", {"content": b'{"phone": ', "headers": {"content-type": "application/json"}}, 422, "body"),
    ("not UTF-8", {"content": b'{"name": "\xff"}', "headers": {"content-type": "application/json"}}, 422, "body"),
    ("plain text", {"content": b"phone=0671234567", "headers": {"content-type": "text/plain"}}, 415, ""),
    ("no body type", {"content": b"phone"}, 415, ""),
    ("oversized", {"json": {"phone": "0671234567", "message": "x" * 5000}}, 413, ""),
    (
        "oversized chunked",
        {"content": [b'{"message": "', b"x" * 5000, b'"}'], "headers": {"content-type": "application/json"}},
        413,
        "",
    ),
    ("bad form phone", {"data": {"name": "Ivan", "phone": "12"}}, 422, "phone"),
    (
        "idempotency key too long",
        {"json": {"phone": "0671234567"}, "headers": {"Idempotency-Key": "k" * 300}},
        422,
        "idempotency-key",
    ),
]


@pytest.mark.parametrize(("case", "request_args", "status", "field"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_is_answered_4xx_and_nothing_is_stored(
    api: httpx.Client, lf: Leadflow, case: str, request_args: dict[str, Any], status: int, field: str
) -> None:
    r = api.post("/api/v1/leads", **request_args)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["message"]
    if field:
        assert field in [p["field"] for p in body["problems"]], body
        assert all(p["reason"] for p in body["problems"])
    assert set(rows_written(lf).values()) == {0}


def test_phone_error_reads_like_a_sentence(api: httpx.Client) -> None:
    r = api.post("/api/v1/leads", json={"phone": "+38 067"})
    assert r.json()["message"].startswith("phone '+38 067' is too short for region UA (field: phone); ")
    assert r.json()["problems"][-1] == {
        "field": "contact",
        "reason": "no usable way to reach the client (phone '+38 067' is too short for region UA): "
        "give a valid phone, e-mail or messenger_id",
    }


KEPT_AND_FLAGGED: list[tuple[str, dict[str, Any], str]] = [
    ("negative budget", {"phone": "0671234561", "budget": -5}, "budget"),
    ("budget not a number", {"phone": "0671234562", "budget": "a lot"}, "budget"),
    ("name too long", {"phone": "0671234563", "name": "x" * 201}, "name"),
    ("language as a list", {"phone": "0671234564", "language": ["uk"]}, "language"),
    ("mistyped phone, good e-mail", {"phone": "067-12", "email": "good@mail.com"}, "phone"),
    ("bad e-mail, good phone", {"phone": "0671234565", "email": "ivan@@mail"}, "email"),
    ("NUL in the name", {"phone": "+380671230003", "name": "nul \u0000 byte"}, "body"),
]


@pytest.mark.parametrize(("case", "lead", "field"), KEPT_AND_FLAGGED, ids=[c[0] for c in KEPT_AND_FLAGGED])
def test_a_lead_with_a_usable_contact_is_kept_with_its_problems_named(
    api: httpx.Client, case: str, lead: dict[str, Any], field: str
) -> None:
    r = api.post("/api/v1/leads", json=lead)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["status"] == "assigned" and field in [p["field"] for p in body["problems"]]
    detail = api.get(f"/api/v1/leads/{body['id']}").json()
    assert detail["problems"] == body["problems"]
    assert "lead.flagged" in [e["type"] for e in detail["events"]]
    assert "\x00" not in str(detail)


@pytest.fixture
def roomy(lf: Leadflow) -> Iterator[httpx.Client]:
    """The API with the default 64 KiB body limit."""
    with live_server(lf) as url, httpx.Client(base_url=url, timeout=30, headers=admin_headers(lf)) as client:
        yield client


def test_bodies_that_break_json_parsers_are_refused_not_crashed(roomy: httpx.Client, lf: Leadflow) -> None:
    for path in ("/api/v1/leads", "/api/v1/leads/dry-run"):
        r = roomy.post(path, content=b"[" * 10000 + b"]" * 10000, headers={"content-type": "application/json"})
        assert r.status_code == 422 and r.json()["problems"][0]["field"] == "body", r.text
    assert rows_written(lf)["leads"] == 0


def test_integrations_send_what_they_send(roomy: httpx.Client, lf: Leadflow) -> None:
    api = roomy
    r = api.post("/api/v1/leads", json={"phone": 380671234599, "comment": "hi", "channel": "Web Site!"})
    assert r.status_code == 201 and r.json()["problems"] == []
    detail = api.get(f"/api/v1/leads/{r.json()['id']}").json()
    assert detail["phone"] == "+380671234599" and detail["channel"] == "web-site"
    assert detail["raw"] == {"phone": 380671234599, "comment": "hi", "channel": "Web Site!"}
    big = api.post("/api/v1/leads", content=b'{"phone": "+380671200256", "n": ' + b"9" * 5000 + b"}",
                   headers={"content-type": "application/json"})  # fmt: skip
    assert big.status_code == 201, big.text
    deep: Any = 1
    for _ in range(255):
        deep = [deep]
    nested = api.post("/api/v1/leads", json={"phone": "+380671200257", "extra": {"d": deep}})
    assert nested.status_code == 201, nested.text
    assert rows_written(lf)["leads"] == 3


def test_concurrent_posts_never_double_assign_or_lose_a_lead(api: httpx.Client, lf: Leadflow) -> None:
    n = 60

    def post(i: int) -> httpx.Response:
        return api.post("/api/v1/leads", json={"name": f"Client {i}", "phone": f"+38063{i:07d}"})

    with ThreadPoolExecutor(max_workers=12) as pool:
        responses = list(pool.map(post, range(n)))
    assert [r.status_code for r in responses] == [201] * n
    ids = {r.json()["id"] for r in responses}
    assert len(ids) == n
    got = Counter(r.json()["manager"]["key"] for r in responses)
    assert got == {"anna": 20, "bohdan": 20, "chrystia": 20}  # strict turns: no slot given twice
    with lf.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(leads)).scalar_one() == n
        assert conn.execute(select(func.count()).select_from(assignments)).scalar_one() == n
        assert conn.execute(select(func.count()).where(events.c.type == "lead.assigned")).scalar_one() == n
        loads = dict(conn.execute(select(managers.c.key, managers.c.open_leads)).all())
    assert loads == {"anna": 20, "bohdan": 20, "chrystia": 20, "head": 0}


def test_concurrent_repeats_of_one_delivery_create_one_lead(api: httpx.Client, lf: Leadflow) -> None:
    def post(_: int) -> httpx.Response:
        return api.post("/api/v1/leads", json={"phone": "0671234567"}, headers={"Idempotency-Key": "same"})

    with ThreadPoolExecutor(max_workers=10) as pool:
        responses = list(pool.map(post, range(10)))
    assert sorted(r.status_code for r in responses) == [200] * 9 + [201]
    assert len({r.json()["id"] for r in responses}) == 1
    assert rows_written(lf)["leads"] == 1


def test_junk_is_listed_and_restorable_through_the_api(api: httpx.Client) -> None:
    junk = api.post("/api/v1/leads", json={"name": "Casino bonus", "phone": "0671234567"}).json()
    assert junk["status"] == "junk" and junk["reason"] == "name contains the junk keyword 'casino'"
    listed = api.get("/api/v1/leads", params={"status": "junk"}).json()
    assert listed["total"] == 1 and listed["items"][0]["junk_reason"] == junk["reason"]
    restored = api.post(f"/api/v1/leads/{junk['id']}/restore", params={"actor": "desk"})
    assert restored.status_code == 200 and restored.json()["status"] == "assigned"
    assert api.post(f"/api/v1/leads/{junk['id']}/restore").status_code == 409
    assert api.post("/api/v1/leads/9999/restore").status_code == 404


def test_list_filters_and_pagination(api: httpx.Client) -> None:
    for i in range(7):
        api.post("/api/v1/leads", json={"phone": f"+38066{i:07d}", "channel": "web" if i % 2 else "ads"})
    page = api.get("/api/v1/leads", params={"limit": 3}).json()
    assert page["total"] == 7 and len(page["items"]) == 3
    assert [x["id"] for x in page["items"]] == [7, 6, 5]
    assert api.get("/api/v1/leads", params={"channel": "ads"}).json()["total"] == 4
    assert api.get("/api/v1/leads", params={"manager": "bohdan"}).json()["total"] == 2
    assert api.get("/api/v1/leads", params={"manager": "none"}).json()["total"] == 0
    assert api.get("/api/v1/leads", params={"created_from": "2000-01-01T00:00:00Z"}).json()["total"] == 7
    assert api.get("/api/v1/leads", params={"created_to": "2000-01-01T00:00:00Z"}).json()["total"] == 0
    bad = api.get("/api/v1/leads", params={"created_from": "2000-01-01T00:00:00"})
    assert bad.status_code == 422 and bad.json()["problems"][0]["field"] == "created_from"
    assert api.get("/api/v1/leads", params={"limit": 0}).status_code == 422


def test_status_changes_follow_the_funnel(api: httpx.Client) -> None:
    lead = api.post("/api/v1/leads", json={"phone": "0671234567"}).json()
    r = api.post(f"/api/v1/leads/{lead['id']}/status", json={"status": "won"})
    assert r.status_code == 422 and "not in the funnel" in r.json()["message"]
    assert api.post(f"/api/v1/leads/{lead['id']}/status", json={"status": "junk"}).status_code == 422
    assert api.post(f"/api/v1/leads/{lead['id']}/status", json={"status": "lost"}).json()["status"] == "lost"
    assert api.get("/api/v1/managers/anna").json()["open_leads"] == 0
