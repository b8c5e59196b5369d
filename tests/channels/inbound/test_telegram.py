"""Telegram end to end, over real HTTP on loopback: a client's message through the webhook (or long polling) to an
assigned lead with its thread, a manager's reply back out through a stand-in of the Bot API, the reply stopping
the chat's first-contact clock, and a missed chat deadline escalating."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from leadflow.channels.inbound.config import ChannelsConfig
from leadflow.channels.inbound.ports import PollerServices
from leadflow.channels.inbound.registry import ReplySender, repliers_from_config
from leadflow.channels.inbound.telegram import Pacer, TelegramPoller, read_update, set_webhook, telegram_poller
from leadflow.core.conversation import InboundMessage, Unreadable
from leadflow.core.policy import SYSTEM
from leadflow.services.channel_state import poller_services
from leadflow.services.context import Leadflow, utcnow
from leadflow.services.delivery import deliver_due
from leadflow.services.leads import set_status
from leadflow.services.sla import escalate_due
from leadflow.store.tables import channel_events, channel_refusals, leads, messages
from tests.channels.inbound.telegram_standin import BotApiStandIn, update
from tests.channels.inbound.world import chat_team
from tests.support import live_server, person

TOKEN = "123456:AAE-the-bots-secret-part"
SECRET = "webhook-secret-0123456789"
RULES = chat_team("telegram: 5m")
HOOK = "/api/v1/channels/telegram/webhook"


@pytest.fixture
def bot() -> Iterator[BotApiStandIn]:
    stand_in = BotApiStandIn(TOKEN)
    yield stand_in
    stand_in.close()


@pytest.fixture
def app(make_app: Callable[[str], Leadflow], bot: BotApiStandIn) -> Leadflow:
    lf = make_app(RULES)
    lf.channels = ChannelsConfig(telegram_bot_token=TOKEN, telegram_webhook_secret=SECRET,  # type: ignore[arg-type]
                                 telegram_api_base=bot.url)  # fmt: skip
    return lf


def post(client: httpx.Client, body: Any, secret: str | None = SECRET) -> httpx.Response:
    headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret is not None else {}
    return client.post(HOOK, json=body, headers=headers)


def count(app: Leadflow, table: Any, *where: Any) -> int:
    with app.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


def lead_of(app: Leadflow, lead_id: int) -> dict[str, Any]:
    with app.engine.connect() as conn:
        return dict(conn.execute(select(leads).where(leads.c.id == lead_id)).mappings().one())


def deliver(app: Leadflow, at: Any = None) -> Any:
    senders = {"reply": ReplySender(repliers_from_config(app.channels, app.notify))}
    return deliver_due(app.engine, senders, app.notify, at or utcnow())


def test_a_message_makes_a_lead_with_its_thread_and_the_reply_goes_back_and_stops_the_clock(
    app: Leadflow, bot: BotApiStandIn
) -> None:
    anna = person(app, "anna", "manager", manager="anna")
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        answer = post(client, update(1, 5551, 10, "Добрий день, потрібен кредит"))
        assert answer.status_code == 200 and answer.json()["taken"] == ["new_lead"], answer.text
        lead_id = lead_of_chat(app, "5551")
        lead = lead_of(app, lead_id)
        assert lead["channel"] == "telegram" and lead["name"] == "Ivan Petrenko" and lead["status"] == "assigned"
        assert lead["sla_state"] == "running"
        assert lead["sla_due_at"] - lead["created_at"] == timedelta(minutes=5)  # the chat deadline, not 30 minutes

        assert post(client, update(2, 5551, 11, "Алло?")).json()["taken"] == ["joined"]
        thread = client.get(f"/api/v1/leads/{lead_id}/messages", headers=anna).json()["items"]
        assert [m["text"] for m in thread] == ["Добрий день, потрібен кредит", "Алло?"]
        assert all(m["direction"] == "in" and m["address"] == "5551" for m in thread)

        sent = client.post(f"/api/v1/leads/{lead_id}/messages", json={"text": "Вітаю! Це Анна."}, headers=anna)
        assert sent.status_code == 202, sent.text
        assert sent.json()["channel"] == "telegram" and sent.json()["contact"] is True
        contacted = lead_of(app, lead_id)
        assert contacted["first_contact_at"] is not None and contacted["sla_state"] == "met"

        assert deliver(app).sent == 1
        assert bot.sent()[-1]["chat_id"] == "5551" and bot.sent()[-1]["text"] == "Вітаю! Це Анна."
        reply = client.get(f"/api/v1/leads/{lead_id}/messages", headers=anna).json()["items"][-1]
        assert reply["direction"] == "out" and reply["status"] == "sent" and reply["meta"] == {}
    with app.engine.connect() as conn:
        external = conn.execute(select(messages.c.external_id).where(messages.c.direction == "out")).scalar_one()
    assert external == "1001"  # the Bot API's message id, kept


def lead_of_chat(app: Leadflow, chat: str) -> int:
    with app.engine.connect() as conn:
        return int(conn.execute(select(leads.c.id).where(leads.c.messenger_id == chat)
                                .order_by(leads.c.id.desc())).scalars().first())  # fmt: skip


def test_the_secret_token_is_checked_and_refusals_are_counted_with_nothing_stored(app: Leadflow) -> None:
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        missing = post(client, update(1, 5551, 10, "hi"), secret=None)
        wrong = post(client, update(1, 5551, 10, "hi"), secret="not-the-secret")
        again = post(client, update(1, 5551, 10, "hi"), secret="not-the-secret")
        assert (missing.status_code, wrong.status_code, again.status_code) == (401, 403, 403)
        assert missing.json()["error"] == "unauthenticated" and wrong.json()["error"] == "forbidden"
        assert SECRET not in wrong.text
    assert count(app, leads) == 0 and count(app, channel_events) == 0 and count(app, messages) == 0
    with app.engine.connect() as conn:
        counted = {
            r.reason: r.count for r in conn.execute(select(channel_refusals.c.reason, channel_refusals.c["count"]))
        }
    assert counted == {"missing secret token": 1, "wrong secret token": 2}


def test_a_repeat_creates_nothing_and_what_is_not_understood_is_kept_and_answered_200(app: Leadflow) -> None:
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        assert post(client, update(7, 5551, 10, "hi")).json()["taken"] == ["new_lead"]
        assert post(client, update(7, 5551, 10, "hi")).json()["taken"] == ["repeat"]
        garbage = client.post(HOOK, content=b"{not json", headers={"X-Telegram-Bot-Api-Secret-Token": SECRET})
        assert garbage.status_code == 200 and garbage.json()["taken"] == ["unreadable"]
        group = update(8, -100777, 3, "hello all")
        group["message"]["chat"]["type"] = "group"
        assert post(client, group).json()["taken"] == ["ignored"]  # understood, and not a client's request
        edited = {"update_id": 9, "edited_message": update(9, 5551, 10, "hi!")["message"]}
        assert post(client, edited).json()["taken"] == ["ignored"]
        again = client.post(HOOK, content=b"{not json", headers={"X-Telegram-Bot-Api-Secret-Token": SECRET})
        assert again.json()["taken"] == ["repeat"]  # the same body again is kept once
    assert count(app, leads) == 1 and count(app, messages) == 1
    with app.engine.connect() as conn:
        reasons = conn.execute(select(channel_events.c.reason).where(channel_events.c.outcome != "new_lead")
                               .order_by(channel_events.c.id)).scalars().all()  # fmt: skip
    assert reasons[0].startswith("not understood: JSONDecodeError")
    assert "group chat" in reasons[1] and "edited_message" in reasons[2]


def test_a_shared_contact_gives_the_phone_and_a_closed_leads_client_opens_a_new_lead(app: Leadflow) -> None:
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        post(client, update(1, 5551, 10, "/start spring_ad"))
        first = lead_of_chat(app, "5551")
        assert lead_of(app, first)["utm"] == {"utm_campaign": "spring_ad"}
        contact = {"phone_number": "+380671234567", "first_name": "Ivan", "user_id": 5551}
        assert post(client, update(2, 5551, 11, contact=contact)).json()["taken"] == ["joined"]
        set_status(app, first, "lost", utcnow(), who=SYSTEM, reason="chose another bank")
        assert post(client, update(3, 5551, 12, "Я знову до вас")).json()["taken"] == ["new_lead"]
    second = lead_of_chat(app, "5551")
    assert second != first
    repeat = lead_of(app, second)
    assert repeat["status"] == "assigned" and repeat["duplicate_of_id"] == first  # a repeat request, linked
    assert lead_of(app, first)["phone"] == "+380671234567"  # the shared contact filled in the open lead's phone


def test_a_missed_chat_deadline_escalates(app: Leadflow) -> None:
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        post(client, update(1, 5551, 10, "Є хто?"))
    lead_id = lead_of_chat(app, "5551")
    first_owner = lead_of(app, lead_id)["manager_id"]
    assert escalate_due(app, utcnow() + timedelta(minutes=4)) == 0
    assert escalate_due(app, utcnow() + timedelta(minutes=6)) == 1
    moved = lead_of(app, lead_id)
    assert moved["manager_id"] != first_owner and moved["sla_hops"] == 1


def test_long_polling_takes_each_update_once_across_restarts(app: Leadflow, bot: BotApiStandIn) -> None:
    app.channels = app.channels.model_copy(update={"telegram_mode": "polling"})
    bot.updates = [update(100, 5551, 10, "через опитування"), update(101, 5552, 4, "і я")]
    services = poller_services(app, utcnow)
    poller = telegram_poller(app.channels, services)
    assert poller.poll_once() == 2
    assert count(app, leads) == 2 and services.load_state("telegram", "offset") == "102"
    again = telegram_poller(app.channels, services)  # a restart: the offset is in the database
    assert again.poll_once() == 0
    assert bot.calls[-1] == ("getUpdates", {"timeout": 10, "allowed_updates": ["message"], "offset": 102})
    # A crash after taking but before the offset moved: the same updates again, nothing new.
    services.save_state("telegram", "offset", "100")
    assert telegram_poller(app.channels, services).poll_once() == 2
    assert count(app, leads) == 2 and count(app, messages) == 2


def test_polling_with_a_webhook_set_says_what_is_wrong(app: Leadflow, bot: BotApiStandIn) -> None:
    set_webhook(app.channels, "https://leads.example.test/api/v1/channels/telegram/webhook")
    assert bot.calls[-1][1]["secret_token"] == SECRET
    noted: list[str] = []
    services = PollerServices(take=lambda items: None, load_state=lambda c, k: None, save_state=lambda c, k, v: None,
                              note_error=lambda c, e: noted.append(e))  # fmt: skip
    poller = TelegramPoller(app.channels, services.take, telegram_poller(app.channels, services).offsets)

    stop = threading.Event()
    runner = threading.Thread(target=poller.run, args=(stop,))
    runner.start()
    try:
        for _ in range(100):
            if noted:
                break
            stop.wait(0.05)
    finally:
        stop.set()
        runner.join(timeout=5)
    assert noted and "409" in noted[0] and "webhook" in noted[0]
    assert TOKEN not in noted[0]


def test_a_refused_reply_is_retried_when_telegram_says_so_and_dead_when_it_cannot_go(
    app: Leadflow, bot: BotApiStandIn
) -> None:
    anna = person(app, "anna", "manager", manager="anna")
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        post(client, update(1, 5551, 10, "hi"))
        lead_id = lead_of_chat(app, "5551")
        client.post(f"/api/v1/leads/{lead_id}/messages", json={"text": "one"}, headers=anna)
        bot.planned = [{"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 7",
                        "parameters": {"retry_after": 7}},
                       {"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked by the user"}]  # fmt: skip
        report = deliver(app)
        assert (report.sent, report.failed) == (0, 1)
        report = deliver(app, utcnow() + timedelta(seconds=8))
        assert report.dead == 1
        reply = client.get(f"/api/v1/leads/{lead_id}/messages", headers=anna).json()["items"][-1]
    assert reply["status"] == "failed" and "blocked by the user" in reply["error"]


def test_reading_updates_is_pure_and_keeps_what_a_client_gave() -> None:
    contact = read_update(update(1, 42, 7, contact={"phone_number": "380501112233", "user_id": 42}))
    assert isinstance(contact[0], InboundMessage)
    assert contact[0].kind == "contact" and contact[0].lead["phone"] == "380501112233"
    assert contact[0].event_id == "42:7" and contact[0].sender == "42"
    photo = read_update(update(2, 42, 8, photo=[{"file_id": "x"}], caption="ось фото авто"))
    assert isinstance(photo[0], InboundMessage) and photo[0].text == "ось фото авто"
    assert photo[0].meta["attachment"] == "photo"
    sticker_only = read_update(update(3, 42, 9, sticker={"file_id": "y"}))
    assert isinstance(sticker_only[0], InboundMessage) and sticker_only[0].text == "[sticker]"
    nothing = read_update(update(4, 42, 10, dice={"value": 3}))
    assert isinstance(nothing[0], Unreadable)


def test_the_pacer_keeps_a_second_between_messages_to_one_chat_and_thirty_a_second_in_all() -> None:
    pacer = Pacer()
    assert pacer.reserve("a", 100.0) == 0
    assert pacer.reserve("a", 100.0) == pytest.approx(1.0)
    assert pacer.reserve("b", 100.0) == pytest.approx(1.0 + 1 / 30)  # after a's booked slot, in all
    waits = [Pacer().reserve(str(chat), 0.0) for chat in range(3)]
    assert waits == [0.0, 0.0, 0.0]  # separate pacers: separate processes, each keeps its own
    many = Pacer()
    slots = [many.reserve(str(chat), 0.0) for chat in range(61)]
    assert slots[-1] == pytest.approx(2.0)  # 60 chats later: two seconds at thirty a second


def test_the_command_line_sets_the_webhook_and_shows_each_channels_state(
    app: Leadflow, bot: BotApiStandIn, database_url: str, tmp_path: Any
) -> None:
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        post(client, update(1, 5551, 10, "hi"))
        post(client, update(2, 5551, 11, "hi"), secret="forged")
    env = {**os.environ, "LEADFLOW_DATABASE_URL": database_url, "LEADFLOW_CHANNELS__TELEGRAM_BOT_TOKEN": TOKEN,
           "LEADFLOW_CHANNELS__TELEGRAM_WEBHOOK_SECRET": SECRET, "LEADFLOW_CHANNELS__TELEGRAM_API_BASE": bot.url,
           "LEADFLOW_RULES": str(_rules_file(tmp_path)), "COLUMNS": "200"}  # fmt: skip
    leadflow = str(Path(sys.executable).parent / "leadflow")
    hook = "https://leads.example.test/api/v1/channels/telegram/webhook"
    done = subprocess.run([leadflow, "channels", "telegram", "set-webhook", hook], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert bot.webhook == hook and bot.calls[-1][1]["secret_token"] == SECRET
    plain = subprocess.run([leadflow, "channels", "telegram", "set-webhook", "http://leads.example.test/x"],
                           env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert plain.returncode == 1 and "HTTPS" in plain.stderr
    shown = subprocess.run([leadflow, "channels", "status"], env=env, cwd=tmp_path, capture_output=True, text=True,
                           timeout=120)  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    row = next(line for line in shown.stdout.splitlines() if " telegram " in line)
    assert "yes" in row and "new_lead 1" in row and "wrong secret token: 1" in row
    assert TOKEN not in shown.stdout and SECRET not in shown.stdout


def _rules_file(tmp_path: Any) -> Path:
    path = Path(tmp_path) / "rules.yaml"
    path.write_text(RULES)
    return path


def test_a_client_known_only_by_their_chat_is_linked_to_their_earlier_lead(app: Leadflow) -> None:
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        post(client, update(1, 6661, 1, "Скільки коштує?"))
        first = lead_of_chat(app, "6661")
        set_status(app, first, "lost", utcnow(), who=SYSTEM, reason="too expensive")
        assert post(client, update(2, 6661, 2, "А зараз знижки є?")).json()["taken"] == ["new_lead"]
    second = lead_of(app, lead_of_chat(app, "6661"))
    assert second["id"] != first and second["duplicate_of_id"] == first
    assert second["duplicate_reason"] == f"the same telegram client as lead #{first} (lost): a repeat request"
