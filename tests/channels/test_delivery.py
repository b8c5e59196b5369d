"""The outbox and the delivery loop, on SQLite and PostgreSQL, against local receivers. Time is a fake `now`."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import Engine, func, insert, select, text

from leadflow.channels.config import NotifyConfig
from leadflow.channels.senders import DeliveryError, LogSender, Sender, TelegramSender, WebhookSender
from leadflow.channels.signing import verify_signature
from leadflow.core.errors import Conflict, NotFound
from leadflow.services.delivery import DeliveryReport, deliver_due, enqueue_notification
from leadflow.store.outbox import (
    OutboxMessage,
    backoff_delay,
    claim_due,
    collected,
    enqueue,
    get_message,
    list_messages,
    mark_failed,
    mark_sent,
    retry_dead,
)
from leadflow.store.tables import events, outbox

if TYPE_CHECKING:
    from tests.channels.conftest import LocalHTTP

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SECRET = "whsec_delivery_test"
CONTEXT: dict[str, Any] = {
    "lead": {"id": 7, "name": "Олена", "phone": "+380501234567", "product": "Кухні", "channel": "web"},
    "manager_name": "Тарас",
    "due_at_local": "02.03 11:10",
    "link": "http://127.0.0.1/leads/7",
}


def add_event(engine: Engine, type_: str = "lead.assigned") -> int:
    with engine.begin() as conn:
        event_id: int = conn.execute(
            insert(events).values(lead_id=None, type=type_, actor=None, data={}, at=T0).returning(events.c.id)
        ).scalar_one()
    return event_id


def notify(engine: Engine, channel: str, recipient: str, *, language: str | None = "uk", at: datetime = T0) -> int:
    with engine.begin() as conn:
        enqueue_notification(
            conn,
            event_id=None,
            event_type="lead.assigned",
            channel=channel,
            recipient=recipient,
            language=language,
            context=CONTEXT,
            now=at,
        )
        new_id: int = conn.execute(select(func.max(outbox.c.id))).scalar_one()
    return new_id


def only(engine: Engine, id: int) -> OutboxMessage:
    with engine.connect() as conn:
        message = get_message(conn, id)
    assert message is not None
    return message


def plain(count: int, at: datetime = T0) -> list[dict[str, Any]]:
    return [{"channel": "log", "recipient": "log", "body": f"message {i}", "created_at": at} for i in range(count)]


# --- writing -------------------------------------------------------------------------------------------------


def test_enqueue_notification_renders_in_the_managers_language_and_keeps_the_payload(engine: Engine) -> None:
    event_id = add_event(engine)
    with engine.begin() as conn:
        rendered = enqueue_notification(
            conn,
            event_id=event_id,
            event_type="lead.assigned",
            channel="telegram",
            recipient="100200300",
            language="uk-UA",
            context=CONTEXT,
            now=T0,
        )
    with engine.connect() as conn:
        [message] = list_messages(conn, None, 10, 0)
    assert message.event_id == event_id
    assert message.status == "pending" and message.attempts == 0 and message.next_attempt_at == T0
    assert message.subject == rendered.subject == "Новий лід #7: Олена"
    assert "Тарас, у тебе новий лід" in message.body
    assert message.payload["event"] == "lead.assigned"
    assert message.payload["event_id"] == event_id
    assert message.payload["lead"]["name"] == "Олена"
    assert message.payload["manager_name"] == "Тарас"
    assert message.payload["message"] == {"subject": rendered.subject, "text": rendered.text}
    assert message.created_at == T0 and message.created_at.tzinfo is not None


def test_notification_is_written_with_its_event_or_not_at_all(engine: Engine) -> None:
    with pytest.raises(RuntimeError), engine.begin() as conn:
        enqueue_notification(
            conn,
            event_id=None,
            event_type="lead.assigned",
            channel="log",
            recipient="log",
            language=None,
            context=CONTEXT,
            now=T0,
        )
        raise RuntimeError("the event's transaction fails")
    with engine.connect() as conn:
        assert list_messages(conn, None, 10, 0) == []


def test_collected_messages_are_written_together_at_the_end_or_not_at_all(engine: Engine) -> None:
    with engine.begin() as conn, collected(conn):
        enqueue(conn, plain(2))
        notify_row = {"channel": "email", "recipient": "a@example.test", "body": "hi", "created_at": T0}
        enqueue(conn, [notify_row])
        assert conn.execute(select(func.count()).select_from(outbox)).scalar_one() == 0  # kept until the end
    with engine.connect() as conn:
        assert [m.body for m in reversed(list_messages(conn, None, 10, 0))] == ["message 0", "message 1", "hi"]
    with pytest.raises(RuntimeError, match="fails"), engine.begin() as conn, collected(conn):
        enqueue(conn, plain(1))
        raise RuntimeError("the batch fails")
    with engine.begin() as conn:
        assert conn.execute(select(func.count()).select_from(outbox)).scalar_one() == 3
        with collected(conn), pytest.raises(RuntimeError, match="already open"), collected(conn):
            pass
        enqueue(conn, plain(1))  # written at once again, once the block is over
        assert conn.execute(select(func.count()).select_from(outbox)).scalar_one() == 4


def test_a_broken_override_falls_back_to_the_builtin_text(engine: Engine) -> None:
    with engine.begin() as conn:
        enqueue_notification(
            conn,
            event_id=None,
            event_type="lead.assigned",
            channel="log",
            recipient="log",
            language="en",
            context=CONTEXT,
            now=T0,
            overrides={"lead.assigned": {"en": "Hi {{ lead.nmae }}\nbody"}},
        )
        [message] = list_messages(conn, None, 10, 0)
    assert message.subject == "New lead #7: Олена"


def test_enqueue_refuses_unknown_channels_and_missing_fields(engine: Engine) -> None:
    with engine.begin() as conn:
        with pytest.raises(ValueError, match="unknown notification channel 'sms'"):
            enqueue(conn, [{"channel": "sms", "recipient": "1", "body": "x", "created_at": T0}])
        with pytest.raises(ValueError, match="missing recipient"):
            enqueue(conn, [{"channel": "log", "body": "x", "created_at": T0}])


# --- delivering ----------------------------------------------------------------------------------------------


def telegram_setup(server: LocalHTTP, **values: Any) -> tuple[NotifyConfig, dict[str, Sender]]:
    config = NotifyConfig(telegram_bot_token="1:T", telegram_api_base=server.url, timeout_seconds=2, **values)
    return config, {"telegram": TelegramSender(config), "log": LogSender()}


def test_due_message_is_sent_and_marked(engine: Engine, http_server: LocalHTTP) -> None:
    http_server.answer_always(200, {"ok": True, "result": {}})
    config, senders = telegram_setup(http_server)
    id = notify(engine, "telegram", "100200300")
    assert deliver_due(engine, senders, config, T0 - timedelta(seconds=1)) == DeliveryReport()  # not yet due
    assert deliver_due(engine, senders, config, T0 + timedelta(seconds=1)) == DeliveryReport(sent=1)
    [request] = http_server.requests
    assert request.json()["chat_id"] == "100200300"
    assert request.json()["text"].startswith("Новий лід #7: Олена\n\nТарас, у тебе новий лід")
    message = only(engine, id)
    assert message.status == "sent" and message.attempts == 1 and message.sent_at == T0 + timedelta(seconds=1)
    assert deliver_due(engine, senders, config, T0 + timedelta(hours=1)) == DeliveryReport()  # sent once only


def test_outcomes_are_stamped_with_the_clock_when_given(engine: Engine) -> None:
    id = notify(engine, "log", "log")
    later = T0 + timedelta(seconds=3)
    deliver_due(engine, {"log": LogSender()}, NotifyConfig(), T0, clock=lambda: later)
    assert only(engine, id).sent_at == later


def test_failing_receiver_backs_off_exponentially_then_dead_letters(engine: Engine, http_server: LocalHTTP) -> None:
    http_server.fail(times=None, status=500, body=b"receiver is down")
    config = NotifyConfig(webhook_secret=SECRET, timeout_seconds=2, max_attempts=6, backoff_base_seconds=5)
    senders: dict[str, Sender] = {"webhook": WebhookSender(config)}
    id = notify(engine, "webhook", http_server.url + "/hook")

    now = T0
    waits = []
    for attempt in range(1, 7):
        report = deliver_due(engine, senders, config, now)
        message = only(engine, id)
        assert message.attempts == attempt
        if attempt < 6:
            assert report == DeliveryReport(failed=1)
            assert message.status == "pending"
            wait = message.next_attempt_at - now
            waits.append(wait.total_seconds())
            # Not a moment early: one second before the backoff ends, nothing is due.
            assert deliver_due(engine, senders, config, message.next_attempt_at - timedelta(seconds=1)) == (
                DeliveryReport()
            )
            now = message.next_attempt_at
        else:
            assert report == DeliveryReport(dead=1)
    assert waits == [5, 10, 20, 40, 80]
    assert len(http_server.requests) == 6

    with engine.connect() as conn:
        [dead] = list_messages(conn, "dead", 10, 0)
    assert dead.id == id and dead.attempts == config.max_attempts
    assert "gave up after 6 attempts" in (dead.last_error or "")
    assert "answered 500: receiver is down" in (dead.last_error or "")
    assert deliver_due(engine, senders, config, now + timedelta(days=1)) == DeliveryReport()

    # Every attempt carried a signature a receiver accepts, and the same delivery id.
    for request in http_server.requests:
        assert request.headers["x-leadflow-delivery"] == str(id)
        assert request.headers["x-leadflow-event"] == "lead.assigned"
        assert request.json()["lead"]["id"] == 7
        signature = request.headers["x-leadflow-signature"]
        t = int(signature.split(",")[0][2:])
        assert verify_signature(SECRET, request.body, signature, str(id), now_unix=t + 1)


def test_receiver_that_recovers_gets_the_message(engine: Engine, http_server: LocalHTTP) -> None:
    http_server.fail(times=2, status=503)
    config = NotifyConfig(webhook_secret=SECRET, timeout_seconds=2)
    senders: dict[str, Sender] = {"webhook": WebhookSender(config)}
    id = notify(engine, "webhook", http_server.url + "/hook")
    now = T0
    for expected in (DeliveryReport(failed=1), DeliveryReport(failed=1), DeliveryReport(sent=1)):
        assert deliver_due(engine, senders, config, now) == expected
        now = only(engine, id).next_attempt_at
    message = only(engine, id)
    assert message.status == "sent" and message.attempts == 3


def test_permanent_failure_is_dead_at_once(engine: Engine, http_server: LocalHTTP) -> None:
    http_server.answer(400, {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"})
    config, senders = telegram_setup(http_server)
    id = notify(engine, "telegram", "42")
    assert deliver_due(engine, senders, config, T0) == DeliveryReport(dead=1)
    message = only(engine, id)
    assert message.status == "dead" and message.attempts == 1
    assert "chat not found" in (message.last_error or "")


def test_retry_after_from_the_receiver_is_honoured(engine: Engine, http_server: LocalHTTP) -> None:
    http_server.answer(429, b"slow down", {"Retry-After": "120"})
    config = NotifyConfig(webhook_secret=SECRET, timeout_seconds=2)
    id = notify(engine, "webhook", http_server.url + "/hook")
    deliver_due(engine, {"webhook": WebhookSender(config)}, config, T0)
    assert only(engine, id).next_attempt_at == T0 + timedelta(seconds=120)


def test_channel_without_a_sender_is_dead_lettered_with_what_to_set(engine: Engine) -> None:
    id = notify(engine, "telegram", "100")
    assert deliver_due(engine, {"log": LogSender()}, NotifyConfig(), T0) == DeliveryReport(dead=1)
    message = only(engine, id)
    assert message.status == "dead"
    assert message.last_error == (
        "no sender configured for channel 'telegram': set LEADFLOW_NOTIFY__TELEGRAM_BOT_TOKEN"
    )


class Crashing:
    def send(self, message: OutboxMessage) -> None:
        raise KeyError("bug")


def test_a_crashing_sender_does_not_stop_the_batch(engine: Engine) -> None:
    crash = notify(engine, "email", "a@example.test")
    fine = notify(engine, "log", "log")
    report = deliver_due(engine, {"email": Crashing(), "log": LogSender()}, NotifyConfig(), T0)
    assert report == DeliveryReport(sent=1, failed=1)
    assert "unexpected error in the email sender: KeyError" in (only(engine, crash).last_error or "")
    assert only(engine, fine).status == "sent"


class Probe:
    """Records whether the database had a connection checked out (an open transaction) while sending."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.checked_out: list[int] = []

    def send(self, message: OutboxMessage) -> None:
        self.checked_out.append(self.engine.pool.checkedout())  # type: ignore[attr-defined]


def test_sending_happens_outside_any_transaction(engine: Engine) -> None:
    for _ in range(3):
        notify(engine, "log", "log")
    probe = Probe(engine)
    assert deliver_due(engine, {"log": probe}, NotifyConfig(), T0) == DeliveryReport(sent=3)
    assert probe.checked_out == [0, 0, 0]


def test_batches_are_limited_and_oldest_due_goes_first(engine: Engine) -> None:
    with engine.begin() as conn:
        enqueue(conn, [{**m, "next_attempt_at": T0 + timedelta(seconds=i)} for i, m in enumerate(plain(5))][::-1])
    seen: list[str] = []

    class Recorder:
        def send(self, message: OutboxMessage) -> None:
            seen.append(message.body)

    config = NotifyConfig()
    assert deliver_due(engine, {"log": Recorder()}, config, T0 + timedelta(minutes=1), batch_size=2).sent == 2
    assert deliver_due(engine, {"log": Recorder()}, config, T0 + timedelta(minutes=1), batch_size=10).sent == 3
    assert seen == ["message 0", "message 1", "message 2", "message 3", "message 4"]


# --- leases --------------------------------------------------------------------------------------------------


def test_a_claimed_message_is_leased_not_lost(engine: Engine) -> None:
    with engine.begin() as conn:
        enqueue(conn, plain(1))
    lease = timedelta(minutes=5)
    with engine.begin() as conn:
        [claimed] = claim_due(conn, T0, 10, lease)
    assert claimed.attempts == 1 and claimed.next_attempt_at == T0 + lease
    # The process "dies" here: no mark_sent, no mark_failed.
    with engine.begin() as conn:
        assert claim_due(conn, T0 + lease - timedelta(seconds=1), 10, lease) == []
    with engine.begin() as conn:
        [again] = claim_due(conn, T0 + lease, 10, lease)
    assert again.id == claimed.id and again.attempts == 2


def test_a_message_interrupted_on_every_attempt_is_dead_lettered(engine: Engine) -> None:
    with engine.begin() as conn:
        enqueue(conn, plain(1))
    now, lease = T0, timedelta(minutes=1)
    for _ in range(3):
        with engine.begin() as conn:
            assert len(claim_due(conn, now, 10, lease, max_attempts=3)) == 1
        now += lease
    with engine.begin() as conn:
        assert claim_due(conn, now, 10, lease, max_attempts=3) == []
        [dead] = list_messages(conn, "dead", 10, 0)
    assert dead.attempts == 3 and "interrupted" in (dead.last_error or "")


def test_outcome_of_a_message_an_operator_already_handled_is_ignored(engine: Engine) -> None:
    config = NotifyConfig()
    with engine.begin() as conn:
        enqueue(conn, plain(1))
        [message] = claim_due(conn, T0, 1, timedelta(minutes=1))
        assert mark_failed(conn, message.id, T0, "refused", False, config) == "dead"
        mark_sent(conn, message.id, T0)  # a late success report from a worker whose lease had run out
        assert mark_failed(conn, message.id, T0, "late", True, config) == "dead"
        stored = get_message(conn, message.id)
    assert stored is not None and stored.status == "dead" and stored.last_error == "refused"


def test_claims_in_concurrent_transactions_are_disjoint_on_postgresql(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite runs one writer at a time; SKIP LOCKED is a PostgreSQL feature")
    with engine.begin() as conn:
        enqueue(conn, plain(6))
    lease = timedelta(minutes=5)
    first = engine.connect()
    second = engine.connect()
    try:
        with first.begin():
            mine = claim_due(first, T0, 3, lease)
            with second.begin():
                # Without SKIP LOCKED this would wait for `first`; fail fast instead of hanging.
                second.execute(text("SET LOCAL lock_timeout = '2s'"))
                theirs = claim_due(second, T0, 10, lease)
    finally:
        first.close()
        second.close()
    assert len(mine) == 3 and len(theirs) == 3
    assert {m.id for m in mine}.isdisjoint({m.id for m in theirs})


def test_concurrent_workers_send_each_message_once(engine: Engine) -> None:
    """Several deliver_due loops at once (threads): every message is sent exactly once, on either database."""
    with engine.begin() as conn:
        enqueue(conn, plain(30))
    sent: list[int] = []
    lock = threading.Lock()

    class Counting:
        def send(self, message: OutboxMessage) -> None:
            with lock:
                sent.append(message.id)

    def worker() -> None:
        while deliver_due(engine, {"log": Counting()}, NotifyConfig(), T0, batch_size=4).handled:
            pass

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(sent) == sorted(set(sent)) and len(sent) == 30


# --- the operator's view -------------------------------------------------------------------------------------


def test_list_messages_filters_and_pages_newest_first(engine: Engine) -> None:
    with engine.begin() as conn:
        enqueue(conn, plain(5))
        [first, *_] = claim_due(conn, T0, 1, timedelta(minutes=1))
        mark_sent(conn, first.id, T0)
    with engine.connect() as conn:
        everything = list_messages(conn, None, 10, 0)
        assert [m.body for m in everything] == [f"message {i}" for i in (4, 3, 2, 1, 0)]
        assert [m.body for m in list_messages(conn, None, 2, 1)] == ["message 3", "message 2"]
        assert [m.body for m in list_messages(conn, "sent", 10, 0)] == ["message 0"]
        assert len(list_messages(conn, "pending", 10, 0)) == 4
        with pytest.raises(ValueError, match="unknown outbox status 'lost'"):
            list_messages(conn, "lost", 10, 0)


def test_retry_dead_gives_a_fresh_set_of_attempts(engine: Engine) -> None:
    id = notify(engine, "telegram", "100")
    deliver_due(engine, {}, NotifyConfig(), T0)  # no sender: dead
    later = T0 + timedelta(hours=2)
    with engine.begin() as conn:
        revived = retry_dead(conn, id, later)
    assert revived.status == "pending" and revived.attempts == 0 and revived.next_attempt_at == later
    assert revived.last_error is not None  # kept, so the operator still sees what went wrong before
    with engine.begin() as conn:
        with pytest.raises(Conflict, match="pending, not dead"):
            retry_dead(conn, id, later)
        with pytest.raises(NotFound):
            retry_dead(conn, 999_999, later)
    assert deliver_due(engine, {"telegram": LogSender()}, NotifyConfig(), later) == DeliveryReport(sent=1)


def test_backoff_doubles_and_is_capped() -> None:
    config = NotifyConfig(backoff_base_seconds=5, backoff_max_seconds=60)
    assert [backoff_delay(n, config).total_seconds() for n in range(1, 7)] == [5, 10, 20, 40, 60, 60]
    assert backoff_delay(10_000, config) == timedelta(seconds=60)


class Refusing:
    def send(self, message: OutboxMessage) -> None:
        raise DeliveryError("x" * 5000, retryable=True)


def test_very_long_errors_are_cut(engine: Engine) -> None:
    id = notify(engine, "log", "log")
    deliver_due(engine, {"log": Refusing()}, NotifyConfig(), T0)
    assert len(only(engine, id).last_error or "") <= 2000
