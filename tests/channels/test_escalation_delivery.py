"""An escalation end to end: the worker moves the lead, and the notifications reach a real SMTP server, the
Telegram Bot API address and a signed-webhook receiver on loopback, each once and in the manager's language."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import TYPE_CHECKING, cast

from sqlalchemy import select

from leadflow.channels.config import NotifyConfig
from leadflow.channels.signing import verify_signature
from leadflow.core.lead import LeadIn
from leadflow.services.context import Leadflow
from leadflow.services.intake import take_lead
from leadflow.services.sla import escalate_due
from leadflow.store.tables import outbox
from leadflow.worker import Worker
from tests.support import SLA_TEAM

if TYPE_CHECKING:
    from tests.channels.conftest import LocalHTTP, LocalSMTP

RULES = SLA_TEAM.replace("first_contact: 2s", "first_contact: 1h").replace(
    "{key: anna, name: Anna, team: sales,", "{key: anna, name: Anna, team: sales, telegram_chat_id: '777',"
)


def test_escalation_mail_telegram_and_webhook_arrive_once_in_the_right_language(
    make_app: Callable[[str], Leadflow], smtp_server: LocalSMTP, http_server: LocalHTTP
) -> None:
    lf = make_app(RULES)
    lf.notify = NotifyConfig(
        smtp_host=smtp_server.host, smtp_port=smtp_server.port, smtp_starttls=False, smtp_from="leadflow@example.test",
        telegram_bot_token="123:abc", telegram_api_base=http_server.url,
        webhook_urls=[f"{http_server.url}/hooks/crm"], webhook_secret="s3cret",
    )  # fmt: skip
    http_server.answer_always(200, {"ok": True, "result": {}})
    T0 = datetime.now(UTC) - timedelta(minutes=90)  # the worker below delivers what is due by the real clock
    lead = take_lead(lf, LeadIn(name="Іван Петренко", phone="0671234567", product="credit"), T0)
    assert escalate_due(lf, T0 + timedelta(hours=1)) == 1  # Anna (uk) missed it: to Bohdan (ru)

    worker = Worker(lf, poll_seconds=0.05)
    worker.start()
    try:
        deadline = time.monotonic() + 15
        while len(smtp_server.envelopes) < 2 or len(http_server.requests) < 4:
            assert time.monotonic() < deadline, (smtp_server.envelopes, http_server.requests)
            time.sleep(0.05)
    finally:
        worker.stop.set()

    # The server keeps the raw bytes (it does not decode them).
    mails = {
        e.rcpt_tos[0]: message_from_bytes(cast(bytes, e.content), policy=policy.default) for e in smtp_server.envelopes
    }
    assert sorted(mails) == ["anna@example.test", "bohdan@example.test"]
    to_bohdan = mails["bohdan@example.test"]
    assert isinstance(to_bohdan, EmailMessage)
    body = to_bohdan.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert to_bohdan["Subject"] == f"Лид #{lead.lead_id} ждёт тебя: Іван Петренко"
    assert "Коллега (Anna) не успел обработать лида?" in body and "+380671234567" in body
    to_anna = mails["anna@example.test"].get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert "у тебе новий лід" in to_anna

    by_path: dict[str, list[bytes]] = {}
    for r in http_server.requests:
        by_path.setdefault(r.path, []).append(r.body)
    chats = sorted(json.loads(b)["chat_id"] for b in by_path["/bot123:abc/sendMessage"])
    assert chats == ["-100500", "777"]  # Anna's own chat for her new lead, the team chat for the escalation
    hooks = [r for r in http_server.requests if r.path == "/hooks/crm"]
    assert sorted(json.loads(r.body)["event"] for r in hooks) == ["lead.assigned", "lead.escalated"]
    for r in hooks:
        signature, delivery = r.headers["x-leadflow-signature"], r.headers["x-leadflow-delivery"]
        assert verify_signature("s3cret", r.body, signature, delivery, time.time())
        assert not verify_signature("wrong", r.body, signature, delivery, time.time())


def test_the_global_slack_webhook_is_the_team_chat_when_a_team_has_none(
    make_app: Callable[[str], Leadflow], http_server: LocalHTTP
) -> None:
    lf = make_app(SLA_TEAM.replace("first_contact: 2s", "first_contact: 1h"))
    lf.notify = NotifyConfig(slack_webhook_url=f"{http_server.url}/services/T0/B0/secret")
    http_server.answer_always(200, {})
    T0 = datetime.now(UTC) - timedelta(minutes=90)
    lead = take_lead(lf, LeadIn(name="Ivan", phone="0671234567"), T0)
    assert escalate_due(lf, T0 + timedelta(hours=1)) == 1
    worker = Worker(lf, poll_seconds=0.05)
    worker.start()
    try:
        deadline = time.monotonic() + 15
        while not http_server.requests:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        worker.stop.set()
    [posted] = http_server.requests
    assert posted.path == "/services/T0/B0/secret"
    assert f"#{lead.lead_id}" in json.loads(posted.body)["text"]
    with lf.engine.connect() as conn:
        recipients = [r[0] for r in conn.execute(select(outbox.c.recipient).where(outbox.c.channel == "slack"))]
    assert recipients == ["default"]  # the outbox names the webhook, never its secret URL
