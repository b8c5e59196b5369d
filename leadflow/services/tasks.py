"""Tasks: what a manager has to do on a lead, and by when.

A task always belongs to a lead and goes to a manager, its assignee. Automations and the call cadence make and close
tasks inside their own transactions (`create_task_in`, `close_task_in`, `move_owner_tasks_in`); people make, close
and hand them over through the services below, each one transaction with `who` checked. Every task says why it
exists (`reason`), who made it (`actor`) and from where (`source`: a trigger's key, "cadence" or "manual"), and every
change is an event on its lead.

A task with a due time has a timer (kind `task_overdue`, ref "task:<id>") written with it. When the worker finds it
due and the task is still open, `fire_overdue_in` writes the lead's event "task.overdue" and tells the assignee on
their own channels. Closing a task deletes its timer; handing it over keeps it (the due time has not moved).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import ColumnElement, and_, bindparam, case, delete, false, func, or_, select, true, update
from sqlalchemy.engine import Connection, RowMapping

from leadflow.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from leadflow.core.policy import Action, LeadAccess, Principal, can, lead_verdict, needed_for
from leadflow.core.schedule import format_duration
from leadflow.services.access import guard_lead, lead_access, restrict
from leadflow.services.context import Leadflow
from leadflow.services.sla import lead_context, notify
from leadflow.store.db import READ_ONLY
from leadflow.store.events import add_event, append_events, new_event
from leadflow.store.lead_rows import lead_row_to_clean
from leadflow.store.tables import assignments, leads, managers, tasks, teams, timers
from leadflow.store.team_state import load_manager

TASK_OVERDUE = "task_overdue"  # the timer of a task's due time
KINDS = ("task", "call")
STATUSES = ("open", "done", "cancelled")
SCOPES = ("mine", "team", "all")
TITLE_MAX = 200
NOTE_MAX = 4000
LIST_LIMIT = 500
SHOWN = 50  # tasks a page shows: the queue's "My tasks", a lead card's


def timer_ref(task_id: int) -> str:
    return f"task:{task_id}"


# --- inside the caller's transaction: automations, the cadence, the services below ------------------------------


def create_task_in(
    conn: Connection, app: Leadflow, *, lead_id: int, manager_id: int | None, title: str, due_at: datetime | None,
    now: datetime, who: Principal, kind: str = "task", reason: str, source: str, follows_owner: bool = False,
    note: str | None = None, cadence_attempt: int | None = None,
) -> int:  # fmt: skip
    """Write an open task, its lead's event "task.created" and, when it has a due time, its overdue timer; returns
    the task's id. No access check: the caller decided (an automation, the cadence, or a service that checked)."""
    title = _title(title)
    if kind not in KINDS:
        raise InvalidInput.one("kind", f"'{kind}' is not a kind of task: use {' or '.join(KINDS)}")
    if due_at is not None and due_at.tzinfo is None:
        raise InvalidInput.one("due_at", "give the due time with its time zone, e.g. 2026-11-23T14:00:00+02:00")
    if not reason.strip():
        raise InvalidInput.one("reason", "say why the task exists")
    manager_key = _manager_key(conn, manager_id)
    # Statements built once, parameters per task: automations make a task or two for many leads in one round.
    task_id = int(conn.execute(_INSERT_TASK, {
        "lead_id": lead_id, "manager_id": manager_id, "kind": kind, "title": title, "status": "open",
        "due_at": due_at, "created_at": now, "note": _note(note), "reason": reason, "actor": who.label,
        "source": source[:60], "follows_owner": follows_owner, "cadence_attempt": cadence_attempt, "updated_at": now,
    }).scalar_one())  # fmt: skip
    append_events(conn, [new_event(lead_id, "task.created", now, who, task=task_id, title=title, manager=manager_key,
                                   due_at=due_at.isoformat() if due_at else None, kind=kind, source=source,
                                   reason=reason)])  # fmt: skip
    if due_at is not None:
        conn.execute(_INSERT_TIMER, {"lead_id": lead_id, "kind": TASK_OVERDUE, "due_at": due_at,
                                     "data": {"task": task_id}, "ref": timer_ref(task_id), "created_at": now})  # fmt: skip
    return task_id


def close_task_in(
    conn: Connection, task_id: int, status: str, now: datetime, who: Principal, *, note: str | None = None,
    reason: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Mark an open task done (with an optional `note`) or cancelled (with its `reason`): its overdue timer goes,
    and its lead gets the event "task.done" or "task.cancelled". A closed task is not closed again (Conflict).

    The closing words are added to the task's note, under what was there, so the list shows why it ended."""
    if status not in ("done", "cancelled"):
        raise InvalidInput.one("status", f"a task is closed as done or cancelled, not '{status}'")
    words = (note if status == "done" else reason) or ""
    words = words.strip()
    if status == "cancelled" and not words:
        raise InvalidInput.one("reason", "say why the task is cancelled")
    task = _locked(conn, task_id)
    if task["status"] != "open":
        raise Conflict(f"task {task_id} is {task['status']} already")
    kept = "\n".join(part for part in (task["note"], words) if part) or None
    conn.execute(update(tasks).where(tasks.c.id == task_id).values(
        status=status, done_at=now, closed_by=who.label, note=_note(kept), updated_at=now))  # fmt: skip
    _drop_timer(conn, task)
    said = {"note": words or None} if status == "done" else {"reason": words}
    add_event(conn, new_event(task["lead_id"], f"task.{status}", now, who, task=task_id, title=task["title"],
                              manager=_manager_key(conn, task["manager_id"]), **said))  # fmt: skip
    return {"id": task_id, "lead_id": task["lead_id"], "status": status, "title": task["title"]}


def move_owner_tasks_in(
    conn: Connection, lead_id: int, new_manager_id: int | None, now: datetime, who: Principal
) -> list[int]:
    """The lead has a new owner: its open tasks that follow the owner go to them, each with the event
    "task.reassigned"; their overdue timers stay (the due time has not moved). Returns the ids moved.

    A lead left with no owner keeps those tasks open and unassigned (the lead's team sees them, and an overdue one
    is told to the team chat); its next owner gets them. Nothing is cancelled: what was to be done still is."""
    moving = conn.execute(
        select(tasks.c.id, tasks.c.title, tasks.c.manager_id)
        .where(tasks.c.lead_id == lead_id, tasks.c.status == "open", tasks.c.follows_owner.is_(True),
               or_(tasks.c.manager_id.is_(None), tasks.c.manager_id != new_manager_id)
               if new_manager_id is not None else tasks.c.manager_id.is_not(None))
        .order_by(tasks.c.id)
        .with_for_update()
    ).all()  # fmt: skip
    if not moving:
        return []
    new_key = _manager_key(conn, new_manager_id)
    reason = (
        f"follows lead {lead_id} to its new owner {new_key}"
        if new_key
        else f"lead {lead_id} has no owner now: the task waits, unassigned, for the next one"
    )
    for task in moving:
        conn.execute(update(tasks).where(tasks.c.id == task.id).values(manager_id=new_manager_id, updated_at=now))
        add_event(conn, new_event(lead_id, "task.reassigned", now, who, task=task.id, title=task.title,
                                  previous=_manager_key(conn, task.manager_id), manager=new_key,
                                  reason=reason))  # fmt: skip
    return [t.id for t in moving]


def fire_overdue_in(conn: Connection, app: Leadflow, task_id: int, now: datetime) -> int | None:
    """A task's due time has passed (the worker has claimed and deleted its timer): if the task is still open,
    write the lead's event "task.overdue" and tell the assignee on their own channels (a task nobody holds: the
    lead's team chat). Returns the event's id; None when the task was closed meanwhile or no longer exists."""
    task = conn.execute(select(tasks).where(tasks.c.id == task_id)).mappings().first()
    if task is None or task["status"] != "open" or task["due_at"] is None:
        return None
    lead = conn.execute(select(leads).where(leads.c.id == task["lead_id"])).mappings().one()
    assignee = load_manager(conn, task["manager_id"], app.rules.default_timezone) if task["manager_id"] else None
    late = timedelta(seconds=int((now - task["due_at"]).total_seconds()))
    reason = f"open {format_duration(late)} after its due time"
    event_id = add_event(conn, new_event(
        lead["id"], "task.overdue", now, "tasks", task=task_id, title=task["title"],
        manager=assignee.key if assignee else None, due_at=task["due_at"].isoformat(), reason=reason,
    ))  # fmt: skip
    zone = _zone(_team_zone(conn, task["manager_id"]) or app.rules.default_timezone)
    due_local = task["due_at"].astimezone(zone).strftime("%H:%M %d.%m")
    context = lead_context(app, lead["id"], lead_row_to_clean(lead)) | {
        "task": {"title": task["title"], "due_at_local": due_local}, "reason": reason,
    }  # fmt: skip
    team_chat = None
    if assignee is None and lead["team_id"] is not None:
        team_chat = conn.execute(select(teams).where(teams.c.id == lead["team_id"])).mappings().first()
    notify(conn, app, "task.overdue", event_id, assignee, context, now, team_chat=team_chat)
    return event_id


# --- for people: each one transaction, `who` checked ------------------------------------------------------------

# A task as lists show it: with its lead's name, its assignee, and the time zone its due time is read in.
_VIEW = (
    select(
        tasks, leads.c.name.label("lead_name"), managers.c.key.label("manager_key"),
        managers.c.name.label("manager_name"), teams.c.timezone.label("zone"),
    )
    .select_from(tasks)
    .join(leads, leads.c.id == tasks.c.lead_id)
    .outerjoin(managers, managers.c.id == tasks.c.manager_id)
    .outerjoin(teams, teams.c.id == managers.c.team_id)
)  # fmt: skip
_COUNTED = (
    select(func.count())
    .select_from(tasks)
    .join(leads, leads.c.id == tasks.c.lead_id)
    .outerjoin(managers, managers.c.id == tasks.c.manager_id)
)
# Soonest due first (so the overdue lead), those without a due time last.
_BY_DUE = (case((tasks.c.due_at.is_(None), 1), else_=0), tasks.c.due_at, tasks.c.id)


def list_tasks(
    app: Leadflow, now: datetime, *, who: Principal, scope: str | None = None, status: str = "open",
    lead_id: int | None = None, manager_key: str | None = None, overdue: bool = False, limit: int = SHOWN,
    offset: int = 0,
) -> dict[str, Any]:  # fmt: skip
    """Tasks on leads `who` may see. scope mine: assigned to `who`'s manager; team: to the managers of the teams
    `who` heads (every team for an admin, a head of every team, or a key; a manager's own otherwise); all: every
    task `who` may see. Default: mine for a person linked to a manager, all for anyone else. Open tasks come soonest
    due first (the overdue lead), closed ones last closed first. `total` is exact."""
    if not can(who, Action.LEAD_READ):
        raise Forbidden(f"'{who.name}' may not read tasks: it takes {needed_for(Action.LEAD_READ)}")
    scope = scope or ("mine" if who.manager_id is not None else "all")
    problems = _list_problems(scope, status, overdue, limit)
    if problems:
        raise InvalidInput.one(*problems)
    with app.engine.connect().execution_options(**READ_ONLY) as conn:
        where = [_scope(who, scope)]
        if status != "any":
            where.append(tasks.c.status == status)
        if overdue:
            where += [tasks.c.status == "open", tasks.c.due_at < now]
        if lead_id is not None:
            guard_lead(conn, who, lead_id, Action.LEAD_READ)
            where.append(tasks.c.lead_id == lead_id)
        if manager_key is not None:
            manager_id = conn.execute(select(managers.c.id).where(managers.c.key == manager_key)).scalar()
            if manager_id is None:
                raise InvalidInput.one("manager", f"manager '{manager_key}' does not exist")
            where.append(tasks.c.manager_id == manager_id)
        order = _BY_DUE if status == "open" else (tasks.c.done_at.desc(), tasks.c.id.desc())
        page = restrict(_VIEW.where(*where), who).order_by(*order).limit(limit).offset(offset)
        rows = conn.execute(page).mappings().all()
        total = int(conn.execute(restrict(_COUNTED.where(*where), who)).scalar_one())
    items = [_item(r, app, now) for r in rows]
    return {"items": items, "total": total, "limit": limit, "offset": offset, "scope": scope, "status": status}


def my_tasks(app: Leadflow, now: datetime, *, who: Principal, limit: int = SHOWN) -> list[dict[str, Any]]:
    """`who`'s open tasks, soonest due first (the overdue lead): the queue page's list, in one query."""
    if who.manager_id is None:
        return []
    query = _VIEW.where(tasks.c.manager_id == who.manager_id, tasks.c.status == "open")
    with app.engine.connect().execution_options(**READ_ONLY) as conn:
        rows = conn.execute(restrict(query, who).order_by(*_BY_DUE).limit(limit)).mappings().all()
    return [_item(r, app, now) for r in rows]


def lead_tasks(
    app: Leadflow, lead_id: int, now: datetime, *, who: Principal, limit: int = SHOWN
) -> list[dict[str, Any]]:
    """A lead's tasks, for its card, in one query: the open ones soonest due first, then the closed, last closed
    first. Empty for a lead `who` may not see."""
    open_first = case((tasks.c.status == "open", 0), else_=1)
    open_due = case((tasks.c.status == "open", tasks.c.due_at))  # NULL for a closed task: those go by done_at
    query = (
        restrict(_VIEW.where(tasks.c.lead_id == lead_id), who)
        .order_by(open_first, open_due.is_(None), open_due, tasks.c.done_at.desc(), tasks.c.id)
        .limit(limit)
    )
    with app.engine.connect().execution_options(**READ_ONLY) as conn:
        rows = conn.execute(query).mappings().all()
    return [_item(r, app, now) for r in rows]


def create_task(
    app: Leadflow, now: datetime, *, who: Principal, lead_id: int, title: str, due_at: datetime | None,
    manager_key: str | None = None, kind: str = "task", note: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """A task set by a person (or a key) on a lead they may work, for `manager_key`; by default for themselves
    when they are a manager, else for the lead's owner. It goes to someone who may see the lead: its owner, a
    former owner, the team's head, or the one setting it. A task for the lead's owner follows the lead to its next
    owner; one for anyone else stays theirs."""
    with app.engine.begin() as conn:
        guard_lead(conn, who, lead_id, Action.LEAD_WORK)
        lead = conn.execute(select(leads.c.id, leads.c.manager_id).where(leads.c.id == lead_id)).first()
        if lead is None:
            raise NotFound(f"lead {lead_id} does not exist")
        if manager_key is not None:
            manager_id = _manager_id(conn, manager_key)
        else:
            manager_id = who.manager_id if who.manager_id is not None else lead.manager_id
            if manager_id is None:
                raise InvalidInput.one("manager", f"lead {lead_id} has no owner: name the manager who is to do it")
        _check_assignee(conn, who, lead_id, manager_id)
        task_id = create_task_in(
            conn, app, lead_id=lead_id, manager_id=manager_id, title=title, due_at=due_at, now=now, who=who,
            kind=kind, reason=f"set by {who.label}", source="manual", follows_owner=manager_id == lead.manager_id,
            note=note,
        )  # fmt: skip
        return _one(conn, app, task_id, now)


def complete_task(
    app: Leadflow, task_id: int, now: datetime, *, who: Principal, note: str | None = None
) -> dict[str, Any]:
    """Mark a task done: by its assignee, the lead's owner, a head of the team, an admin (or a key that may work
    leads)."""
    with app.engine.begin() as conn:
        _guard_task(conn, who, _locked(conn, task_id))
        close_task_in(conn, task_id, "done", now, who, note=note)
        return _one(conn, app, task_id, now)


def cancel_task(app: Leadflow, task_id: int, now: datetime, *, who: Principal, reason: str) -> dict[str, Any]:
    """Cancel a task, saying why: by those who may mark it done."""
    with app.engine.begin() as conn:
        _guard_task(conn, who, _locked(conn, task_id))
        close_task_in(conn, task_id, "cancelled", now, who, reason=reason)
        return _one(conn, app, task_id, now)


def reassign_task(app: Leadflow, task_id: int, now: datetime, *, who: Principal, manager_key: str) -> dict[str, Any]:
    """Give an open task to another manager who may see its lead (its owner, a former owner, the team's head). Its
    due time and overdue timer stay. It follows the lead's owner from now on only if it went to the owner."""
    with app.engine.begin() as conn:
        task = _locked(conn, task_id)
        _guard_task(conn, who, task)
        if task["status"] != "open":
            raise Conflict(f"task {task_id} is {task['status']}: only an open task is handed over")
        manager_id = _manager_id(conn, manager_key)
        if manager_id == task["manager_id"]:
            return _one(conn, app, task_id, now)
        _check_assignee(conn, who, task["lead_id"], manager_id)
        owner = conn.execute(select(leads.c.manager_id).where(leads.c.id == task["lead_id"])).scalar()
        conn.execute(update(tasks).where(tasks.c.id == task_id).values(
            manager_id=manager_id, follows_owner=manager_id == owner, updated_at=now))  # fmt: skip
        add_event(conn, new_event(task["lead_id"], "task.reassigned", now, who, task=task_id, title=task["title"],
                                  previous=_manager_key(conn, task["manager_id"]), manager=manager_key,
                                  reason=f"handed over by {who.label}"))  # fmt: skip
        return _one(conn, app, task_id, now)


# --- the parts -------------------------------------------------------------------------------------------------


def _title(title: str) -> str:
    title = " ".join((title or "").split())
    if not title:
        raise InvalidInput.one("title", "say what is to be done")
    if len(title) > TITLE_MAX:
        raise InvalidInput.one("title", f"a title is at most {TITLE_MAX} characters, this one has {len(title)}")
    return title


def _note(note: str | None) -> str | None:
    note = (note or "").strip()
    return note[-NOTE_MAX:] if note else None  # the newest words are kept when it grows too long


def _list_problems(scope: str, status: str, overdue: bool, limit: int) -> tuple[str, str] | None:
    if scope not in SCOPES:
        return "scope", f"'{scope}' is not a scope: use {', '.join(SCOPES)}"
    if status not in (*STATUSES, "any"):
        return "status", f"'{status}' is not a task's status: use {', '.join(STATUSES)} or any"
    if overdue and status not in ("open", "any"):
        return "overdue", f"only an open task is overdue: ask for status open, not {status}"
    if not 1 <= limit <= LIST_LIMIT:
        return "limit", f"limit is from 1 to {LIST_LIMIT}"
    return None


def _scope(who: Principal, scope: str) -> ColumnElement[bool]:
    """Whose tasks a scope takes (the lead's visibility is added on top, by restrict)."""
    mine = tasks.c.manager_id == who.manager_id if who.manager_id is not None else None
    if scope == "mine":
        return mine if mine is not None else false()  # an account that is no manager holds no task
    if scope == "all" or who.kind != "user" or "admin" in who.roles():
        return true()
    headed = {g.team_id for g in who.grants if g.role == "head"}
    if None in headed:
        return true()
    parts: list[ColumnElement[bool]] = []
    if headed:
        team_ids = sorted(t for t in headed if t is not None)
        parts += [managers.c.team_id.in_(team_ids), and_(tasks.c.manager_id.is_(None), leads.c.team_id.in_(team_ids))]
    if mine is not None:
        parts.append(mine)  # a manager asking for their team's tasks sees their own
    return or_(*parts) if parts else false()


def _item(row: RowMapping, app: Leadflow, now: datetime) -> dict[str, Any]:
    due: datetime | None = row["due_at"]
    zone = _zone(row["zone"] or app.rules.default_timezone)
    return {
        "id": row["id"], "lead_id": row["lead_id"], "lead_name": row["lead_name"],
        "manager": {"key": row["manager_key"], "name": row["manager_name"]} if row["manager_key"] else None,
        "manager_id": row["manager_id"],
        "kind": row["kind"], "title": row["title"], "status": row["status"], "due_at": due,
        "due_at_local": due.astimezone(zone).isoformat() if due is not None else None,
        "overdue": row["status"] == "open" and due is not None and due < now,
        "reason": row["reason"], "source": row["source"], "actor": row["actor"], "note": row["note"],
        "follows_owner": row["follows_owner"], "cadence_attempt": row["cadence_attempt"],
        "created_at": row["created_at"], "done_at": row["done_at"], "closed_by": row["closed_by"],
    }  # fmt: skip


def _one(conn: Connection, app: Leadflow, task_id: int, now: datetime) -> dict[str, Any]:
    return _item(conn.execute(_VIEW.where(tasks.c.id == task_id)).mappings().one(), app, now)


def _locked(conn: Connection, task_id: int) -> RowMapping:
    task = conn.execute(select(tasks).where(tasks.c.id == task_id).with_for_update()).mappings().first()
    if task is None:
        raise NotFound(f"task {task_id} does not exist")
    return task


def _drop_timer(conn: Connection, task: RowMapping) -> None:
    conn.execute(delete(timers).where(timers.c.lead_id == task["lead_id"], timers.c.ref == timer_ref(task["id"])))


_INSERT_TASK = tasks.insert().returning(tasks.c.id)
_INSERT_TIMER = timers.insert()
_MANAGER_KEY = select(managers.c.key).where(managers.c.id == bindparam("id"))


def _manager_key(conn: Connection, manager_id: int | None) -> str | None:
    if manager_id is None:
        return None
    key: str | None = conn.execute(_MANAGER_KEY, {"id": manager_id}).scalar()
    return key


def _manager_id(conn: Connection, key: str) -> int:
    found: int | None = conn.execute(select(managers.c.id).where(managers.c.key == key)).scalar()
    if found is None:
        raise InvalidInput.one("manager", f"manager '{key}' does not exist")
    return found


def _team_zone(conn: Connection, manager_id: int | None) -> str | None:
    if manager_id is None:
        return None
    zone: str | None = conn.execute(
        select(teams.c.timezone).join(managers, managers.c.team_id == teams.c.id).where(managers.c.id == manager_id)
    ).scalar()
    return zone


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _guard_task(conn: Connection, who: Principal, task: RowMapping) -> None:
    """NotFound when `who` may not see the task's lead; Forbidden unless `who` is its assignee, the lead's owner, a
    head of the lead's or the assignee's team, an admin, or a key that may work leads."""
    if who.kind == "system":
        return
    access = lead_access(conn, task["lead_id"])
    if access is None or lead_verdict(who, Action.LEAD_READ, access) == "hidden":
        raise NotFound(f"task {task['id']} does not exist")
    if _may_change(conn, who, task, access):
        return
    raise Forbidden(f"task {task['id']} is not yours to change: that is for its assignee, the lead's owner, a head "
                    "of the team or an admin")  # fmt: skip


def _may_change(conn: Connection, who: Principal, task: RowMapping, access: LeadAccess) -> bool:
    if not can(who, Action.LEAD_WORK):
        return False
    if who.kind == "key" or "admin" in who.roles():
        return True
    if who.manager_id is not None and who.manager_id in (task["manager_id"], access.manager_id):
        return True
    headed = {g.team_id for g in who.grants if g.role == "head"}
    if None in headed:
        return True
    assignee_team = conn.execute(select(managers.c.team_id).where(managers.c.id == task["manager_id"])).scalar()
    return bool(headed & {access.team_id, assignee_team})


def _check_assignee(conn: Connection, who: Principal, lead_id: int, manager_id: int) -> None:
    """A task goes to someone who may see its lead: its owner, a former owner, the head of its team, or the one
    setting it (who may see it, or would not have got here)."""
    if manager_id == who.manager_id:
        return
    lead = conn.execute(select(leads.c.manager_id, leads.c.team_id).where(leads.c.id == lead_id)).one()
    if manager_id == lead.manager_id:
        return
    held = conn.execute(select(assignments.c.id).where(assignments.c.lead_id == lead_id,
                                                       assignments.c.manager_id == manager_id).limit(1)).first()  # fmt: skip
    if held is not None:
        return
    target = conn.execute(select(managers.c.key, managers.c.name, managers.c.team_id)
                          .where(managers.c.id == manager_id)).one()  # fmt: skip
    team_id = _lead_team(conn, lead.manager_id, lead.team_id)
    head = conn.execute(select(teams.c.head_key).where(teams.c.id == team_id)).scalar() if team_id else None
    if head == target.key:
        return
    raise InvalidInput.one("manager", f"{target.name} cannot see lead {lead_id}: give the task to its owner, a former "
                                      "owner or the head of its team")  # fmt: skip


def _lead_team(conn: Connection, owner_id: int | None, headed_for: int | None) -> int | None:
    if owner_id is None:
        return headed_for
    team_id: int | None = conn.execute(select(managers.c.team_id).where(managers.c.id == owner_id)).scalar()
    return team_id
