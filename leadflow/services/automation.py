"""The automations at work: the event log read in order, triggers fired, delayed actions kept as timers.

Every new row of `events` waits for the automations (`events.automate` is set by the database). A round takes the
waiting events in id order, and in one transaction: works out what happened to each lead (created, a status entered,
a call missed, the client opened the offer...), runs the triggers that fire, writes a timer for each delayed one,
keeps the call cadence and the tasks that follow the owner in step, and marks the events done. What an action
changes is written as events too, which the next round reads: a chain of automations is a chain of rounds, each
one committed, and it stops after `automations.max_depth` links (check-rules refuses a chain that loops).

One process reads the log at a time (on PostgreSQL an advisory lock; SQLite has one writer), so a lead's events
are read in the order they were written. Timers are claimed with SKIP LOCKED like the first-contact clocks, so any
number of workers fire each delayed action exactly once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import bindparam, delete, func, select, text, update
from sqlalchemy.engine import Connection, RowMapping

from leadflow.core.automation import (
    TEMPERATURE_ORDER,
    LeadState,
    Occurrence,
    Step,
    Trigger,
    due_at,
    pick_template,
    render_text,
    template_context,
)
from leadflow.core.errors import LeadflowError
from leadflow.core.policy import Principal, automation
from leadflow.core.schedule import format_duration
from leadflow.services import cadence
from leadflow.services.context import Leadflow
from leadflow.services.delivery import enqueue_notification
from leadflow.services.leads import set_status_in
from leadflow.services.replies import queue_reply_in, reply_route
from leadflow.services.sla import lead_context, notify
from leadflow.services.tasks import TASK_OVERDUE, create_task_in, fire_overdue_in, move_owner_tasks_in
from leadflow.store.db import READ_ONLY
from leadflow.store.events import add_event, append_events, new_event
from leadflow.store.lead_rows import lead_row_to_clean
from leadflow.store.tables import activities, automation_seen, events, leads, managers, tasks, teams, timers
from leadflow.store.team_state import load_manager

log = logging.getLogger("leadflow.automation")

DELAYED = "automation"  # a trigger's `after:` came due
IDLE = "idle"  # nothing happened on the lead for a trigger's `idle:` period
KINDS = (DELAYED, IDLE, TASK_OVERDUE)
_LOCK_KEY = 0x1EAD_F10A  # the advisory lock of the event log's reader (PostgreSQL)
_MANAGER_EVENTS = ("lead.assigned", "lead.escalated", "lead.reassigned", "lead.chain_exhausted", "lead.unassigned")
# Changes of state with their new status in the event; any other change shows as the status now.
_STATUS_OF = {"lead.status_changed": "new", "lead.converted": "status"}
# What people and clients do: each starts an `idle:` period again. What leadflow does on its own does not.
_NOT_ACTIVITY = ("lead.scored", "lead.flagged", "lead.escalated", "lead.chain_exhausted", "lead.desk_overdue",
                 "task.overdue", "task.created", "task.reassigned", "cadence.started", "cadence.stopped",
                 "cadence.exhausted", "automation.fired", "automation.failed", "automation.cancelled",
                 "automation.stopped", "automation.waiting", "automation.notified")  # fmt: skip

_WAITING = (
    select(events.c.id, events.c.lead_id, events.c.type, events.c.actor, events.c.data, events.c.at)
    .where(events.c.automate.is_not(None))
    .order_by(events.c.id)
    .limit(bindparam("limit"))
)
_DONE = update(events).where(events.c.id.in_(bindparam("ids", expanding=True))).values(automate=None)
_LEADS = select(leads).where(leads.c.id.in_(bindparam("ids", expanding=True)))
_SEEN = select(automation_seen).where(automation_seen.c.lead_id.in_(bindparam("ids", expanding=True)))
_DUE = (
    select(timers.c.id, timers.c.lead_id, timers.c.kind, timers.c.data, timers.c.due_at, timers.c.ref)
    .where(timers.c.kind.in_(KINDS), timers.c.due_at <= bindparam("now"))
    .order_by(timers.c.due_at)
    .limit(bindparam("limit"))
    .with_for_update(skip_locked=True)
)


@dataclass
class Round:
    """What one round did, for the worker's log and the tests."""

    events: int = 0
    fired: int = 0
    delayed: int = 0
    timers: int = 0
    problems: list[str] = field(default_factory=list)


# --- the event log -------------------------------------------------------------------------------------------


def process_events(app: Leadflow, now: datetime, limit: int = 500) -> Round:
    """Read up to `limit` waiting events and act on them, in one transaction."""
    done = Round()
    if app.is_sqlite and not _anything_waiting(app):
        return done  # look before taking SQLite's one write lock
    with app.engine.begin() as conn:
        if (
            conn.dialect.name == "postgresql"
            and not conn.execute(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": _LOCK_KEY}).scalar()
        ):
            return done  # another worker is reading the log; this one fires timers and delivers
        rows = conn.execute(_WAITING, {"limit": limit}).all()
        if not rows:
            return done
        by_lead: dict[int, list[Any]] = {}
        for row in rows:
            if row.lead_id is not None:
                by_lead.setdefault(row.lead_id, []).append(row)
        if by_lead:
            ids = sorted(by_lead)
            found = {r["id"]: r for r in conn.execute(_LEADS.with_for_update(), {"ids": ids}).mappings()}
            seen = {r["lead_id"]: r for r in conn.execute(_SEEN, {"ids": ids}).mappings()}
            for lead_id, group in by_lead.items():
                if lead_id in found:
                    _lead_events(conn, app, found[lead_id], seen.get(lead_id), group, now, done)
        conn.execute(_DONE, {"ids": [r.id for r in rows]})
        done.events = len(rows)
    return done


def _anything_waiting(app: Leadflow) -> bool:
    with app.engine.connect().execution_options(**READ_ONLY) as conn:
        return conn.execute(select(events.c.id).where(events.c.automate.is_not(None)).limit(1)).first() is not None


def _lead_events(
    conn: Connection, app: Leadflow, lead: RowMapping, seen: RowMapping | None, group: Sequence[Any], now: datetime,
    done: Round,
) -> None:  # fmt: skip
    rules = app.rules
    statuses = {s.key: s.outcome for s in rules.funnel}
    created = any(e.type == "lead.received" for e in group) and lead["merged_into_id"] is None
    before = seen["status"] if seen is not None else None
    last = group[-1]
    # The statuses the lead went through, each with the event that moved it there (its cause, for the depth).
    path: list[tuple[str, Any]] = [] if (seen is None and created) else [(before or lead["status"], None)]
    occurrences: list[tuple[Occurrence, Any]] = []
    for e in group:
        data = e.data or {}
        if e.type == "lead.received" and created:
            occurrences.append((Occurrence("lead_created"), e))
        elif e.type in ("lead.contacted", "lead.contact_attempt"):
            occurrences.append((Occurrence("contact", kind=data.get("kind"), outcome=data.get("outcome")), e))
        elif e.type == "lead.escalated":
            occurrences.append((Occurrence("sla_breached"), e))
        elif e.type == "lead.chain_exhausted":
            occurrences += [(Occurrence("sla_breached"), e), (Occurrence("chain_ended"), e)]
        elif e.type == "message.received":
            occurrences.append((Occurrence("message_received"), e))
        elif e.type.startswith("client."):
            occurrences.append((Occurrence("client_event", client_event=e.type[7:]), e))
        elif e.type == "task.overdue":
            occurrences.append((Occurrence("task_overdue"), e))
        if e.type in _STATUS_OF and data.get(_STATUS_OF[e.type]):
            path.append((data[_STATUS_OF[e.type]], e))
    if not path or path[-1][0] != lead["status"]:
        path.append((lead["status"], last))
    steps = [p for i, p in enumerate(path) if i == 0 or p[0] != path[i - 1][0]]
    for i, (status, moved_by) in enumerate(steps):
        if i == 0 and not (seen is None and created):
            continue
        event = moved_by or last
        if i > 0:
            occurrences.append((Occurrence("status_left", status=steps[i - 1][0]), event))
        occurrences.append((Occurrence("status_entered", status=status), event))
        if i > 0 and statuses.get(status) in ("won", "lost"):
            occurrences.append((Occurrence(f"deal_{statuses[status]}"), event))
    occurrences += _warmer(rules, lead, seen, created, last)
    listened = rules.automations.by_event
    occurrences = [(occ, e) for occ, e in occurrences if occ.event in listened]
    state = lead_state(conn, lead, rules) if occurrences else None
    for occ, event in occurrences:
        assert state is not None
        for trigger in rules.automations.fires(occ, state):
            _fire_or_wait(conn, app, trigger, occ, event, lead, state, now, done)
            state = lead_state(conn, _reload(conn, lead["id"]), rules)
    _keep_in_step(conn, app, _reload(conn, lead["id"]), group, now)
    _cancel_stale(conn, app, lead["id"], now)
    # As the events told it, not as the actions just left it: their own changes are events the next round reads.
    _remember(conn, lead["id"], seen, lead)


def _warmer(
    rules: Any, lead: RowMapping, seen: RowMapping | None, created: bool, event: Any
) -> list[tuple[Occurrence, Any]]:
    """The temperatures and scores the lead has risen to since it was last seen (from nothing, when it is new)."""
    found: list[tuple[Occurrence, Any]] = []
    if seen is None and not created:
        return found
    old_t = seen["temperature"] if seen is not None else None
    new_t = lead["temperature"]
    rank = {t: i for i, t in enumerate(TEMPERATURE_ORDER)}
    if new_t in rank:
        for t in TEMPERATURE_ORDER[rank.get(old_t or "", -1) + 1 : rank[new_t] + 1]:
            found.append((Occurrence("temperature_reached", temperature=t), event))
    old_s = seen["score"] if seen is not None else None
    new_s = lead["score"]
    if new_s is not None:
        for trigger in rules.automations.by_event.get("score_reached", ()):
            bar = trigger.when.score
            if bar is not None and new_s >= bar and (old_s is None or old_s < bar):
                found.append((Occurrence("score_reached", score=bar), event))
    return found


def _fire_or_wait(
    conn: Connection, app: Leadflow, trigger: Trigger, occ: Occurrence, event: Any, lead: RowMapping,
    state: LeadState, now: datetime, done: Round,
) -> None:  # fmt: skip
    cause = tuple((event.data or {}).get("automation") or ())
    if len(cause) >= app.rules.automations.max_depth:
        chain = " → ".join((*cause, trigger.key))
        add_event(conn, new_event(lead["id"], "automation.stopped", now, "automation", trigger=trigger.key,
                                  chain=[*cause, trigger.key],
                                  reason=f"stopped: {len(cause)} automations in a row already ({chain}); the limit "
                                  f"is automations.max_depth = {app.rules.automations.max_depth}"))  # fmt: skip
        done.problems.append(f"lead {lead['id']}: chain stopped at {trigger.key}")
        return
    if trigger.after is not None:
        due = event.at + trigger.after
        conn.execute(timers.insert().values(
            lead_id=lead["id"], kind=DELAYED, due_at=due, ref=trigger.key, created_at=now,
            data={"trigger": trigger.key, "event_id": event.id, "when": occ.describe(), "cause": list(cause)},
        ))  # fmt: skip
        append_events(conn, [new_event(lead["id"], "automation.waiting", now, "automation", trigger=trigger.key,
                                       due_at=due.isoformat(), reason=f"{trigger.when.describe()}: acting at "
                                       f"{due:%Y-%m-%d %H:%M} UTC if the lead then still matches")])  # fmt: skip
        done.delayed += 1
        return
    if run_trigger(conn, app, trigger, lead, state, occ.describe(), cause, now):
        done.fired += 1


def run_trigger(
    conn: Connection, app: Leadflow, trigger: Trigger, lead: RowMapping, state: LeadState, why: str,
    cause: tuple[str, ...], now: datetime,
) -> bool:  # fmt: skip
    """Carry out a trigger's steps in order, all or none: a step that cannot be done undoes the ones before it and
    leaves an event saying why."""
    who = automation(trigger.key, cause)
    did: list[str] = []
    try:
        with conn.begin_nested():
            for step in trigger.then:
                did.append(_step(conn, app, step, trigger, _reload(conn, lead["id"]), who, now))
    except LeadflowError as exc:
        _failed(conn, lead["id"], trigger, why, str(exc), now)
        return False
    except Exception as exc:  # a fault in leadflow must not stop every other lead's automations
        log.exception("trigger %s failed on lead %s", trigger.key, lead["id"])
        _failed(conn, lead["id"], trigger, why, f"an internal error ({type(exc).__name__})", now)
        return False
    checked = f"; {trigger.check.fields}" if trigger.check.fields else ""
    add_event(conn, new_event(lead["id"], "automation.fired", now, who, trigger=trigger.key, steps=did,
                              reason=f"{why}{checked}: {'; '.join(did)}"))  # fmt: skip
    return True


def _failed(conn: Connection, lead_id: int, trigger: Trigger, why: str, problem: str, now: datetime) -> None:
    add_event(conn, new_event(lead_id, "automation.failed", now, "automation", trigger=trigger.key,
                              reason=f"{why}: not done, {problem}"))  # fmt: skip


# --- the steps -----------------------------------------------------------------------------------------------


class StepRefused(LeadflowError):
    """A step that cannot be carried out on this lead now (no owner to give a task to, no channel to reply in)."""


def _step(
    conn: Connection, app: Leadflow, step: Step, trigger: Trigger, lead: RowMapping, who: Principal, now: datetime
) -> str:
    state = lead_state(conn, lead, app.rules)
    owner = _manager(conn, app, lead["manager_id"])
    context = template_context(state, owner.name if owner else None, {"trigger": trigger.key})
    if step.task is not None:
        person = _person(conn, app, step.task.assignee, lead)
        due, how = due_at(step.task.due, now, person.hours)
        title = render_text(step.task.title, context)[:200] or trigger.key
        create_task_in(conn, app, lead_id=lead["id"], manager_id=person.id, title=title, due_at=due, now=now,
                       who=who, kind=step.task.kind, reason=f"trigger {trigger.key}: {how}", source=trigger.key,
                       follows_owner=step.task.assignee == "owner", note=step.task.note)  # fmt: skip
        return f"task {title!r} for {person.name}, {how}"
    if step.notify is not None:
        body = render_text(step.notify.text, context)
        card = lead_context(app, lead["id"], lead_row_to_clean(lead)) | {"text": body}
        event_id = add_event(conn, new_event(lead["id"], "automation.notified", now, who, to=step.notify.to,
                                             text=body[:500]))  # fmt: skip
        if step.notify.to == "team":
            team = _team_row(conn, lead)
            if team is None:
                raise StepRefused("the lead has no team to tell")
            notify(conn, app, "automation.notice", event_id, None, card, now, team_chat=team)
            return f"told the team chat of {team['name']}"
        person = _person(conn, app, step.notify.to, lead)
        notify(conn, app, "automation.notice", event_id, person, card, now)
        return f"told {person.name}"
    if step.reply is not None:
        return _reply(conn, app, step.reply, lead, state, context, who, now)
    if step.status is not None:
        reason = step.status.reason or f"automation {trigger.key}"
        set_status_in(conn, app, lead, step.status.to, now, who=who, reason=reason)
        return f"status {lead['status']} → {step.status.to}"
    if step.set is not None:
        return _set_fields(conn, lead, step.set, now, who)
    if step.tag is not None or step.untag is not None:
        have = list(lead["tags"] or [])
        tags = [t for t in have if t not in (step.untag or ())] + [t for t in step.tag or () if t not in have]
        conn.execute(update(leads).where(leads.c.id == lead["id"]).values(tags=tags, updated_at=now))
        append_events(conn, [new_event(lead["id"], "lead.tagged", now, who, tags=tags, was=have)])
        return f"tags: {', '.join(tags) or 'none'}"
    if step.webhook is not None:
        if app.notify.webhook_secret is None:
            raise StepRefused("webhooks need a signing secret: set LEADFLOW_NOTIFY__WEBHOOK_SECRET")
        event_id = add_event(conn, new_event(lead["id"], "automation.webhook", now, who, trigger=trigger.key))
        enqueue_notification(conn, event_id=event_id, event_type="automation.webhook", channel="webhook",
                             recipient=step.webhook.url, language=None, now=now,
                             context=lead_context(app, lead["id"], lead_row_to_clean(lead))
                             | {"trigger": trigger.key, "status": lead["status"]})  # fmt: skip
        return "webhook queued"
    if step.cadence is not None:
        if not step.cadence.start:
            stopped = cadence.stop_in(conn, lead["id"], f"stopped by trigger {trigger.key}", now, who)
            return "cadence stopped" if stopped else "no cadence was running"
        return "cadence: " + cadence.start_in(conn, app, lead, now, who=who, policy=step.cadence.policy)
    raise StepRefused(f"step {step.action} is not known")  # the rules schema allows no other


def _reply(
    conn: Connection, app: Leadflow, key: str, lead: RowMapping, state: LeadState, context: dict[str, Any],
    who: Principal, now: datetime,
) -> str:  # fmt: skip
    """The template's variant for the lead's channel, language and temperature, sent through the outbox; an
    activity of leadflow's, not the manager's first contact."""
    via, _address, _last = reply_route(conn, lead, None)
    language = lead["language"] or app.rules.default_language
    template = pick_template(app.rules.reply_templates, key, via, language, lead["temperature"])
    if template is None:
        raise StepRefused(f"reply template {key!r} has no variant for {via} in {language}")
    body = render_text(template.text, context)
    subject = render_text(template.subject, context) if template.subject else None
    sent = queue_reply_in(conn, app, lead, body, now, who=who, channel=via, subject=subject, kind="auto")
    conn.execute(activities.insert().values(lead_id=lead["id"], manager_id=None, kind="message", outcome="auto",
                                            note=f"automatic reply {key!r} via {via}", at=now))  # fmt: skip
    return f"replied with {key!r} via {via} (message {sent['id']})"


def _set_fields(conn: Connection, lead: RowMapping, values: Mapping[str, Any], now: datetime, who: Principal) -> str:
    columns: dict[str, Any] = {}
    raw = dict(lead["raw"] or {})
    extra = dict(raw.get("extra") or {}) if isinstance(raw.get("extra"), dict) else {}
    for name, value in values.items():
        if name.startswith("extra."):
            extra[name[6:]] = value
        elif name == "budget":
            try:
                columns["budget"] = None if value is None else Decimal(str(value))
            except InvalidOperation:
                raise StepRefused(f"budget {value!r} is not a number") from None
        else:
            columns[name] = None if value is None else str(value)
    if extra:
        raw["extra"] = extra
        columns["raw"] = raw
    conn.execute(update(leads).where(leads.c.id == lead["id"]).values(**columns, updated_at=now))
    shown = {k: (None if v is None else str(v)) for k, v in values.items()}
    append_events(conn, [new_event(lead["id"], "lead.updated", now, who, fields=shown)])
    return "set " + ", ".join(f"{k} = {v}" for k, v in shown.items())


# --- who ------------------------------------------------------------------------------------------------------


def _manager(conn: Connection, app: Leadflow, manager_id: int | None) -> Any:
    return load_manager(conn, manager_id, app.rules.default_timezone) if manager_id is not None else None


def _person(conn: Connection, app: Leadflow, spec: str, lead: RowMapping) -> Any:
    """owner, head, role:<role> (its member in the lead's team with the fewest open tasks), manager:<key>."""
    if spec == "owner":
        found = _manager(conn, app, lead["manager_id"])
        if found is None:
            raise StepRefused("the lead has no owner")
        return found
    team = _team_row(conn, lead)
    if spec == "head":
        key = team["head_key"] if team is not None else None
        if key is None:
            raise StepRefused("the lead's team has no head")
        keys = [key]
    elif spec.startswith("role:"):
        members = app.rules.roles.get(spec[5:], ())
        in_team = [m.key for m in app.rules.managers if m.key in members and team is not None and m.team == team["key"]]
        keys = in_team or list(members)
    else:
        keys = [spec[8:]]
    rows = conn.execute(select(managers.c.id, managers.c.key).where(managers.c.key.in_(keys),
                                                                    managers.c.active.is_(True))).all()  # fmt: skip
    if not rows:
        raise StepRefused(f"nobody active is {spec}")
    if len(rows) > 1:
        load: dict[int, int] = dict(conn.execute(select(tasks.c.manager_id, func.count()).where(
            tasks.c.status == "open", tasks.c.manager_id.in_([r.id for r in rows])).group_by(tasks.c.manager_id)
        ).all())  # fmt: skip
        rows = sorted(rows, key=lambda r: (load.get(r.id, 0), keys.index(r.key)))
    return _manager(conn, app, rows[0].id)


def _team_row(conn: Connection, lead: RowMapping) -> RowMapping | None:
    if lead["team_id"] is not None:
        return conn.execute(select(teams).where(teams.c.id == lead["team_id"])).mappings().first()
    if lead["manager_id"] is not None:
        return conn.execute(select(teams).join(managers, managers.c.team_id == teams.c.id)
                            .where(managers.c.id == lead["manager_id"])).mappings().first()  # fmt: skip
    return None


# --- the lead as triggers see it -----------------------------------------------------------------------------


def lead_state(conn: Connection, lead: RowMapping, rules: Any) -> LeadState:
    clean = lead_row_to_clean(lead)
    owner = conn.execute(select(managers.c.key).where(managers.c.id == lead["manager_id"])).scalar() \
        if lead["manager_id"] is not None else None  # fmt: skip
    team = _team_row(conn, lead)
    fields = {name: getattr(clean, name) for name in clean.__dataclass_fields__}
    return LeadState(**fields, id=lead["id"], status=lead["status"], open=lead["status"] in rules.open_statuses,
                     contacted=lead["first_contact_at"] is not None, owner=owner,
                     team=team["key"] if team is not None else None, tags=tuple(lead["tags"] or ()),
                     sla_state=lead["sla_state"], queue=lead["queue"])  # fmt: skip


def _reload(conn: Connection, lead_id: int) -> RowMapping:
    return conn.execute(select(leads).where(leads.c.id == lead_id)).mappings().one()


def _remember(conn: Connection, lead_id: int, seen: RowMapping | None, lead: RowMapping) -> None:
    values = {"status": lead["status"], "temperature": lead["temperature"], "score": lead["score"]}
    if seen is None:
        conn.execute(automation_seen.insert().values(lead_id=lead_id, **values))
    elif any(seen[k] != v for k, v in values.items()):
        conn.execute(update(automation_seen).where(automation_seen.c.lead_id == lead_id).values(**values))


def _keep_in_step(conn: Connection, app: Leadflow, lead: RowMapping, group: Sequence[Any], now: datetime) -> None:
    """What follows the lead without a trigger: the cadence hears of calls and of the client, tasks follow a new
    owner, and an idle period starts again with each thing people or the client do."""
    system = Principal("system", "cadence")
    for e in group:
        data = e.data or {}
        if (
            e.type == "lead.contact_attempt"
            and data.get("kind") == "call"
            and data.get("outcome") in cadence.UNANSWERED
        ):
            cadence.attempted_in(conn, app, _reload(conn, lead["id"]), e.at, now, system)
        elif e.type in ("lead.contacted", "lead.contact_attempt") and data.get("kind") == "call" \
                and data.get("outcome") in ("connected", "wrong_number"):  # fmt: skip
            cadence.stop_in(conn, lead["id"], f"the call {data['outcome'].replace('_', ' ')}", now, system)
        elif e.type == "message.received":
            cadence.stop_in(conn, lead["id"], "the client wrote", now, system)
        if e.type in _MANAGER_EVENTS:
            move_owner_tasks_in(conn, lead["id"], lead["manager_id"], now, system)
            cadence.resume_in(conn, app, lead, now, system)
    if lead["status"] not in app.rules.open_statuses:
        cadence.stop_in(conn, lead["id"], f"the lead is {lead['status']}", now, system)
    idle = app.rules.automations.idle
    active = [e for e in group if e.type not in _NOT_ACTIVITY and not (e.data or {}).get("automation")]
    if idle and active:
        conn.execute(delete(timers).where(timers.c.lead_id == lead["id"], timers.c.kind == IDLE))
        if lead["status"] in app.rules.open_statuses:
            at = max(e.at for e in active)
            conn.execute(timers.insert(), [
                {"lead_id": lead["id"], "kind": IDLE, "due_at": at + t.when.period, "ref": t.key, "created_at": now,
                 "data": {"trigger": t.key, "since": at.isoformat()}}
                for t in idle if t.when.period is not None
            ])  # fmt: skip


def _cancel_stale(conn: Connection, app: Leadflow, lead_id: int, now: datetime) -> None:
    """A delayed action whose condition stopped holding is cancelled now, with why."""
    waiting = conn.execute(select(timers.c.id, timers.c.ref).where(timers.c.lead_id == lead_id,
                                                                   timers.c.kind == DELAYED)).all()  # fmt: skip
    if not waiting:
        return
    state = lead_state(conn, _reload(conn, lead_id), app.rules)
    triggers = {t.key: t for t in app.rules.automations.triggers}
    for timer in waiting:
        trigger = triggers.get(timer.ref or "")
        miss = "the trigger is no longer in the rules" if trigger is None else trigger.check.miss(state)
        if miss:
            conn.execute(delete(timers).where(timers.c.id == timer.id))
            append_events(conn, [new_event(lead_id, "automation.cancelled", now, "automation", trigger=timer.ref,
                                           reason=f"no longer applies: {miss}")])  # fmt: skip


# --- timers --------------------------------------------------------------------------------------------------


def fire_due(app: Leadflow, now: datetime, limit: int = 100) -> Round:
    """Act on up to `limit` due automation timers in one transaction (SKIP LOCKED: several workers share them)."""
    done = Round()
    if app.is_sqlite and not _timer_due(app, now):
        return done
    with app.engine.begin() as conn:
        due = conn.execute(_DUE, {"now": now, "limit": limit}).all()
        if not due:
            return done
        ids = sorted({t.lead_id for t in due})
        locked = {r["id"]: r for r in conn.execute(_LEADS.with_for_update(skip_locked=True), {"ids": ids}).mappings()}
        taken = [t for t in due if t.lead_id in locked]
        if taken:
            conn.execute(delete(timers).where(timers.c.id.in_([t.id for t in taken])))
        triggers = {t.key: t for t in app.rules.automations.enabled}
        for t in taken:
            lead = _reload(conn, t.lead_id)
            if t.kind == TASK_OVERDUE:
                fire_overdue_in(conn, app, int(t.data["task"]), now)
            else:
                _timer_trigger(conn, app, triggers.get(t.ref or ""), t, lead, now, done)
            done.timers += 1
    return done


def _timer_trigger(
    conn: Connection, app: Leadflow, trigger: Trigger | None, timer: Any, lead: RowMapping, now: datetime,
    done: Round,
) -> None:  # fmt: skip
    data = timer.data or {}
    if trigger is None:
        append_events(conn, [new_event(lead["id"], "automation.cancelled", now, "automation", trigger=timer.ref,
                                       reason="the trigger is no longer in the rules")])  # fmt: skip
        return
    state = lead_state(conn, lead, app.rules)
    if timer.kind == IDLE and lead["status"] not in app.rules.open_statuses:
        return
    miss = trigger.check.miss(state)
    if miss:
        append_events(conn, [new_event(lead["id"], "automation.cancelled", now, "automation", trigger=trigger.key,
                                       reason=f"no longer applies: {miss}")])  # fmt: skip
        return
    if timer.kind == IDLE:
        why = f"nothing happened on the lead since {data.get('since', '?')[:16]} UTC"
    else:
        why = f"{data.get('when', trigger.when.describe())}, {_ago(trigger.after)} ago"
    if run_trigger(conn, app, trigger, lead, state, why, tuple(data.get("cause") or ()), now):
        done.fired += 1


def _ago(period: timedelta | None) -> str:
    return format_duration(period) if period else "a while"


def _timer_due(app: Leadflow, now: datetime) -> bool:
    with app.engine.connect().execution_options(**READ_ONLY) as conn:
        query = select(timers.c.id).where(timers.c.kind.in_(KINDS), timers.c.due_at <= now).limit(1)
        return conn.execute(query).first() is not None


def next_timer_at(app: Leadflow) -> datetime | None:
    with app.engine.connect().execution_options(**READ_ONLY) as conn:
        value: datetime | None = conn.execute(
            select(func.min(timers.c.due_at)).where(timers.c.kind.in_(KINDS))
        ).scalar()
    return value


def run_once(app: Leadflow, now: datetime) -> Round:
    """Everything waiting now: the log read to its end, then the due timers (the tests' and the CLI's step)."""
    total = Round()
    while True:
        step = process_events(app, now)
        timed = fire_due(app, now)
        for r in (step, timed):
            total.events += r.events
            total.fired += r.fired
            total.delayed += r.delayed
            total.timers += r.timers
            total.problems += r.problems
        if not step.events and not timed.timers:
            return total
