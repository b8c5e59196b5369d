"""Tasks over HTTP: the list (mine, my teams', all I may see), setting one on a lead, marking it done, cancelling
it, handing it to another manager. The automations and the call cadence make theirs in their own transactions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from leadflow.api.auth import permit
from leadflow.api.deps import AppDep
from leadflow.api.errors import CONFLICT, JSON_BODY, NOT_FOUND, REFUSALS
from leadflow.api.params import MAX_ID, IsoTime, LeadflowRoute, Offset, key_query
from leadflow.api.schemas import Body, ManagerRef
from leadflow.core.fields import CleanText
from leadflow.core.policy import Action, Principal
from leadflow.core.rules import Key
from leadflow.services import tasks
from leadflow.services.context import utcnow

router = APIRouter(prefix="/api/v1/tasks", tags=["tasks"], route_class=LeadflowRoute, responses=REFUSALS)

TaskId = Annotated[int, Path(ge=1, le=MAX_ID, description="The task's id.")]
Reader = Annotated[Principal, permit(Action.LEAD_READ)]
Worker = Annotated[Principal, permit(Action.LEAD_WORK)]
CHANGE_ERRORS = {**NOT_FOUND, **CONFLICT, **JSON_BODY}
SCOPE_HELP = (
    "mine: yours; team: those of the managers of the teams you head; all: every one you may see. Default: mine for "
    "a manager, all for anyone else."
)


class TaskIn(Body):
    lead_id: int = Field(..., ge=1, le=MAX_ID, description="The lead the task is about.")
    title: CleanText = Field(..., min_length=1, max_length=tasks.TITLE_MAX, description="What is to be done.")
    due_at: IsoTime | None = Field(None, description="By when (ISO 8601, with a zone); none: whenever.")
    manager: Key | None = Field(
        None, description="Who is to do it; default: you, if you are a manager, else the lead's owner."
    )
    kind: Literal["task", "call"] = "task"
    note: CleanText | None = Field(None, max_length=tasks.NOTE_MAX)


class DoneIn(Body):
    note: CleanText | None = Field(None, max_length=tasks.NOTE_MAX, description="How it went: kept with the task.")


class CancelIn(Body):
    reason: CleanText = Field(..., min_length=1, max_length=1000, description="Why it is not to be done.")


class ReassignIn(Body):
    manager: Key = Field(..., description="The manager who takes the task: the lead's owner, a former owner or the "
                                          "team's head.")  # fmt: skip


class TaskOut(BaseModel):
    id: int
    lead_id: int
    lead_name: str | None
    manager: ManagerRef | None = Field(description="The assignee; none: waiting for the lead's next owner.")
    kind: str
    title: str
    status: str = Field(description="open, done or cancelled.")
    due_at: datetime | None
    due_at_local: str | None = Field(description="The due time in the assignee's time zone, with its offset.")
    overdue: bool
    reason: str | None = Field(description="Why the task exists.")
    source: str | None = Field(description="The automation's trigger, cadence, or manual.")
    actor: str | None = Field(description="Who made it.")
    note: str | None
    follows_owner: bool = Field(description="Goes with the lead to its next owner.")
    cadence_attempt: int | None
    created_at: datetime
    done_at: datetime | None
    closed_by: str | None


class TaskPage(BaseModel):
    items: list[TaskOut]
    total: int
    limit: int
    offset: int
    scope: str
    status: str


@router.get("", response_model=TaskPage, summary="Tasks on the leads you may see, soonest due first",
            responses=NOT_FOUND)  # fmt: skip
def get_tasks(
    app: AppDep,
    who: Reader,
    scope: Annotated[Literal["mine", "team", "all"] | None, Query(description=SCOPE_HELP)] = None,
    status: Literal["open", "done", "cancelled", "any"] = "open",
    lead_id: Annotated[int | None, Query(ge=1, le=MAX_ID, description="Only this lead's tasks.")] = None,
    manager: Annotated[str | None, key_query(description="Only this manager's tasks (a manager's key).")] = None,
    overdue: Annotated[bool, Query(description="Only open tasks past their due time.")] = False,
    limit: int = Query(tasks.SHOWN, ge=1, le=tasks.LIST_LIMIT),
    offset: Offset = 0,
) -> TaskPage:
    page = tasks.list_tasks(app, utcnow(), who=who, scope=scope, status=status, lead_id=lead_id, manager_key=manager,
                            overdue=overdue, limit=limit, offset=offset)  # fmt: skip
    return TaskPage.model_validate(page)


@router.post("", status_code=201, response_model=TaskOut, summary="Set a task on a lead",
             responses={**NOT_FOUND, **JSON_BODY})  # fmt: skip
def post_task(body: TaskIn, app: AppDep, who: Worker) -> TaskOut:
    made = tasks.create_task(app, utcnow(), who=who, lead_id=body.lead_id, title=body.title, due_at=body.due_at,
                             manager_key=body.manager, kind=body.kind, note=body.note)  # fmt: skip
    return TaskOut.model_validate(made)


@router.post("/{task_id}/done", response_model=TaskOut, summary="Mark an open task done", responses=CHANGE_ERRORS)
def post_done(task_id: TaskId, app: AppDep, who: Worker, body: DoneIn | None = None) -> TaskOut:
    note = body.note if body is not None else None
    return TaskOut.model_validate(tasks.complete_task(app, task_id, utcnow(), who=who, note=note))


@router.post("/{task_id}/cancel", response_model=TaskOut, summary="Cancel an open task, saying why",
             responses=CHANGE_ERRORS)  # fmt: skip
def post_cancel(task_id: TaskId, body: CancelIn, app: AppDep, who: Worker) -> TaskOut:
    return TaskOut.model_validate(tasks.cancel_task(app, task_id, utcnow(), who=who, reason=body.reason))


@router.post("/{task_id}/reassign", response_model=TaskOut, summary="Give an open task to another manager",
             responses=CHANGE_ERRORS)  # fmt: skip
def post_reassign(task_id: TaskId, body: ReassignIn, app: AppDep, who: Worker) -> TaskOut:
    return TaskOut.model_validate(tasks.reassign_task(app, task_id, utcnow(), who=who, manager_key=body.manager))
