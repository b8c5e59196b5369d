"""Each sender against a real local receiver: what goes over the wire, and how failures are classified."""

from __future__ import annotations

import email
import email.policy
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from leadflow.channels.config import NotifyConfig
from leadflow.channels.senders import (
    DeliveryError,
    EmailSender,
    LogSender,
    SlackSender,
    TelegramSender,
    WebhookSender,
    close_senders,
    senders_from_config,
)
from leadflow.channels.signing import verify_signature
from leadflow.core.messages import render
from leadflow.store.outbox import OutboxMessage

if TYPE_CHECKING:
    from tests.channels.conftest import LocalHTTP, LocalSMTP

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TOKEN = "123456:TEST-token"
SECRET = "whsec_local_test"


def message(channel: str, recipient: str, **changes: Any) -> OutboxMessage:
    fields: dict[str, Any] = {
        "id": 42,
        "event_id": 7,
        "channel": channel,
        "recipient": recipient,
        "subject": "New lead #1",
        "body": "Call Olena: +380501234567",
        "payload": {"event": "lead.assigned", "lead": {"id": 1, "name": "Олена"}},
        "status": "pending",
        "attempts": 1,
        "next_attempt_at": NOW,
        "last_error": None,
        "created_at": NOW,
        "sent_at": None,
    }
    fields.update(changes)
    return OutboxMessage(**fields)


def config(**values: Any) -> NotifyConfig:
    return NotifyConfig(timeout_seconds=2, **values)


def fail(send: Any) -> DeliveryError:
    with pytest.raises(DeliveryError) as info:
        send()
    return info.value


# --- Telegram ------------------------------------------------------------------------------------------------


def telegram(server: LocalHTTP, **values: Any) -> TelegramSender:
    return TelegramSender(config(telegram_bot_token=TOKEN, telegram_api_base=server.url + "/", **values))


def test_telegram_posts_send_message_with_chat_id_and_text(http_server: LocalHTTP) -> None:
    http_server.answer_always(200, {"ok": True, "result": {"message_id": 1}})
    sender = telegram(http_server)
    sender.send(message("telegram", "100200300"))
    sender.close()
    [request] = http_server.requests
    assert request.path == f"/bot{TOKEN}/sendMessage"
    assert request.headers["content-type"] == "application/json"
    sent = request.json()
    assert sent["chat_id"] == "100200300"
    assert sent["text"] == "New lead #1\n\nCall Olena: +380501234567"
    assert "parse_mode" not in sent  # plain text: a lead's name cannot inject markup


def test_telegram_refusal_is_permanent_and_explained_without_the_token(http_server: LocalHTTP) -> None:
    http_server.answer(400, {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"})
    error = fail(lambda: telegram(http_server).send(message("telegram", "999")))
    assert not error.retryable
    assert "chat not found" in str(error) and "'999'" in str(error)
    assert TOKEN not in str(error)


def test_telegram_ok_false_with_200_is_a_failure(http_server: LocalHTTP) -> None:
    http_server.answer(200, {"ok": False, "description": "something odd"})
    error = fail(lambda: telegram(http_server).send(message("telegram", "1")))
    assert "something odd" in str(error)


def test_telegram_flood_limit_is_retryable_and_carries_retry_after(http_server: LocalHTTP) -> None:
    http_server.answer(
        429, {"ok": False, "error_code": 429, "description": "Too Many Requests", "parameters": {"retry_after": 17}}
    )
    error = fail(lambda: telegram(http_server).send(message("telegram", "1")))
    assert error.retryable
    assert error.retry_after == timedelta(seconds=17)


def test_telegram_server_error_without_json_is_retryable(http_server: LocalHTTP) -> None:
    http_server.answer(502, b"<html>Bad Gateway</html>")
    error = fail(lambda: telegram(http_server).send(message("telegram", "1")))
    assert error.retryable and "502" in str(error)


def test_telegram_long_text_is_cut_to_the_api_limit(http_server: LocalHTTP) -> None:
    http_server.answer_always(200, {"ok": True})
    telegram(http_server).send(message("telegram", "1", body="я" * 10_000))
    assert len(http_server.requests[0].json()["text"]) == 4096


# --- Slack ---------------------------------------------------------------------------------------------------


def test_slack_posts_text_to_the_configured_webhook(http_server: LocalHTTP) -> None:
    sender = SlackSender(config(slack_webhook_url=http_server.url + "/services/T0/B0/xyz"))
    sender.send(message("slack", "default"))
    [request] = http_server.requests
    assert request.path == "/services/T0/B0/xyz"
    assert request.json() == {"text": "New lead #1\n\nCall Olena: +380501234567"}


def test_slack_recipient_url_overrides_the_configured_one(http_server: LocalHTTP) -> None:
    sender = SlackSender(config(slack_webhook_url=http_server.url + "/default"))
    sender.send(message("slack", http_server.url + "/team-b"))
    assert http_server.requests[0].path == "/team-b"


@pytest.mark.parametrize(("status", "retryable"), [(400, False), (403, False), (404, False), (429, True), (500, True)])
def test_slack_failures_are_classified(http_server: LocalHTTP, status: int, retryable: bool) -> None:
    http_server.answer(status, b"invalid_payload")
    url = http_server.url + "/services/SECRET-PART"
    error = fail(lambda: SlackSender(config(slack_webhook_url=url)).send(message("slack", "default")))
    assert error.retryable is retryable
    assert str(status) in str(error) and "invalid_payload" in str(error)
    assert "SECRET-PART" not in str(error)  # the webhook URL is a credential


# --- Webhooks ------------------------------------------------------------------------------------------------


def test_webhook_is_signed_and_the_receiver_can_verify_it(http_server: LocalHTTP) -> None:
    sender = WebhookSender(config(webhook_secret=SECRET))
    before = int(time.time())
    sender.send(message("webhook", http_server.url + "/hooks/leads"))
    [request] = http_server.requests
    assert request.path == "/hooks/leads"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-leadflow-event"] == "lead.assigned"
    assert request.headers["x-leadflow-delivery"] == "42"
    assert request.json() == {"event": "lead.assigned", "lead": {"id": 1, "name": "Олена"}}
    header = request.headers["x-leadflow-signature"]
    assert verify_signature(SECRET, request.body, header, "42", now_unix=time.time())
    assert not verify_signature("wrong", request.body, header, "42", now_unix=time.time())
    assert not verify_signature(SECRET, request.body + b"x", header, "42", now_unix=time.time())
    # The same request captured and replayed ten minutes later is refused.
    assert not verify_signature(SECRET, request.body, header, "42", now_unix=before + 600)
    # Replayed at once under another delivery id, to get past a receiver that drops the ids it has seen: refused.
    assert not verify_signature(SECRET, request.body, header, "43", now_unix=time.time())
    assert not verify_signature(SECRET, request.body, header, None, now_unix=time.time())


def test_webhook_signed_long_ago_is_rejected_by_the_receiver(http_server: LocalHTTP) -> None:
    sender = WebhookSender(config(webhook_secret=SECRET), clock=lambda: time.time() - 3600)
    sender.send(message("webhook", http_server.url + "/hook"))
    request = http_server.requests[0]
    header = request.headers["x-leadflow-signature"]
    assert not verify_signature(SECRET, request.body, header, request.headers["x-leadflow-delivery"], time.time())


@pytest.mark.parametrize(
    ("status", "retryable"), [(400, False), (401, False), (410, False), (408, True), (429, True), (503, True)]
)
def test_webhook_failures_are_classified(http_server: LocalHTTP, status: int, retryable: bool) -> None:
    http_server.answer(status, b"nope")
    error = fail(lambda: WebhookSender(config(webhook_secret=SECRET)).send(message("webhook", http_server.url + "/h")))
    assert error.retryable is retryable
    assert f"answered {status}" in str(error)


def test_webhook_redirect_is_not_followed(http_server: LocalHTTP) -> None:
    http_server.answer(301, b"", {"Location": "http://127.0.0.1:9/elsewhere"})
    error = fail(lambda: WebhookSender(config(webhook_secret=SECRET)).send(message("webhook", http_server.url + "/h")))
    assert not error.retryable and "redirect" in str(error)
    assert len(http_server.requests) == 1


def test_webhook_with_a_non_url_recipient_fails_for_good() -> None:
    error = fail(lambda: WebhookSender(config(webhook_secret=SECRET)).send(message("webhook", "not a url")))
    assert not error.retryable


def test_connection_refused_is_retryable(unused_port: int) -> None:
    url = f"http://127.0.0.1:{unused_port}/hook"  # nobody listens there
    error = fail(lambda: WebhookSender(config(webhook_secret=SECRET)).send(message("webhook", url)))
    assert error.retryable and "could not reach" in str(error)


def test_a_receiver_that_does_not_answer_in_time_is_retryable(http_server: LocalHTTP) -> None:
    http_server.answer(200, b"late", delay=1.5)
    sender = WebhookSender(NotifyConfig(webhook_secret=SECRET, timeout_seconds=0.3))
    started = time.monotonic()
    error = fail(lambda: sender.send(message("webhook", http_server.url + "/slow")))
    assert error.retryable and "in time" in str(error)
    assert time.monotonic() - started < 1.4


def test_one_http_client_is_reused_for_every_message(http_server: LocalHTTP) -> None:
    sender = WebhookSender(config(webhook_secret=SECRET))
    for _ in range(3):
        sender.send(message("webhook", http_server.url + "/h"))
    client = sender._client
    sender.send(message("webhook", http_server.url + "/h"))
    assert sender._client is client and len(http_server.requests) == 4
    sender.close()


# --- E-mail --------------------------------------------------------------------------------------------------


def received(server: LocalSMTP) -> email.message.EmailMessage:
    [envelope] = server.envelopes
    raw = envelope.original_content or envelope.content
    assert isinstance(raw, bytes)
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, email.message.EmailMessage)
    return parsed


def smtp_config(server: LocalSMTP, **values: Any) -> NotifyConfig:
    defaults: dict[str, Any] = {"smtp_starttls": False, "smtp_from": "Leadflow <leads@example.test>"}
    return config(smtp_host=server.host, smtp_port=server.port, **(defaults | values))


def test_email_to_a_ukrainian_manager_is_in_ukrainian(smtp_server: LocalSMTP) -> None:
    context = {
        "lead": {"id": 31, "name": "Олена Коваленко", "phone": "+380501234567", "product": "Кухні"},
        "manager_name": "Тарас",
        "previous_manager_name": "Ігор",
        "minutes": 10,
    }
    rendered = render("lead.escalated", "uk", context)
    sender = EmailSender(smtp_config(smtp_server))
    sender.send(message("email", "taras@example.test", subject=rendered.subject, body=rendered.text))

    [envelope] = smtp_server.envelopes
    assert envelope.mail_from == "leads@example.test"
    assert envelope.rcpt_tos == ["taras@example.test"]
    mail = received(smtp_server)
    assert mail["Subject"] == "Лід #31 чекає на тебе: Олена Коваленко"
    assert mail["From"] == "Leadflow <leads@example.test>"
    assert mail["X-Leadflow-Delivery"] == "42"
    assert mail.get_content_charset() == "utf-8"
    body = mail.get_content()
    assert "Колега (Ігор) не встиг обробити ліда? Забирай, інакше за 10 хв втратиш шанс заробити!" in body
    assert "Телефон: +380501234567" in body
    # The raw headers are ASCII (RFC 2047), as every SMTP server accepts.
    assert b"\xd0" not in (envelope.original_content or b"").split(b"\r\n\r\n")[0]


AUTH_WITHOUT_TLS = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


@AUTH_WITHOUT_TLS
def test_email_logs_in_when_a_username_is_set(smtp_server_with_login: LocalSMTP) -> None:
    sender = EmailSender(smtp_config(smtp_server_with_login, smtp_username="robot", smtp_password="s3cret"))
    sender.send(message("email", "a@example.test"))
    assert received(smtp_server_with_login)["Subject"] == "New lead #1"


@AUTH_WITHOUT_TLS
def test_email_with_a_wrong_password_is_a_permanent_failure_that_says_what_to_fix(
    smtp_server_with_login: LocalSMTP,
) -> None:
    sender = EmailSender(smtp_config(smtp_server_with_login, smtp_username="robot", smtp_password="wrong"))
    error = fail(lambda: sender.send(message("email", "a@example.test")))
    assert not error.retryable
    assert "LEADFLOW_NOTIFY__SMTP_PASSWORD" in str(error)
    assert "wrong" not in str(error)
    assert smtp_server_with_login.envelopes == []


def test_email_requiring_starttls_from_a_server_without_it_fails_for_good(smtp_server: LocalSMTP) -> None:
    sender = EmailSender(smtp_config(smtp_server, smtp_starttls=True))
    error = fail(lambda: sender.send(message("email", "a@example.test")))
    assert not error.retryable and "STARTTLS" in str(error)
    assert smtp_server.envelopes == []


def test_email_server_down_is_retryable(unused_port: int) -> None:
    sender = EmailSender(
        NotifyConfig(smtp_host="127.0.0.1", smtp_port=unused_port, smtp_from="l@example.test", timeout_seconds=2)
    )
    error = fail(lambda: sender.send(message("email", "a@example.test")))
    assert error.retryable


def test_email_header_injection_is_refused(smtp_server: LocalSMTP) -> None:
    sender = EmailSender(smtp_config(smtp_server))
    error = fail(lambda: sender.send(message("email", "a@example.test\r\nBcc: victim@example.test")))
    assert not error.retryable
    assert smtp_server.envelopes == []


# --- Log and assembly ----------------------------------------------------------------------------------------


def test_log_sender_writes_to_the_notify_logger(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="leadflow.notify"):
        LogSender().send(message("log", "log"))
    [record] = caplog.records
    assert record.name == "leadflow.notify"
    assert "New lead #1" in record.getMessage() and "+380501234567" in record.getMessage()


def test_senders_from_config_builds_only_what_is_configured() -> None:
    assert set(senders_from_config(NotifyConfig())) == {"log"}
    senders = senders_from_config(
        NotifyConfig(
            telegram_bot_token=TOKEN,
            slack_webhook_url="http://127.0.0.1:9/slack",
            webhook_secret=SECRET,
            smtp_host="127.0.0.1",
            smtp_from="l@example.test",
        )
    )
    assert set(senders) == {"log", "telegram", "slack", "webhook", "email"}
    close_senders(senders)


def test_config_refuses_half_configured_channels() -> None:
    with pytest.raises(ValueError, match="LEADFLOW_NOTIFY__SMTP_FROM"):
        NotifyConfig(smtp_host="smtp.example.test")
    with pytest.raises(ValueError, match="LEADFLOW_NOTIFY__WEBHOOK_SECRET"):
        NotifyConfig(webhook_urls=["https://example.test/hook"])
    with pytest.raises(ValueError, match="http"):
        NotifyConfig(webhook_urls=["ftp://example.test"], webhook_secret=SECRET)


def test_config_reads_webhook_urls_as_a_list_or_commas_and_blank_as_unset() -> None:
    assert NotifyConfig.model_validate(
        {"webhook_urls": "https://a.test/h, https://b.test/h", "webhook_secret": SECRET}
    ).webhook_urls == ["https://a.test/h", "https://b.test/h"]
    assert NotifyConfig.model_validate(
        {"webhook_urls": '["https://a.test/h"]', "webhook_secret": SECRET}
    ).webhook_urls == ["https://a.test/h"]
    assert NotifyConfig.model_validate({"telegram_bot_token": "", "smtp_host": " "}).telegram_bot_token is None
    assert "s3cret" not in repr(NotifyConfig(telegram_bot_token="s3cret"))
