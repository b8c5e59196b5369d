"""The head of sales' pages over real HTTP, on SQLite and PostgreSQL: the team board and its absence toggle, the
live feed, reassigning by hand with a reason, the unassigned queue and routing it now, junk and breaches."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from markupsafe import escape
from sqlalchemy import select

from leadflow.core.lead import LeadIn
from leadflow.core.policy import SYSTEM, Grant, Principal
from leadflow.services.board import day_bounds, team_board
from leadflow.services.context import Leadflow, utcnow
from leadflow.services.intake import take_lead
from leadflow.services.sla import escalate_due, record_contact
from leadflow.store.tables import events, leads, managers
from tests.support import bearer, live_server, new_key, web_sign_in, web_user

RULES = """
default_region: UA
default_timezone: Europe/Kyiv
teams:
  - {key: sales, name: Sales, timezone: Europe/Kyiv, head: halyna, hours: always}
  - {key: vip, name: VIP, timezone: Europe/Kyiv, head: oleh, hours: always}
managers:
  - {key: anna, name: Anna, team: sales, capacity: 10}
  - {key: bohdan, name: Bohdan, team: sales, capacity: 10}
  - {key: halyna, name: Halyna, team: sales}
  - {key: oleh, name: Oleh, team: vip}
routing:
  rules:
    - {key: vip, team: vip, managers: [oleh], when: {product: yacht}}
    - {key: all, team: sales, managers: [anna, bohdan], strategy: round_robin}
sla:
  default: {first_contact: 20m, count: wall_clock, chain: {max_hops: 1}}
junk:
  own_domains: [ourcompany.ua]
"""
HTMX = {"HX-Request": "true"}
KYIV = ZoneInfo("Europe/Kyiv")


@dataclass
class Team:
    lf: Leadflow
    url: str
    key: str
    passwords: dict[str, str]
    clients: list[httpx.Client] = field(default_factory=list)

    def signed_in(self, username: str) -> tuple[httpx.Client, str]:
        client = httpx.Client(base_url=self.url, timeout=30)
        self.clients.append(client)
        return client, web_sign_in(client, username, self.passwords[username])

    def lead(self, **fields: Any) -> dict[str, Any]:
        answer = httpx.post(f"{self.url}/api/v1/leads", json={"name": "Ivan", "phone": "0671234567"} | fields,
                            headers=bearer(self.key), timeout=30)  # fmt: skip
        assert answer.status_code == 201, answer.text
        return dict(answer.json())


def world_of(lf: Leadflow) -> Iterator[Team]:
    passwords = {
        "halyna": web_user(lf, "halyna", "head", manager="halyna", teams=["sales"]),
        "oleh": web_user(lf, "oleh", "head", manager="oleh", teams=["vip"]),
        "anna": web_user(lf, "anna", "manager", manager="anna"),
        "root": web_user(lf, "root", "admin"),
    }
    with live_server(lf) as url:
        team = Team(lf, url, new_key(lf, "write"), passwords)
        yield team
        for client in team.clients:
            client.close()


@pytest.fixture
def world(make_app: Callable[[str], Leadflow]) -> Iterator[Team]:
    yield from world_of(make_app(RULES))


def row(page: str, manager: str) -> str:
    """The board's row of one manager."""
    found = re.search(rf'<tr data-manager="{manager}".*?</tr>', page, re.S)
    assert found, page[:2000]
    return found.group(0)


def cell(row_html: str, name: str) -> str:
    found = re.search(rf'class="num {name}">([^<]*)', row_html)
    assert found, row_html
    return found.group(1).strip()


def owner_of(lf: Leadflow, lead_id: int) -> str | None:
    with lf.engine.connect() as conn:
        return conn.execute(
            select(managers.c.key).select_from(leads.outerjoin(managers, managers.c.id == leads.c.manager_id))
            .where(leads.c.id == lead_id)
        ).scalar()  # fmt: skip


def test_a_head_sees_todays_first_contacts_bands_and_breaches_of_their_team(world: Team) -> None:
    lf = world.lf
    since, _ = day_bounds(utcnow(), KYIV)
    at = since + timedelta(minutes=30)  # today in Kyiv, whatever the hour the test runs
    made = [take_lead(lf, LeadIn(name=f"Client {n}", phone=f"06712300{n:02d}"), at - wait)
            for n, wait in enumerate((timedelta(minutes=5), timedelta(hours=1), timedelta(hours=14),
                                      timedelta(minutes=10)), start=1)]  # fmt: skip
    assert [m.manager_key for m in made] == ["anna", "bohdan", "anna", "bohdan"]
    for taken in made[:3]:
        record_contact(lf, taken.lead_id, taken.manager_key, "call", "connected", at, who=SYSTEM)
    yesterday = take_lead(lf, LeadIn(name="Yesterday", phone="0671230099"), since - timedelta(minutes=30))
    record_contact(lf, yesterday.lead_id, yesterday.manager_key, "call", "connected", since - timedelta(minutes=1),
                   who=SYSTEM)  # fmt: skip
    assert escalate_due(lf, at + timedelta(minutes=15)) == 1  # lead 4: from Bohdan (due 20 minutes after arrival)
    client, _ = world.signed_in("halyna")
    page = client.get("/team")
    assert page.status_code == 200, page.text
    anna, bohdan = row(page.text, "anna"), row(page.text, "bohdan")
    # Anna: lead 1 in 5 minutes, lead 3 in 14 hours (and the one contacted yesterday, not today's).
    assert (cell(anna, "first-contacts"), cell(anna, "breaches")) == ("2", "0")
    assert cell(anna, "fast").startswith("50%")
    assert (cell(bohdan, "first-contacts"), cell(bohdan, "fast"), cell(bohdan, "breaches")) == ("1", "0%", "1")
    # Open leads against capacity: Anna has leads 1, 3, yesterday's and lead 4 (the chain's), Bohdan lead 2.
    assert 'value="4"' in anna and "4 / 10" in anna and "1 / 10" in bohdan
    assert re.search(r'<td class="num" data-band="≤20m">1</td>', page.text)
    assert re.search(r'<td class="num" data-band="≤3h">1</td>', page.text)
    assert re.search(r'<td class="num" data-band="&gt;12h">1</td>', page.text)
    assert 'data-chart=\'{"datasets": [{"data": [1, 1, 0, 1]' in page.text
    assert "chart-4.6.1.umd.min.js" in page.text and 'sse-connect="/live?watch=team"' in page.text
    # The same numbers from the service, for the head.
    with lf.engine.connect() as conn:
        team_id = lf.team_id(conn, "sales")
    head = Principal("user", "halyna", 1, grants=(Grant("head", team_id, "sales"),))
    board = team_board(lf, utcnow(), KYIV, who=head)
    people = {m["key"]: m for m in board["teams"][0]["managers"]}
    assert people["anna"]["bands"] == {"≤20m": 1, "≤3h": 0, "≤12h": 0, ">12h": 1}
    assert people["bohdan"]["bands"] == {"≤20m": 0, "≤3h": 1, "≤12h": 0, ">12h": 0}
    assert (people["bohdan"]["breaches"], people["anna"]["open_leads"]) == (1, 4)
    fragment = client.get("/team/board", headers=HTMX)
    assert fragment.status_code == 200 and "<html" not in fragment.text and 'data-manager="anna"' in fragment.text


def test_marking_a_manager_absent_changes_routing_and_the_board(world: Team) -> None:
    client, csrf = world.signed_in("halyna")
    assert client.post("/team/managers/anna/absent", data={"absent": "1"}).status_code == 403  # no CSRF token
    answer = client.post("/team/managers/anna/absent", data={"csrf_token": csrf, "absent": "1"}, headers=HTMX)
    assert answer.status_code == 200, answer.text
    assert 'data-manager="anna" data-state="absent"' in answer.text and "Mark back" in row(answer.text, "anna")
    first, second = world.lead(phone="0671234501"), world.lead(phone="0671234502")
    assert first["manager"]["key"] == second["manager"]["key"] == "bohdan"  # Anna is skipped while absent
    with world.lf.engine.connect() as conn:
        updated = conn.execute(select(events.c.actor, events.c.data).where(events.c.type == "manager.updated")).all()
    assert [(a, d["manager"], d["fields"]) for a, d in updated] == [("user:halyna", "anna", ["absent"])]
    back = client.post("/team/managers/anna/absent", data={"csrf_token": csrf, "absent": "0"})
    assert back.status_code == 303 and back.headers["location"] == "/team"  # a plain form: back to the board
    assert world.lead(phone="0671234503")["manager"]["key"] == "anna"
    page = client.get("/team").text
    assert 'data-manager="anna" data-state="on_shift"' in page and "Mark absent" in row(page, "anna")
    wrong = client.post("/team/managers/anna/absent", data={"csrf_token": csrf, "absent": "maybe"}, headers=HTMX)
    assert wrong.status_code == 422


def test_another_teams_head_and_a_manager_do_not_see_the_team(world: Team) -> None:
    other, csrf = world.signed_in("oleh")
    page = other.get("/team")
    assert page.status_code == 200 and 'data-manager="oleh"' in page.text
    assert 'data-manager="anna"' not in page.text and "Sales" not in page.text
    refused = other.post("/team/managers/anna/absent", data={"csrf_token": csrf, "absent": "1"}, headers=HTMX)
    assert refused.status_code == 403
    with world.lf.engine.connect() as conn:
        assert conn.execute(select(managers.c.absent).where(managers.c.key == "anna")).scalar() is False
    manager, _ = world.signed_in("anna")
    for path in ("/team", "/team/board", "/feed", "/unassigned", "/junk", "/breaches"):
        assert manager.get(path).status_code == 403, path
    admin, _ = world.signed_in("root")
    everyone = admin.get("/team").text
    assert 'data-manager="anna"' in everyone and 'data-manager="oleh"' in everyone


def test_the_feed_shows_an_escalation_with_its_reason(world: Team) -> None:
    lead_id = world.lead()["id"]
    assert escalate_due(world.lf, utcnow() + timedelta(minutes=21)) == 1
    with world.lf.engine.connect() as conn:
        reason = conn.execute(select(events.c.data).where(events.c.type == "lead.escalated")).scalar_one()["reason"]
    assert reason.startswith("no first contact by Anna within 20m")
    client, _ = world.signed_in("halyna")
    page = client.get("/feed")
    assert page.status_code == 200 and 'sse-connect="/live?watch=team"' in page.text
    moved = re.search(r'<tr data-type="lead.escalated" data-lead="(\d+)">.*?</tr>', page.text, re.S)
    assert moved and int(moved.group(1)) == lead_id, page.text
    assert "Escalated" in moved.group(0) and "Anna → Bohdan" in moved.group(0) and str(escape(reason)) in moved.group(0)
    assert f'href="/leads/{lead_id}"' in moved.group(0)
    assert page.text.index('data-type="lead.escalated"') < page.text.index('data-type="lead.assigned"')  # newest first
    items = client.get("/feed/items", headers=HTMX)
    assert items.status_code == 200 and "<html" not in items.text and 'data-type="lead.escalated"' in items.text
    other, _ = world.signed_in("oleh")
    assert 'data-type="lead.escalated"' not in other.get("/feed").text


def test_reassigning_by_hand_takes_a_reason_and_shows_in_the_timeline(world: Team) -> None:
    lead_id = world.lead()["id"]
    assert owner_of(world.lf, lead_id) == "anna"
    client, csrf = world.signed_in("halyna")
    card = client.get(f"/leads/{lead_id}").text
    panel = re.search(r'<section class="card" aria-labelledby="reassign-h">.*?</section>', card, re.S)
    assert panel, card
    options = re.findall(r'<option value="(\w+)">', panel.group(0))
    assert options == ["bohdan", "halyna"]  # the team's active managers, the owner left out
    path = f"/leads/{lead_id}/reassign"
    no_reason = client.post(path, data={"csrf_token": csrf, "manager": "bohdan", "reason": " "}, headers=HTMX)
    assert no_reason.status_code == 422 and "say why the lead is reassigned" in no_reason.text
    assert owner_of(world.lf, lead_id) == "anna"
    done = client.post(path, data={"csrf_token": csrf, "manager": "bohdan", "reason": "Anna is at a training"},
                       headers=HTMX)  # fmt: skip
    assert done.status_code == 200, done.text
    assert "Reassigned to Bohdan." in done.text and "<html" not in done.text
    assert 'data-type="lead.reassigned"' in done.text and "Anna is at a training" in done.text  # the timeline
    assert owner_of(world.lf, lead_id) == "bohdan"
    with world.lf.engine.connect() as conn:
        data = conn.execute(select(events.c.data, events.c.actor).where(events.c.type == "lead.reassigned")).one()
    assert data.actor == "user:halyna"
    assert (data.data["reason"], data.data["manager"], data.data["previous"]) == ("Anna is at a training", "bohdan",
                                                                                   "anna")  # fmt: skip
    manager, manager_csrf = world.signed_in("anna")
    assert 'aria-labelledby="reassign-h"' not in manager.get(f"/leads/{lead_id}").text  # she may read, not assign
    assert manager.post(path, data={"csrf_token": manager_csrf, "manager": "anna", "reason": "mine"}).status_code == 403
    other, other_csrf = world.signed_in("oleh")
    assert other.post(path, data={"csrf_token": other_csrf, "manager": "oleh", "reason": "x"}).status_code == 404


def test_route_now_assigns_a_lead_left_unassigned(world: Team) -> None:
    head, csrf = world.signed_in("halyna")
    for name in ("anna", "bohdan"):
        head.post(f"/team/managers/{name}/absent", data={"csrf_token": csrf, "absent": "1"})
    made = world.lead()
    assert made["manager"] is None, made
    admin, admin_csrf = world.signed_in("root")
    queue = admin.get("/unassigned")
    assert queue.status_code == 200
    listed = re.search(rf'<tr data-lead="{made["id"]}">.*?</tr>', queue.text, re.S)
    assert listed and "Anna absent" in listed.group(0), queue.text  # why it has no owner: the routing's reason
    assert "Route now" in queue.text
    # A head of one team sees why the batch is not theirs to run, and a post is refused with that notice.
    own = head.get("/unassigned")
    assert own.status_code == 200 and f'data-lead="{made["id"]}"' in own.text and "Route now" not in own.text
    refused = head.post("/unassigned/route", data={"csrf_token": csrf})
    assert refused.status_code == 403 and 'class="notice error" role="alert"' in refused.text
    assert "spans every team" in refused.text
    assert owner_of(world.lf, made["id"]) is None
    head.post("/team/managers/anna/absent", data={"csrf_token": csrf, "absent": "0"})
    ran = admin.post("/unassigned/route", data={"csrf_token": admin_csrf}, headers=HTMX)
    assert ran.status_code == 200, ran.text
    assert "1 lead assigned" in ran.text and "0 left in the queue" in ran.text
    assert re.search(r'<tr data-manager="anna"><td data-label="Manager">Anna</td><td [^>]*>1</td>', ran.text)
    assert owner_of(world.lf, made["id"]) == "anna"
    assert "Every open lead has an owner." in admin.get("/unassigned").text


def test_the_junk_list_shows_a_junked_lead_with_its_reason(world: Team) -> None:
    junk = world.lead(name="Our Own", phone="0671234599", email="sales@ourcompany.ua")
    assert junk["status"] == "junk", junk
    with world.lf.engine.connect() as conn:
        reason = conn.execute(select(leads.c.junk_reason).where(leads.c.id == junk["id"])).scalar_one()
    client, _ = world.signed_in("halyna")
    page = client.get("/junk")
    assert page.status_code == 200
    listed = re.search(rf'<tr data-lead="{junk["id"]}">.*?</tr>', page.text, re.S)
    assert listed, page.text
    assert str(escape(reason)) in listed.group(0) and "the junk rules, on arrival" in listed.group(0)
    assert f'action="/leads/{junk["id"]}/restore?back=/junk"' in listed.group(0)
    assert f'data-lead="{junk["id"]}"' not in world.signed_in("oleh")[0].get("/junk").text


def test_breaches_list_the_late_and_the_end_of_chain(world: Team) -> None:
    lead_id = world.lead()["id"]
    later = utcnow() + timedelta(minutes=21)
    escalate_due(world.lf, later)  # to Bohdan
    escalate_due(world.lf, later + timedelta(minutes=21))  # the end of the chain: Halyna, the head
    overdue = world.lead(phone="0671234588")["id"]
    with world.lf.engine.begin() as conn:  # its deadline passed a minute ago (the worker has not run)
        conn.execute(leads.update().where(leads.c.id == overdue).values(sla_due_at=utcnow() - timedelta(minutes=1)))
    client, _ = world.signed_in("halyna")
    page = client.get("/breaches")
    assert page.status_code == 200
    ended = re.search(rf'<tr data-lead="{lead_id}" data-kind="chain_exhausted">.*?</tr>', page.text, re.S)
    assert ended and "Halyna" in ended.group(0) and ">2</td>" in ended.group(0), page.text  # owner, hops
    late = re.search(rf'<tr data-lead="{overdue}" data-kind="overdue">.*?</tr>', page.text, re.S)
    assert late and "past the deadline" in late.group(0) and f'href="/leads/{overdue}"' in late.group(0)
    other, _ = world.signed_in("oleh")
    assert "data-kind=" not in other.get("/breaches").text
