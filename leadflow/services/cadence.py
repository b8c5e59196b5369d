"""The call cadence of a lead: each unanswered call schedules the next attempt as a task for the owner.

The plan itself is core/cadence.py's (pure, the clock given). Here it is kept: a `cadences` row per lead with the
attempts made, the open task of the next one, and why it stands where it does. Everything happens in the caller's
transaction (the automations' own, or the worker's), so an attempt, its next task and the cadence's row are
written together or not at all.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Connection, RowMapping

from leadflow.core.cadence import DEFAULT_CADENCE, CadencePolicy, client_timezone, next_attempt
from leadflow.core.policy import Principal
from leadflow.core.rules import RulesFile
from leadflow.core.schedule import parse_working_hours
from leadflow.services.context import Leadflow
from leadflow.services.leads import set_status_in
from leadflow.services.tasks import close_task_in, create_task_in
from leadflow.store.events import append_events, new_event
from leadflow.store.lead_rows import lead_row_to_clean
from leadflow.store.tables import activities, cadences, managers, tasks, teams

RUNNING, STOPPED, EXHAUSTED = "running", "stopped", "exhausted"
UNANSWERED = ("no_answer", "busy")


def policy_for(rules: RulesFile, team: str | None, rule: str | None, named: str | None = None) -> CadencePolicy:
    """The named policy, else the first one for the lead's rule or team (or for every lead), else the default."""
    if named is not None:
        return next(c for c in rules.cadences if c.key == named)
    for c in rules.cadences:
        if (not c.teams or team in c.teams) and (not c.rules or rule in c.rules):
            return c
    return DEFAULT_CADENCE


def start_in(
    conn: Connection, app: Leadflow, lead: RowMapping, now: datetime, *, who: Principal, policy: str | None = None
) -> str:
    """Start the lead's cadence (the calls already missed count as its first attempts); what happened, in words."""
    row = conn.execute(select(cadences).where(cadences.c.lead_id == lead["id"])).mappings().first()
    if row is not None and row["state"] == RUNNING:
        return f"the {row['policy']} cadence is already running"
    team = _team_key(conn, lead)
    chosen = policy_for(app.rules, team, lead["rule_key"], policy)
    missed = conn.execute(
        select(activities.c.at).where(activities.c.lead_id == lead["id"], activities.c.kind == "call",
                                      activities.c.outcome.in_(UNANSWERED)).order_by(activities.c.at)
    ).scalars().all()  # fmt: skip
    values = {"policy": chosen.key, "state": RUNNING, "attempts": [a.isoformat() for a in missed], "task_id": None,
              "next_at": None, "reason": None, "started_at": now, "updated_at": now}  # fmt: skip
    if row is None:
        conn.execute(cadences.insert().values(lead_id=lead["id"], **values))
    else:
        conn.execute(update(cadences).where(cadences.c.lead_id == lead["id"]).values(**values))
    append_events(conn, [new_event(lead["id"], "cadence.started", now, who, policy=chosen.key, attempts=len(missed),
                                   reason=f"{chosen.attempts} attempts by the {chosen.key} cadence")])  # fmt: skip
    return _plan(conn, app, lead, chosen, list(missed), now, who, team)


def attempted_in(conn: Connection, app: Leadflow, lead: RowMapping, at: datetime, now: datetime, who: Principal) -> str:
    """An unanswered call: it counts as an attempt, its task is done, and the next one is planned."""
    row = _running(conn, lead["id"])
    if row is None or at.isoformat() in row["attempts"]:
        return ""  # no cadence, or it started with this very call (it counts the calls already missed)
    attempts = [datetime.fromisoformat(a) for a in row["attempts"]]
    attempts.append(at)
    _close(conn, row["task_id"], "done", "the call was not answered", now, who)
    conn.execute(update(cadences).where(cadences.c.lead_id == lead["id"])
                 .values(attempts=[a.isoformat() for a in attempts], task_id=None, updated_at=now))  # fmt: skip
    policy = policy_for(app.rules, None, None, row["policy"]) if _declared(app, row["policy"]) else DEFAULT_CADENCE
    return _plan(conn, app, lead, policy, attempts, now, who)


def stop_in(conn: Connection, lead_id: int, reason: str, now: datetime, who: Principal) -> bool:
    """The client answered (or wrote, or the team stopped it): the cadence ends and its open task is cancelled."""
    row = _running(conn, lead_id)
    if row is None:
        return False
    _close(conn, row["task_id"], "cancelled", reason, now, who)
    conn.execute(update(cadences).where(cadences.c.lead_id == lead_id)
                 .values(state=STOPPED, task_id=None, next_at=None, reason=reason, updated_at=now))  # fmt: skip
    append_events(conn, [new_event(lead_id, "cadence.stopped", now, who, policy=row["policy"], reason=reason,
                                   attempts=len(row["attempts"]))])  # fmt: skip
    return True


def _plan(
    conn: Connection, app: Leadflow, lead: RowMapping, policy: CadencePolicy, attempts: list[datetime],
    now: datetime, who: Principal, team_key: str | None = None,
) -> str:  # fmt: skip
    team_key = team_key or _team_key(conn, lead)
    team = next((t for t in app.rules.teams if t.key == team_key), None)
    team_tz = (team.timezone if team else None) or app.rules.default_timezone
    hours = parse_working_hours(team.hours if team else None, team_tz)
    closed = frozenset(i for i, spans in enumerate(hours.week) if not spans)
    if hours.closed_dates:  # the team's own days off (holidays in its hours) count as the policy's
        policy = policy.model_copy(update={"holidays": tuple(sorted({*policy.holidays, *hours.closed_dates}))})
    own = lead_row_to_clean(lead).extra.get("timezone")  # a form may say where the client is
    zone, _ = client_timezone(lead["phone"], own if isinstance(own, str) else None, team_tz)
    plan = next_attempt(policy, phone_type=lead["phone_type"], client_tz=zone, team_tz=team_tz, team_closed=closed,
                        attempts=attempts, now=now)  # fmt: skip
    if plan.at is None:
        return _exhausted(conn, app, lead, policy, attempts, plan.reason, now, who)
    if lead["manager_id"] is None:
        reason = f"{plan.reason}; the lead has no owner to call: waiting for one"
        conn.execute(update(cadences).where(cadences.c.lead_id == lead["id"])
                     .values(next_at=plan.at, reason=reason, updated_at=now))  # fmt: skip
        return reason
    title = f"Call attempt {plan.attempt} of {policy.attempts}"
    task_id = create_task_in(conn, app, lead_id=lead["id"], manager_id=lead["manager_id"], title=title,
                             due_at=plan.at, now=now, who=who, kind="call", reason=plan.reason, source="cadence",
                             follows_owner=True, cadence_attempt=plan.attempt)  # fmt: skip
    conn.execute(update(cadences).where(cadences.c.lead_id == lead["id"])
                 .values(task_id=task_id, next_at=plan.at, reason=plan.reason, updated_at=now))  # fmt: skip
    return f"{title}: {plan.reason}"


def _exhausted(
    conn: Connection, app: Leadflow, lead: RowMapping, policy: CadencePolicy, attempts: list[datetime], why: str,
    now: datetime, who: Principal,
) -> str:  # fmt: skip
    out = len(attempts) >= policy.attempts
    state = EXHAUSTED if out else STOPPED
    conn.execute(update(cadences).where(cadences.c.lead_id == lead["id"])
                 .values(state=state, task_id=None, next_at=None, reason=why, updated_at=now))  # fmt: skip
    data: dict[str, Any] = {"policy": policy.key, "attempts": len(attempts), "reason": why}
    moved = out and policy.exhausted_status is not None and lead["status"] in app.rules.open_statuses
    if moved:
        data["status"] = policy.exhausted_status
    append_events(conn, [new_event(lead["id"], f"cadence.{state}", now, who, **data)])
    if moved and policy.exhausted_status is not None:
        set_status_in(conn, app, lead, policy.exhausted_status, now, who=who,
                      reason=f"{policy.exhausted_reason}: {len(attempts)} calls unanswered")  # fmt: skip
    return why


def _close(conn: Connection, task_id: int | None, status: str, words: str, now: datetime, who: Principal) -> None:
    """The attempt's task ends with the attempt (unless the manager has closed it already)."""
    if task_id is None or conn.execute(select(tasks.c.status).where(tasks.c.id == task_id)).scalar() != "open":
        return
    close_task_in(conn, task_id, status, now, who, note=words if status == "done" else None,
                  reason=words if status == "cancelled" else None)  # fmt: skip


def _running(conn: Connection, lead_id: int) -> RowMapping | None:
    return (
        conn.execute(select(cadences).where(cadences.c.lead_id == lead_id, cadences.c.state == RUNNING))
        .mappings()
        .first()
    )


def _declared(app: Leadflow, key: str) -> bool:
    return any(c.key == key for c in app.rules.cadences)


def _team_key(conn: Connection, lead: RowMapping) -> str | None:
    if lead["team_id"] is not None:
        return conn.execute(select(teams.c.key).where(teams.c.id == lead["team_id"])).scalar()
    if lead["manager_id"] is not None:
        return conn.execute(
            select(teams.c.key).join(managers, managers.c.team_id == teams.c.id)
            .where(managers.c.id == lead["manager_id"])
        ).scalar()  # fmt: skip
    return None


def resume_in(conn: Connection, app: Leadflow, lead: RowMapping, now: datetime, who: Principal) -> str:
    """A running cadence that waited for an owner plans its next call once the lead has one."""
    row = _running(conn, lead["id"])
    if row is None or row["task_id"] is not None or lead["manager_id"] is None:
        return ""
    attempts = [datetime.fromisoformat(a) for a in row["attempts"]]
    policy = policy_for(app.rules, None, None, row["policy"]) if _declared(app, row["policy"]) else DEFAULT_CADENCE
    return _plan(conn, app, lead, policy, attempts, now, who)
