"""`leadflow tasks ...`: the tasks on leads (what managers have to do, and by when), listed, marked done or
cancelled from the command line, as leadflow itself (every task of every team)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from leadflow.cli import CLI, DbOption, RulesOption, _Commands, _settings, console

tasks_app = _Commands(help="Tasks on leads: list them, mark them done, cancel them.", no_args_is_help=True)


@tasks_app.command("list")
def list_tasks(
    manager: Annotated[str | None, typer.Option(help="Only this manager's tasks (their key).")] = None,
    status: Annotated[str, typer.Option(help="open, done, cancelled or any.")] = "open",
    overdue: Annotated[bool, typer.Option("--overdue", help="Only open tasks past their due time.")] = False,
    lead: Annotated[int | None, typer.Option(help="Only this lead's tasks.", min=1)] = None,
    limit: Annotated[int, typer.Option(help="At most this many.", min=1, max=500)] = 100,
    rules: RulesOption = None,
    database: DbOption = None,
) -> None:
    """The tasks, soonest due first (the overdue lead, marked), each with its lead, its assignee and why it exists;
    due times in the assignee's time zone."""
    from leadflow.bootstrap import open_app
    from leadflow.services import tasks
    from leadflow.services.context import utcnow

    page = tasks.list_tasks(open_app(_settings(rules, database)), utcnow(), who=CLI, scope="all", status=status,
                            lead_id=lead, manager_key=manager, overdue=overdue, limit=limit)  # fmt: skip
    table = Table("id", "lead", "manager", "kind", "task", "due", "status", "why",
                  title=f"{page['total']} task(s)" + (f", {len(page['items'])} shown" if page["total"] > limit else ""))  # fmt: skip
    for item in page["items"]:
        due = item["due_at_local"][:16].replace("T", " ") if item["due_at_local"] else "—"
        state = "[bold red]overdue[/]" if item["overdue"] else item["status"]
        lead_shown = escape(f"#{item['lead_id']} {item['lead_name'] or ''}".strip())
        owner = item["manager"]["key"] if item["manager"] else "—"
        table.add_row(str(item["id"]), lead_shown, owner, item["kind"], escape(item["title"]), due, state,
                      escape(item["reason"] or ""))  # fmt: skip
    console.print(table)


@tasks_app.command("done")
def done(
    task_id: Annotated[int, typer.Argument(help="The task's id.", min=1)],
    note: Annotated[str | None, typer.Option(help="How it went: kept with the task.")] = None,
    rules: RulesOption = None,
    database: DbOption = None,
) -> None:
    """Mark an open task done."""
    from leadflow.bootstrap import open_app
    from leadflow.services import tasks
    from leadflow.services.context import utcnow

    task = tasks.complete_task(open_app(_settings(rules, database)), task_id, utcnow(), who=CLI, note=note)
    console.print(f"task {task['id']} is done: {task['title']} (lead #{task['lead_id']})", markup=False)


@tasks_app.command("cancel")
def cancel(
    task_id: Annotated[int, typer.Argument(help="The task's id.", min=1)],
    reason: Annotated[str, typer.Option(help="Why it is not to be done: kept with the task.")],
    rules: RulesOption = None,
    database: DbOption = None,
) -> None:
    """Cancel an open task, saying why."""
    from leadflow.bootstrap import open_app
    from leadflow.services import tasks
    from leadflow.services.context import utcnow

    task = tasks.cancel_task(open_app(_settings(rules, database)), task_id, utcnow(), who=CLI, reason=reason)
    console.print(f"task {task['id']} is cancelled: {task['title']} (lead #{task['lead_id']}): {reason}", markup=False)
