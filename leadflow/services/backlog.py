"""Backlog triage: a stale backlog selected, previewed, changed in chunks that survive a crash, and undone by run.

A run freezes its selection when it starts: one ``backlog_changes`` row per matching lead, written by a single
INSERT ... SELECT in the transaction that creates the run. The run then works through those rows in lead-id order,
a chunk per transaction: it locks the chunk's leads, checks each still matches (a lead someone changed meanwhile
so that it no longer does is skipped, with the reason), applies the action through the services' own in-transaction
functions, appends one ``lead.backlog`` event per lead, and records the lead's ``before`` and the run's cursor and
counts. All of it commits together, so a run killed between chunks has lost nothing and repeats nothing: the next
call takes the rows after the cursor. Freezing the ids (rather than running the query again per chunk) means a lead
that comes to match after the start is never taken, and one that the run itself changes is never met twice.

Undo reads the same rows in lead order with a cursor of its own and puts back what ``before`` holds, unless someone
else changed the lead after the run did (an event on it since the run's own): that lead is kept as it is and
counted, with the reason, in the run's report.

Requeued leads are routed by the batch (``assign_backlog``) once, after the last chunk: one plan for the whole
queue places them better than a plan per chunk, and the batch orders the queue by importance anyway.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ColumnElement,
    and_,
    bindparam,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection, RowMapping

from leadflow.core.backlog import NEVER_SELECTED, NO_OWNER, Action, Selection
from leadflow.core.errors import Conflict, InvalidInput, NotFound
from leadflow.core.policy import Action as Permission
from leadflow.core.policy import Principal
from leadflow.core.scoring import NOT_SCORED, qualify
from leadflow.services.access import every_team
from leadflow.services.context import Leadflow
from leadflow.services.intake import team_scores
from leadflow.services.leads import set_status_in
from leadflow.services.sla import SLA_TIMERS
from leadflow.store.db import READ_ONLY
from leadflow.store.events import INSERT_EVENT, new_event
from leadflow.store.lead_rows import lead_row_to_clean
from leadflow.store.tables import backlog_changes, backlog_runs, events, leads, managers, teams, timers
from leadflow.store.team_state import ADD_LOAD

__all__ = [
    "CHANGE_EVENT",
    "UNDO_EVENT",
    "apply_chunk",
    "get_run",
    "list_runs",
    "preview",
    "resume",
    "run",
    "start",
    "undo",
    "undo_chunk",
]

CHANGE_EVENT = "lead.backlog"
UNDO_EVENT = "lead.backlog_undone"
_SAMPLE_IDS = 20  # lead ids kept per reason in the run's report
# What undo puts back: every column an action can change.
_RESTORED = ("status", "manager_id", "team_id", "queue", "junk_reason", "lost_reason", "sla_state", "sla_due_at",
             "sla_hops", "assigned_at", "rule_key", "score", "score_detail", "temperature", "department",
             "processing_due_at")  # fmt: skip
_TIMES = frozenset({"sla_due_at", "assigned_at", "processing_due_at"})
_INSERT_EVENT_IDS = INSERT_EVENT.returning(events.c.id, sort_by_parameter_order=True)  # ids in the rows' order
_MARK = (
    update(backlog_changes)
    .where(backlog_changes.c.run_id == bindparam("c_run"), backlog_changes.c.lead_id == bindparam("c_lead"))
    .values(state=bindparam("c_state"), before=bindparam("c_before"), reason=bindparam("c_reason"),
            event_id=bindparam("c_event"), done_at=bindparam("c_at"))
)  # fmt: skip
_MARK_UNDONE = (
    update(backlog_changes)
    .where(backlog_changes.c.run_id == bindparam("c_run"), backlog_changes.c.lead_id == bindparam("c_lead"))
    .values(state=bindparam("c_state"), reason=bindparam("c_reason"), undone_at=bindparam("c_at"))
)
_REQUEUE = (
    update(leads)
    .where(leads.c.id == bindparam("r_id"))
    .values(status="new", manager_id=None, team_id=bindparam("r_team"), sla_state=None, sla_due_at=None, sla_hops=0,
            assigned_at=None, rule_key=None, updated_at=bindparam("r_now"))
)  # fmt: skip
_RESCORE = (
    update(leads)
    .where(leads.c.id == bindparam("s_id"))
    .values(score=bindparam("s_score"), score_detail=bindparam("s_detail"), temperature=bindparam("s_temperature"),
            department=bindparam("s_department"), processing_due_at=bindparam("s_due"), updated_at=bindparam("s_now"))
)  # fmt: skip
_CLOSED_BACK = (
    update(managers)
    .where(managers.c.id == bindparam("m_id"))
    .values(closed_leads=managers.c.closed_leads - bindparam("m_closed"),
            won_leads=managers.c.won_leads - bindparam("m_won"))
)  # fmt: skip


def _guard(who: Principal) -> None:
    every_team(who, Permission.ROUTING_BATCH, "a backlog run")


# --- the selection as a query --------------------------------------------------------------------------------------


def _owner_ids(conn: Connection, keys: Sequence[str]) -> tuple[list[int], bool]:
    """The managers' ids of the owner keys, and whether "none" (no owner) is among them."""
    named = [k for k in keys if k != NO_OWNER]
    found = dict(conn.execute(select(managers.c.key, managers.c.id).where(managers.c.key.in_(named))).all())
    missing = [k for k in named if k not in found]
    if missing:
        raise InvalidInput.one("owner", f"no manager has the key {', '.join(map(repr, missing))}: give a manager's "
                                        f"key, or '{NO_OWNER}' for leads nobody owns")  # fmt: skip
    return [found[k] for k in named], NO_OWNER in keys


def _conditions(conn: Connection, selection: Selection, at: datetime) -> list[ColumnElement[bool]]:
    """The selection as conditions on `leads`, its ages counted back from `at` (when the run started)."""
    found: list[ColumnElement[bool]] = [leads.c.status.not_in(NEVER_SELECTED)]
    if selection.statuses:
        found.append(leads.c.status.in_(selection.statuses))
    cutoff = selection.created_cutoff(at)
    if cutoff is not None:
        found.append(leads.c.created_at < cutoff)
    idle = selection.idle_cutoff(at)
    if idle is not None:
        found.append(~exists().where(events.c.lead_id == leads.c.id, events.c.at >= idle))
    if selection.owners:
        ids, nobody = _owner_ids(conn, selection.owners)
        either = [leads.c.manager_id.in_(ids)] if ids else []
        if nobody:
            either.append(leads.c.manager_id.is_(None))
        found.append(or_(*either))
    if selection.channels:
        found.append(leads.c.channel.in_(selection.channels))
    if selection.min_score is not None:
        found.append(leads.c.score >= selection.min_score)
    if selection.max_score is not None:
        found.append(leads.c.score <= selection.max_score)
    if selection.temperatures:
        found.append(leads.c.temperature.in_(selection.temperatures))
    return found


def _lost_status(app: Leadflow) -> str:
    return next(s.key for s in app.rules.funnel if s.outcome == "lost")


def _target_status(app: Leadflow, action: Action) -> str | None:
    return "junk" if action.kind == "junk" else _lost_status(app) if action.kind == "lose" else None


# --- preview -----------------------------------------------------------------------------------------------------


def preview(app: Leadflow, selection: Selection, action: Action, now: datetime, *, who: Principal) -> dict[str, Any]:
    """What a run started now would take and do: counts by owner, channel and temperature, and the action's
    effect (the owners' load that drops, the teams' queues that fill, the temperatures that change). Writes
    nothing. A rescore is worked out with the real scoring on every selected lead, not a sample."""
    _guard(who)
    open_statuses = sorted(app.rules.open_statuses)
    with app.engine.connect().execution_options(**READ_ONLY) as conn:
        where = _conditions(conn, selection, now)
        is_open = leads.c.status.in_(open_statuses)
        owner = (
            select(managers.c.key, managers.c.name, func.count().label("n"),
                   func.count().filter(is_open).label("open"))
            .select_from(leads.outerjoin(managers, managers.c.id == leads.c.manager_id))
            .where(*where).group_by(managers.c.key, managers.c.name).order_by(func.count().desc(), managers.c.key)
        )  # fmt: skip
        by_owner = [{"owner": r.key or NO_OWNER, "name": r.name, "leads": r.n, "open": r.open}
                    for r in conn.execute(owner)]  # fmt: skip
        by_channel = _grouped(conn, leads.c.channel, where)
        by_temperature = _grouped(conn, leads.c.temperature, where)
        total = sum(r["leads"] for r in by_owner)
        effect = _effect(conn, app, selection, action, where, by_owner, total)
    return {"total": total, "selection": selection.describe(), "action": action.describe(), "by_owner": by_owner,
            "by_channel": by_channel, "by_temperature": by_temperature, "effect": effect}  # fmt: skip


def _grouped(conn: Connection, column: Any, where: Sequence[ColumnElement[bool]]) -> list[dict[str, Any]]:
    query = select(column, func.count()).where(*where).group_by(column).order_by(func.count().desc(), column)
    return [{"value": value, "leads": n} for value, n in conn.execute(query)]


def _effect(
    conn: Connection, app: Leadflow, selection: Selection, action: Action, where: Sequence[ColumnElement[bool]],
    by_owner: Sequence[Mapping[Any, Any]], total: int,
) -> dict[str, Any]:  # fmt: skip
    load_drop = {r["owner"]: r["open"] for r in by_owner if r["owner"] != NO_OWNER and r["open"]}
    target = _target_status(app, action)
    if target is not None:
        already = conn.execute(select(func.count()).where(*where, leads.c.status == target)).scalar_one()
        verb = "junk" if action.kind == "junk" else f"close as {target}"
        lines = [f"{total - already:,} leads to {verb} ({action.reason})"]
        if already:
            lines.append(f"{already:,} already {target}: left as they are")
        if load_drop:
            lines.append(f"their owners' open load drops by {sum(load_drop.values()):,}: " + _per(load_drop))
        return {"changes": total - already, "unchanged": already, "load_drop": load_drop, "lines": lines}
    if action.kind == "requeue":
        team = func.coalesce(select(teams.c.key).join(managers, managers.c.team_id == teams.c.id)
                             .where(managers.c.id == leads.c.manager_id).scalar_subquery(),
                             select(teams.c.key).where(teams.c.id == leads.c.team_id).scalar_subquery())  # fmt: skip
        queues = {(k or "no team"): n for k, n in conn.execute(select(team, func.count()).where(*where).group_by(team))}
        at_desk = conn.execute(select(func.count()).where(*where, leads.c.queue == "desk")).scalar_one()
        lines = [f"{total - at_desk:,} leads back to the unassigned queue of " + _per(queues, "team "),
                 "then routed by the batch (the most important first, within the managers' caps)"]  # fmt: skip
        if at_desk:
            lines.append(f"{at_desk:,} wait at the quality desk: left there")
        if load_drop:
            lines.append(f"their owners' open load drops by {sum(load_drop.values()):,}: " + _per(load_drop))
        return {"changes": total - at_desk, "unchanged": at_desk, "queues": queues, "load_drop": load_drop,
                "lines": lines}  # fmt: skip
    moves: Counter[str] = Counter()
    changed = 0
    for row, team_key in _scored_rows(conn, where):
        new = _qualification(app, row, team_key)
        if (new.score, new.temperature, new.department) != (row["score"], row["temperature"], row["department"]):
            changed += 1
        if new.temperature != row["temperature"]:
            moves[f"{row['temperature'] or 'none'} -> {new.temperature or 'none'}"] += 1
    lines = [f"{changed:,} of {total:,} leads would change score, temperature or department (scored with the "
             f"rules in force, every lead)", f"{sum(moves.values()):,} would change temperature"]  # fmt: skip
    lines += [f"  {move}: {n:,}" for move, n in moves.most_common()]
    return {"changes": changed, "unchanged": total - changed, "temperature_moves": dict(moves), "lines": lines}


def _per(counts: Mapping[str, int], prefix: str = "") -> str:
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    shown = ", ".join(f"{prefix}{k} {n:,}" for k, n in top[:8])
    return shown + (f" and {len(top) - 8} more" if len(top) > 8 else "")


def _scored_rows(conn: Connection, where: Sequence[ColumnElement[bool]]) -> Iterable[tuple[RowMapping, str | None]]:
    owner_team = select(teams.c.key).join(managers, managers.c.team_id == teams.c.id).where(
        managers.c.id == leads.c.manager_id).scalar_subquery()  # fmt: skip
    query = select(leads, owner_team.label("owner_team")).where(*where).order_by(leads.c.id)
    for row in conn.execute(query.execution_options(yield_per=2000)).mappings():
        yield row, row["owner_team"]


def _qualification(app: Leadflow, row: Mapping[Any, Any], owner_team: str | None) -> Any:
    """The lead scored again as intake scores it, with the probability it was given (no new prediction)."""
    if owner_team is not None and not team_scores(app.rules, owner_team):
        return NOT_SCORED
    return qualify(lead_row_to_clean(row), app.rules.scoring, row["win_probability"])


# --- a run -------------------------------------------------------------------------------------------------------


def start(app: Leadflow, selection: Selection, action: Action, now: datetime, *, who: Principal) -> int:
    """Freeze the selection: a run row and one pending change row per matching lead, in one transaction."""
    _guard(who)
    with app.engine.begin() as conn:
        where = _conditions(conn, selection, now)
        run_id = int(conn.execute(insert(backlog_runs).returning(backlog_runs.c.id), {
            "created_at": now, "actor": who.label, "selection": selection.to_json(), "action": action.to_json(),
            "state": "running", "total_at_start": 0, "report": {},
        }).scalar_one())  # fmt: skip
        picked = select(literal(run_id), leads.c.id, literal("pending")).where(*where)
        conn.execute(insert(backlog_changes).from_select(["run_id", "lead_id", "state"], picked))
        total = conn.execute(select(func.count()).where(backlog_changes.c.run_id == run_id)).scalar_one()
        conn.execute(update(backlog_runs).where(backlog_runs.c.id == run_id).values(total_at_start=total))
    return run_id


def _lock_run(conn: Connection, run_id: int) -> RowMapping:
    row = conn.execute(select(backlog_runs).where(backlog_runs.c.id == run_id).with_for_update()).mappings().first()
    if row is None:
        raise NotFound(f"backlog run {run_id} does not exist")
    return row


def apply_chunk(app: Leadflow, run_id: int, now: datetime, limit: int = 1000) -> int:
    """The next `limit` leads of a running run, in one transaction with its cursor; returns how many it went
    past (0: none left, or the run is not running)."""
    if limit < 1:
        raise InvalidInput.one("chunk", "a chunk holds at least one lead")
    with app.engine.begin() as conn:
        run = _lock_run(conn, run_id)
        if run["state"] != "running":
            return 0
        ids = list(conn.execute(
            select(backlog_changes.c.lead_id)
            .where(backlog_changes.c.run_id == run_id, backlog_changes.c.state == "pending",
                   backlog_changes.c.lead_id > (run["cursor"] or 0))
            .order_by(backlog_changes.c.lead_id).limit(limit)
        ).scalars())  # fmt: skip
        if not ids:
            return 0
        selection = Selection.from_json(run["selection"])
        action = Action.from_json(run["action"])
        locked = select(leads).where(leads.c.id.in_(ids)).order_by(leads.c.id).with_for_update()
        rows = list(conn.execute(locked).mappings())
        matching = set(conn.execute(select(leads.c.id).where(leads.c.id.in_(ids),
                                                             *_conditions(conn, selection, run["created_at"]))).scalars())  # fmt: skip
        owner_teams = _owner_teams(conn, rows)
        held = _sla_timers(conn, ids)
        done, skipped = _Chunk(app, conn, run_id, action, now).apply(rows, matching, owner_teams, held)
        _quiet(conn, run_id, ids)
        report = _merge_reasons(dict(run["report"] or {}), "skipped", skipped)
        conn.execute(update(backlog_runs).where(backlog_runs.c.id == run_id).values(
            cursor=ids[-1], done_count=backlog_runs.c.done_count + done,
            skipped_count=backlog_runs.c.skipped_count + sum(len(v) for v in skipped.values()), report=report,
        ))  # fmt: skip
    return len(ids)


def _quiet(conn: Connection, run_id: int, ids: Sequence[int]) -> None:
    """A triage of old leads is not news to the automations: closing 30,000 stale leads as lost must not set off
    30,000 "deal lost" messages. The run's own events are marked read; the batch's routing of requeued leads is not
    the run's and sets off what any assignment does."""
    conn.execute(
        update(events)
        .where(events.c.lead_id.in_(ids), events.c.actor == f"system:backlog:{run_id}", events.c.automate.is_not(None))
        .values(automate=None)
    )


def _owner_teams(conn: Connection, rows: Sequence[RowMapping]) -> dict[int, tuple[int, str]]:
    """manager id -> (team id, team key), for the owners of the chunk's leads."""
    ids = sorted({r["manager_id"] for r in rows if r["manager_id"] is not None})
    query = select(managers.c.id, teams.c.id, teams.c.key).join(teams, teams.c.id == managers.c.team_id)
    return {m: (t, k) for m, t, k in conn.execute(query.where(managers.c.id.in_(ids)))}


def _sla_timers(conn: Connection, ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
    """The leads' SLA timers (first contact, desk, waiting to route), as JSON undo can write back."""
    found: dict[int, list[dict[str, Any]]] = {}
    query = select(timers).where(timers.c.lead_id.in_(list(ids)), timers.c.kind.in_(SLA_TIMERS)).order_by(timers.c.id)
    for t in conn.execute(query).mappings():
        found.setdefault(t["lead_id"], []).append({"kind": t["kind"], "due_at": t["due_at"].isoformat(),
                                                    "data": t["data"], "ref": t["ref"],
                                                    "created_at": t["created_at"].isoformat()})  # fmt: skip
    return found


def _before(row: Mapping[Any, Any], timers_held: list[dict[str, Any]]) -> dict[str, Any]:
    kept = {k: (row[k].isoformat() if k in _TIMES and row[k] is not None else row[k]) for k in _RESTORED}
    return {**kept, "timers": timers_held}


class _Chunk:
    """One chunk of a run, in the caller's transaction: each lead changed, its event, its change row."""

    def __init__(self, app: Leadflow, conn: Connection, run_id: int, action: Action, now: datetime) -> None:
        self.app, self.conn, self.run_id, self.action, self.now = app, conn, run_id, action, now
        self.who = Principal("system", f"backlog:{run_id}")

    def apply(
        self, rows: Sequence[RowMapping], matching: set[int], owner_teams: Mapping[int, tuple[int, str]],
        held: Mapping[int, list[dict[str, Any]]],
    ) -> tuple[int, dict[str, list[int]]]:  # fmt: skip
        app, action = self.app, self.action
        target = _target_status(app, action)
        skipped: dict[str, list[int]] = {}
        changed: list[tuple[RowMapping, dict[str, Any], dict[str, Any]]] = []  # (row, before, what changed)
        requeued: list[dict[str, Any]] = []
        rescored: list[dict[str, Any]] = []
        releases: dict[int, tuple[int, Decimal]] = {}
        for row in rows:
            lead_id = row["id"]
            why = self._skip(row, lead_id in matching, target, owner_teams)
            if why is None and action.kind == "rescore":
                team = owner_teams.get(row["manager_id"], (None, None))[1] if row["manager_id"] else None
                q = _qualification(app, row, team)
                detail = q.detail() or None
                if (q.score, q.temperature, q.department, detail) == (
                    row["score"],
                    row["temperature"],
                    row["department"],
                    row["score_detail"],
                ):
                    why = "scores the same with the rules in force"
                else:
                    due = row["created_at"] + q.window if q.window else None
                    rescored.append({"s_id": lead_id, "s_score": q.score, "s_detail": detail,
                                     "s_temperature": q.temperature, "s_department": q.department, "s_due": due,
                                     "s_now": self.now})  # fmt: skip
                    after = {"score": q.score, "temperature": q.temperature, "department": q.department,
                             "reason": q.reason}  # fmt: skip
            if why is not None:
                skipped.setdefault(why, []).append(lead_id)
                continue
            before = _before(row, held.get(lead_id, []))
            if target is not None:
                set_status_in(self.conn, app, row, target, self.now, who=self.who, reason=action.reason)
                after = {"status": target}
            elif action.kind == "requeue":
                owner = owner_teams.get(row["manager_id"]) if row["manager_id"] else None
                requeued.append({"r_id": lead_id, "r_team": row["team_id"] or (owner[0] if owner else None),
                                 "r_now": self.now})  # fmt: skip
                if row["manager_id"] is not None and row["status"] in app.rules.open_statuses:
                    n, v = releases.get(row["manager_id"], (0, Decimal(0)))
                    releases[row["manager_id"]] = (n + 1, v + (row["budget"] or Decimal(0)))
                after = {"status": "new", "manager_id": None}
            changed.append((row, before, after))
        conn = self.conn
        if requeued:
            ids = [r["r_id"] for r in requeued]
            conn.execute(delete(timers).where(timers.c.lead_id.in_(ids), timers.c.kind.in_(SLA_TIMERS)))
            conn.execute(_REQUEUE, requeued)
            # Sorted by id: two writers updating the same managers lock their rows in the same order.
            conn.execute(
                ADD_LOAD, [{"manager_id": m, "delta": -n, "value": -v} for m, (n, v) in sorted(releases.items())]
            )
        if rescored:
            conn.execute(_RESCORE, rescored)
        event_ids: list[int] = []
        if changed:
            history = [new_event(row["id"], CHANGE_EVENT, self.now, self.who, run=self.run_id, action=action.kind,
                                 reason=action.reason, before=before, after=after)
                       for row, before, after in changed]  # fmt: skip
            event_ids = list(conn.execute(_INSERT_EVENT_IDS, history).scalars())
        marks = [{"c_run": self.run_id, "c_lead": row["id"], "c_state": "done", "c_before": before, "c_reason": None,
                  "c_event": event_id, "c_at": self.now}
                 for (row, before, _), event_id in zip(changed, event_ids, strict=True)]  # fmt: skip
        marks += [{"c_run": self.run_id, "c_lead": i, "c_state": "skipped", "c_before": None, "c_reason": why,
                   "c_event": None, "c_at": self.now} for why, ids in skipped.items() for i in ids]  # fmt: skip
        if marks:
            conn.execute(_MARK, marks)
        return len(changed), skipped

    def _skip(
        self, row: Mapping[Any, Any], matches: bool, target: str | None, owner_teams: Mapping[int, tuple[int, str]]
    ) -> str | None:
        """Why this lead is left as it is, or None."""
        if not matches:
            return "changed since the run started: no longer matches the selection"
        if target is not None and row["status"] == target:
            return f"already {target}"
        if self.action.kind == "requeue":
            if row["queue"] == "desk":
                return "waits at the quality desk: the desk hands it on"
            if row["status"] == "new" and row["manager_id"] is None:
                return "already in the unassigned queue"
        return None


def _merge_reasons(report: dict[str, Any], key: str, found: Mapping[str, list[int]]) -> dict[str, Any]:
    """The run's report with this chunk's reasons added: {reason: {"leads": n, "ids": [a few]}}."""
    groups = dict(report.get(key) or {})
    for why, ids in found.items():
        was = groups.get(why) or {"leads": 0, "ids": []}
        groups[why] = {"leads": was["leads"] + len(ids), "ids": (was["ids"] + ids)[:_SAMPLE_IDS]}
    return {**report, key: groups}


def run(
    app: Leadflow, run_id: int, now: datetime, *, chunk: int = 1000, progress: Callable[[int], None] | None = None,
    who: Principal,
) -> dict[str, Any]:  # fmt: skip
    """Work a running run through to the end, chunk by chunk (`progress` gets each chunk's count); a requeue is then
    routed by the batch. Calling it again on a run that was interrupted resumes it after its cursor."""
    _guard(who)
    while (n := apply_chunk(app, run_id, now, chunk)) > 0:
        if progress is not None:
            progress(n)
    state = get_run(app, run_id, who=who)
    if state["state"] != "running":
        return state
    routed = None
    if Action.from_json(state["action"]).kind == "requeue":
        from leadflow.services.batch import assign_backlog  # the batch imports intake, which imports much

        routed = assign_backlog(app, now, chunk=max(chunk, 500), who=who).summary()
    with app.engine.begin() as conn:
        current = _lock_run(conn, run_id)
        if current["state"] == "running":
            report = dict(current["report"] or {})
            if routed is not None:
                report["routed"] = {k: routed[k] for k in ("assigned", "left_unassigned", "per_manager", "unassigned")}
            conn.execute(update(backlog_runs).where(backlog_runs.c.id == run_id).values(
                state="done", finished_at=now, report=report))  # fmt: skip
    return get_run(app, run_id, who=who)


def resume(
    app: Leadflow, run_id: int, now: datetime, *, chunk: int = 1000, progress: Callable[[int], None] | None = None,
    who: Principal,
) -> dict[str, Any]:  # fmt: skip
    """Go on with an interrupted run from its cursor; a run that is not running is a conflict to say."""
    found = get_run(app, run_id, who=who)
    if found["state"] != "running":
        raise Conflict(f"backlog run {run_id} is {found['state']}: only a running run can be resumed")
    return run(app, run_id, now, chunk=chunk, progress=progress, who=who)


# --- undo ----------------------------------------------------------------------------------------------------------


def undo(
    app: Leadflow, run_id: int, now: datetime, *, chunk: int = 1000, progress: Callable[[int], None] | None = None,
    who: Principal,
) -> dict[str, Any]:  # fmt: skip
    """Put back every lead the run changed, in chunks with a cursor of its own (so an interrupted undo resumes the
    same way); a lead someone changed since is kept as it is, and counted with the reason."""
    _guard(who)
    with app.engine.begin() as conn:
        current = _lock_run(conn, run_id)
        if current["state"] == "undone":
            raise Conflict(f"backlog run {run_id} is already undone")
        if current["state"] in ("running", "done"):  # a running one (interrupted) stops here: undo what it did
            conn.execute(update(backlog_runs).where(backlog_runs.c.id == run_id).values(state="undoing"))
    while (n := undo_chunk(app, run_id, now, chunk)) > 0:
        if progress is not None:
            progress(n)
    with app.engine.begin() as conn:
        if _lock_run(conn, run_id)["state"] == "undoing":
            conn.execute(update(backlog_runs).where(backlog_runs.c.id == run_id).values(state="undone", undone_at=now))
    return get_run(app, run_id, who=who)


def undo_chunk(app: Leadflow, run_id: int, now: datetime, limit: int = 1000) -> int:
    """The next `limit` changed leads of an undoing run put back, in one transaction with the undo cursor."""
    if limit < 1:
        raise InvalidInput.one("chunk", "a chunk holds at least one lead")
    with app.engine.begin() as conn:
        run_row = _lock_run(conn, run_id)
        if run_row["state"] != "undoing":
            return 0
        changes = conn.execute(
            select(backlog_changes)
            .where(backlog_changes.c.run_id == run_id, backlog_changes.c.state == "done",
                   backlog_changes.c.lead_id > (run_row["undo_cursor"] or 0))
            .order_by(backlog_changes.c.lead_id).limit(limit)
        ).mappings().all()  # fmt: skip
        if not changes:
            return 0
        ids = [c["lead_id"] for c in changes]
        action = Action.from_json(run_row["action"])
        rows = {r["id"]: r for r in conn.execute(select(leads).where(leads.c.id.in_(ids)).order_by(leads.c.id)
                                                 .with_for_update()).mappings()}  # fmt: skip
        since = _changed_since(conn, changes, action)
        undone, kept = _undo_leads(app, conn, run_id, action, changes, rows, since, now)
        _quiet(conn, run_id, ids)
        report = _merge_reasons(dict(run_row["report"] or {}), "kept", kept)
        conn.execute(update(backlog_runs).where(backlog_runs.c.id == run_id).values(
            undo_cursor=ids[-1], undone_count=backlog_runs.c.undone_count + undone,
            kept_count=backlog_runs.c.kept_count + sum(len(v) for v in kept.values()), report=report,
        ))  # fmt: skip
    return len(ids)


def _changed_since(conn: Connection, changes: Sequence[RowMapping], action: Action) -> dict[int, str]:
    """lead id -> why it is not put back: the first event someone else wrote on it after the run's own.

    A requeued lead's routing by the run (the batch's assignment, written without an actor) is the run's own."""
    first_event = min(c["event_id"] for c in changes)
    after: dict[int, int] = {c["lead_id"]: c["event_id"] for c in changes}
    query = (
        select(events.c.lead_id, events.c.id, events.c.type, events.c.actor)
        .where(events.c.lead_id.in_(list(after)), events.c.id > first_event)
        .order_by(events.c.id)
    )
    if action.kind == "requeue":
        query = query.where(~and_(events.c.type.in_(("lead.assigned", "lead.unassigned")), events.c.actor.is_(None)))
    found: dict[int, str] = {}
    for lead_id, event_id, type_, actor in conn.execute(query):
        if event_id > after[lead_id] and lead_id not in found:
            found[lead_id] = f"changed since the run: {type_} by {actor or 'leadflow'}"
    return found


def _undo_leads(
    app: Leadflow, conn: Connection, run_id: int, action: Action, changes: Sequence[RowMapping],
    rows: Mapping[int, RowMapping], since: Mapping[int, str], now: datetime,
) -> tuple[int, dict[str, list[int]]]:  # fmt: skip
    open_statuses = app.rules.open_statuses
    outcomes = {s.key: s.outcome for s in app.rules.funnel}
    who = Principal("system", f"backlog:{run_id}")
    kept: dict[str, list[int]] = {}
    load: dict[int, tuple[int, Decimal]] = {}
    results: dict[int, tuple[int, int]] = {}
    restores: list[tuple[int, dict[str, Any]]] = []
    timer_rows: list[dict[str, Any]] = []
    history: list[dict[str, Any]] = []
    for change in changes:
        lead_id = change["lead_id"]
        row = rows.get(lead_id)
        if row is None or row["status"] in NEVER_SELECTED:
            kept.setdefault("folded into another lead since the run", []).append(lead_id)
            continue
        if lead_id in since:
            kept.setdefault(since[lead_id], []).append(lead_id)
            continue
        before = change["before"]
        budget = row["budget"] or Decimal(0)
        for manager_id, delta, counts in (
            (row["manager_id"], -1, row["status"] in open_statuses),
            (before["manager_id"], +1, before["status"] in open_statuses),
        ):
            if manager_id is not None and counts:
                n, v = load.get(manager_id, (0, Decimal(0)))
                load[manager_id] = (n + delta, v + budget * delta)
        outcome = outcomes.get(row["status"])
        if row["manager_id"] is not None and outcome is not None and outcomes.get(before["status"]) is None:
            closed, won = results.get(row["manager_id"], (0, 0))
            results[row["manager_id"]] = (closed + 1, won + (outcome == "won"))
        values = {k: (datetime.fromisoformat(before[k]) if k in _TIMES and before[k] is not None else before[k])
                  for k in _RESTORED}  # fmt: skip
        restores.append((lead_id, {**values, "updated_at": now}))
        timer_rows += [{"lead_id": lead_id, "kind": t["kind"], "due_at": datetime.fromisoformat(t["due_at"]),
                        "data": t["data"], "ref": t["ref"], "created_at": datetime.fromisoformat(t["created_at"])}
                       for t in before.get("timers", [])]  # fmt: skip
        history.append(new_event(lead_id, UNDO_EVENT, now, who, run=run_id, action=action.kind,
                                 restored={"status": before["status"], "manager_id": before["manager_id"]}))  # fmt: skip
    put_back = [lead_id for lead_id, _ in restores]
    if put_back:
        conn.execute(delete(timers).where(timers.c.lead_id.in_(put_back), timers.c.kind.in_(SLA_TIMERS)))
        for lead_id, values in restores:
            conn.execute(update(leads).where(leads.c.id == lead_id).values(**values))
        if timer_rows:
            conn.execute(insert(timers), timer_rows)
        moves = [{"manager_id": m, "delta": n, "value": v} for m, (n, v) in sorted(load.items()) if n or v]
        if moves:
            conn.execute(ADD_LOAD, moves)
        if results:
            conn.execute(
                _CLOSED_BACK, [{"m_id": m, "m_closed": c, "m_won": w} for m, (c, w) in sorted(results.items())]
            )
        conn.execute(INSERT_EVENT, history)
    marks = [{"c_run": run_id, "c_lead": i, "c_state": "undone", "c_reason": None, "c_at": now} for i in put_back]
    marks += [{"c_run": run_id, "c_lead": i, "c_state": "kept", "c_reason": why, "c_at": now}
              for why, ids in kept.items() for i in ids]  # fmt: skip
    conn.execute(_MARK_UNDONE, marks)
    return len(put_back), kept


# --- reading runs ----------------------------------------------------------------------------------------------


def _shown(row: Mapping[Any, Any]) -> dict[str, Any]:
    selection = Selection.from_json(row["selection"])
    action = Action.from_json(row["action"])
    return {**dict(row), "selection_text": selection.describe(), "action_text": action.describe()}


def get_run(app: Leadflow, run_id: int, *, who: Principal) -> dict[str, Any]:
    _guard(who)
    with app.engine.connect().execution_options(**READ_ONLY) as conn:
        row = conn.execute(select(backlog_runs).where(backlog_runs.c.id == run_id)).mappings().first()
    if row is None:
        raise NotFound(f"backlog run {run_id} does not exist")
    return _shown(row)


def list_runs(app: Leadflow, *, limit: int = 50, who: Principal) -> list[dict[str, Any]]:
    """The newest runs first."""
    _guard(who)
    with app.engine.connect().execution_options(**READ_ONLY) as conn:
        rows = conn.execute(select(backlog_runs).order_by(backlog_runs.c.id.desc()).limit(limit)).mappings().all()
    return [_shown(r) for r in rows]
