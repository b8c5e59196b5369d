"""The daily digest: each head of sales gets yesterday's figures of their team once, after the rules' hour in the
team's zone, in their language, by e-mail (with the charts as an inline PNG, through a real SMTP server) and
Telegram (the text, then the picture), and never twice however many workers ask at once."""

from __future__ import annotations

import base64
import email
import email.policy
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from leadflow.channels.config import NotifyConfig
from leadflow.channels.senders import EmailSender, LogSender, TelegramSender
from leadflow.core.rules_text import parse_rules
from leadflow.services.context import Leadflow
from leadflow.services.delivery import deliver_due
from leadflow.services.reports import digest as digest_module
from leadflow.services.reports.digest import send_due_digests
from leadflow.store.tables import digests, outbox
from leadflow.store.team_state import apply_rules_people
from leadflow.worker import Worker
from tests.channels.conftest import LocalHTTP, LocalSMTP, RecordingHandler, free_port
from tests.reports.history import RULES, History

DIGEST = "reports:\n  digest: {enabled: true, at: '09:00'}\n"
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def smtp() -> Iterator[LocalSMTP]:
    handler = RecordingHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield LocalSMTP("127.0.0.1", port, handler)
    controller.stop()


@pytest.fixture
def http_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalHTTP]:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)  # only ever 127.0.0.1, directly
    server = LocalHTTP()
    yield server
    server.close()


def digest_app(history: History, rules_text: str = RULES, **options: Any) -> Leadflow:
    """The shared history's database with the digest on."""
    rules = parse_rules(rules_text + DIGEST, "digest.yaml")
    with history.app.engine.begin() as conn:
        apply_rules_people(conn, rules, datetime(2026, 3, 1, tzinfo=UTC))  # a head's changed languages
    return Leadflow(engine=history.app.engine, rules=rules, **options)


def queued(app: Leadflow) -> list[Any]:
    with app.engine.connect() as conn:
        return list(conn.execute(select(outbox).where(outbox.c.payload["event"].as_string() == "report.digest")
                                 .order_by(outbox.c.id)))  # fmt: skip


def sent_days(app: Leadflow) -> list[tuple[str, str]]:
    with app.engine.connect() as conn:
        rows = conn.execute(select(digests.c.recipient, digests.c.day).order_by(digests.c.recipient))
        return [(r, d.isoformat()) for r, d in rows]


def parsed(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def test_the_head_of_kyiv_gets_the_dst_day_by_mail_with_the_charts(history: History, smtp: LocalSMTP) -> None:
    app = digest_app(history)
    # Kyiv moved to summer time on 03-29: 09:00 on 03-30 is 06:00 UTC (on 03-28 it was 07:00). New York is at 02:00.
    assert send_due_digests(app, datetime(2026, 3, 30, 5, 59, tzinfo=UTC)) == 0
    assert send_due_digests(app, datetime(2026, 3, 30, 6, 0, tzinfo=UTC)) == 1
    assert send_due_digests(app, datetime(2026, 3, 30, 6, 1, tzinfo=UTC)) == 0  # today's has gone
    assert sent_days(app) == [("manager:iryna", "2026-03-30")]
    [row] = queued(app)  # Iryna has an e-mail address only
    assert (row.channel, row.recipient) == ("email", "iryna@example.com")

    config = NotifyConfig(smtp_host=smtp.host, smtp_port=smtp.port, smtp_from="Leadflow <leadflow@example.com>",
                          smtp_starttls=False, timeout_seconds=5)  # fmt: skip
    deliver_due(app.engine, {"email": EmailSender(config)}, config, datetime(2026, 3, 30, 6, 1, tzinfo=UTC),
                batch_size=100)  # fmt: skip
    [envelope] = [e for e in smtp.envelopes if b"2026-03-29" in e.content]
    assert envelope.rcpt_tos == ["iryna@example.com"]
    mail = parsed(envelope.content)
    # Kyiv's 03-29 (23 hours: 03-28 22:00 to 03-29 21:00 UTC): k6 arrived at 23:30 UTC (01:30 local) for Taras, who
    # reached the client at 01:30 UTC, after two real hours (≤3h). No deadline missed (Kyiv's clock is 30 days),
    # nothing won. The default language: uk.
    assert mail["Subject"] == "Щоденний звіт, Kyiv: 2026-03-29"
    text = mail.get_body(preferencelist=("plain",))
    assert text is not None
    assert text.get_content().replace("\r\n", "\n").strip() == row.body
    assert row.body == (
        "Iryna, ось підсумки за 2026-03-29 (Kyiv).\n\n"
        "Пропущені строки першого контакту: 0\n"
        "Перші контакти: 1\n  ≤20m: 0 (0%)\n  ≤3h: 1 (100%)\n  ≤12h: 0 (0%)\n  >12h: 0 (0%)\n\n"
        "Нові ліди: 1; статуси, яких вони вже досягли:\n  assigned: 1\n  contacted: 1\n"
        "Виграно: 0, виручка 0.00\n\n"
        "Найкращі:\n  Taras: перші контакти 1, конверсія 0%\n\n"
        "http://127.0.0.1:8000/reports"
    )
    [image] = list(mail.iter_attachments())
    assert image.get_content_type() == "image/png" and image.get_content_disposition() == "inline"
    assert image.get_filename() == "digest-kyiv-2026-03-29.png"
    picture = image.get_content()
    assert picture.startswith(PNG) and len(picture) > 5000
    assert base64.b64decode(row.payload["images"][0]["data"]) == picture  # the outbox keeps the bytes it sent


def test_new_york_reads_its_missed_deadlines_in_english(history: History) -> None:
    rules = RULES.replace("email: mike@example.com}", "email: mike@example.com, languages: [en]}")
    app = digest_app(history, rules)
    # 03-09 09:00 EDT is 13:00 UTC (15:00 in Kyiv: Iryna's 03-08 goes too).
    assert send_due_digests(app, datetime(2026, 3, 9, 13, tzinfo=UTC)) == 2
    mike = next(r for r in queued(app) if r.recipient == "mike@example.com")
    # New York's 03-08 (23 hours: 05:00 UTC to 04:00 UTC the next day): n1 arrived (06:30 UTC) and Ann reached it
    # after 90 minutes (≤3h); n2 arrived at 03:00 UTC on 03-09, 23:00 local, missed its deadline at 03:16 (to Ann)
    # and again at 03:32 (the chain ended with Mike): one lead, still not contacted.
    assert mike.subject == "Daily report, New York: 2026-03-08"
    figures = mike.payload["digest"]
    assert (figures["breaches"], figures["breaches_waiting"]) == (1, 1)
    assert figures["first_contacts"] == 1 and [b["count"] for b in figures["bands"]] == [0, 1, 0, 0]
    assert figures["arrived"] == 2
    # Ranked by first contacts, then conversion, then name: Ann (1), then Bob and Mike (0 each); of three, the
    # better half (2) at the top, the rest at the bottom.
    assert [m["name"] for m in figures["top"]] == ["Ann", "Bob"] and [m["name"] for m in figures["bottom"]] == ["Mike"]
    assert "First-contact deadlines missed: 1 (not contacted yet: 1)" in mike.body
    assert "  ≤3h: 1 (100%)" in mike.body and "Need attention:\n  Mike: first contacts 0" in mike.body
    iryna = next(r for r in queued(app) if r.recipient == "iryna@example.com")
    assert iryna.subject == "Щоденний звіт, Kyiv: 2026-03-08" and iryna.payload["digest"]["arrived"] == 0


def test_two_workers_at_once_send_it_once(history: History, monkeypatch: pytest.MonkeyPatch) -> None:
    app = digest_app(history)
    drawn: list[int] = []
    draw = digest_module.charts_png

    def counted(charts: Any) -> bytes:
        drawn.append(1)
        return draw(charts)

    monkeypatch.setattr(digest_module, "charts_png", counted)
    now = datetime(2026, 3, 30, 6, 30, tzinfo=UTC)
    start = threading.Barrier(2)
    results: list[int] = []

    def worker() -> None:
        start.wait()
        results.append(send_due_digests(app, now))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    # Both found it due and built it; the digests row let one queue it.
    assert len(drawn) == 2 and sorted(results) == [0, 1]
    assert len(queued(app)) == 1 and sent_days(app) == [("manager:iryna", "2026-03-30")]


SMALL = """
default_timezone: Europe/Kyiv
default_language: uk
teams:
  - {key: north, name: North, timezone: Europe/Kyiv, head: hanna}
  - {key: west, name: West, timezone: Europe/London, head: william}
  - {key: south, name: South, timezone: Europe/Kyiv}
  - {key: east, name: East, timezone: Europe/Kyiv, head: quiet}
  - {key: central, name: Central, timezone: Europe/London, head: hanna}
managers:
  - {key: hanna, name: Hanna, team: north, languages: [ru], telegram_chat_id: "700"}
  - {key: william, name: William, team: west, languages: [en], email: william@example.com}
  - {key: sam, name: Sam, team: south, email: sam@example.com}
  - {key: quiet, name: Quiet, team: east}
reports:
  digest: {enabled: true, at: "18:30"}
"""


def test_the_hour_the_heads_and_their_channels(make_app: Callable[[str], Leadflow], http_server: LocalHTTP) -> None:
    app = make_app(SMALL)
    # 18:29 in Kyiv is 16:29 in London (winter): nobody yet.
    assert send_due_digests(app, datetime(2026, 1, 15, 16, 29, tzinfo=UTC)) == 0
    # 18:30 in Kyiv: North's head, Hanna, who heads Central too (in London: her own team's zone counts) and gets one
    # digest of both. South has no head; East's head has no channel: nothing for them, ever.
    assert send_due_digests(app, datetime(2026, 1, 15, 16, 30, tzinfo=UTC)) == 1
    # 18:30 in London: West's head.
    assert send_due_digests(app, datetime(2026, 1, 15, 18, 30, tzinfo=UTC)) == 1
    assert send_due_digests(app, datetime(2026, 1, 15, 21, 0, tzinfo=UTC)) == 0
    assert sent_days(app) == [("manager:hanna", "2026-01-15"), ("manager:william", "2026-01-15")]
    hanna, william = queued(app)
    assert (hanna.channel, hanna.recipient) == ("telegram", "700")
    assert hanna.subject == "Ежедневный отчёт, Central, North: 2026-01-14"
    assert (william.channel, william.subject) == ("email", "Daily report, West: 2026-01-14")
    assert hanna.body.startswith("Hanna, вот итоги за 2026-01-14 (Central, North).\n\nПропущенные сроки первого "
                                 "контакта: 0")  # fmt: skip
    # The next day, again after the hour.
    assert send_due_digests(app, datetime(2026, 1, 16, 16, 45, tzinfo=UTC)) == 1

    # Telegram: the text, then the picture with the subject as its caption.
    http_server.answer_always(200, {"ok": True, "result": {"message_id": 1}})
    config = NotifyConfig(telegram_bot_token="1:T", telegram_api_base=http_server.url, timeout_seconds=5)
    report = deliver_due(app.engine, {"telegram": TelegramSender(config)}, config,
                         datetime(2026, 1, 15, 16, 31, tzinfo=UTC))  # fmt: skip
    assert report.sent == 1
    text, photo = http_server.requests
    assert text.path == "/bot1:T/sendMessage" and text.json()["text"].startswith(hanna.subject)
    assert photo.path == "/bot1:T/sendPhoto" and photo.headers["content-type"].startswith("multipart/form-data")
    assert b'name="chat_id"\r\n\r\n700' in photo.body
    assert f'name="caption"\r\n\r\n{hanna.subject}'.encode() in photo.body
    assert PNG in photo.body and b'filename="digest-central-north-2026-01-14.png"' in photo.body


def test_webhook_receivers_get_the_figures_without_the_picture(make_app: Callable[[str], Leadflow]) -> None:
    base = make_app(SMALL)
    notify = NotifyConfig(webhook_secret="s3cret-for-tests", webhook_urls=["https://hooks.example.test/leads"])
    app = Leadflow(engine=base.engine, rules=base.rules, notify=notify)
    # Hanna by Telegram and the receiver; East's head, who has no channel of their own, to the receiver alone (a
    # receiver hears of every digest, as of every event).
    assert send_due_digests(app, datetime(2026, 1, 15, 16, 30, tzinfo=UTC)) == 2
    assert [(r.channel, r.payload["digest"]["team"]) for r in queued(app)] == [
        ("telegram", "Central, North"), ("webhook", "Central, North"), ("webhook", "East")]  # fmt: skip
    telegram, hook, _ = queued(app)
    assert hook.recipient == "https://hooks.example.test/leads"
    assert "images" not in hook.payload and "images" in telegram.payload
    assert hook.payload["event"] == "report.digest" and hook.payload["team_name"] == "Central, North"
    assert hook.payload["day"] == "2026-01-14" and hook.payload["message"]["subject"].startswith("Ежедневный")


def test_the_digest_is_off_unless_the_rules_say(make_app: Callable[[str], Leadflow]) -> None:
    app = make_app(SMALL.replace("enabled: true", "enabled: false"))
    assert send_due_digests(app, datetime(2026, 1, 15, 20, tzinfo=UTC) + timedelta(days=1)) == 0
    assert queued(app) == [] and sent_days(app) == []


def test_the_worker_queues_them_as_it_starts(make_app: Callable[[str], Leadflow]) -> None:
    app = make_app(SMALL)
    worker = Worker(app, senders={"log": LogSender()}, clock=lambda: datetime(2026, 1, 15, 16, 31, tzinfo=UTC))
    loop = threading.Thread(target=worker.run_digests, daemon=True)
    loop.start()
    deadline = time.monotonic() + 30
    while not sent_days(app) and time.monotonic() < deadline:
        time.sleep(0.05)
    worker.stop.set()
    loop.join(10)
    assert not loop.is_alive()  # it sleeps a minute between looks, but wakes when stopped
    assert sent_days(app) == [("manager:hanna", "2026-01-15")]
    assert [r.subject for r in queued(app)] == ["Ежедневный отчёт, Central, North: 2026-01-14"]
