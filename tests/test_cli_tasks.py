"""`leadflow tasks list | done | cancel`: the real console script in a subprocess, on its own SQLite database."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from leadflow.core.policy import SYSTEM
from leadflow.core.rules_text import parse_rules
from leadflow.services import tasks
from leadflow.services.context import Leadflow, utcnow
from leadflow.store.db import make_engine
from leadflow.store.tables import events
from tests.test_cli import RULES, Cli, one_line


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """A database with one lead (Anna's) and two open tasks on it: one overdue, one due tomorrow."""
    cli = Cli(tmp_path)
    cli.env["COLUMNS"] = "200"  # a table one row a task
    assert cli("post", str(cli.write("lead.json", '{"name": "Ivan", "phone": "0671234567"}'))).returncode == 0
    app = Leadflow(engine=make_engine(f"sqlite:///{cli.db}"), rules=parse_rules(RULES, "rules.yaml"))
    now = utcnow()
    for title, due in (
        ("Call [back] about rates", now - timedelta(hours=1)),
        ("Send the offer", now + timedelta(days=1)),
    ):
        tasks.create_task(app, now, who=SYSTEM, lead_id=1, title=title, due_at=due)
    app.engine.dispose()
    return cli


def test_tasks_are_listed_soonest_first_with_the_overdue_marked(cli: Cli) -> None:
    listed = cli("tasks", "list")
    assert listed.returncode == 0, listed.stderr
    text = one_line(listed.stdout)
    assert "2 task(s)" in text and "anna" in text and "set by system:cli" not in text  # made by leadflow itself
    assert text.index("Call [back] about rates") < text.index("Send the offer")  # markup shown as typed
    assert text.count("overdue") == 1 and "set by system:leadflow" in text
    only = one_line(cli("tasks", "list", "--overdue", "--manager", "anna", "--lead", "1").stdout)
    assert "1 task(s)" in only and "Send the offer" not in only


def test_tasks_are_marked_done_and_cancelled_once(cli: Cli) -> None:
    done = cli("tasks", "done", "1", "--note", "agreed on Friday")
    assert done.returncode == 0, done.stderr
    assert one_line(done.stdout).strip() == "task 1 is done: Call [back] about rates (lead #1)"
    again = cli("tasks", "done", "1")
    assert (again.returncode, one_line(again.stderr).strip()) == (1, "error: task 1 is done already")
    cancelled = cli("tasks", "cancel", "2", "--reason", "the client bought elsewhere")
    assert cancelled.returncode == 0 and "task 2 is cancelled" in cancelled.stdout
    assert cli.query("select id, status, closed_by, note from tasks order by id") == [
        (1, "done", "system:cli", "agreed on Friday"),
        (2, "cancelled", "system:cli", "the client bought elsewhere"),
    ]
    assert cli.query("select count(*) from timers where kind = 'task_overdue'") == [(0,)]
    assert "0 task(s)" in one_line(cli("tasks", "list").stdout)
    assert "2 task(s)" in one_line(cli("tasks", "list", "--status", "any").stdout)
    engine = make_engine(f"sqlite:///{cli.db}")
    with engine.connect() as conn:
        closed = conn.execute(select(events.c.type, events.c.actor).where(events.c.type.in_(["task.done", "task.cancelled"]))
                              .order_by(events.c.id)).all()  # fmt: skip
    engine.dispose()
    assert [tuple(r) for r in closed] == [("task.done", "system:cli"), ("task.cancelled", "system:cli")]


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["tasks", "done", "99"], "error: task 99 does not exist"),
        (["tasks", "cancel", "1", "--reason", " "], "error: say why the task is cancelled"),
        (
            ["tasks", "list", "--status", "later"],
            "error: 'later' is not a task's status: use open, done, cancelled or any",
        ),
        (["tasks", "list", "--manager", "nobody"], "error: manager 'nobody' does not exist"),
        (["tasks", "list", "--status", "done", "--overdue"], "error: only an open task is overdue"),
    ],
)
def test_mistakes_are_told_in_one_line(cli: Cli, args: list[str], said: str) -> None:
    done = cli(*args)
    assert done.returncode == 1 and done.stdout == ""
    assert one_line(done.stderr).startswith(said) and done.stderr.count("\n") == 1, done.stderr
