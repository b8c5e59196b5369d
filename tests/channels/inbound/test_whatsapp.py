"""WhatsApp end to end, over real HTTP on loopback: a client's messages through the signed webhook to an assigned
lead with its thread, a manager's reply out through a stand-in of the Graph API in the Cloud API's wire format,
the reply stopping the chat's first-contact clock, its statuses coming back, and the 24-hour window."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from leadflow.channels.inbound.config import ChannelsConfig
from leadflow.channels.inbound.registry import ReplySender, repliers_from_config
from leadflow.channels.inbound.whatsapp import read_body
from leadflow.core.conversation import DeliveryStatus, InboundMessage, Unreadable
from leadflow.core.policy import SYSTEM
from leadflow.services.context import Leadflow, utcnow
from leadflow.services.delivery import deliver_due
from leadflow.services.leads import set_status
from leadflow.services.sla import escalate_due
from leadflow.store.tables import channel_events, channel_refusals, leads, messages, outbox
from tests.channels.inbound.graph_standin import (
    GraphStandIn,
    graph_error,
    messages_change,
    sign,
    wa_message,
    wa_status,
    wa_text,
    whatsapp_body,
)
from tests.channels.inbound.world import chat_team
from tests.support import live_server, person

APP_SECRET = "meta-app-secret-0123456789abcdef"
VERIFY = "verify-token-for-the-handshake"
TOKEN = "EAAG-whatsapp-access-token-0123456789"
PHONE_ID = "106540352242922"
CLIENT = "380671234567"
RULES = chat_team("whatsapp: 5m")
HOOK = "/api/v1/channels/whatsapp/webhook"


@pytest.fixture
def graph() -> Iterator[GraphStandIn]:
    stand_in = GraphStandIn(TOKEN, "unused-page-token", PHONE_ID)
    yield stand_in
    stand_in.close()


@pytest.fixture
def app(make_app: Callable[[str], Leadflow], graph: GraphStandIn) -> Leadflow:
    lf = make_app(RULES)
    lf.channels = ChannelsConfig(meta_app_secret=APP_SECRET, meta_verify_token=VERIFY, whatsapp_access_token=TOKEN,
                                 whatsapp_phone_number_id=PHONE_ID, graph_api_base=graph.base)  # fmt: skip
    return lf


def post(client: httpx.Client, payload: Any, secret: str | None = APP_SECRET) -> httpx.Response:
    body = json.dumps(payload).encode() if not isinstance(payload, bytes) else payload
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Hub-Signature-256"] = sign(secret, body)
    return client.post(HOOK, content=body, headers=headers)


def text_from(wa_id: str, wamid: str, text: str, name: str = "Ivan Petrenko") -> dict[str, Any]:
    return whatsapp_body(messages_change(wa_text(wa_id, wamid, text), contacts={wa_id: name}))


def count(app: Leadflow, table: Any, *where: Any) -> int:
    with app.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


def lead_of(app: Leadflow, lead_id: int) -> dict[str, Any]:
    with app.engine.connect() as conn:
        return dict(conn.execute(select(leads).where(leads.c.id == lead_id)).mappings().one())


def lead_of_client(app: Leadflow, wa_id: str = CLIENT) -> int:
    with app.engine.connect() as conn:
        found = conn.execute(select(leads.c.id).where(leads.c.messenger_id == wa_id)
                             .order_by(leads.c.id.desc())).scalars().first()  # fmt: skip
    assert found is not None, f"no lead of {wa_id}"
    return int(found)


def deliver(app: Leadflow, at: Any = None) -> Any:
    senders = {"reply": ReplySender(repliers_from_config(app.channels, app.notify))}
    return deliver_due(app.engine, senders, app.notify, at or utcnow())


def test_a_message_makes_a_lead_with_its_thread_and_the_reply_goes_back_and_stops_the_clock(
    app: Leadflow, graph: GraphStandIn
) -> None:
    anna = person(app, "anna", "manager", manager="anna")
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        answer = post(client, text_from(CLIENT, "wamid.in.1", "Добрий день, потрібен кредит"))
        assert answer.status_code == 200 and answer.json()["taken"] == ["new_lead"], answer.text
        lead_id = lead_of_client(app)
        lead = lead_of(app, lead_id)
        assert lead["channel"] == "whatsapp" and lead["name"] == "Ivan Petrenko" and lead["phone"] == "+380671234567"
        assert lead["status"] == "assigned" and lead["sla_state"] == "running"
        assert lead["sla_due_at"] - lead["created_at"] == timedelta(minutes=5)  # the chat deadline

        assert post(client, text_from(CLIENT, "wamid.in.2", "Алло?")).json()["taken"] == ["joined"]
        thread = client.get(f"/api/v1/leads/{lead_id}/messages", headers=anna).json()["items"]
        assert [m["text"] for m in thread] == ["Добрий день, потрібен кредит", "Алло?"]
        assert all(m["direction"] == "in" and m["address"] == CLIENT for m in thread)

        sent = client.post(f"/api/v1/leads/{lead_id}/messages", json={"text": "Вітаю! Це Анна."}, headers=anna)
        assert sent.status_code == 202, sent.text
        assert sent.json()["channel"] == "whatsapp" and sent.json()["contact"] is True
        contacted = lead_of(app, lead_id)
        assert contacted["first_contact_at"] is not None and contacted["sla_state"] == "met"

        assert deliver(app).sent == 1
        call = graph.sent()[-1]
        assert call.path == f"/v21.0/{PHONE_ID}/messages"
        assert call.headers["authorization"] == f"Bearer {TOKEN}" and TOKEN not in call.path
        assert call.body == {"messaging_product": "whatsapp", "recipient_type": "individual", "to": CLIENT,
                             "type": "text", "text": {"preview_url": False, "body": "Вітаю! Це Анна."}}  # fmt: skip
        with app.engine.connect() as conn:
            wamid = conn.execute(select(messages.c.external_id).where(messages.c.direction == "out")).scalar_one()
        assert wamid.startswith("wamid.")

        # Meta's word on the reply comes back through the same webhook, in one batch; a repeat changes nothing.
        statuses = whatsapp_body(messages_change(statuses=[wa_status(wamid, s, CLIENT)
                                                           for s in ("sent", "delivered", "read")]))  # fmt: skip
        assert post(client, statuses).json()["taken"] == ["status", "status", "status"]
        assert post(client, statuses).json()["taken"] == ["repeat", "repeat", "repeat"]
        late = whatsapp_body(messages_change(statuses=[wa_status(wamid, "delivered", CLIENT, timestamp="1765000999")]))
        assert post(client, late).json()["taken"] == ["repeat"]  # the same wamid and state: the same event
        reply = client.get(f"/api/v1/leads/{lead_id}/messages", headers=anna).json()["items"][-1]
        assert reply["direction"] == "out" and reply["status"] == "read"
    assert count(app, leads) == 1


def test_a_failed_status_is_kept_on_the_reply_with_metas_reason(app: Leadflow, graph: GraphStandIn) -> None:
    anna = person(app, "anna", "manager", manager="anna")
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        post(client, text_from(CLIENT, "wamid.in.1", "hi"))
        lead_id = lead_of_client(app)
        client.post(f"/api/v1/leads/{lead_id}/messages", json={"text": "Hello"}, headers=anna)
        deliver(app)
        with app.engine.connect() as conn:
            wamid = conn.execute(select(messages.c.external_id).where(messages.c.direction == "out")).scalar_one()
        failed = wa_status(wamid, "failed", CLIENT, errors=[{"code": 131026, "title": "Message undeliverable",
                                                             "error_data": {"details": "Receiver is incapable"}}])  # fmt: skip
        assert post(client, whatsapp_body(messages_change(statuses=[failed]))).json()["taken"] == ["status"]
        reply = client.get(f"/api/v1/leads/{lead_id}/messages", headers=anna).json()["items"][-1]
    assert reply["status"] == "failed" and "131026 Message undeliverable: Receiver is incapable" in reply["error"]


def test_the_signature_is_checked_and_refusals_are_counted_with_nothing_stored(app: Leadflow) -> None:
    payload = text_from(CLIENT, "wamid.in.1", "hi")
    body = json.dumps(payload).encode()
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        missing = post(client, payload, secret=None)
        wrong = post(client, payload, secret="not-the-app-secret")
        tampered = client.post(HOOK, content=body.replace(b"hi", b"ho"),
                               headers={"X-Hub-Signature-256": sign(APP_SECRET, body)})  # fmt: skip
        bare = client.post(HOOK, content=body, headers={"X-Hub-Signature-256": sign(APP_SECRET, body)[7:]})
        assert (missing.status_code, wrong.status_code, tampered.status_code, bare.status_code) == (401, 403, 403, 403)
        assert missing.json()["error"] == "unauthenticated" and wrong.json()["error"] == "forbidden"
        assert APP_SECRET not in wrong.text and TOKEN not in wrong.text
        assert count(app, leads) == 0 and count(app, channel_events) == 0 and count(app, messages) == 0
        right = post(client, payload)
        upper = client.post(HOOK, content=body, headers={"X-Hub-Signature-256": sign(APP_SECRET, body).upper()
                                                         .replace("SHA256=", "sha256=")})  # fmt: skip
        assert (right.status_code, upper.status_code) == (200, 200)
        assert upper.json()["taken"] == ["repeat"]  # a replayed call: the same message, nothing new
    with app.engine.connect() as conn:
        counted = {r.reason: r.count for r in conn.execute(
            select(channel_refusals.c.reason, channel_refusals.c["count"]).where(channel_refusals.c.channel == "whatsapp")
        )}  # fmt: skip
    assert counted == {"missing signature": 1, "wrong signature": 3}
    assert count(app, leads) == 1


def test_the_handshake_echoes_the_challenge_only_with_the_verify_token(app: Leadflow) -> None:
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        params = {"hub.mode": "subscribe", "hub.verify_token": VERIFY, "hub.challenge": "1158201444"}
        right = client.get(HOOK, params=params)
        assert right.status_code == 200 and right.text == "1158201444"
        assert right.headers["content-type"].startswith("text/plain")
        wrong = client.get(HOOK, params={**params, "hub.verify_token": "guess"})
        missing = client.get(HOOK, params={"hub.mode": "subscribe", "hub.challenge": "1"})
        assert (wrong.status_code, missing.status_code) == (403, 401)
        assert "1158201444" not in wrong.text and VERIFY not in wrong.text
        not_subscribe = client.get(HOOK, params={**params, "hub.mode": "unsubscribe"})
        assert not_subscribe.status_code == 422 and "hub.mode" in not_subscribe.text
    with app.engine.connect() as conn:
        counted = {
            r.reason: r.count for r in conn.execute(select(channel_refusals.c.reason, channel_refusals.c["count"]))
        }
    assert counted == {"wrong verify token": 1, "missing verify token": 1}


def test_a_batch_takes_every_message_and_status_and_keeps_what_it_cannot_read_apart(app: Leadflow) -> None:
    other = "48501234567"
    first = messages_change(
        wa_message(CLIENT, "wamid.img", "image", image={"id": "m1", "mime_type": "image/jpeg", "caption": "моє авто"}),
        wa_message(
            CLIENT,
            "wamid.loc",
            "location",
            location={"latitude": 50.45, "longitude": 30.52, "name": "Офіс", "address": "Київ"},
        ),
        contacts={CLIENT: "Ivan Petrenko"},
    )
    second = messages_change(
        wa_message(CLIENT, "wamid.btn", "button", button={"payload": "CALL_ME", "text": "Зателефонуйте мені"}),
        wa_message(CLIENT, "wamid.odd", "unsupported", errors=[{"code": 131051, "title": "Message type unknown"}]),
        contacts={CLIENT: "Ivan Petrenko"},
    )
    third = messages_change(
        wa_message(other, "wamid.list", "interactive", interactive={
            "type": "list_reply", "list_reply": {"id": "leasing", "title": "Лізинг", "description": "авто"}}),
        wa_message(other, "wamid.card", "contacts", contacts=[{"name": {"formatted_name": "Oleh Brat"},
                                                               "phones": [{"phone": "+380501112233"}]}]),
        wa_message(other, "wamid.react", "reaction", reaction={"message_id": "wamid.list", "emoji": "👍"}),
        contacts={other: "Piotr"}, statuses=[wa_status("wamid.never.sent", "delivered", other)],
    )  # fmt: skip
    account = {"field": "account_update", "value": {"event": "VERIFIED_ACCOUNT"}}
    batch = whatsapp_body(first, second, third, account, entries=2)
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        answer = post(client, batch)
        assert answer.status_code == 200, answer.text
        # Entry 0 holds the 1st and 3rd changes, entry 1 the 2nd and the account's.
        assert answer.json()["taken"] == ["new_lead", "joined", "new_lead", "joined", "ignored", "status",
                                          "joined", "unreadable", "ignored"]  # fmt: skip
        again = post(client, batch).json()["taken"]
        assert again == ["repeat"] * 9  # what has an id is known by it, the rest by its content
    assert count(app, leads) == 2
    with app.engine.connect() as conn:
        texts = dict(conn.execute(select(messages.c.external_id, messages.c.body)).all())
        reasons = conn.execute(select(channel_events.c.reason)
                               .where(channel_events.c.outcome.in_(("unreadable", "ignored")))
                               .order_by(channel_events.c.id)).scalars().all()  # fmt: skip
    assert texts == {"wamid.img": "моє авто", "wamid.loc": "shared a location: Офіс, Київ (50.45, 30.52)",
                     "wamid.btn": "Зателефонуйте мені", "wamid.list": "Лізинг - авто",
                     "wamid.card": "shared a contact: Oleh Brat +380501112233"}  # fmt: skip
    assert "reaction" in reasons[0] and "account_update" in reasons[2] and len(reasons) == 3
    assert "unsupported" in reasons[1] and "131051 Message type unknown" in reasons[1]


def test_what_is_not_a_whatsapp_notification_is_kept_and_answered_200(app: Leadflow) -> None:
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        garbage = post(client, b"{not json")
        page = post(client, {"object": "page", "entry": []})
        empty = post(client, {"object": "whatsapp_business_account", "entry": []})
        listed = post(client, [1, 2])
        for answer in (garbage, page, empty, listed):
            assert answer.status_code == 200 and answer.json()["taken"] == ["unreadable"], answer.text
    assert count(app, leads) == 0
    with app.engine.connect() as conn:
        reasons = conn.execute(select(channel_events.c.reason).order_by(channel_events.c.id)).scalars().all()
    assert reasons[0].startswith("not understood: JSONDecodeError") and "object is 'page'" in reasons[1]
    assert "without messages" in reasons[2] and "JSON object" in reasons[3]


def test_a_closed_leads_client_opens_a_new_lead_and_a_missed_deadline_escalates(app: Leadflow) -> None:
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        post(client, text_from(CLIENT, "wamid.in.1", "Потрібен кредит"))
        first = lead_of_client(app)
        set_status(app, first, "lost", utcnow(), who=SYSTEM, reason="chose another bank")
        assert post(client, text_from(CLIENT, "wamid.in.2", "Я знову до вас")).json()["taken"] == ["new_lead"]
    second = lead_of_client(app)
    assert second != first and lead_of(app, second)["status"] == "assigned"
    owner = lead_of(app, second)["manager_id"]
    assert escalate_due(app, utcnow() + timedelta(minutes=4)) == 0
    assert escalate_due(app, utcnow() + timedelta(minutes=6)) == 1
    assert lead_of(app, second)["manager_id"] != owner


def test_a_reply_outside_the_24_hour_window_is_refused_with_what_to_do(app: Leadflow) -> None:
    anna = person(app, "anna", "manager", manager="anna")
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        post(client, text_from(CLIENT, "wamid.in.1", "hi"))
        lead_id = lead_of_client(app)
        with app.engine.begin() as conn:  # the client wrote a day and an hour ago
            conn.execute(update(messages).values(created_at=utcnow() - timedelta(hours=25)))
        refused = client.post(f"/api/v1/leads/{lead_id}/messages", json={"text": "Are you there?"}, headers=anna)
        assert refused.status_code == 409, refused.text
        said = refused.json()["message"]
        assert "24-hour" in said and "template" in said and "call the client" in said
    assert count(app, outbox) == 0 and count(app, messages, messages.c.direction == "out") == 0
    assert lead_of(app, lead_id)["first_contact_at"] is None


def test_metas_refusals_are_retried_or_final_as_they_say(app: Leadflow, graph: GraphStandIn) -> None:
    anna = person(app, "anna", "manager", manager="anna")
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        post(client, text_from(CLIENT, "wamid.in.1", "hi"))
        lead_id = lead_of_client(app)
        client.post(f"/api/v1/leads/{lead_id}/messages", json={"text": "one"}, headers=anna)
        graph.planned = [
            (400, graph_error(130429, "(#130429) Rate limit hit")),
            (500, graph_error(131000, "(#131000) Something went wrong")),
            (400, graph_error(131047, "(#131047) Re-engagement message", error_data={
                "messaging_product": "whatsapp",
                "details": "Message failed to send because more than 24 hours have passed since the customer "
                           "last replied to this number."})),
        ]  # fmt: skip
        assert deliver(app).failed == 1
        assert deliver(app, utcnow() + timedelta(hours=1)).failed == 1
        assert deliver(app, utcnow() + timedelta(hours=2)).dead == 1
        reply = client.get(f"/api/v1/leads/{lead_id}/messages", headers=anna).json()["items"][-1]
        assert reply["status"] == "failed" and "code 131047" in reply["error"] and "24 hours" in reply["error"]

        client.post(f"/api/v1/leads/{lead_id}/messages", json={"text": "two"}, headers=anna)
        graph.planned = [(401, graph_error(190, "Error validating access token: Session has expired"))]
        assert deliver(app).dead == 1
        reply = client.get(f"/api/v1/leads/{lead_id}/messages", headers=anna).json()["items"][-1]
        assert "LEADFLOW_CHANNELS__WHATSAPP_ACCESS_TOKEN" in reply["error"] and TOKEN not in reply["error"]
    with app.engine.connect() as conn:
        errors = conn.execute(select(outbox.c.last_error)).scalars().all()
    assert all(TOKEN not in (e or "") for e in errors)


def test_a_replier_that_gets_no_answer_tries_again(app: Leadflow, graph: GraphStandIn) -> None:
    anna = person(app, "anna", "manager", manager="anna")
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        post(client, text_from(CLIENT, "wamid.in.1", "hi"))
        lead_id = lead_of_client(app)
        client.post(f"/api/v1/leads/{lead_id}/messages", json={"text": "one"}, headers=anna)
    graph.close()  # nothing listens there now
    report = deliver(app)
    assert (report.sent, report.failed, report.dead) == (0, 1, 0)
    with app.engine.connect() as conn:
        error = conn.execute(select(outbox.c.last_error)).scalar_one()
    assert error.startswith("WhatsApp did not answer: ConnectError")


def test_a_channel_that_is_not_set_up_answers_404_naming_the_setting(app: Leadflow) -> None:
    app.channels = ChannelsConfig()
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        for answer in (post(client, text_from(CLIENT, "wamid.in.1", "hi")),
                       client.get(HOOK, params={"hub.mode": "subscribe", "hub.verify_token": VERIFY,
                                                "hub.challenge": "1"})):  # fmt: skip
            assert answer.status_code == 404 and "LEADFLOW_CHANNELS__WHATSAPP_ACCESS_TOKEN" in answer.text
    assert count(app, channel_events) == 0


def test_reading_is_pure_and_keeps_what_each_type_carries() -> None:
    items = read_body(json.dumps(whatsapp_body(messages_change(
        wa_text(CLIENT, "wamid.t", "hi", context={"from": "380441112233", "id": "wamid.out.1"},
                referral={"source_type": "ad", "source_id": "120201", "source_url": "https://fb.me/x",
                          "headline": "Кредит за 5 хвилин"}),
        wa_message(CLIENT, "wamid.d", "document", document={"id": "m2", "filename": "passport.pdf"}),
        wa_message(CLIENT, "wamid.i", "interactive", interactive={"type": "button_reply",
                                                                  "button_reply": {"id": "yes", "title": "Так"}}),
        wa_message(CLIENT, "wamid.s", "sticker", sticker={"id": "m3"}),
        wa_text(CLIENT, "wamid.long", "я" * 4096),
        wa_message(CLIENT, "wamid.x", "interactive", interactive={"type": "something_new"}),
        {"id": "wamid.nofrom", "type": "text", "text": {"body": "?"}},
        contacts={CLIENT: "Ivan"}, statuses=[wa_status("wamid.out.1", "deleted", CLIENT)],
    ))).encode())  # fmt: skip
    text, document, button, sticker, long, odd, nofrom, status = items
    assert isinstance(long, InboundMessage) and len(long.text or "") == 4096 and len(long.lead["message"]) == 4000
    assert isinstance(text, InboundMessage) and text.sender == CLIENT and text.lead["phone"] == "+380671234567"
    assert text.reply_to == "wamid.out.1" and text.name == "Ivan" and text.at is not None
    assert text.lead["utm_medium"] == "click_to_whatsapp_ad" and text.lead["utm_content"] == "120201"
    assert isinstance(document, InboundMessage) and document.text == "[document: passport.pdf]"
    assert isinstance(button, InboundMessage) and button.text == "Так" and button.meta["choice_id"] == "yes"
    assert isinstance(sticker, InboundMessage) and sticker.text == "[sticker]"
    assert isinstance(odd, Unreadable) and odd.event_id == "wamid.x" and "something_new" in odd.reason
    assert isinstance(nofrom, Unreadable) and nofrom.event_id is None
    assert isinstance(status, DeliveryStatus) and status.state == "deleted"  # the service stores it as unknown
