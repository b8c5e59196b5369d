"""Tasks on the desk: a manager's open tasks beside their queue (overdue first), a lead's tasks on its card, and
the Done button on each. Reads and changes go through services/tasks.py, as the API's task routes do."""

from __future__ import annotations

from typing import Annotated, Any

from anyio import to_thread
from fastapi import APIRouter, Path, Request
from fastapi.responses import Response

from leadflow.api.params import MAX_ID
from leadflow.core.policy import Action, LeadAccess
from leadflow.services.context import utcnow
from leadflow.services.tasks import complete_task, lead_tasks, my_tasks
from leadflow.web import work
from leadflow.web.render import after_change, app_of, form_value, html_fragment, render_fragment
from leadflow.web.viewer import Viewer, WebRoute, page

router = APIRouter(route_class=WebRoute, include_in_schema=False)
Reader = Annotated[Viewer, page(Action.LEAD_READ)]
Worker = Annotated[Viewer, page(Action.LEAD_WORK)]
TaskId = Annotated[int, Path(ge=1, le=MAX_ID, description="The task's id.")]


def mine_context(request: Request, viewer: Viewer, done: str | None = None) -> dict[str, Any]:
    return {"tasks": my_tasks(app_of(request), utcnow(), who=viewer.who), "tasks_done": done}


@router.get("/tasks/mine")
def mine(request: Request, viewer: Reader) -> Response:
    """The queue page's "My tasks", asked for again when the page hears that one of the manager's leads changed."""
    return html_fragment(request, viewer, "app/_my_tasks.html", **mine_context(request, viewer))


@router.post("/tasks/{task_id}/done")
async def done(request: Request, task_id: TaskId, viewer: Worker) -> Response:
    """Mark a task done from the queue (the list comes back) or from the lead card (the card comes back)."""
    form = await request.form()
    note = form_value(form, "note") or None
    app = app_of(request)
    closed = await to_thread.run_sync(lambda: complete_task(app, task_id, utcnow(), who=viewer.who, note=note))
    message = viewer.gettext("Done: %(task)s") % {"task": closed["title"]}
    if form_value(form, "from") == "lead":
        return await to_thread.run_sync(work.card_after, request, viewer, closed["lead_id"], message)
    fragment = await to_thread.run_sync(
        lambda: render_fragment(request, viewer, "app/_my_tasks.html", **mine_context(request, viewer, message))
    )
    return after_change(request, "/", fragment)


# -- The lead card's tasks ----------------------------------------------------------------------------------------


def _card_tasks(request: Request, viewer: Viewer, lead: dict[str, Any]) -> dict[str, Any]:
    """The lead's tasks, each saying whether this viewer may mark it done (its assignee, the lead's owner, a head
    or an admin; the service decides again when they do). A closed lead's tasks too: a review asked for after a
    sale is a task on a won lead."""
    found = lead_tasks(app_of(request), lead["id"], utcnow(), who=viewer.who)
    me = viewer.manager_id
    anyone = viewer.can(Action.LEAD_WORK) and viewer.has_role("admin", "head")
    for task in found:
        ours = me is not None and me in (task["manager_id"], lead["manager_id"])
        task["may_close"] = task["status"] == "open" and viewer.can(Action.LEAD_WORK) and (anyone or ours)
    return {"tasks": found}


def _always(viewer: Viewer, lead: dict[str, Any], access: LeadAccess | None) -> bool:
    return True  # the panel shows nothing for a lead without tasks


work.CARD_PANELS.append(work.CardPanel("app/_lead_tasks.html", _always, _card_tasks))
