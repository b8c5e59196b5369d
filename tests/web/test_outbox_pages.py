"""The notifications page: dead letters first, and retrying one, over real HTTP."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from leadflow.channels.config import NotifyConfig
from leadflow.services.context import Leadflow, utcnow
from leadflow.services.delivery import deliver_due
from leadflow.store.outbox import enqueue, get_message
from tests.support import THREE_MANAGERS, live_server, web_sign_in, web_user


def _dead_and_pending(app: Leadflow) -> tuple[int, int]:
    """A dead letter (a Telegram message with no sender configured: given up at once) and a pending message."""
    now = utcnow()
    with app.engine.begin() as conn:
        enqueue(conn, [{"channel": "telegram", "recipient": "-100500", "subject": "New lead: Ivan", "body": "Call Ivan",
                        "created_at": now}])  # fmt: skip
    assert deliver_due(app.engine, {}, NotifyConfig(), now).dead == 1
    with app.engine.begin() as conn:
        enqueue(conn, [{"channel": "email", "recipient": "anna@example.test", "subject": "Later", "body": "x",
                        "created_at": now, "next_attempt_at": now.replace(year=now.year + 1)}])  # fmt: skip
        rows = conn.exec_driver_sql("select id, status from outbox order by id").all()
    ids = {status: id_ for id_, status in rows}
    return ids["dead"], ids["pending"]


def test_dead_letters_come_first_and_a_retry_puts_one_back_in_the_queue(make_app: Callable[[str], Leadflow]) -> None:
    app = make_app(THREE_MANAGERS)
    dead, pending = _dead_and_pending(app)
    password = web_user(app, "root", "admin")
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        csrf = web_sign_in(client, "root", password)
        page = client.get("/outbox")
        assert page.status_code == 200, page.text
        assert f'data-message="{dead}"' in page.text and f'data-message="{pending}"' not in page.text
        assert "no sender configured for channel &#39;telegram&#39;" in page.text and "New lead: Ivan" in page.text
        assert f'action="/outbox/{dead}/retry"' in page.text
        everything = client.get("/outbox?status=all")
        assert (
            f'data-message="{pending}"' in everything.text
            and f'action="/outbox/{pending}/retry"' not in everything.text
        )

        without_csrf = client.post(f"/outbox/{dead}/retry", data={"status": "dead"})
        assert without_csrf.status_code == 403
        retried = client.post(f"/outbox/{dead}/retry", data={"csrf_token": csrf, "status": "dead"},
                              headers={"HX-Request": "true"})  # fmt: skip
        assert retried.status_code == 200, retried.text
        assert "queued again" in retried.text and f'data-message="{dead}"' not in retried.text
        with app.engine.connect() as conn:
            message = get_message(conn, dead)
        assert message is not None and message.status == "pending" and message.attempts == 0
        assert "no sender configured" in (message.last_error or "")  # why it failed before stays

        again = client.post(f"/outbox/{dead}/retry", data={"csrf_token": csrf}, headers={"HX-Request": "true"})
        assert again.status_code == 409 and "not dead" in again.text
        plain = client.post(f"/outbox/{pending}/retry", data={"csrf_token": csrf})
        assert plain.status_code == 409
        assert client.post("/outbox/999999/retry", data={"csrf_token": csrf}).status_code == 404


def test_a_head_may_not_open_the_notifications(make_app: Callable[[str], Leadflow]) -> None:
    app = make_app(THREE_MANAGERS)
    dead, _ = _dead_and_pending(app)
    password = web_user(app, "head", "head", manager="head", teams=["sales"])
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        csrf = web_sign_in(client, "head", password)
        assert client.get("/outbox").status_code == 403
        assert client.post(f"/outbox/{dead}/retry", data={"csrf_token": csrf}).status_code == 403
        with app.engine.connect() as conn:
            message = get_message(conn, dead)
        assert message is not None and message.status == "dead"
