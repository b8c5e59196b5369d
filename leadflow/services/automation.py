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
import time
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
from leadflow.services.sla import earliest_timer, lead_context, notify, timer_due
from leadflow.services.tasks import TASK_OVERDUE, create_task_in, fire_overdue_in, move_owner_tasks_in
from leadflow.store.db import READ_ONLY
from leadflow.store.events import add_event, append_events, new_event
from leadflow.store.lead_rows import lead_row_to_clean
from leadflow.store.tables import activities, automation_seen, cadences, events, leads, managers, tasks, teams, timers
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


_MANAGERS = select(managers.c.id, managers.c.key, managers.c.name, managers.c.team_id, managers.c.active)
_TEAMS = select(teams)
_WITH_DELAYED = select(timers.c.lead_id).where(timers.c.lead_id.in_(bindparam("ids", expanding=True)),
                                               timers.c.kind == DELAYED)  # fmt: skip
_WITH_CADENCE = select(cadences.c.lead_id).where(cadences.c.lead_id.in_(bindparam("ids", expanding=True)),
                                                 cadences.c.state == cadence.RUNNING)  # fmt: skip
_WITH_FOLLOWING = select(tasks.c.lead_id).where(tasks.c.lead_id.in_(bindparam("ids", expanding=True)),
                                                tasks.c.status == "open", tasks.c.follows_owner.is_(True))  # fmt: skip
_LEAD = select(leads).where(leads.c.id == bindparam("id"))
_SET_TAGS = (
    update(leads)
    .where(leads.c.id == bindparam("t_id"))
    .values(
        tags=bindparam("t_tags", type_=leads.c.tags.type), updated_at=bindparam("t_now", type_=leads.c.updated_at.type)
    )
)
_SEEN_NEW = automation_seen.insert()
_SEEN_SET = (
    update(automation_seen)
    .where(automation_seen.c.lead_id == bindparam("s_lead"))
    .values(status=bindparam("s_status"), temperature=bindparam("s_temperature"), score=bindparam("s_score"))
)
_IDLE_DROP = delete(timers).where(timers.c.lead_id.in_(bindparam("ids", expanding=True)), timers.c.kind == IDLE)
# Changes the automations make themselves, which no trigger waits for: a lead with only these (and its status,
# temperature and score as last seen) needs no look of its own.
_OWN = frozenset({"task.created", "task.done", "task.cancelled", "task.reassigned", "lead.tagged", "lead.updated",
                  "cadence.started", "cadence.stopped", "cadence.exhausted", "automation.webhook"})  # fmt: skip


@dataclass
class _Batch:
    """One transaction of the automations: what it reads once (people, teams, which leads have waiting actions,
    cadences, tasks that follow the owner) and what it writes at its end in one statement per table."""

    app: Leadflow
    now: datetime
    done: Round
    managers: dict[int, Any] = field(default_factory=dict)
    teams: dict[int, RowMapping] = field(default_factory=dict)
    delayed: set[int] = field(default_factory=set)
    cadenced: set[int] = field(default_factory=set)
    following: set[int] = field(default_factory=set)  # read: tasks made this round already have the owner
    seen_new: list[dict[str, Any]] = field(default_factory=list)
    seen_set: list[dict[str, Any]] = field(default_factory=list)
    idle_from: dict[int, datetime] = field(default_factory=dict)  # lead -> when its quiet stretch began
    idle_drop: set[int] = field(default_factory=set)
    notes: list[dict[str, Any]] = field(default_factory=list)  # events that nothing refers to by id

    def read(self, conn: Connection, lead_ids: list[int]) -> None:
        self.managers = {r.id: r for r in conn.execute(_MANAGERS)}
        self.teams = {r["id"]: r for r in conn.execute(_TEAMS).mappings()}
        self.delayed = set(conn.execute(_WITH_DELAYED, {"ids": lead_ids}).scalars())
        self.cadenced = set(conn.execute(_WITH_CADENCE, {"ids": lead_ids}).scalars())
        self.following = set(conn.execute(_WITH_FOLLOWING, {"ids": lead_ids}).scalars())

    def team_of(self, lead: RowMapping) -> RowMapping | None:
        if lead["team_id"] is not None:
            return self.teams.get(lead["team_id"])
        owner = self.managers.get(lead["manager_id"]) if lead["manager_id"] is not None else None
        return self.teams.get(owner.team_id) if owner is not None else None

    def state(self, lead: RowMapping) -> LeadState:
        owner = self.managers.get(lead["manager_id"]) if lead["manager_id"] is not None else None
        team = self.team_of(lead)
        return lead_state(lead, self.app.rules, owner.key if owner else None, team["key"] if team else None)

    def finish(self, conn: Connection) -> None:
        if self.seen_new:
            conn.execute(_SEEN_NEW, self.seen_new)
        if self.seen_set:
            conn.execute(_SEEN_SET, self.seen_set)
        if self.idle_drop:
            conn.execute(_IDLE_DROP, {"ids": sorted(self.idle_drop)})
        idle = self.app.rules.automations.idle
        if self.idle_from and idle:
            conn.execute(timers.insert(), [
                {"lead_id": lead_id, "kind": IDLE, "due_at": at + t.when.period, "ref": t.key, "created_at": self.now,
                 "data": {"trigger": t.key, "since": at.isoformat()}}
                for lead_id, at in sorted(self.idle_from.items()) for t in idle if t.when.period is not None
            ])  # fmt: skip
        if self.notes:
            append_events(conn, self.notes)


# --- the event log -------------------------------------------------------------------------------------------


def process_events(app: Leadflow, now: datetime, limit: int = 500, budget: float | None = None) -> Round:
    """Read up to `limit` waiting events and act on them, in one transaction. `budget`: seconds after which the
    round ends with the lead it is on (the rest wait for the next round), so a round holds SQLite's one write lock
    only that long."""
    done = Round()
    if app.is_sqlite and not _anything_waiting(app):
        return done  # look before taking SQLite's one write lock
    started = time.monotonic()
    with app.engine.begin() as conn:
        if (
            conn.dialect.name == "postgresql"
            and not conn.execute(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": _LOCK_KEY}).scalar()
        ):
            return done  # another worker is reading the log; this one fires timers and delivers
        rows = conn.execute(_WAITING, {"limit": limit}).all()
        if not rows:
            return done
        read = [r.id for r in rows if r.lead_id is None]
        by_lead: dict[int, list[Any]] = {}
        for row in rows:
            if row.lead_id is not None:
                by_lead.setdefault(row.lead_id, []).append(row)
        if by_lead:
            ids = sorted(by_lead)
            # SKIP LOCKED: a lead someone is changing right now keeps its events for the next round, in order, and
            # the automations never wait on a lead while holding others (no deadlock with a contact being recorded).
            locked = _LEADS.with_for_update(skip_locked=True)
            found = {r["id"]: r for r in conn.execute(locked, {"ids": ids}).mappings()}
            seen = {r["lead_id"]: r for r in conn.execute(_SEEN, {"ids": ids}).mappings()}
            batch = _Batch(app, now, done)
            batch.read(conn, ids)
            for lead_id, group in by_lead.items():  # in the order of each lead's first waiting event
                if budget is not None and read and time.monotonic() - started > budget:
                    break
                lead = found.get(lead_id)
                if lead is None:
                    continue  # locked by someone else (leads are never deleted): next round
                if _worth_a_look(lead, seen.get(lead_id), group):
                    _lead_events(conn, batch, lead, seen.get(lead_id), group)
                read += [e.id for e in group]
            batch.finish(conn)
        conn.execute(_DONE, {"ids": read})
        done.events = len(read)
    return done


def _worth_a_look(lead: RowMapping, seen: RowMapping | None, group: Sequence[Any]) -> bool:
    """Whether anything in the group can matter: not only the automations' own doings, on a lead that stands where
    it stood (most of the log, once triggers act: their tasks, tags and reports)."""
    if seen is None or (seen["status"], seen["temperature"], seen["score"]) != (
        lead["status"], lead["temperature"], lead["score"]
    ):  # fmt: skip
        return True
    return any(not (e.type in _OWN or e.type.startswith("automation.")) for e in group)


def _anything_waiting(app: Leadflow) -> bool:
    with app.engine.connect().execution_options(**READ_ONLY) as conn:
        return conn.execute(select(events.c.id).where(events.c.automate.is_not(None)).limit(1)).first() is not None


def _lead_events(conn: Connection, batch: _Batch, lead: RowMapping, seen: RowMapping | None,
                 group: Sequence[Any]) -> None:  # fmt: skip
    rules = batch.app.rules
    occurrences = [(occ, e) for occ, e in _occurrences(rules, lead, seen, group)
                   if occ.event in rules.automations.by_event]  # fmt: skip
    current = lead
    state = batch.state(lead) if occurrences else None
    for occ, event in occurrences:
        assert state is not None
        for trigger in rules.automations.fires(occ, state):
            if _fire_or_wait(conn, batch, trigger, occ, event, current, state):
                current = _reload(conn, lead["id"])
                state = batch.state(current)
    _keep_in_step(conn, batch, current, group)
    if lead["id"] in batch.delayed:
        _cancel_stale(conn, batch, _reload(conn, lead["id"]))
    # As the events told it, not as the actions just left it: their own changes are events the next round reads.
    values = {"status": lead["status"], "temperature": lead["temperature"], "score": lead["score"]}
    if seen is None:
        batch.seen_new.append({"lead_id": lead["id"], **values})
    elif any(seen[k] != v for k, v in values.items()):
        batch.seen_set.append({"s_lead": lead["id"], **{f"s_{k}": v for k, v in values.items()}})


def _occurrences(rules: Any, lead: RowMapping, seen: RowMapping | None,
                 group: Sequence[Any]) -> list[tuple[Occurrence, Any]]:  # fmt: skip
    """What happened to the lead, as triggers' `when:` see it, each with the event it came from."""
    statuses = {s.key: s.outcome for s in rules.funnel}
    created = any(e.type == "lead.received" for e in group) and lead["merged_into_id"] is None
    before = seen["status"] if seen is not None else None
    last = group[-1]
    # The statuses the lead went through, each with the event that moved it there (its cause, for the depth).
    path: list[tuple[str, Any]] = [] if (seen is None and created) else [(before or lead["status"], None)]
    found: list[tuple[Occurrence, Any]] = []
    for e in group:
        data = e.data or {}
        if e.type == "lead.received" and created:
            found.append((Occurrence("lead_created"), e))
        elif e.type in ("lead.contacted", "lead.contact_attempt"):
            found.append((Occurrence("contact", kind=data.get("kind"), outcome=data.get("outcome")), e))
        elif e.type == "lead.escalated":
            found.append((Occurrence("sla_breached"), e))
        elif e.type == "lead.chain_exhausted":
            found += [(Occurrence("sla_breached"), e), (Occurrence("chain_ended"), e)]
        elif e.type == "message.received":
            found.append((Occurrence("message_received"), e))
        elif e.type.startswith("client."):
            found.append((Occurrence("client_event", client_event=e.type[7:]), e))
        elif e.type == "task.overdue":
            found.append((Occurrence("task_overdue"), e))
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
            found.append((Occurrence("status_left", status=steps[i - 1][0]), event))
        found.append((Occurrence("status_entered", status=status), event))
        if i > 0 and statuses.get(status) in ("won", "lost"):
            found.append((Occurrence(f"deal_{statuses[status]}"), event))
    return found + _warmer(rules, lead, seen, created, last)


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
    conn: Connection, batch: _Batch, trigger: Trigger, occ: Occurrence, event: Any, lead: RowMapping,
    state: LeadState,
) -> bool:  # fmt: skip
    """Fire the trigger now, or write its delayed action; whether the lead changed."""
    app, now, done = batch.app, batch.now, batch.done
    cause = tuple((event.data or {}).get("automation") or ())
    if len(cause) >= app.rules.automations.max_depth:
        chain = " → ".join((*cause, trigger.key))
        batch.notes.append(new_event(lead["id"], "automation.stopped", now, "automation", trigger=trigger.key,
                                     chain=[*cause, trigger.key],
                                     reason=f"stopped: {len(cause)} automations in a row already ({chain}); the "
                                     f"limit is automations.max_depth = {app.rules.automations.max_depth}"))  # fmt: skip
        done.problems.append(f"lead {lead['id']}: chain stopped at {trigger.key}")
        return False
    if trigger.after is not None:
        due = event.at + trigger.after
        conn.execute(timers.insert().values(
            lead_id=lead["id"], kind=DELAYED, due_at=due, ref=trigger.key, created_at=now,
            data={"trigger": trigger.key, "event_id": event.id, "when": occ.describe(), "cause": list(cause)},
        ))  # fmt: skip
        batch.notes.append(new_event(lead["id"], "automation.waiting", now, "automation", trigger=trigger.key,
                                     due_at=due.isoformat(), reason=f"{trigger.when.describe()}: acting at "
                                     f"{due:%Y-%m-%d %H:%M} UTC if the lead then still matches"))  # fmt: skip
        batch.delayed.add(lead["id"])
        done.delayed += 1
        return False
    fired, changed = run_trigger(conn, batch, trigger, lead, occ.describe(), cause)
    done.fired += fired
    return changed


# What changes the lead row itself (the rest adds rows beside it).
_CHANGES_LEAD = frozenset({"status", "set", "tag", "untag", "cadence"})


def run_trigger(
    conn: Connection, batch: _Batch, trigger: Trigger, lead: RowMapping, why: str, cause: tuple[str, ...]
) -> tuple[bool, bool]:
    """Carry out a trigger's steps in order, all or none: a step that cannot be done undoes the ones before it and
    leaves an event saying why. Returns (done, whether the lead row changed)."""
    who = automation(trigger.key, cause)
    did: list[str] = []
    current = lead
    changed = False
    try:
        with conn.begin_nested():
            for step in trigger.then:
                did.append(_step(conn, batch, step, trigger, current, who))
                if step.action in _CHANGES_LEAD:
                    current, changed = _reload(conn, lead["id"]), True
    except LeadflowError as exc:
        _failed(batch, lead["id"], trigger, why, str(exc))
        return False, False
    except Exception as exc:  # a fault in leadflow must not stop every other lead's automations
        log.exception("trigger %s failed on lead %s", trigger.key, lead["id"])
        _failed(batch, lead["id"], trigger, why, f"an internal error ({type(exc).__name__})")
        return False, False
    checked = f"; {trigger.check.fields}" if trigger.check.fields else ""
    batch.notes.append(new_event(lead["id"], "automation.fired", batch.now, who, trigger=trigger.key, steps=did,
                                 reason=f"{why}{checked}: {'; '.join(did)}"))  # fmt: skip
    return True, changed


def _failed(batch: _Batch, lead_id: int, trigger: Trigger, why: str, problem: str) -> None:
    batch.notes.append(new_event(lead_id, "automation.failed", batch.now, "automation", trigger=trigger.key,
                                 reason=f"{why}: not done, {problem}"))  # fmt: skip


# --- the steps -----------------------------------------------------------------------------------------------


class StepRefused(LeadflowError):
    """A step that cannot be carried out on this lead now (no owner to give a task to, no channel to reply in)."""


def _step(conn: Connection, batch: _Batch, step: Step, trigger: Trigger, lead: RowMapping, who: Principal) -> str:
    app, now = batch.app, batch.now
    owner = batch.managers.get(lead["manager_id"]) if lead["manager_id"] is not None else None
    context = template_context(batch.state(lead), owner.name if owner else None, {"trigger": trigger.key})
    if step.task is not None:
        person = _person(conn, batch, step.task.assignee, lead)
        due, how = due_at(step.task.due, now, person.hours)
        title = render_text(step.task.title, context)[:200] or trigger.key
        follows = step.task.assignee == "owner"  # made with the owner now: nothing to move in this round
        create_task_in(conn, app, lead_id=lead["id"], manager_id=person.id, title=title, due_at=due, now=now,
                       who=who, kind=step.task.kind, reason=f"trigger {trigger.key}: {how}", source=trigger.key,
                       follows_owner=follows, note=render_text(step.task.note, context) if step.task.note else None)  # fmt: skip
        return f"task {title!r} for {person.name}, {how}"
    if step.notify is not None:
        body = render_text(step.notify.text, context)
        card = lead_context(app, lead["id"], lead_row_to_clean(lead)) | {"text": body}
        event_id = add_event(conn, new_event(lead["id"], "automation.notified", now, who, to=step.notify.to,
                                             text=body[:500]))  # fmt: skip
        if step.notify.to == "team":
            team = batch.team_of(lead)
            if team is None:
                raise StepRefused("the lead has no team to tell")
            notify(conn, app, "automation.notice", event_id, None, card, now, team_chat=team)
            return f"told the team chat of {team['name']}"
        person = _person(conn, batch, step.notify.to, lead)
        notify(conn, app, "automation.notice", event_id, person, card, now)
        return f"told {person.name}"
    if step.reply is not None:
        return _reply(conn, app, step.reply, lead, context, who, now)
    if step.status is not None:
        reason = step.status.reason or f"automation {trigger.key}"
        set_status_in(conn, app, lead, step.status.to, now, who=who, reason=reason)
        return f"status {lead['status']} → {step.status.to}"
    if step.set is not None:
        return _set_fields(conn, lead, step.set, now, who)
    if step.tag is not None or step.untag is not None:
        have = list(lead["tags"] or [])
        tags = [t for t in have if t not in (step.untag or ())] + [t for t in step.tag or () if t not in have]
        conn.execute(_SET_TAGS, {"t_id": lead["id"], "t_tags": tags, "t_now": now})
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
        batch.cadenced.add(lead["id"])
        return "cadence: " + cadence.start_in(conn, app, lead, now, who=who, policy=step.cadence.policy)
    raise StepRefused(f"step {step.action} is not known")  # the rules schema allows no other


def _reply(
    conn: Connection, app: Leadflow, key: str, lead: RowMapping, context: dict[str, Any], who: Principal,
    now: datetime,
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


def _person(conn: Connection, batch: _Batch, spec: str, lead: RowMapping) -> Any:
    """owner, head, role:<role> (its member in the lead's team with the fewest open tasks), manager:<key>."""
    app = batch.app
    if spec == "owner":
        if lead["manager_id"] is None:
            raise StepRefused("the lead has no owner")
        return load_manager(conn, lead["manager_id"], app.rules.default_timezone)
    team = batch.team_of(lead)
    if spec == "head":
        if team is None or team["head_key"] is None:
            raise StepRefused("the lead's team has no head")
        keys = [team["head_key"]]
    elif spec.startswith("role:"):
        members = app.rules.roles.get(spec[5:], ())
        in_team = [m.key for m in app.rules.managers if m.key in members and team is not None and m.team == team["key"]]
        keys = in_team or list(members)
    else:
        keys = [spec[8:]]
    rows = [m for m in batch.managers.values() if m.key in keys and m.active]
    if not rows:
        raise StepRefused(f"nobody active is {spec}")
    if len(rows) > 1:
        load: dict[int, int] = dict(conn.execute(select(tasks.c.manager_id, func.count()).where(
            tasks.c.status == "open", tasks.c.manager_id.in_([r.id for r in rows])).group_by(tasks.c.manager_id)
        ).all())  # fmt: skip
        rows = sorted(rows, key=lambda r: (load.get(r.id, 0), keys.index(r.key)))
    return load_manager(conn, rows[0].id, app.rules.default_timezone)


# --- the lead as triggers see it -----------------------------------------------------------------------------


def lead_state(lead: RowMapping, rules: Any, owner: str | None, team: str | None) -> LeadState:
    clean = lead_row_to_clean(lead)
    fields = {name: getattr(clean, name) for name in clean.__dataclass_fields__}
    return LeadState(**fields, id=lead["id"], status=lead["status"], open=lead["status"] in rules.open_statuses,
                     contacted=lead["first_contact_at"] is not None, owner=owner, team=team,
                     tags=tuple(lead["tags"] or ()), sla_state=lead["sla_state"], queue=lead["queue"])  # fmt: skip


def _reload(conn: Connection, lead_id: int) -> RowMapping:
    return conn.execute(_LEAD, {"id": lead_id}).mappings().one()


def _keep_in_step(conn: Connection, batch: _Batch, lead: RowMapping, group: Sequence[Any]) -> None:
    """What follows the lead without a trigger: the cadence hears of calls and of the client, tasks follow a new
    owner, and an idle period starts again with each thing people or the client do."""
    app, now, lead_id = batch.app, batch.now, lead["id"]
    system = Principal("system", "cadence")
    if lead_id in batch.cadenced:
        for e in group:
            data = e.data or {}
            if e.type == "lead.contact_attempt" and data.get("kind") == "call" \
                    and data.get("outcome") in cadence.UNANSWERED:  # fmt: skip
                cadence.attempted_in(conn, app, _reload(conn, lead_id), e.at, now, system)
            elif e.type in ("lead.contacted", "lead.contact_attempt") and data.get("kind") == "call" \
                    and data.get("outcome") in ("connected", "wrong_number"):  # fmt: skip
                cadence.stop_in(conn, lead_id, f"the call {data['outcome'].replace('_', ' ')}", now, system)
            elif e.type == "message.received":
                cadence.stop_in(conn, lead_id, "the client wrote", now, system)
        if lead["status"] not in app.rules.open_statuses:
            cadence.stop_in(conn, lead_id, f"the lead is {lead['status']}", now, system)
    if any(e.type in _MANAGER_EVENTS for e in group):
        if lead_id in batch.following:
            move_owner_tasks_in(conn, lead_id, lead["manager_id"], now, system)
        if lead_id in batch.cadenced:
            cadence.resume_in(conn, app, _reload(conn, lead_id), now, system)
    if app.rules.automations.idle:
        active = [e.at for e in group if e.type not in _NOT_ACTIVITY and e.type not in _OWN
                  and not (e.data or {}).get("automation")]  # fmt: skip
        if active:
            batch.idle_drop.add(lead_id)
            if lead["status"] in app.rules.open_statuses:
                batch.idle_from[lead_id] = max(active)
            else:
                batch.idle_from.pop(lead_id, None)


def _cancel_stale(conn: Connection, batch: _Batch, lead: RowMapping) -> None:
    """A delayed action whose condition stopped holding is cancelled now, with why."""
    waiting = conn.execute(select(timers.c.id, timers.c.ref).where(timers.c.lead_id == lead["id"],
                                                                   timers.c.kind == DELAYED)).all()  # fmt: skip
    if not waiting:
        return
    state = batch.state(lead)
    triggers = {t.key: t for t in batch.app.rules.automations.triggers}
    for timer in waiting:
        trigger = triggers.get(timer.ref or "")
        miss = "the trigger is no longer in the rules" if trigger is None else trigger.check.miss(state)
        if miss:
            conn.execute(delete(timers).where(timers.c.id == timer.id))
            batch.notes.append(new_event(lead["id"], "automation.cancelled", batch.now, "automation",
                                         trigger=timer.ref, reason=f"no longer applies: {miss}"))  # fmt: skip


# --- timers --------------------------------------------------------------------------------------------------


def fire_due(app: Leadflow, now: datetime, limit: int = 100) -> Round:
    """Act on up to `limit` due automation timers in one transaction (SKIP LOCKED: several workers share them)."""
    done = Round()
    if app.is_sqlite and not timer_due(app, now, KINDS):
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
        batch = _Batch(app, now, done)
        batch.read(conn, ids)
        for t in taken:
            if t.kind == TASK_OVERDUE:
                fire_overdue_in(conn, app, int(t.data["task"]), now)
            else:
                _timer_trigger(conn, batch, triggers.get(t.ref or ""), t, _reload(conn, t.lead_id))
            done.timers += 1
        batch.finish(conn)
    return done


def _timer_trigger(conn: Connection, batch: _Batch, trigger: Trigger | None, timer: Any, lead: RowMapping) -> None:
    data = timer.data or {}
    if trigger is None:
        batch.notes.append(new_event(lead["id"], "automation.cancelled", batch.now, "automation", trigger=timer.ref,
                                     reason="the trigger is no longer in the rules"))  # fmt: skip
        return
    if timer.kind == IDLE and lead["status"] not in batch.app.rules.open_statuses:
        return
    miss = trigger.check.miss(batch.state(lead))
    if miss:
        batch.notes.append(new_event(lead["id"], "automation.cancelled", batch.now, "automation",
                                     trigger=trigger.key, reason=f"no longer applies: {miss}"))  # fmt: skip
        return
    if timer.kind == IDLE:
        why = f"nothing happened on the lead since {data.get('since', '?')[:16]} UTC"
    else:
        why = f"{data.get('when', trigger.when.describe())}, {_ago(trigger.after)} ago"
    fired, _changed = run_trigger(conn, batch, trigger, lead, why, tuple(data.get("cause") or ()))
    batch.done.fired += fired


def _ago(period: timedelta | None) -> str:
    return format_duration(period) if period else "a while"


def next_timer_at(app: Leadflow) -> datetime | None:
    return earliest_timer(app, KINDS)


def run_once(app: Leadflow, now: datetime, batch: int = 100) -> Round:
    """Everything waiting now: the log read to its end, then the due timers (`leadflow worker --drain`, the tests);
    `batch` timers and five times as many events a transaction, as the worker's loop takes them."""
    total = Round()
    while True:
        step = process_events(app, now, limit=batch * 5)
        timed = fire_due(app, now, limit=batch)
        for r in (step, timed):
            total.events += r.events
            total.fired += r.fired
            total.delayed += r.delayed
            total.timers += r.timers
            total.problems += r.problems
        if not step.events and not timed.timers:
            return total
