"""Meta Lead Ads end to end, over real HTTP on loopback: a page's leadgen webhook, signed, kept before it is
answered; the lead's answers fetched from a stand-in of the Graph API into an assigned lead; and, with the Graph
API down, nothing lost: the form is kept, and taken once the Graph API answers again."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from leadflow.channels.config import NotifyConfig
from leadflow.channels.inbound.config import ChannelsConfig
from leadflow.channels.inbound.lead_ads import LeadAdsPoller, LeadFetcher, LeadgenNotice, lead_message, read_body
from leadflow.channels.inbound.registry import ReplySender, pollers_from_config, repliers_from_config
from leadflow.core.conversation import Unreadable
from leadflow.services.channel_state import channels_status, held_events, poller_services
from leadflow.services.context import Leadflow, utcnow
from leadflow.services.delivery import deliver_due
from leadflow.services.sla import escalate_due
from leadflow.store.tables import channel_events, channel_refusals, leads, messages
from tests.channels.conftest import LocalSMTP
from tests.channels.inbound.graph_standin import GraphStandIn, graph_lead, leadgen_body, sign
from tests.support import live_server, person

APP_SECRET = "meta-app-secret-0123456789abcdef"
VERIFY = "verify-token-for-the-handshake"
PAGE_TOKEN = "EAAB-page-access-token-0123456789"
RULES = """
default_region: UA
default_timezone: Europe/Kyiv
teams:
  - {key: sales, name: Sales, timezone: Europe/Kyiv, head: halyna, hours: always}
managers:
  - {key: anna, name: Anna, team: sales, capacity: 20, products: [credit]}
  - {key: bohdan, name: Bohdan, team: sales, capacity: 20, products: [leasing]}
  - {key: halyna, name: Halyna, team: sales, capacity: 20}
routing:
  rules:
    - {key: credit, team: sales, managers: [anna], when: {product: credit}, strategy: round_robin}
    - {key: all, team: sales, managers: [anna, bohdan], strategy: round_robin}
"""
HOOK = "/api/v1/channels/lead-ads/webhook"
ANSWERS: dict[str, str | list[str]] = {
    "full_name": "Олена Коваль", "phone_number": "+380671234567", "email": "olena.koval@example.org",
    "company_name": "Koval Agro", "city": "Вінниця", "product": "credit",
    "коли_вам_зручно_говорити?": ["зранку", "ввечері"],
}  # fmt: skip


@pytest.fixture
def graph() -> Iterator[GraphStandIn]:
    stand_in = GraphStandIn("unused-whatsapp-token", PAGE_TOKEN, "0")
    yield stand_in
    stand_in.close()


@pytest.fixture
def app(make_app: Callable[[str], Leadflow], graph: GraphStandIn) -> Leadflow:
    lf = make_app(RULES)
    lf.channels = ChannelsConfig(meta_app_secret=APP_SECRET, meta_verify_token=VERIFY,
                                 meta_page_access_token=PAGE_TOKEN, graph_api_base=graph.base)  # fmt: skip
    return lf


def post(client: httpx.Client, payload: Any, secret: str | None = APP_SECRET) -> httpx.Response:
    body = json.dumps(payload).encode() if not isinstance(payload, bytes) else payload
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Hub-Signature-256"] = sign(secret, body)
    return client.post(HOOK, content=body, headers=headers)


def count(app: Leadflow, table: Any, *where: Any) -> int:
    with app.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


def leads_made(app: Leadflow) -> list[dict[str, Any]]:
    with app.engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(leads).order_by(leads.c.id)).mappings()]


def eventually(done: Callable[[], bool], seconds: float = 5.0) -> None:
    """Wait for what the webhook does after answering (it fetches right away, on the server's thread)."""
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, "not done in time"
        time.sleep(0.02)


def fetcher(app: Leadflow) -> LeadFetcher:
    """The worker's fetcher, as after a restart (nothing remembered), with no pause for a just-kept form."""
    return LeadFetcher(app.channels, poller_services(app, utcnow), grace=0)


def test_a_form_lead_is_fetched_and_assigned_with_the_forms_answers(app: Leadflow, graph: GraphStandIn) -> None:
    graph.leads["1234567890123456"] = graph_lead("1234567890123456", ANSWERS, platform="ig")
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        answer = post(client, leadgen_body({"leadgen_id": "1234567890123456", "form_id": "999888777",
                                            "ad_id": "120200000000001", "adgroup_id": "120200000000002"}))  # fmt: skip
        assert answer.status_code == 200, answer.text
        eventually(lambda: count(app, leads) == 1)
    [lead] = leads_made(app)
    assert (lead["name"], lead["phone"], lead["email"]) == ("Олена Коваль", "+380671234567", "olena.koval@example.org")
    assert lead["company"] == "Koval Agro" and lead["product"] == "credit" and lead["channel"] == "facebook_leads"
    assert lead["status"] == "assigned" and lead["source"] == "instagram"
    assert lead["utm"] == {"utm_source": "instagram", "utm_medium": "lead_ads"}
    assert lead["raw"]["extra"]["city"] == "Вінниця" and lead["raw"]["extra"]["meta_form_id"] == "999888777"
    assert lead["raw"]["extra"]["коли_вам_зручно_говорити?"] == "зранку, ввечері"
    assert (
        lead["raw"]["extra"]["meta_ad_id"] == "120200000000001"
        and lead["raw"]["extra"]["meta_page_id"] == "444555666777"
    )
    with app.engine.connect() as conn:
        thread = conn.execute(select(messages.c.kind, messages.c.body, messages.c.external_id)).one()
    assert thread.kind == "form" and thread.external_id == "1234567890123456"
    assert "коли вам зручно говорити?: зранку, ввечері" in thread.body and "city: Вінниця" in thread.body
    [call] = graph.fetched()
    assert call.path == "/v21.0/1234567890123456" and call.headers["authorization"] == f"Bearer {PAGE_TOKEN}"
    assert "access_token" not in call.query and "field_data" in call.query["fields"][0]
    assert held_events(app, "facebook_leads") == {}


def test_with_the_graph_api_down_the_lead_is_kept_and_made_once_it_answers(app: Leadflow, graph: GraphStandIn) -> None:
    graph.leads["777000111"] = graph_lead("777000111", {"full_name": "Taras", "phone_number": "+380501112233"})
    graph.down = True
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        answer = post(client, leadgen_body({"leadgen_id": "777000111", "form_id": "999888777"}))
        assert answer.status_code == 200, answer.text
        eventually(lambda: len(graph.fetched()) == 1 and status_of(app)["last_error"] is not None)
        assert held_events(app, "facebook_leads").keys() == {"777000111"} and count(app, leads) == 0
        error = status_of(app)["last_error"]
        assert "lead 777000111 could not be fetched" in error and "Please retry" in error and PAGE_TOKEN not in error
        # Meta sends it again: it is kept already, nothing new, nothing asked.
        assert post(client, leadgen_body({"leadgen_id": "777000111"})).status_code == 200
        assert len(held_events(app, "facebook_leads")) == 1 and len(graph.fetched()) == 1

    worker = fetcher(app)  # the worker, restarted: the kept form is still there
    assert worker.fetch() == 0 and count(app, leads) == 0  # still down: asked, kept
    graph.down = False
    assert worker.fetch() == 0  # it waits out its pause after a failure...
    assert fetcher(app).fetch() == 1  # ...and is taken at the next round once the Graph API answers
    [lead] = leads_made(app)
    assert lead["name"] == "Taras" and lead["status"] == "assigned" and lead["source"] == "facebook"
    assert held_events(app, "facebook_leads") == {}
    assert fetcher(app).fetch() == 0 and count(app, leads) == 1
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        assert post(client, leadgen_body({"leadgen_id": "777000111"})).status_code == 200  # once more, long after
    assert held_events(app, "facebook_leads") == {} and count(app, leads) == 1 and len(graph.fetched()) == 3


def status_of(app: Leadflow) -> dict[str, Any]:
    return next(s for s in channels_status(app) if s["channel"] == "facebook_leads")


def test_the_workers_poller_takes_what_the_webhook_could_not(app: Leadflow, graph: GraphStandIn) -> None:
    graph.down = True
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        post(client, leadgen_body({"leadgen_id": "5550001"}, {"leadgen_id": "5550002"}))
        eventually(lambda: len(graph.fetched()) == 2)
    graph.leads["5550001"] = graph_lead("5550001", {"full_name": "A", "email": "a@example.org"})
    graph.leads["5550002"] = graph_lead("5550002", {"full_name": "B", "phone_number": "+380931234567"})
    graph.down = False
    [poller] = [p for p in pollers_from_config(app.channels, poller_services(app, utcnow)) if p.name == "lead-ads"]
    assert isinstance(poller, LeadAdsPoller)
    poller.fetcher.grace, poller.every = 0, 0.05
    stop = threading.Event()
    runner = threading.Thread(target=poller.run, args=(stop,))
    runner.start()
    try:
        eventually(lambda: count(app, leads) == 2)
    finally:
        stop.set()
        runner.join(timeout=5)
    assert not runner.is_alive() and held_events(app, "facebook_leads") == {}
    assert sorted(lead["name"] for lead in leads_made(app)) == ["A", "B"]


def test_a_repeated_delivery_makes_nothing_new(app: Leadflow, graph: GraphStandIn) -> None:
    graph.leads["42424242"] = graph_lead("42424242", ANSWERS)
    body = leadgen_body({"leadgen_id": "42424242"})
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        post(client, body)
        eventually(lambda: count(app, leads) == 1)
        for _ in range(3):
            assert post(client, body).status_code == 200
    assert count(app, leads) == 1 and count(app, messages) == 1 and len(graph.fetched()) == 1


def test_a_second_form_of_a_client_with_an_open_lead_joins_it(app: Leadflow, graph: GraphStandIn) -> None:
    graph.leads["1001"] = graph_lead("1001", {"full_name": "Olena", "phone_number": "+380671234567"})
    graph.leads["1002"] = graph_lead("1002", {"first_name": "Olena", "last_name": "K", "phone_number": "0671234567",
                                              "what_else?": "leasing too"})  # fmt: skip
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        post(client, leadgen_body({"leadgen_id": "1001"}))
        eventually(lambda: count(app, messages) == 1)
        post(client, leadgen_body({"leadgen_id": "1002"}))
        eventually(lambda: count(app, messages) == 2)
    assert count(app, leads) == 1
    with app.engine.connect() as conn:
        outcomes = conn.execute(select(channel_events.c.outcome).order_by(channel_events.c.id)).scalars().all()
    assert outcomes == ["new_lead", "joined"]


def test_the_signature_is_checked_and_refusals_are_counted_with_nothing_kept(
    app: Leadflow, graph: GraphStandIn
) -> None:
    body = leadgen_body({"leadgen_id": "31337"})
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        missing = post(client, body, secret=None)
        wrong = post(client, body, secret="forged")
        assert (missing.status_code, wrong.status_code) == (401, 403)
        assert APP_SECRET not in wrong.text and PAGE_TOKEN not in wrong.text
        params = {"hub.mode": "subscribe", "hub.verify_token": VERIFY, "hub.challenge": "987654321"}
        shaken = client.get(HOOK, params=params)
        assert shaken.status_code == 200 and shaken.text == "987654321"
        assert shaken.headers["content-type"].startswith("text/plain")
        assert client.get(HOOK, params={**params, "hub.verify_token": "nope"}).status_code == 403
    assert held_events(app, "facebook_leads") == {} and count(app, channel_events) == 0 and graph.calls == []
    with app.engine.connect() as conn:
        counted = {r.reason: r.count for r in conn.execute(
            select(channel_refusals.c.reason, channel_refusals.c["count"])
            .where(channel_refusals.c.channel == "facebook_leads"))}  # fmt: skip
    assert counted == {"missing signature": 1, "wrong signature": 1, "wrong verify token": 1}


def test_what_is_no_lead_is_kept_and_answered_200_and_the_graph_api_is_not_asked(
    app: Leadflow, graph: GraphStandIn
) -> None:
    feed = {"object": "page", "entry": [{"id": "1", "time": 1, "changes": [{"field": "feed", "value": {"item": "x"}}]}]}
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        answers = [post(client, b"not json"), post(client, {"object": "whatsapp_business_account", "entry": []}),
                   post(client, feed), post(client, leadgen_body({"leadgen_id": "../me/accounts"}))]  # fmt: skip
        assert all(answer.status_code == 200 for answer in answers)
        taken = [answer.json()["taken"] for answer in answers]
        assert taken == [["unreadable"], ["unreadable"], ["ignored"], ["unreadable"]]  # a feed post is understood
    assert graph.calls == [] and held_events(app, "facebook_leads") == {} and count(app, leads) == 0
    with app.engine.connect() as conn:
        reasons = conn.execute(select(channel_events.c.reason).order_by(channel_events.c.id)).scalars().all()
    assert "JSONDecodeError" in reasons[0] and "not a page notification" in reasons[1]
    assert "'feed' field" in reasons[2] and "valid leadgen_id" in reasons[3]


def test_a_form_intake_will_not_have_is_kept_with_why_and_not_asked_again(app: Leadflow, graph: GraphStandIn) -> None:
    graph.leads["8080"] = graph_lead("8080", {"full_name": "No Contact", "favourite_colour": "green"})
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        post(client, leadgen_body({"leadgen_id": "8080"}))
        eventually(lambda: count(app, channel_events) == 1)
    assert count(app, leads) == 0 and held_events(app, "facebook_leads") == {}
    with app.engine.connect() as conn:
        event = conn.execute(select(channel_events)).mappings().one()
    assert event["outcome"] == "unreadable" and event["external_id"] == "8080"
    assert "cannot make a lead: no way to reach the client" in event["reason"]
    assert event["payload"]["lead"]["field_data"][1]["values"] == ["green"]
    assert fetcher(app).fetch() == 0 and len(graph.fetched()) == 1


def test_a_channel_that_is_not_set_up_answers_404_naming_the_setting(app: Leadflow) -> None:
    app.channels = ChannelsConfig()
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        for answer in (post(client, leadgen_body({"leadgen_id": "1"})),
                       client.get(HOOK, params={"hub.mode": "subscribe", "hub.verify_token": VERIFY})):  # fmt: skip
            assert answer.status_code == 404 and "LEADFLOW_CHANNELS__META_PAGE_ACCESS_TOKEN" in answer.text
    assert count(app, channel_events) == 0


def test_the_answers_map_to_the_leads_fields() -> None:
    notice = LeadgenNotice("77", page_id="5", form_id="6", ad_id=None)
    message = lead_message(notice, graph_lead("77", {
        "first_name": "Ivan", "last_name": "Franko", "work_email": "ivan@franko.example", "country": "pl",
        "budget": "15000", "job_title": "CFO", "phone_number": "",
    }, platform="something_new"))  # fmt: skip
    assert message.name == "Ivan Franko" and message.kind == "form" and message.sender is None
    assert message.lead["email"] == "ivan@franko.example" and message.lead["region"] == "PL"
    assert message.lead["budget"] == "15000" and message.lead["source"] == "something_new"
    assert message.lead["extra"] == {"job_title": "CFO", "meta_form_id": "999888777", "meta_page_id": "5"}
    assert "phone" not in message.lead and message.text == "work email: ivan@franko.example\ncountry: pl\n" \
        "budget: 15000\njob title: CFO"  # fmt: skip
    notices, others = read_body(json.dumps(leadgen_body({"leadgen_id": 12345, "form_id": "6"},
                                                        {"form_id": "no id"})).encode())  # fmt: skip
    assert [n.leadgen_id for n in notices] == ["12345"] and notices[0].page_id == "444555666777"
    assert len(others) == 1 and isinstance(others[0], Unreadable)


def test_the_manager_answers_a_form_lead_by_e_mail_and_a_missed_deadline_escalates(
    app: Leadflow, graph: GraphStandIn, smtp_server: LocalSMTP
) -> None:
    app.notify = NotifyConfig(smtp_host=smtp_server.host, smtp_port=smtp_server.port, smtp_starttls=False,
                              smtp_from="Sales <sales@bank.example.ua>")  # fmt: skip
    graph.leads["5550001"] = graph_lead("5550001", ANSWERS)
    graph.leads["5550002"] = graph_lead("5550002", {**ANSWERS, "full_name": "Ігор Мовчун", "email": "igor@example.org",
                                                    "phone_number": "+380501112299"})  # fmt: skip
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        post(client, leadgen_body({"leadgen_id": "5550001"}))
        post(client, leadgen_body({"leadgen_id": "5550002"}))
        eventually(lambda: count(app, leads) == 2)
        by_email = {lead["email"]: lead for lead in leads_made(app)}  # fetched in either order
        first, second = by_email["olena.koval@example.org"], by_email["igor@example.org"]
        anna = person(app, "anna", "manager", manager="anna")
        sent = client.post(f"/api/v1/leads/{first['id']}/messages", headers=anna,
                           json={"text": "Добрий день! Дякуємо за заявку, коли вам зручно поговорити?"})  # fmt: skip
        assert sent.status_code == 202 and sent.json()["channel"] == "email", sent.text
    senders = {"reply": ReplySender(repliers_from_config(app.channels, app.notify))}
    assert deliver_due(app.engine, senders, app.notify, utcnow()).sent == 1
    [envelope] = smtp_server.envelopes
    assert envelope.rcpt_tos == ["olena.koval@example.org"] and envelope.mail_from == "sales@bank.example.ua"
    contacted = next(lead for lead in leads_made(app) if lead["id"] == first["id"])
    assert contacted["first_contact_at"] is not None and contacted["sla_state"] == "met"
    assert escalate_due(app, utcnow() + timedelta(minutes=11)) == 1  # the other form's lead, nobody answered it
    moved = next(lead for lead in leads_made(app) if lead["id"] == second["id"])
    assert moved["sla_hops"] == 1
