"""POST /api/v1/events over real HTTP, on SQLite and PostgreSQL: an intake or write key reports what the client did;
the answer is always 202 with what became of it, and bad input is 422 in the one error shape."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from leadflow.services.context import Leadflow
from leadflow.store.tables import client_events, events
from leadflow.store.writer import GroupWriter
from tests.support import THREE_MANAGERS, bearer, error_body, live_server, new_key, web_sign_in, web_user

URL = "/api/v1/events"


@dataclass
class World:
    app: Leadflow
    client: httpx.Client
    lead_id: int
    keys: dict[str, dict[str, str]]


@pytest.fixture
def world(make_app: Callable[[str], Leadflow]) -> Iterator[World]:
    app = make_app(THREE_MANAGERS)
    keys = {scope: bearer(new_key(app, scope)) for scope in ("intake", "read", "write")}
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        made = client.post("/api/v1/leads", json={"name": "Олена", "phone": "+380671110001", "product": "credit"},
                           headers=keys["intake"])  # fmt: skip
        assert made.status_code == 201, made.text
        yield World(app, client, made.json()["id"], keys)


def count(app: Leadflow, table: Any, *where: Any) -> int:
    with app.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


@pytest.mark.parametrize("scope", ["intake", "write"])
def test_an_intake_or_write_key_reports_an_event_and_a_repeat_gets_the_first_answer(world: World, scope: str) -> None:
    body = {"id": f"cal-{scope}", "type": "meeting_booked", "phone": "067 111 00 01", "at": "2026-03-02T11:30:00+02:00",
            "page": "booking", "data": {"meeting_at": "2026-03-05T10:00:00+02:00", "minutes": 30, "online": True}}  # fmt: skip
    answer = world.client.post(URL, json=body, headers=world.keys[scope])
    assert answer.status_code == 202, answer.text
    taken = answer.json()
    assert taken == {"id": taken["id"], "outcome": "attached", "lead_id": world.lead_id,
                     "reason": "the client's open lead, found by +380671110001", "repeat": False}  # fmt: skip
    again = world.client.post(URL, json=body, headers=world.keys[scope])
    assert again.status_code == 202 and again.json() == {**taken, "repeat": True}
    with world.app.engine.connect() as conn:
        [event] = conn.execute(select(events).where(events.c.type == "client.meeting_booked")).all()
    assert event.lead_id == world.lead_id and event.actor.startswith(f"key:{scope} ")
    assert event.data["at"] == "2026-03-02T09:30:00+00:00" and event.data["page"] == "booking"
    assert event.data["details"] == {"meeting_at": "2026-03-05T10:00:00+02:00", "minutes": 30, "online": True}
    assert count(world.app, client_events) == 1


def test_an_unknown_client_is_202_unmatched(world: World) -> None:
    answer = world.client.post(URL, json={"id": "v-1", "type": "page_visited", "email": "nobody@example.com",
                                          "url": "https://bank.example.ua/credit"}, headers=world.keys["intake"])  # fmt: skip
    assert answer.status_code == 202, answer.text
    assert answer.json()["outcome"] == "unmatched" and answer.json()["lead_id"] is None
    assert answer.json()["reason"] == "no client with this phone or e-mail: nobody@example.com"
    assert count(world.app, client_events, client_events.c.outcome == "unmatched") == 1


def test_a_read_key_is_403_and_no_key_401(world: World) -> None:
    body = {"id": "v-1", "type": "page_visited", "lead_id": world.lead_id}
    error_body(world.client.post(URL, json=body, headers=world.keys["read"]), 403)
    refused = world.client.post(URL, json=body)
    error_body(refused, 401)
    assert refused.headers["www-authenticate"].startswith("Bearer")
    assert count(world.app, client_events) == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"id": "v-1", "type": "page_opened", "lead_id": 1}, "type"),
        ({"type": "page_visited", "lead_id": 1}, "id"),
        ({"id": "", "type": "page_visited", "lead_id": 1}, "id"),
        ({"id": "v-1", "type": "page_visited", "url": "https://bank.example.ua"}, "client"),
        ({"id": "v-1", "type": "page_visited", "lead_id": 0}, "lead_id"),
        ({"id": "v-1", "type": "page_visited", "lead_id": 1, "at": "2026-03-02T11:30:00"}, "at"),
        ({"id": "v-1", "type": "page_visited", "lead_id": 1, "colour": "red"}, "colour"),
        ({"id": "v\u0000", "type": "page_visited", "lead_id": 1}, "id"),
        ({"id": "v-1", "type": "page_visited", "lead_id": 1, "data": {f"k{i}": i for i in range(21)}}, "data"),
        ({"id": "v-1", "type": "page_visited", "lead_id": 1, "data": {"note": "x" * 501}}, "data.note"),
        ({"id": "v-1", "type": "page_visited", "lead_id": 1, "data": {"nested": {"a": 1}}}, "data.nested"),
        ('{"id": "v-1", "type": "page_visited", "lead_id": 1, "data": {"ratio": NaN}}', "data.ratio"),
        ({"id": "click:m1:l0", "type": "link_clicked", "lead_id": 1}, "id"),
    ],
)
def test_bad_input_is_422_naming_the_field_and_nothing_is_kept(
    world: World, body: dict[str, Any] | str, field: str
) -> None:
    headers = {**world.keys["write"], "Content-Type": "application/json"}
    sent = {"content": body} if isinstance(body, str) else {"json": body}
    error_body(world.client.post(URL, headers=headers, **sent), 422, field)
    assert count(world.app, client_events) == 0


def test_the_same_event_posted_at_once_through_the_group_writer_is_kept_once(world: World) -> None:
    world.app.writer = GroupWriter(world.app.engine).start()
    body = {"id": "burst", "type": "offer_viewed", "lead_id": world.lead_id}
    try:
        with ThreadPoolExecutor(max_workers=6) as pool:
            answers = list(pool.map(lambda _: world.client.post(URL, json=body, headers=world.keys["intake"]),
                                    range(6)))  # fmt: skip
    finally:
        world.app.writer.close()
        world.app.writer = None
    assert [a.status_code for a in answers] == [202] * 6
    assert len({a.json()["id"] for a in answers}) == 1 and sum(not a.json()["repeat"] for a in answers) == 1
    assert count(world.app, client_events) == 1
    assert count(world.app, events, events.c.type == "client.offer_viewed") == 1


def test_the_lead_card_tells_what_the_client_did_in_the_readers_language(world: World) -> None:
    body = {"id": "offer-1", "type": "offer_viewed", "lead_id": world.lead_id, "url": "https://offers.example.ua/77"}
    assert world.client.post(URL, json=body, headers=world.keys["intake"]).status_code == 202
    password = web_user(world.app, "root", "admin", language="uk")
    with httpx.Client(base_url=str(world.client.base_url), timeout=30) as browser:
        web_sign_in(browser, "root", password)
        card = browser.get(f"/leads/{world.lead_id}")
    assert card.status_code == 200, card.text
    assert "Клієнт переглянув пропозицію" in card.text and "https://offers.example.ua/77" in card.text
