"""E-mail through the SMTP listener, end to end over loopback: a client's mail sent with smtplib becomes an assigned
lead with its thread, a repeat makes nothing, a manager's reply goes out through an SMTP server (aiosmtpd, the
tests' own) threaded under the client's message and stops the first-contact clock, and the client's answer joins the
same lead. Auto-replies and bounces are kept, answered 250, and make no lead; a store failure is answered 451."""

from __future__ import annotations

import smtplib
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from leadflow.channels.config import NotifyConfig
from leadflow.channels.inbound.config import ChannelsConfig
from leadflow.channels.inbound.email_smtp import SmtpListener
from leadflow.channels.inbound.ports import PollerServices
from leadflow.channels.inbound.registry import ReplySender, pollers_from_config, repliers_from_config
from leadflow.core.conversation import Inbound
from leadflow.core.policy import SYSTEM
from leadflow.services.channel_state import poller_services, read_state
from leadflow.services.context import Leadflow, utcnow
from leadflow.services.delivery import deliver_due
from leadflow.services.leads import set_status
from leadflow.services.sla import escalate_due
from leadflow.store.tables import channel_events, leads, messages
from tests.channels.conftest import LocalSMTP, free_port
from tests.channels.inbound.world import chat_team
from tests.support import live_server, person

RULES = chat_team("email: 2h")
SALES = "sales@bank.example.ua"


@pytest.fixture
def app(make_app: Callable[[str], Leadflow], smtp_server: LocalSMTP) -> Leadflow:
    lf = make_app(RULES)
    lf.channels = ChannelsConfig(smtp_listen_port=free_port())
    lf.notify = NotifyConfig(smtp_host=smtp_server.host, smtp_port=smtp_server.port, smtp_starttls=False,
                             smtp_from=f"Продажі <{SALES}>")  # fmt: skip
    return lf


def start(listener: SmtpListener) -> Callable[[], None]:
    stop = threading.Event()
    thread = threading.Thread(target=listener.run, args=(stop,), daemon=True)
    thread.start()
    assert listener.listening.wait(10), "the SMTP listener did not start"

    def finish() -> None:
        stop.set()
        thread.join(timeout=10)
        assert not thread.is_alive()

    return finish


@pytest.fixture
def listener(app: Leadflow) -> Iterator[SmtpListener]:
    """The listener the worker would run for these settings (found through the registry, as the worker finds it)."""
    found = pollers_from_config(app.channels, poller_services(app, utcnow))
    assert [p.name for p in found] == ["email-smtp"]
    assert isinstance(found[0], SmtpListener)
    finish = start(found[0])
    yield found[0]
    finish()


def mail(sender: str, subject: str, body: str, message_id: str, *, in_reply_to: str | None = None,
         name: str | None = None, headers: dict[str, str] | None = None) -> bytes:  # fmt: skip
    """A message as a client's mail program writes it."""
    message = EmailMessage()
    message["From"] = f"{name} <{sender}>" if name else sender
    message["To"] = SALES
    message["Subject"] = subject
    message["Date"] = "Tue, 02 Dec 2025 09:14:27 +0200"
    message["Message-ID"] = message_id
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
        message["References"] = in_reply_to
    for key, value in (headers or {}).items():
        message[key] = value
    message.set_content(body)
    return message.as_bytes(policy=policy.SMTP)


def send(listener: SmtpListener, raw: bytes, envelope_from: str = "client@example.com") -> None:
    with smtplib.SMTP(listener.host, listener.port, timeout=30) as smtp:
        smtp.sendmail(envelope_from, [SALES], raw)


def count(app: Leadflow, table: Any, *where: Any) -> int:
    with app.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


def leads_of(app: Leadflow, email: str) -> list[dict[str, Any]]:
    with app.engine.connect() as conn:
        rows = conn.execute(select(leads).where(leads.c.email == email).order_by(leads.c.id)).mappings().all()
    return [dict(r) for r in rows]


def deliver(app: Leadflow) -> Any:
    senders = {"reply": ReplySender(repliers_from_config(app.channels, app.notify))}
    return deliver_due(app.engine, senders, app.notify, utcnow())


def test_a_clients_mail_makes_a_lead_the_reply_goes_out_threaded_and_the_answer_joins_the_lead(
    app: Leadflow, listener: SmtpListener, smtp_server: LocalSMTP
) -> None:
    anna = person(app, "anna", "manager", manager="anna")
    first = mail("Olena.K@example.com", "Заявка на кредит", "Добрий день! Потрібен кредит.\n", "<c1@example.com>",
                 name="Олена Коваленко")  # fmt: skip
    send(listener, first)
    [lead] = leads_of(app, "olena.k@example.com")
    assert lead["channel"] == "email" and lead["name"] == "Олена Коваленко" and lead["status"] == "assigned"
    assert lead["message"] == "Заявка на кредит\n\nДобрий день! Потрібен кредит."
    assert lead["sla_state"] == "running" and lead["sla_due_at"] - lead["created_at"] == timedelta(hours=2)

    send(listener, first)  # the sending server delivers again: nothing new
    assert count(app, leads) == 1 and count(app, messages) == 1

    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        thread = client.get(f"/api/v1/leads/{lead['id']}/messages", headers=anna).json()["items"]
        assert [(m["direction"], m["subject"], m["text"]) for m in thread] == [
            ("in", "Заявка на кредит", "Добрий день! Потрібен кредит.")]  # fmt: skip
        sent = client.post(f"/api/v1/leads/{lead['id']}/messages", json={"text": "Вітаю! Це Анна з банку."},
                           headers=anna)  # fmt: skip
        assert sent.status_code == 202, sent.text
        assert sent.json()["channel"] == "email" and sent.json()["contact"] is True
    [contacted] = leads_of(app, "olena.k@example.com")
    assert contacted["first_contact_at"] is not None and contacted["sla_state"] == "met"

    assert deliver(app).sent == 1
    envelope = smtp_server.envelopes[-1]
    assert envelope.rcpt_tos == ["olena.k@example.com"] and envelope.mail_from == SALES
    assert envelope.original_content is not None
    reply = BytesParser(policy=policy.default).parsebytes(envelope.original_content)
    assert reply["In-Reply-To"] == "<c1@example.com>" and reply["References"] == "<c1@example.com>"
    plain = reply.get_body(("plain",))  # with the HTML part of tracked e-mail (test_email_tracking.py)
    assert plain is not None and plain.get_content().strip() == "Вітаю! Це Анна з банку."
    assert reply["Subject"] == "Re: Заявка на кредит"
    reply_id = str(reply["Message-ID"])
    assert reply_id.endswith("@bank.example.ua>")
    with app.engine.connect() as conn:
        kept = conn.execute(select(messages.c.external_id, messages.c.status)
                            .where(messages.c.direction == "out")).one()  # fmt: skip
    assert tuple(kept) == (reply_id, "sent")  # the reply's Message-ID is its id: the client's answer names it

    answer = mail("olena.k@example.com", "Re: Re: Заявка на кредит", "Дякую, чекаю дзвінка.\n\n> Вітаю!\n",
                  "<c2@example.com>", in_reply_to=reply_id)  # fmt: skip
    send(listener, answer)
    assert count(app, leads) == 1
    with app.engine.connect() as conn:
        thread_rows = conn.execute(select(messages.c.lead_id, messages.c.direction, messages.c.meta)
                                   .order_by(messages.c.id)).all()  # fmt: skip
    assert [(r.lead_id, r.direction) for r in thread_rows] == [(lead["id"], "in"), (lead["id"], "out"),
                                                                (lead["id"], "in")]  # fmt: skip
    assert thread_rows[-1].meta["reply_to"] == reply_id


def test_an_answer_from_another_address_joins_by_in_reply_to_and_a_closed_leads_client_opens_a_new_lead(
    app: Leadflow, listener: SmtpListener
) -> None:
    send(listener, mail("petro@firm.example.com", "Лізинг", "Цікавить лізинг.\n", "<p1@firm.example.com>"))
    [lead] = leads_of(app, "petro@firm.example.com")
    # A colleague answers in the same conversation, from their own address: it joins the same lead.
    send(listener, mail("accountant@firm.example.com", "Re: Лізинг", "Надсилаю реквізити.\n", "<p2@firm.example.com>",
                        in_reply_to="<p1@firm.example.com>"))  # fmt: skip
    assert count(app, leads) == 1 and count(app, messages, messages.c.lead_id == lead["id"]) == 2

    set_status(app, lead["id"], "converted", utcnow(), who=SYSTEM)
    send(listener, mail("petro@firm.example.com", "Ще один договір", "Потрібен ще один.\n", "<p3@firm.example.com>"))
    again = leads_of(app, "petro@firm.example.com")
    assert [r["status"] for r in again] == ["converted", "assigned"]  # a repeat sale: a new lead for the same client


def test_auto_replies_and_bounces_are_kept_answered_250_and_make_no_lead(app: Leadflow, listener: SmtpListener) -> None:
    out_of_office = mail("olena@example.com", "Автовідповідь: Re: кредит", "Я у відпустці до понеділка.\n",
                         "<ooo@example.com>", headers={"Auto-Submitted": "auto-replied"})  # fmt: skip
    send(listener, out_of_office)  # smtplib raises on anything but 250
    bounce = mail("MAILER-DAEMON@mx.example.com", "Undelivered Mail Returned to Sender", "Could not deliver.\n",
                  "<bounce@mx.example.com>")  # fmt: skip
    send(listener, bounce, envelope_from="")  # MAIL FROM:<>
    nameless = mail("someone@example.com", "hello", "From nobody's envelope.\n", "<null@example.com>")
    send(listener, nameless, envelope_from="")
    assert count(app, leads) == 0 and count(app, messages) == 0
    with app.engine.connect() as conn:
        kept = conn.execute(select(channel_events.c.external_id, channel_events.c.outcome, channel_events.c.reason)
                            .order_by(channel_events.c.id)).all()  # fmt: skip
    assert [(k.external_id, k.outcome) for k in kept] == [
        ("<ooo@example.com>", "unreadable"), ("<bounce@mx.example.com>", "unreadable"),
        ("<null@example.com>", "unreadable")]  # fmt: skip
    assert kept[0].reason == "auto-reply (Auto-Submitted: auto-replied)"
    assert kept[1].reason == "bounce (from mailer-daemon@mx.example.com)"
    assert kept[2].reason == "bounce or auto-reply (MAIL FROM:<>, the null sender)"


def test_a_store_failure_is_answered_451_and_the_message_taken_once_when_sent_again(app: Leadflow) -> None:
    services = poller_services(app, utcnow)
    failures = [RuntimeError("the database is restarting")]

    def take_after_a_failure(items: Sequence[Inbound]) -> object:
        if failures:
            raise failures.pop()
        return services.take(items)

    listener = SmtpListener("127.0.0.1", free_port(), replace(services, take=take_after_a_failure))
    finish = start(listener)
    try:
        raw = mail("taras@example.com", "Питання", "Чи можна оформити онлайн?\n", "<t1@example.com>")
        with pytest.raises(smtplib.SMTPDataError) as refused:
            send(listener, raw)
        assert refused.value.smtp_code == 451  # a temporary failure: the sending server keeps it and tries again
        assert count(app, leads) == 0 and count(app, channel_events) == 0
        send(listener, raw)
        send(listener, raw)
    finally:
        finish()
    assert count(app, leads) == 1 and count(app, messages) == 1


def test_a_port_that_cannot_be_bound_is_noted_with_the_settings_to_check(app: Leadflow) -> None:
    services = poller_services(app, utcnow)
    first = SmtpListener("127.0.0.1", free_port(), services)
    finish_first = start(first)
    try:
        second = SmtpListener("127.0.0.1", first.port, services, ready_timeout=2)
        stop = threading.Event()
        thread = threading.Thread(target=second.run, args=(stop,), daemon=True)
        thread.start()
        for _ in range(100):
            if read_state(app, "email", "last_error"):
                break
            threading.Event().wait(0.05)
        stop.set()
        thread.join(timeout=10)
        assert not thread.is_alive() and not second.listening.is_set()
    finally:
        finish_first()
    error = read_state(app, "email", "last_error") or ""
    assert f"cannot listen for e-mail on 127.0.0.1:{first.port}" in error
    assert "LEADFLOW_CHANNELS__SMTP_LISTEN_HOST" in error and "LEADFLOW_CHANNELS__SMTP_LISTEN_PORT" in error


def test_services_wired_for_the_listener_are_the_pollers() -> None:
    # Without a port there is no listener: nothing binds unless it is configured.
    services = PollerServices(take=lambda items: None, load_state=lambda c, k: None, save_state=lambda c, k, v: None,
                              note_error=lambda c, e: None)  # fmt: skip
    assert pollers_from_config(ChannelsConfig(), services) == []


def test_a_mail_nobody_answers_within_its_deadline_escalates(app: Leadflow, listener: SmtpListener) -> None:
    send(listener, mail("late@example.com", "Заявка", "Чекаю на відповідь.\n", "<late-1@example.com>"))
    [lead] = leads_of(app, "late@example.com")
    assert escalate_due(app, utcnow() + timedelta(hours=1, minutes=59)) == 0
    assert escalate_due(app, utcnow() + timedelta(hours=2, minutes=1)) == 1
    [moved] = leads_of(app, "late@example.com")
    assert moved["manager_id"] != lead["manager_id"] and moved["sla_hops"] == 1
