"""Tasks on the desk's pages, over real HTTP: "My tasks" beside the queue (overdue first, marked), a lead's tasks on
its card, and the Done button from both (refused without the CSRF token, refused for someone else's task)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import httpx
from sqlalchemy import select

from leadflow.core.lead import LeadIn
from leadflow.core.policy import SYSTEM
from leadflow.services import tasks
from leadflow.services.context import Leadflow, utcnow
from leadflow.services.intake import take_lead
from leadflow.store.tables import tasks as tasks_table
from tests.support import THREE_MANAGERS, live_server, web_sign_in, web_user


def _status(app: Leadflow, task_id: int) -> str:
    with app.engine.connect() as conn:
        return str(conn.execute(select(tasks_table.c.status).where(tasks_table.c.id == task_id)).scalar_one())


def test_a_manager_sees_their_tasks_beside_the_queue_and_marks_them_done(make_app: Callable[[str], Leadflow]) -> None:
    app = make_app(THREE_MANAGERS)
    now = utcnow()
    lead = take_lead(app, LeadIn(name="Іван Петренко", phone="0671234567", product="credit"), now)
    other = take_lead(app, LeadIn(name="Ольга", phone="0501112233", product="leasing"), now)
    owner, other_owner = lead.manager_key or "", other.manager_key or ""
    later = tasks.create_task(app, now, who=SYSTEM, lead_id=lead.lead_id, title="Надіслати пропозицію",
                              due_at=now + timedelta(days=1))  # fmt: skip
    late = tasks.create_task(app, now, who=SYSTEM, lead_id=lead.lead_id, title="Передзвонити щодо ставки",
                             due_at=now - timedelta(hours=1))  # fmt: skip
    theirs = tasks.create_task(app, now, who=SYSTEM, lead_id=other.lead_id, title="Чужа справа", due_at=None)
    password = web_user(app, owner, "manager", manager=owner, language="uk")
    web_user(app, other_owner, "manager", manager=other_owner)
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        csrf = web_sign_in(client, owner, password)
        queue = client.get("/").text
        assert "Мої завдання" in queue and "Чужа справа" not in queue
        # The overdue one first, and marked.
        assert queue.index("Передзвонити щодо ставки") < queue.index("Надіслати пропозицію")
        assert f'id="task-{late["id"]}" class="overdue"' in queue
        assert client.post(f"/tasks/{late['id']}/done", data={"from": "queue"}).status_code == 403  # no CSRF token
        assert _status(app, late["id"]) == "open"
        done = client.post(f"/tasks/{late['id']}/done", data={"csrf_token": csrf, "from": "queue"},
                           headers={"HX-Request": "true"})  # fmt: skip
        assert done.status_code == 200 and "Виконано: Передзвонити щодо ставки" in done.text
        assert f'id="task-{late["id"]}"' not in done.text and f'id="task-{later["id"]}"' in done.text
        assert _status(app, late["id"]) == "done"
        # Someone else's lead: not found, as the lead itself is.
        assert client.post(f"/tasks/{theirs['id']}/done", data={"csrf_token": csrf}).status_code == 404
        # From the card: a plain form is sent back to the card, which lists the task as done.
        back = client.post(f"/tasks/{later['id']}/done", data={"csrf_token": csrf, "from": "lead"},
                           follow_redirects=False)  # fmt: skip
        assert back.status_code == 303 and back.headers["location"] == f"/leads/{lead.lead_id}"
        card = client.get(f"/leads/{lead.lead_id}").text
        assert "Завдання" in card and card.count("Завдання виконано") >= 2
        assert f'action="/tasks/{later["id"]}/done"' not in card  # closed: no Done button any more
        assert "Відкритих завдань немає." in client.get("/tasks/mine").text
    assert _status(app, later["id"]) == "done" and _status(app, theirs["id"]) == "open"
