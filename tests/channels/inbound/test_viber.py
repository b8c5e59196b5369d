"""Viber end to end, on SQLite and PostgreSQL: Viber's signed callbacks over real HTTP into leadflow's webhook, leads
and their threads in the database, and replies delivered by the outbox to a stand-in of Viber's REST API on
loopback, whose receipts come back through the webhook."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
import typer
from sqlalchemy import func, select
from typer.testing import CliRunner

from leadflow.channels.inbound.config import ChannelsConfig
from leadflow.channels.inbound.registry import ReplySender, repliers_from_config
from leadflow.channels.inbound.viber import RATE_LIMIT_WAIT, ViberReplier, read_body, webhook_url
from leadflow.channels.senders import DeliveryError
from leadflow.core.conversation import DeliveryStatus, InboundMessage, Unreadable
from leadflow.core.policy import SYSTEM
from leadflow.services.context import Leadflow, utcnow
from leadflow.services.delivery import deliver_due
from leadflow.services.leads import set_status
from leadflow.services.sla import escalate_due
from leadflow.settings import get_settings
from leadflow.store.tables import channel_events, channel_refusals, leads, managers, messages, outbox
from tests.channels.inbound.viber_standin import ViberApiStandIn, contact, message, now_ms, receipt, sign, user
from tests.support import admin_headers, live_server, person

TOKEN = "4a7d1c2b9e3f5a60-8b1c2d3e4f5a6b7c-9d0e1f2a3b4c5d6e"  # the shape of a bot's token
CLIENT = "01234567890A="  # Viber user ids are base64 text
WEBHOOK = "/api/v1/channels/viber/webhook"

RULES = """
default_region: UA
default_timezone: Europe/Kyiv
teams:
  - {key: sales, name: Sales, timezone: Europe/Kyiv, head: head}
managers:
  - {key: anna, name: Anna, team: sales}
  - {key: bohdan, name: Bohdan, team: sales}
  - {key: head, name: Halyna, team: sales}
routing:
  rules:
    - {key: all, team: sales, managers: [anna, bohdan], strategy: round_robin}
sla:
  default: {first_contact: 30m, count: wall_clock}
  channels: {viber: 5m}
"""


@dataclass
class Viber:
    app: Leadflow
    http: httpx.Client
    api: ViberApiStandIn

    def post(self, event: Any, *, token: str = TOKEN, raw: bytes | None = None) -> httpx.Response:
        """Post a callback signed as Viber signs it."""
        body = raw if raw is not None else json.dumps(event).encode()
        return self.http.post(WEBHOOK, content=body, headers={"X-Viber-Content-Signature": sign(token, body),
                                                              "Content-Type": "application/json"})  # fmt: skip

    def deliver(self, now: datetime | None = None) -> None:
        """One round of the worker's outbox delivery, with the repliers the settings give."""
        senders = {"reply": ReplySender(repliers_from_config(self.app.channels, self.app.notify))}
        try:
            deliver_due(self.app.engine, senders, self.app.notify, now or utcnow())
        finally:
            senders["reply"].close()

    def one(self, query: Any) -> Any:
        with self.app.engine.connect() as conn:
            return conn.execute(query).mappings().first()

    def count(self, table: Any) -> int:
        with self.app.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


@pytest.fixture
def api() -> Iterator[ViberApiStandIn]:
    stand_in = ViberApiStandIn(TOKEN)
    yield stand_in
    stand_in.close()


@pytest.fixture
def viber(make_app: Callable[[str], Leadflow], api: ViberApiStandIn) -> Iterator[Viber]:
    app = make_app(RULES)
    app.channels = ChannelsConfig(viber_auth_token=TOKEN, viber_api_base=api.url, viber_sender_name="Acme sales")
    with live_server(app, channels=app.channels) as url, httpx.Client(base_url=url, timeout=10) as http:
        yield Viber(app, http, api)


def lead_of(v: Viber, user_id: str = CLIENT) -> Any:
    return v.one(select(leads).where(leads.c.messenger_id == user_id).order_by(leads.c.id.desc()))


def owner_key(v: Viber, lead: Any) -> str:
    return str(v.one(select(managers.c.key).where(managers.c.id == lead["manager_id"]))["key"])


def manager_reply(v: Viber, lead_id: int, text: str) -> dict[str, Any]:
    """The owner of the lead answers from leadflow, signed in."""
    lead = v.one(select(leads).where(leads.c.id == lead_id))
    key = owner_key(v, lead)
    answer = v.http.post(f"/api/v1/leads/{lead_id}/messages", json={"text": text},
                         headers=person(v.app, f"{key}-user", "manager", manager=key))  # fmt: skip
    assert answer.status_code == 202, answer.text
    body: dict[str, Any] = answer.json()
    return body


def reply_row(v: Viber, message_id: int) -> Any:
    return v.one(select(messages).where(messages.c.id == message_id))


# -- The signature ----------------------------------------------------------------------------------------------------


def test_a_callback_signed_with_the_bots_token_is_taken_and_others_are_refused_counted_and_not_kept(
    viber: Viber,
) -> None:
    event = message(5_400_000_000_000_000_001, CLIENT, "Hello, how much is the credit?")
    body = json.dumps(event).encode()

    wrong = viber.post(event, token="another-bots-token-0000000000000000")
    missing = viber.http.post(WEBHOOK, content=body, headers={"Content-Type": "application/json"})
    other_body = viber.http.post(WEBHOOK, content=body.replace(b"credit", b"casino"),
                                 headers={"X-Viber-Content-Signature": sign(TOKEN, body)})  # fmt: skip
    assert (wrong.status_code, missing.status_code, other_body.status_code) == (403, 401, 403)
    assert "viber: wrong signature" in wrong.text and TOKEN not in wrong.text
    assert "viber: missing signature" in missing.text
    assert viber.count(channel_events) == viber.count(leads) == viber.count(messages) == 0
    with viber.app.engine.connect() as conn:
        refused = {r.reason: r.count for r in conn.execute(select(channel_refusals))}
    assert refused == {"wrong signature": 2, "missing signature": 1}

    taken = viber.post(event)
    assert taken.status_code == 200, taken.text
    assert taken.json() == {"ok": True, "taken": ["new_lead"]}
    assert viber.count(leads) == 1


def test_a_signed_body_replayed_hours_later_is_refused(viber: Viber) -> None:
    event = message(5_400_000_000_000_000_002, CLIENT, "Hello")
    event["timestamp"] = now_ms() - int(timedelta(hours=7).total_seconds() * 1000)

    replayed = viber.post(event)

    assert replayed.status_code == 403 and "replayed" in replayed.text
    assert viber.count(channel_events) == viber.count(leads) == 0


def test_without_a_token_the_webhook_is_off_and_says_what_to_set(make_app: Callable[[str], Leadflow]) -> None:
    app = make_app(RULES)
    with live_server(app) as url:
        body = json.dumps(message(1, CLIENT, "Hello")).encode()
        answer = httpx.post(url + WEBHOOK, content=body, headers={"X-Viber-Content-Signature": sign(TOKEN, body)})
    assert answer.status_code == 404
    assert "LEADFLOW_CHANNELS__VIBER_AUTH_TOKEN" in answer.text


# -- Messages become leads and threads -------------------------------------------------------------------------------


def test_a_new_clients_message_makes_an_assigned_lead_with_its_thread(viber: Viber) -> None:
    event = message(5_400_000_000_000_000_010, CLIENT, "Hello, how much is the credit?")

    answer = viber.post(event)

    assert answer.json() == {"ok": True, "taken": ["new_lead"]}
    lead = lead_of(viber)
    assert lead["channel"] == "viber" and lead["name"] == "Olena Kovalenko"
    assert lead["manager_id"] is not None and lead["status"] == "assigned"
    assert lead["message"] == "Hello, how much is the credit?"
    assert lead["region"] == "UA" and lead["language"] == "uk"
    assert lead["sla_state"] == "running" and lead["sla_due_at"] - lead["created_at"] == timedelta(minutes=5)
    thread = viber.http.get(f"/api/v1/leads/{lead['id']}/messages", headers=admin_headers(viber.app)).json()["items"]
    assert [(m["direction"], m["channel"], m["address"], m["text"]) for m in thread] == [
        ("in", "viber", CLIENT, "Hello, how much is the credit?")
    ]
    sent_at = datetime.fromisoformat(thread[0]["meta"]["sent_at"])
    assert int(sent_at.timestamp() * 1000) == event["timestamp"]  # Viber's epoch milliseconds


def test_a_second_message_joins_the_open_lead_and_a_repeat_creates_nothing(viber: Viber) -> None:
    first = message(5_400_000_000_000_000_020, CLIENT, "Hello")
    second = message(5_400_000_000_000_000_021, CLIENT, "I need 50 000 for a year")
    viber.post(first)

    joined = viber.post(second)
    repeated = viber.post(second)

    assert joined.json()["taken"] == ["joined"]
    assert repeated.status_code == 200 and repeated.json()["taken"] == ["repeat"]
    assert viber.count(leads) == 1 and viber.count(messages) == 2 and viber.count(channel_events) == 2
    lead = lead_of(viber)
    with viber.app.engine.connect() as conn:
        bodies = conn.execute(select(messages.c.body).where(messages.c.lead_id == lead["id"])
                              .order_by(messages.c.id)).scalars().all()  # fmt: skip
    assert bodies == ["Hello", "I need 50 000 for a year"]


def test_a_client_whose_lead_was_won_opens_a_new_lead_when_writing_again(viber: Viber) -> None:
    viber.post(message(5_400_000_000_000_000_030, CLIENT, "Hello"))
    won = lead_of(viber)
    set_status(viber.app, won["id"], "converted", utcnow(), who=SYSTEM)

    again = viber.post(message(5_400_000_000_000_000_031, CLIENT, "I want another one"))

    assert again.json()["taken"] == ["new_lead"]
    repeat_sale = lead_of(viber)
    assert repeat_sale["id"] != won["id"] and repeat_sale["status"] == "assigned"
    assert repeat_sale["manager_id"] is not None
    in_thread = viber.one(select(messages).where(messages.c.lead_id == repeat_sale["id"]))
    assert in_thread["body"] == "I want another one"


def test_a_shared_contact_gives_the_lead_the_clients_phone(viber: Viber) -> None:
    answer = viber.post(contact(5_400_000_000_000_000_040, CLIENT, "+380 67 123 45 67", name="Olena K."))

    assert answer.json()["taken"] == ["new_lead"]
    lead = lead_of(viber)
    assert lead["phone"] == "+380671234567"
    shared = viber.one(select(messages).where(messages.c.lead_id == lead["id"]))
    assert shared["kind"] == "contact" and shared["meta"]["contact_name"] == "Olena K."
    assert "+380 67 123 45 67" in shared["body"]


def test_a_picture_without_a_caption_still_reaches_the_thread(viber: Viber) -> None:
    picture = message(5_400_000_000_000_000_050, CLIENT, None, type="picture",
                      media="https://dl-media.viber.com/1/share/2/long/bots/generic/media.jpg")  # fmt: skip

    viber.post(picture)

    shown = viber.one(select(messages))
    assert shown["body"] == "[picture]" and shown["meta"]["media"].endswith("media.jpg")


# -- What is not a client's message -----------------------------------------------------------------------------------


def test_subscriptions_opened_chats_and_the_webhook_check_are_kept_as_events_not_leads(viber: Viber) -> None:
    stamp = now_ms()
    events = [
        {"event": "webhook", "timestamp": stamp, "chat_hostname": "SN-CHAT-05_",
         "message_token": 4_912_661_846_655_238_145},
        {"event": "conversation_started", "timestamp": stamp, "chat_hostname": "SN-CHAT-05_",
         "message_token": 4_912_661_846_655_238_146, "type": "open", "context": "spring_ad", "user": user(CLIENT),
         "subscribed": False},
        {"event": "subscribed", "timestamp": stamp, "chat_hostname": "SN-CHAT-05_", "user": user(CLIENT),
         "message_token": 4_912_661_846_655_238_147},
        {"event": "unsubscribed", "timestamp": stamp, "chat_hostname": "SN-CHAT-05_", "user_id": CLIENT,
         "message_token": 4_912_661_846_655_238_148},
    ]  # fmt: skip

    answers = [viber.post(event) for event in events]

    assert [a.status_code for a in answers] == [200, 200, 200, 200]
    assert viber.count(leads) == viber.count(messages) == 0
    with viber.app.engine.connect() as conn:
        kept = conn.execute(select(channel_events.c.external_id, channel_events.c.reason)
                            .order_by(channel_events.c.id)).all()  # fmt: skip
    assert [k.external_id for k in kept] == [
        "webhook:4912661846655238145",
        "conversation_started:4912661846655238146",
        "subscribed:4912661846655238147",
        "unsubscribed:4912661846655238148",
    ]
    assert "opened the chat from the link with context 'spring_ad' without writing" in kept[1].reason
    assert viber.post(events[1]).json()["taken"] == ["repeat"]


def test_what_leadflow_cannot_read_is_kept_with_the_reason_and_answered_200(viber: Viber) -> None:
    broken = viber.post(None, raw=b"{not json")
    a_list = viber.post([1, 2])
    unknown = viber.post({"event": "client_status", "timestamp": now_ms(), "message_token": 77})

    assert [a.status_code for a in (broken, a_list, unknown)] == [200, 200, 200]
    assert viber.count(leads) == 0
    with viber.app.engine.connect() as conn:
        kept = conn.execute(select(channel_events).order_by(channel_events.c.id)).mappings().all()
    assert [k["outcome"] for k in kept] == ["unreadable"] * 3
    assert kept[0]["reason"].startswith("not understood: JSONDecodeError") and kept[0]["payload"]["body"] == "{not json"
    assert "'client_status'" in kept[2]["reason"] and kept[2]["external_id"] == "client_status:77"


# -- Replies ----------------------------------------------------------------------------------------------------------


def test_a_managers_reply_goes_out_through_send_message_stops_the_clock_and_its_receipts_follow(viber: Viber) -> None:
    viber.post(message(5_400_000_000_000_000_060, CLIENT, "Hello"))
    lead = lead_of(viber)

    queued = manager_reply(viber, lead["id"], "Good afternoon! Olena, what sum do you need?")
    viber.deliver()

    assert queued["channel"] == "viber" and queued["address"] == CLIENT and queued["contact"] is True
    [(method, headers, body)] = viber.api.calls
    assert method == "send_message" and headers["x-viber-auth-token"] == TOKEN
    assert body == {"receiver": CLIENT, "min_api_version": 1, "sender": {"name": "Acme sales"},
                    "tracking_data": str(queued["id"]), "type": "text",
                    "text": "Good afternoon! Olena, what sum do you need?"}  # fmt: skip
    sent = reply_row(viber, queued["id"])
    token = viber.api._next_token
    assert sent["status"] == "sent" and sent["external_id"] == str(token)
    contacted = viber.one(select(leads).where(leads.c.id == lead["id"]))
    assert contacted["first_contact_at"] is not None and contacted["sla_state"] == "met"

    assert viber.post(receipt("delivered", token, CLIENT)).json()["taken"] == ["status"]
    assert reply_row(viber, queued["id"])["status"] == "delivered"
    viber.post(receipt("seen", token, CLIENT))
    assert reply_row(viber, queued["id"])["status"] == "read"
    viber.post(receipt("delivered", token, CLIENT))  # a receipt repeated late changes nothing
    assert reply_row(viber, queued["id"])["status"] == "read"


def test_the_clients_answer_to_a_reply_names_it_through_tracking_data(viber: Viber) -> None:
    viber.post(message(5_400_000_000_000_000_070, CLIENT, "Hello"))
    queued = manager_reply(viber, lead_of(viber)["id"], "What sum do you need?")
    viber.deliver()

    viber.post(message(5_400_000_000_000_000_071, CLIENT, "50 000", tracking_data=str(queued["id"])))

    answer = viber.one(select(messages).where(messages.c.body == "50 000"))
    assert answer["meta"]["answers_message"] == str(queued["id"]) and answer["lead_id"] == lead_of(viber)["id"]


def test_a_failed_receipt_marks_the_reply_failed_with_vibers_reason(viber: Viber) -> None:
    viber.post(message(5_400_000_000_000_000_080, CLIENT, "Hello"))
    queued = manager_reply(viber, lead_of(viber)["id"], "Hello from Acme")
    viber.deliver()

    viber.post(receipt("failed", viber.api._next_token, CLIENT, desc="receiver blocked the bot"))

    failed = reply_row(viber, queued["id"])
    assert failed["status"] == "failed" and failed["error"] == "receiver blocked the bot"


def test_a_rate_limited_or_failing_viber_leaves_the_reply_queued_for_the_next_attempt(viber: Viber) -> None:
    viber.post(message(5_400_000_000_000_000_090, CLIENT, "Hello"))
    queued = manager_reply(viber, lead_of(viber)["id"], "Hello from Acme")
    viber.api.plan(200, {"status": 12, "status_message": "Too many requests", "message_token": 1,
                         "chat_hostname": "SN-CHAT-05_"})  # fmt: skip
    viber.api.plan(500, b"<html>Internal Server Error</html>")
    now = utcnow()

    viber.deliver(now)
    row = viber.one(select(outbox).where(outbox.c.channel == "reply"))
    assert (row["status"], row["attempts"]) == ("pending", 1)
    assert "status 12" in row["last_error"] and row["next_attempt_at"] - now >= RATE_LIMIT_WAIT
    assert reply_row(viber, queued["id"])["status"] == "queued"

    viber.deliver(now + timedelta(minutes=11))
    row = viber.one(select(outbox).where(outbox.c.channel == "reply"))
    assert (row["status"], row["attempts"]) == ("pending", 2) and "HTTP 500" in row["last_error"]

    viber.deliver(now + timedelta(hours=1))
    assert viber.one(select(outbox).where(outbox.c.channel == "reply"))["status"] == "sent"
    assert reply_row(viber, queued["id"])["status"] == "sent" and len(viber.api.sent()) == 3


def test_a_refusal_that_retrying_cannot_mend_dead_letters_the_reply_and_marks_it_failed(viber: Viber) -> None:
    viber.post(message(5_400_000_000_000_000_100, CLIENT, "Hello"))
    queued = manager_reply(viber, lead_of(viber)["id"], "Hello from Acme")
    viber.api.plan(200, {"status": 6, "status_message": "receiverNotSubscribed", "chat_hostname": "SN-CHAT-05_"})

    viber.deliver()

    row = viber.one(select(outbox).where(outbox.c.channel == "reply"))
    assert (row["status"], row["attempts"]) == ("dead", 1)
    failed = reply_row(viber, queued["id"])
    assert failed["status"] == "failed" and "not subscribed to the bot" in failed["error"]
    assert TOKEN not in failed["error"] and TOKEN not in row["last_error"]


# -- The adapter on its own -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("http", "answer", "retryable", "says"),
    [
        (200, {"status": 12, "status_message": "tooManyRequests"}, True, "rate limit"),
        (200, {"status": 1000, "status_message": "General error"}, True, "tried again later"),
        (503, b"unavailable", True, "HTTP 503"),
        (200, b"<html>a proxy page</html>", True, "without a status"),
        (200, {"status": 5, "status_message": "receiverNotRegistered"}, False, "not registered with Viber"),
        (200, {"status": 6, "status_message": "receiverNotSubscribed"}, False, "not subscribed"),
        (200, {"status": 2, "status_message": "invalidAuthToken"}, False, "LEADFLOW_CHANNELS__VIBER_AUTH_TOKEN"),
        (200, {"status": 10, "status_message": "webhookNotSet"}, False, "set-webhook"),
        (400, b"bad request", False, "HTTP 400"),
    ],
)
def test_vibers_refusals_are_retried_only_where_retrying_can_help(
    api: ViberApiStandIn, http: int, answer: Any, retryable: bool, says: str
) -> None:
    replier = ViberReplier(ChannelsConfig(viber_auth_token=TOKEN, viber_api_base=api.url))
    api.plan(http, answer)
    try:
        with pytest.raises(DeliveryError) as refused:
            replier.send(CLIENT, "Hello", None, {"message_id": 7})
    finally:
        replier.close()
    assert refused.value.retryable is retryable
    assert says in refused.value.message and TOKEN not in refused.value.message


def test_an_unreachable_viber_is_tried_again(unused_port: int) -> None:
    replier = ViberReplier(ChannelsConfig(viber_auth_token=TOKEN, viber_api_base=f"http://127.0.0.1:{unused_port}"))
    try:
        with pytest.raises(DeliveryError) as refused:
            replier.send(CLIENT, "Hello", None, {})
    finally:
        replier.close()
    assert refused.value.retryable and TOKEN not in refused.value.message


def test_reading_a_callback_gives_the_values_the_conversation_takes() -> None:
    [text] = read_body(json.dumps(message(5_491_000_000_000_000_123, CLIENT, "Hi")).encode())
    [status] = read_body(json.dumps(receipt("seen", 5_491_000_000_000_000_124, CLIENT)).encode())
    [noted] = read_body(json.dumps({"event": "subscribed", "user": user(CLIENT), "message_token": 9}).encode())

    assert isinstance(text, InboundMessage)
    assert (text.event_id, text.sender, text.text, text.name) == (
        "5491000000000000123",
        CLIENT,
        "Hi",
        "Olena Kovalenko",
    )
    assert isinstance(status, DeliveryStatus)
    assert (status.event_id, status.message_external_id, status.state) == (
        "5491000000000000124:seen", "5491000000000000124", "read")  # fmt: skip
    assert isinstance(noted, Unreadable) and noted.reason.startswith("ignored: Olena Kovalenko")


# -- Registering the webhook ------------------------------------------------------------------------------------------


@pytest.fixture
def channels_cli(api: ViberApiStandIn, monkeypatch: pytest.MonkeyPatch) -> Iterator[typer.Typer]:
    from leadflow.cli import app
    from leadflow.cli_channels import channels_app

    monkeypatch.setenv("LEADFLOW_CHANNELS__VIBER_AUTH_TOKEN", TOKEN)
    monkeypatch.setenv("LEADFLOW_CHANNELS__VIBER_API_BASE", api.url)
    get_settings.cache_clear()
    assert app is not None
    yield channels_app  # `leadflow channels`
    get_settings.cache_clear()


def test_set_webhook_registers_leadflows_address_with_viber(api: ViberApiStandIn, channels_cli: typer.Typer) -> None:
    done = CliRunner().invoke(channels_cli, ["viber", "set-webhook", "https://leads.example.com"])

    assert done.exit_code == 0, done.output
    [(method, headers, body)] = api.calls
    assert method == "set_webhook" and headers["x-viber-auth-token"] == TOKEN
    assert body == {"url": "https://leads.example.com/api/v1/channels/viber/webhook",
                    "event_types": ["delivered", "seen", "failed", "subscribed", "unsubscribed",
                                    "conversation_started"], "send_name": True, "send_photo": False}  # fmt: skip
    assert "https://leads.example.com/api/v1/channels/viber/webhook" in done.output


def test_set_webhook_says_in_one_line_why_viber_refused(api: ViberApiStandIn, channels_cli: typer.Typer) -> None:
    api.plan(200, {"status": 1, "status_message": "invalidUrl", "chat_hostname": "SN-CHAT-05_"})

    done = CliRunner().invoke(channels_cli, ["viber", "set-webhook", "https://leads.example.com"])

    assert done.exit_code == 1
    assert "Viber's webhook was not set" in done.output and "trusted certificate" in done.output
    assert TOKEN not in done.output


def test_set_webhook_takes_leadflows_public_address_and_only_https(
    api: ViberApiStandIn, channels_cli: typer.Typer, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = CliRunner().invoke(channels_cli, ["viber", "set-webhook", "http://leads.example.com"])
    monkeypatch.setenv("LEADFLOW_BASE_URL", "https://crm.example.com/")
    get_settings.cache_clear()
    default = CliRunner().invoke(channels_cli, ["viber", "set-webhook"])

    assert plain.exit_code == 1 and "HTTPS addresses only" in plain.output
    assert default.exit_code == 0, default.output
    assert [body["url"] for _, _, body in api.calls] == ["https://crm.example.com/api/v1/channels/viber/webhook"]


def test_the_webhook_address_is_completed_from_leadflows_public_address() -> None:
    assert webhook_url("https://leads.example.com/") == "https://leads.example.com" + "/api/v1/channels/viber/webhook"
    assert webhook_url("https://x.example/hooks/viber") == "https://x.example/hooks/viber"


def test_a_missed_chat_deadline_escalates_to_the_next_manager(viber: Viber) -> None:
    assert viber.post(message(5_400_000_000_000_000_901, CLIENT, "Є хто живий?")).status_code == 200
    lead = lead_of(viber)
    assert lead["sla_due_at"] - lead["created_at"] == timedelta(minutes=5)  # the chat's deadline
    assert escalate_due(viber.app, utcnow() + timedelta(minutes=4)) == 0
    assert escalate_due(viber.app, utcnow() + timedelta(minutes=6)) == 1
    moved = lead_of(viber)
    assert moved["manager_id"] != lead["manager_id"] and moved["sla_hops"] == 1
