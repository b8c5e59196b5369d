"""E-mail from an IMAP mailbox, against a real Dovecot (a throwaway instance of its own, see dovecot.py): mail
delivered into the mailbox (IMAP APPEND) becomes leads, a restart takes nothing twice, a new UIDVALIDITY starts over
without repeats, IDLE brings new mail within about two seconds, a server without IDLE is looked into every few
seconds, and a refused login or an unreachable server is noted, retried, and never shows the password."""

from __future__ import annotations

import imaplib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from email import policy
from email.message import EmailMessage
from typing import Any

import pytest
from sqlalchemy import func, select

from leadflow.channels.inbound.config import ChannelsConfig
from leadflow.channels.inbound.email_imap import POSITION_KEY, ImapPoller, Position, idle, mailbox_name
from leadflow.channels.inbound.registry import pollers_from_config
from leadflow.services.channel_state import poller_services, read_state, save_state
from leadflow.services.context import Leadflow, utcnow
from leadflow.store.tables import channel_events, leads, messages
from tests.channels.conftest import free_port
from tests.channels.inbound.dovecot import PASSWORD, Dovecot, available

pytestmark = pytest.mark.skipif(not available(), reason="Dovecot is not installed: run ./scripts/ensure-dovecot")

RULES = """
default_region: UA
default_timezone: Europe/Kyiv
teams:
  - {key: sales, name: Sales, timezone: Europe/Kyiv, hours: always}
managers:
  - {key: anna, name: Anna, team: sales, capacity: 50}
  - {key: bohdan, name: Bohdan, team: sales, capacity: 50}
routing:
  rules:
    - {key: all, team: sales, managers: [anna, bohdan], strategy: round_robin}
"""


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    server = Dovecot().start()
    yield server
    server.stop()


@pytest.fixture
def mailbox_user() -> str:
    return f"leads-{uuid.uuid4().hex[:8]}"  # any name logs in: a fresh name is a fresh, empty mailbox


def config_for(server: Dovecot, user: str, **settings: Any) -> ChannelsConfig:
    values: dict[str, Any] = {"imap_host": "127.0.0.1", "imap_port": server.port, "imap_ssl": False,
                              "imap_username": user, "imap_password": PASSWORD, **settings}  # fmt: skip
    return ChannelsConfig(**values)


@pytest.fixture
def app(make_app: Callable[[str], Leadflow], dovecot: Dovecot, mailbox_user: str) -> Leadflow:
    lf = make_app(RULES)
    lf.channels = config_for(dovecot, mailbox_user)
    return lf


def mail(sender: str, subject: str, body: str, message_id: str, **headers: str) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "leads@bank.example.ua"
    message["Subject"] = subject
    message["Message-ID"] = message_id
    for key, value in headers.items():
        message[key.replace("_", "-")] = value
    message.set_content(body)
    return message.as_bytes(policy=policy.SMTP)


def poller(app: Leadflow, **options: Any) -> ImapPoller:
    return ImapPoller(app.channels, poller_services(app, utcnow), **options)


def take_once(app: Leadflow) -> int:
    """One look into the mailbox, as a new poller (a restart) would take it."""
    reader = poller(app)
    with reader.session() as (imap, uidvalidity, _):
        return reader.take_new(imap, uidvalidity)


def count(app: Leadflow, table: Any, *where: Any) -> int:
    with app.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


def emails(app: Leadflow) -> list[str]:
    with app.engine.connect() as conn:
        return list(conn.execute(select(leads.c.email).order_by(leads.c.id)).scalars())


def position(app: Leadflow) -> Position | None:
    return Position.load(read_state(app, "email", POSITION_KEY))


def run_in_thread(reader: ImapPoller) -> Callable[[], float]:
    """Start the poller's loop; returns a function that stops it and says how long stopping took."""
    stop = threading.Event()
    thread = threading.Thread(target=reader.run, args=(stop,), daemon=True)
    thread.start()

    def finish() -> float:
        started = time.monotonic()
        stop.set()
        thread.join(timeout=15)
        assert not thread.is_alive()
        return time.monotonic() - started

    return finish


def wait_for(check: Callable[[], bool], seconds: float) -> float:
    """Seconds until `check` held (fails after `seconds`)."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < seconds, "waited in vain"
        time.sleep(0.02)
    return time.monotonic() - started


def test_mail_becomes_leads_and_a_restart_takes_nothing_twice(
    app: Leadflow, dovecot: Dovecot, mailbox_user: str
) -> None:
    # Mail read before leadflow was set up is not taken at the first start: only what nobody has seen yet.
    dovecot.append(mailbox_user, mail("old@example.com", "old", "read long ago\n", "<old@x>"), seen=True)
    dovecot.append(mailbox_user, mail("Олена <olena@example.com>", "Заявка", "Потрібен кредит.\n", "<o1@x>"))
    dovecot.append(mailbox_user, mail("petro@example.com", "Лізинг", "Цікавить лізинг.\n", "<p1@x>"))
    dovecot.append(mailbox_user, mail("olena@example.com", "Out of office", "Away.\n", "<ooo@x>",
                                      Auto_Submitted="auto-replied"))  # fmt: skip
    assert take_once(app) == 3
    assert emails(app) == ["olena@example.com", "petro@example.com"]
    assert count(app, channel_events, channel_events.c.outcome == "unreadable") == 1
    kept = position(app)
    assert kept is not None and kept.uid == 4 and kept.mailbox == "INBOX"

    assert take_once(app) == 0  # a restart: the position is in the database
    dovecot.append(mailbox_user, mail("olena@example.com", "Re: Заявка", "Коли передзвоните?\n", "<o2@x>"))
    assert take_once(app) == 1
    assert count(app, leads) == 2 and count(app, messages) == 3  # Olena's second mail joined her lead

    # A crash after taking, before the position moved on: the same message again, and nothing new.
    save_state(app, "email", POSITION_KEY, Position("INBOX", kept.uidvalidity, 4).dump(), utcnow())
    assert take_once(app) == 1
    assert count(app, leads) == 2 and count(app, messages) == 3
    assert position(app) == Position("INBOX", kept.uidvalidity, 5)


def test_a_new_uidvalidity_starts_over_without_repeats_in_a_cyrillic_mailbox(
    app: Leadflow, dovecot: Dovecot, mailbox_user: str
) -> None:
    folder = "Заявки"
    app.channels = config_for(dovecot, mailbox_user, imap_mailbox=folder)
    imap = dovecot.login(mailbox_user)
    assert imap.create(mailbox_name(folder))[0] == "OK"
    first = mail("ivan@example.com", "Кредит", "Добрий день.\n", "<i1@x>")
    dovecot.append(mailbox_user, first, mailbox_name(folder))
    assert take_once(app) == 1
    before = position(app)
    assert before is not None and before.mailbox == folder

    # The folder is rebuilt: same messages, new UIDs, a new UIDVALIDITY.
    assert imap.delete(mailbox_name(folder))[0] == "OK" and imap.create(mailbox_name(folder))[0] == "OK"
    imap.logout()
    dovecot.append(mailbox_user, first, mailbox_name(folder))
    dovecot.append(mailbox_user, mail("maria@example.com", "Депозит", "Яка ставка?\n", "<m1@x>"), mailbox_name(folder))
    assert take_once(app) == 2  # both looked at again ...
    assert emails(app) == ["ivan@example.com", "maria@example.com"]  # ... and Ivan's not taken twice
    assert count(app, messages) == 2
    after = position(app)
    assert after is not None and after.uidvalidity != before.uidvalidity and after.uid == 2


def test_idle_brings_new_mail_within_two_seconds_and_the_poller_stops_at_once(
    app: Leadflow, dovecot: Dovecot, mailbox_user: str
) -> None:
    [reader] = pollers_from_config(app.channels, poller_services(app, utcnow))  # as the worker finds it
    assert isinstance(reader, ImapPoller)
    finish = run_in_thread(reader)
    try:
        wait_for(lambda: position(app) is not None, 10)  # the first look is done; now it waits in IDLE
        time.sleep(0.3)
        for n in range(2):
            dovecot.append(mailbox_user, mail(f"client{n}@example.com", "Терміново", "Передзвоніть!\n", f"<idle{n}@x>"))
            waited = wait_for(lambda n=n: count(app, leads) == n + 1, 10)  # type: ignore[misc]
            assert waited < 2.5, f"IDLE took {waited:.2f} s"
    finally:
        stopped_in = finish()
    assert stopped_in < 2  # stopping does not wait for the IDLE to run out
    assert reader.sessions == 1  # one session all along: IDLE, not polling


def test_idle_returns_on_new_mail_and_on_stop(dovecot: Dovecot, mailbox_user: str) -> None:
    imap = dovecot.login(mailbox_user)
    imap.select('"INBOX"', readonly=True)
    stop = threading.Event()
    threading.Timer(0.3, lambda: dovecot.append(mailbox_user, mail("a@example.com", "x", "y\n", "<i@x>"))).start()
    started = time.monotonic()
    assert idle(imap, stop, 10) is True and time.monotonic() - started < 2.5
    assert imap.noop()[0] == "OK"  # the connection is usable after IDLE: imaplib reads on where it left off
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()
    assert idle(imap, stop, 10) is False and time.monotonic() - started < 1.5
    assert idle(imap, threading.Event(), 0.5) is False  # nothing came: back after the time given
    assert imap.uid("SEARCH", "ALL")[1] == [b"1"]
    imap.logout()


def test_a_server_without_idle_is_looked_into_every_poll_seconds(make_app: Callable[[str], Leadflow]) -> None:
    plain = Dovecot(extra="imap_capability = IMAP4rev1 LITERAL+ UIDPLUS").start()  # a server that has no IDLE
    try:
        user = f"leads-{uuid.uuid4().hex[:8]}"
        app = make_app(RULES)
        app.channels = config_for(plain, user, imap_poll_seconds=0.5)
        reader = poller(app)
        finish = run_in_thread(reader)
        try:
            wait_for(lambda: position(app) is not None, 10)
            plain.append(user, mail("slow@example.com", "Питання", "Є хто?\n", "<slow@x>"))
            assert wait_for(lambda: count(app, leads) == 1, 10) < 3
        finally:
            finish()
        assert reader.sessions >= 2  # a session a look: nothing held open between looks
    finally:
        plain.stop()


def test_a_refused_login_is_noted_retried_and_never_shows_the_password(
    app: Leadflow, dovecot: Dovecot, mailbox_user: str, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "Wr0ng-but-secret-pa55"
    app.channels = config_for(dovecot, mailbox_user, imap_password=secret)
    caplog.set_level(logging.DEBUG)
    finish = run_in_thread(poller(app))
    try:
        wait_for(lambda: bool(read_state(app, "email", "last_error")), 10)
    finally:
        assert finish() < 2
    error = read_state(app, "email", "last_error") or ""
    assert f"refused the login for '{mailbox_user}'" in error and "AUTHENTICATIONFAILED" in error
    assert "LEADFLOW_CHANNELS__IMAP_PASSWORD" in error
    assert secret not in error and secret not in caplog.text
    assert "refused the login" in caplog.text
    assert count(app, leads) == 0


def test_a_mailbox_that_does_not_exist_is_noted_with_the_setting_to_check(app: Leadflow, dovecot: Dovecot) -> None:
    app.channels = config_for(dovecot, app.channels.imap_username or "", imap_mailbox="Leads")
    finish = run_in_thread(poller(app))
    try:
        wait_for(lambda: bool(read_state(app, "email", "last_error")), 10)
    finally:
        finish()
    error = read_state(app, "email", "last_error") or ""
    assert "has no mailbox 'Leads'" in error and "LEADFLOW_CHANNELS__IMAP_MAILBOX" in error


def test_an_unreachable_server_is_noted_and_retried_with_a_growing_pause(app: Leadflow, mailbox_user: str) -> None:
    port = free_port()
    app.channels = ChannelsConfig(imap_host="127.0.0.1", imap_port=port, imap_ssl=False, imap_username=mailbox_user,
                                  imap_password=PASSWORD)  # fmt: skip
    attempts: list[float] = []
    services = poller_services(app, utcnow)

    def connect(config: ChannelsConfig) -> imaplib.IMAP4:
        attempts.append(time.monotonic())
        return imaplib.IMAP4(str(config.imap_host), config.imap_port, timeout=5)

    reader = ImapPoller(app.channels, services, connect=connect)
    finish = run_in_thread(reader)
    try:
        wait_for(lambda: len(attempts) >= 3, 10)  # after 1 s, then 2 s
    finally:
        finish()
    assert attempts[2] - attempts[1] > attempts[1] - attempts[0] >= 0.9
    error = read_state(app, "email", "last_error") or ""
    assert f"could not reach the IMAP server 127.0.0.1:{port}: ConnectionRefusedError" in error
    assert PASSWORD not in error
