"""Credentials stay out of sight: in every log line of a worker's real sends, in the errors the outbox keeps, and in
the outbox as operators list it; the row itself still delivers to the real address."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from sqlalchemy import Engine, select

from leadflow.channels.config import NotifyConfig
from leadflow.channels.redact import hide_in_logs, recipient_secrets, redact, secrets_of, shown_recipient
from leadflow.channels.senders import Sender, SlackSender, WebhookSender, close_senders
from leadflow.services.context import Leadflow
from leadflow.services.delivery import DeliveryReport, deliver_due, enqueue_notification
from leadflow.store.outbox import OutboxMessage, claim_due, list_messages, retry_dead
from leadflow.store.tables import outbox
from leadflow.worker import Worker
from tests.support import SLA_TEAM

if TYPE_CHECKING:
    from tests.channels.conftest import LocalHTTP, LocalSMTP

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TOKEN = "123456:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
SLACK_PATH = "T0001/B0001/XXXXslacksecretXXXX"
TEAM_SLACK_PATH = "T0002/B0002/YYYYteamsecretYYYY"
HOOK_TOKEN = "ZZZZhooktokenZZZZ"
SIGNING_SECRET = "whsec_signing_secret_0001"
SMTP_PASSWORD = "smtp-password-0001"  # not the stand-in's, so the login is refused: an error path
SECRETS = (TOKEN, TOKEN.split(":")[1], SLACK_PATH, "XXXXslacksecretXXXX", TEAM_SLACK_PATH, "YYYYteamsecretYYYY",
           HOOK_TOKEN, SIGNING_SECRET, SMTP_PASSWORD)  # fmt: skip
CONTEXT: dict[str, Any] = {"lead": {"id": 7, "name": "Olena", "phone": "+380501234567"}, "manager_name": "Taras"}


def enqueue(engine: Engine, channel: str, recipient: str, at: datetime = T0) -> None:
    with engine.begin() as conn:
        enqueue_notification(conn, event_id=None, event_type="lead.assigned", channel=channel, recipient=recipient,
                             language="en", context=CONTEXT, now=at)  # fmt: skip


class RaisingForStatus:
    """A sender with a bug: httpx's own error escapes it, and its text holds the URL, the bot token in it."""

    def __init__(self, url: str) -> None:
        self.url = url

    def send(self, message: OutboxMessage) -> None:
        httpx.post(self.url, json={"text": message.body}, timeout=2).raise_for_status()


def everything_logged(caplog: pytest.LogCaptureFixture) -> str:
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    parts = [caplog.text]
    for record in caplog.records:
        parts += [record.getMessage(), formatter.format(record), record.exc_text or "", record.stack_info or ""]
    return "\n".join(parts)


def test_a_workers_sends_and_failures_log_no_credential(
    make_app: Callable[[str], Leadflow],
    http_server: LocalHTTP,
    smtp_server_with_login: LocalSMTP,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="httpx")
    caplog.set_level(logging.DEBUG, logger="httpcore")
    team_slack = f"{http_server.url}/services/{TEAM_SLACK_PATH}"
    lf = make_app(SLA_TEAM.replace('telegram_chat_id: "-100500"}', f'slack_webhook_url: "{team_slack}"}}'))
    hook = f"{http_server.url}/hook?token={HOOK_TOKEN}&v=2"
    smtp = smtp_server_with_login
    lf.notify = NotifyConfig(
        telegram_bot_token=TOKEN, telegram_api_base=http_server.url,
        slack_webhook_url=f"{http_server.url}/services/{SLACK_PATH}",
        webhook_urls=[hook], webhook_secret=SIGNING_SECRET,
        smtp_host=smtp.host, smtp_port=smtp.port, smtp_starttls=False, smtp_username="robot",
        smtp_password=SMTP_PASSWORD, smtp_from="leadflow@example.test", timeout_seconds=2,
    )  # fmt: skip
    worker = Worker(lf)  # as `leadflow worker` and `leadflow serve` start it
    senders: dict[str, Sender] = {**worker.senders, "log": RaisingForStatus(f"{http_server.url}/bot{TOKEN}/x")}

    def round_of_every_channel(at: datetime) -> None:
        for channel, recipient in [("telegram", "100200300"), ("slack", "default"), ("slack", team_slack),
                                   ("webhook", hook), ("email", "anna@example.test"), ("log", "log")]:  # fmt: skip
            enqueue(lf.engine, channel, recipient, at)

    round_of_every_channel(T0)
    http_server.fail(times=None, status=500, body=b"upstream is down")  # retryable: tried again later
    assert deliver_due(lf.engine, senders, lf.notify, T0) == DeliveryReport(failed=5, dead=1)  # the login: dead
    http_server.fail(times=None, status=404, body=b"no such hook")  # not retryable: dead
    assert deliver_due(lf.engine, senders, lf.notify, T0 + timedelta(hours=1)).dead == 4
    round_of_every_channel(T0 + timedelta(hours=2))
    http_server.answer_always(200, {"ok": True, "result": {}})
    # Six sent: four over HTTP, the new log message and the one that kept failing; the login is refused again.
    assert deliver_due(lf.engine, senders, lf.notify, T0 + timedelta(hours=2)) == DeliveryReport(sent=6, dead=1)

    assert len(http_server.requests) == 16
    assert any(r.path == f"/bot{TOKEN}/sendMessage" for r in http_server.requests)  # sent to the real address
    names = {r.name for r in caplog.records}
    assert "httpx" in names and any(n.startswith("httpcore.") for n in names) and "leadflow.notify" in names
    logged = everything_logged(caplog)
    for secret in SECRETS:
        assert secret not in logged, secret
    assert "Traceback" in logged and "HTTPStatusError" in logged  # the crashing sender's traceback is there
    assert "/bot***/sendMessage" in logged and "?token=***&v=2" in logged  # masked, not dropped
    with lf.engine.connect() as conn:
        errors = [e for e in conn.execute(select(outbox.c.last_error)).scalars() if e]
    assert len(errors) >= 6 and any("bot***" in e for e in errors)  # httpx's error, its URL masked
    for secret in SECRETS:
        assert not any(secret in e for e in errors), secret


def test_the_outbox_lists_chat_and_webhook_urls_masked_and_still_delivers_to_them(
    engine: Engine, http_server: LocalHTTP
) -> None:
    slack = f"{http_server.url}/services/{SLACK_PATH}"
    hook = f"{http_server.url}/hook?token={HOOK_TOKEN}"
    for channel, recipient in [("slack", slack), ("webhook", hook), ("telegram", "100200300"),
                               ("email", "anna@example.test"), ("slack", "default")]:  # fmt: skip
        enqueue(engine, channel, recipient)
    shown = [f"{http_server.url}/services/***", f"{http_server.url}/hook?token=***", "100200300",
             "anna@example.test", "default"]  # fmt: skip

    # What GET /api/v1/outbox lists (the route calls list_messages).
    with engine.connect() as conn:
        assert [m.recipient for m in reversed(list_messages(conn, None, 10, 0))] == shown
        assert [m.recipient for m in list_messages(conn, "pending", 10, 0)][::-1] == shown

    # Delivery still reads the real address, and the receivers get the messages there.
    config = NotifyConfig(slack_webhook_url=slack, webhook_urls=[hook], webhook_secret=SIGNING_SECRET)
    with engine.begin() as conn:
        claimed = claim_due(conn, T0, 2, timedelta(minutes=1))
    assert [m.recipient for m in claimed] == [slack, hook]
    slack_sender, webhook_sender = SlackSender(config), WebhookSender(config)
    slack_sender.send(claimed[0])
    webhook_sender.send(claimed[1])
    close_senders({"slack": slack_sender, "webhook": webhook_sender})
    assert [r.path for r in http_server.requests] == [f"/services/{SLACK_PATH}", f"/hook?token={HOOK_TOKEN}"]

    # What POST /api/v1/outbox/{id}/retry answers (retry_dead) is masked too; the row keeps the real address.
    with engine.begin() as conn:
        conn.execute(outbox.update().where(outbox.c.id == claimed[1].id).values(status="dead"))
        assert retry_dead(conn, claimed[1].id, T0).recipient == f"{http_server.url}/hook?token=***"
        assert conn.execute(select(outbox.c.recipient).where(outbox.c.id == claimed[1].id)).scalar_one() == hook


@pytest.mark.parametrize(
    ("channel", "recipient", "shown"),
    [
        ("slack", "https://hooks.slack.com/services/T0/B0/secret", "https://hooks.slack.com/services/***"),
        ("slack", "https://chat.example.org/hooks/abcdef", "https://chat.example.org/hooks/***"),
        ("slack", "https://chat.example.org/abcdef", "https://chat.example.org/***"),
        ("webhook", "https://example.org/hook?token=abc&v=1", "https://example.org/hook?token=***&v=***"),
        ("webhook", "https://user:pass1234@example.org:8443/hook?abcdef#x", "https://example.org:8443/hook?***"),
        ("webhook", "https://example.org/hook", "https://example.org/hook"),
        ("webhook", "https://example.org:notaport/hook?t=1", "***"),
        ("telegram", "-100500", "-100500"),
        ("email", "anna@example.test", "anna@example.test"),
        ("slack", "default", "default"),
    ],
)
def test_shown_recipient(channel: str, recipient: str, shown: str) -> None:
    assert shown_recipient(channel, recipient) == shown
    for secret in recipient_secrets(channel, recipient):
        assert secret not in shown


def test_secrets_of_a_configuration() -> None:
    config = NotifyConfig(
        telegram_bot_token=TOKEN, slack_webhook_url=f"https://hooks.slack.com/services/{SLACK_PATH}",
        webhook_urls=[f"https://example.org/hook?token={HOOK_TOKEN}&v=1", "https://example.org/plain"],
        webhook_secret=SIGNING_SECRET, smtp_host="smtp.example.org", smtp_from="a@example.org",
        smtp_username="robot", smtp_password=SMTP_PASSWORD,
    )  # fmt: skip
    team = "https://hooks.slack.com/services/T9/B9/teamsecret99"
    found = secrets_of(config, [team])
    assert {TOKEN, TOKEN.split(":")[1], SLACK_PATH, HOOK_TOKEN, SIGNING_SECRET, SMTP_PASSWORD} <= found
    assert "T9/B9/teamsecret99" in found
    assert "1" not in found and "robot" not in found  # too short to hide; not a credential
    assert secrets_of(NotifyConfig()) == frozenset()
    text = f"POST https://api.telegram.org/bot{TOKEN}/sendMessage; {team}"
    masked = "POST https://api.telegram.org/bot***/sendMessage; https://hooks.slack.com/services/***"
    assert redact(text, found) == masked


def test_log_redaction_covers_every_logger_and_argument_and_installs_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    hide_in_logs(["sekrit-one"])
    factory = logging.getLogRecordFactory()
    hide_in_logs(["sekrit-two"])
    assert logging.getLogRecordFactory() is factory  # installed once; the second call adds its secret
    child = logging.getLogger("some.library.deep.child")
    child.debug("url %s and %r", httpx.URL("https://x.example/sekrit-one"), ["sekrit-two"])
    child.info("%(key)s", {"key": "sekrit-two"})
    child.warning("count %d", 3)
    try:
        raise RuntimeError("failed at https://x.example/?t=sekrit-one")
    except RuntimeError:
        child.exception("it broke")
    child.error("stack", stack_info=True, extra={"unused": "sekrit-two"})
    logged = everything_logged(caplog)
    assert "sekrit" not in logged
    assert "url https://x.example/*** and \"['***']\"" in logged  # a list holding one: its text, masked
    assert "count 3" in logged and "RuntimeError" in logged
