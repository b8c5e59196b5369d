"""The quality desk: new leads of a desk team wait here until an operator junks, converts or hands them on.

Every desk action is one transaction on the locked lead: it removes the desk deadline, clears the queue, records
what was done and by whom (`lead.left_desk`, with how long the lead waited), and commits before the API answers.
Manual reassignment by a head of sales lives here too: it is the desk's "hand to a named manager" for any lead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import delete, func, select, update
from sqlalchemy.engine import Connection, RowMapping

from leadflow.core.dedupe import Duplicate, Match, choose_duplicate
from leadflow.core.errors import Conflict, InvalidInput, NotFound
from leadflow.core.lead import CleanLead
from leadflow.core.policy import Action, Principal
from leadflow.core.routing import (
    Candidate,
    Decision,
    ManagerState,
    check_manager,
    sticky_choice,
    sticky_policy,
)
from leadflow.core.rules import Target
from leadflow.core.schedule import format_duration
from leadflow.services.access import guard_lead, guard_team, restrict
from leadflow.services.context import Leadflow
from leadflow.services.conversion import (
    Client,
    CompanyIn,
    ContactIn,
    Conversion,
    DealIn,
    convert_lead,
    find_client,
    give_owner,
    move_deals,
)
from leadflow.services.intake import assign_existing, desk_team, route_now
from leadflow.services.sla import DESK, SLA_TIMERS
from leadflow.store.db import READ_ONLY
from leadflow.store.events import Actor, append_events, new_event
from leadflow.store.lead_rows import lead_row_to_clean, lock_lead
from leadflow.store.matching import find_matches
from leadflow.store.tables import companies, contacts, events, leads, managers, teams, timers
from leadflow.store.team_state import add_load, load_manager

QUEUE = "desk"
HEAD = "head"
AUTO = "auto"
DeskAction = Literal["junk", "contact", "deal", "to_owner", "assigned_by_hand"]


# --- reading the queue ---------------------------------------------------------------------------------------


def desk_queue(app: Leadflow, now: datetime, *, who: Principal, limit: int = 50, offset: int = 0) -> dict[str, Any]:
    """Leads waiting at the desk that `who` may see, oldest first, each with its wait, its deadline and the clients
    it may be."""
    with app.engine.connect().execution_options(**READ_ONLY) as conn:
        query = restrict(select(leads).where(leads.c.queue == QUEUE), who).order_by(leads.c.created_at, leads.c.id)
        rows = conn.execute(query.limit(limit).offset(offset)).mappings().all()
        counted = restrict(select(func.count()).select_from(leads).where(leads.c.queue == QUEUE), who)
        total = conn.execute(counted).scalar_one()
        items = _desk_items(conn, app, rows, now)
    return {"items": items, "total": total, "limit": limit, "offset": offset}


def desk_lead(app: Leadflow, lead_id: int, now: datetime, *, who: Principal) -> dict[str, Any]:
    """One lead waiting at the desk as the desk queue shows it (its deadline, the clients it may be), for its card."""
    with app.engine.connect().execution_options(**READ_ONLY) as conn:
        row = _at_desk(conn, who, lead_id, Action.DESK_READ, lock=False)
        return _desk_items(conn, app, [row], now)[0]


def _desk_items(conn: Connection, app: Leadflow, rows: Sequence[RowMapping], now: datetime) -> list[dict[str, Any]]:
    team_of = _queued_teams(conn, [r["id"] for r in rows])
    found = {r["id"]: _matches(conn, app, r) for r in rows}
    owner_ids = {m.owner_id for ms in found.values() for m in ms if m.owner_id is not None}
    keys = dict(conn.execute(select(managers.c.id, managers.c.key).where(managers.c.id.in_(owner_ids))).all())
    items = []
    for r in rows:
        team_key = team_of.get(r["id"]) or _team_by_rules(app, r)
        team = next((t for t in app.rules.teams if t.key == team_key), None)
        due = r["created_at"] + team.desk_sla if team is not None else None
        duplicate = choose_duplicate(found[r["id"]])
        items.append({
            "id": r["id"], "name": r["name"], "phone": r["phone"], "email": r["email"], "company": r["company"],
            "region": r["region"], "product": r["product"], "language": r["language"], "budget": r["budget"],
            "channel": r["channel"], "source": r["source"], "message": r["message"], "created_at": r["created_at"],
            "waiting_seconds": int((now - r["created_at"]).total_seconds()), "team": team_key, "due_at": due,
            "overdue": due is not None and now > due, "score": r["score"], "temperature": r["temperature"],
            "department": r["department"], "win_probability": r["win_probability"],
            "duplicate": _hint(duplicate.match, keys) | {"reason": duplicate.reason} if duplicate else None,
            "matches": [_hint(m, keys) for m in found[r["id"]]],
        })  # fmt: skip
    return items


def _hint(m: Match, keys: dict[int, str]) -> dict[str, Any]:
    owner = {"key": keys.get(m.owner_id), "name": m.owner_name} if m.owner_id is not None else None
    return {"kind": m.kind, "id": m.id, "by": m.by, "value": m.value, "score": m.score, "owner": owner,
            "contact_id": m.contact_id, "company_id": m.company_id}  # fmt: skip


def _queued_teams(conn: Connection, lead_ids: list[int]) -> dict[int, str]:
    """The team each lead was queued for, from its `lead.queued` event (the rules may have changed since)."""
    if not lead_ids:
        return {}
    query = (
        select(events.c.lead_id, events.c.data)
        .where(events.c.lead_id.in_(lead_ids), events.c.type == "lead.queued")
        .order_by(events.c.id)
    )
    return {r.lead_id: r.data.get("team") for r in conn.execute(query) if r.data.get("team")}


def _team_by_rules(app: Leadflow, row: RowMapping) -> str | None:
    team = desk_team(lead_row_to_clean(row), app.rules)
    return team.key if team is not None else None


def _matches(conn: Connection, app: Leadflow, row: RowMapping) -> list[Match]:
    """Existing clients the lead may belong to (find_matches, as at intake), without the lead itself."""
    found = find_matches(conn, lead_row_to_clean(row), app.rules.open_statuses, app.rules.dedupe.company_similarity)
    return [m for m in found if not (m.kind == "lead" and m.id == row["id"])]


# --- desk actions --------------------------------------------------------------------------------------------


def junk_at_desk(app: Leadflow, lead_id: int, now: datetime, *, reason: str, who: Principal) -> dict[str, Any]:
    """Set the lead aside as junk with the reason; it stays stored and `POST /leads/{id}/restore` brings it back."""
    if not reason.strip():
        raise InvalidInput.one("reason", "say why the lead is junk, so it can be judged and restored later")
    with app.engine.begin() as conn:
        row = _at_desk(conn, who, lead_id)
        actor = who
        conn.execute(
            update(leads)
            .where(leads.c.id == lead_id)
            .values(status="junk", junk_reason=reason, queue=None, updated_at=now)
        )
        conn.execute(delete(timers).where(timers.c.lead_id == lead_id, timers.c.kind.in_(SLA_TIMERS)))
        append_events(conn, [
            new_event(lead_id, "lead.junked", now, actor, reason=reason, by="desk"),
            _left_desk(conn, app, row, now, actor, "junk"),
        ])  # fmt: skip
        return _answer(conn, lead_id, reason)


def contact_at_desk(
    app: Leadflow, lead_id: int, now: datetime, *, contact: ContactIn | None, company: CompanyIn | None,
    note: str | None, who: Principal,
) -> dict[str, Any]:  # fmt: skip
    """Low value: convert to Contact + Company and keep them for later, nothing assigned.

    A client who already has an owner is the exception: the lead goes to that owner with a note to attach it.
    """
    with app.engine.begin() as conn:
        row = _at_desk(conn, who, lead_id)
        actor = who
        client = find_client(conn, app, row, contact, company)
        owner, owned_note = _owner_decision(conn, app, client.owned, note, row, now)
        conversion = convert_lead(conn, app, row, now, to="contact", contact=contact, company=company, deal=None,
                                  actor=actor, keep_open=owner is not None)  # fmt: skip
        _leave_desk(conn, lead_id)
        if owner is not None and client.owned is not None and owner.manager_id is not None:
            _send_to_owner(conn, app, row, now, owner, client.owned, conversion, actor, note)
            give_owner(conn, conversion, owner.manager_id)
            reason = owner.reason
        else:
            reason = "kept for later as a contact" + (" and company" if conversion.company_id else "")
            reason += f"; {owned_note}" if owned_note else ""
            reason += f"; note: {note}" if note else ""
        append_events(conn, [_left_desk(conn, app, row, now, actor, "contact", note=note)])
        return _answer(conn, lead_id, reason, conversion)


def deal_at_desk(
    app: Leadflow, lead_id: int, now: datetime, *, deal: DealIn | None, contact: ContactIn | None,
    company: CompanyIn | None, hand_to: str, note: str | None, who: Principal,
) -> dict[str, Any]:  # fmt: skip
    """Hot: convert to Deal + Contact + Company, then hand the lead and its deal to a manager.

    `hand_to`: "head" (the team's head decides; manual assignment with the desk's note as the reason), "auto" (a
    free manager by the routing rules) or a manager's key. A client who already has an owner goes to that owner.
    """
    with app.engine.begin() as conn:
        row = _at_desk(conn, who, lead_id)
        actor = who
        handing = _handing(conn, app, row, contact, company, hand_to, note, now)
        decision, kind, owner, client = handing.decision, handing.kind, handing.owner, handing.client
        conversion = convert_lead(conn, app, row, now, to="deal", contact=contact, company=company, deal=deal,
                                  actor=actor, keep_open=True)  # fmt: skip
        _leave_desk(conn, lead_id)
        if owner is not None and client.owned is not None:
            _send_to_owner(conn, app, row, now, owner, client.owned, conversion, actor, note)
        else:
            assign_existing(conn, app, row, now, kind=kind, decision=decision)
        if decision.manager_id is not None:  # always: every hand-over above names a manager
            give_owner(conn, conversion, decision.manager_id)
        append_events(conn, [_left_desk(conn, app, row, now, actor, "deal", note=note, hand_to=hand_to,
                                        manager=decision.manager_key)])  # fmt: skip
        return _answer(conn, lead_id, decision.reason, conversion)


def to_owner_at_desk(app: Leadflow, lead_id: int, now: datetime, *, note: str | None, who: Principal) -> dict[str, Any]:
    """A duplicate found at the desk goes to the manager who owns the client, with a note to attach it."""
    with app.engine.begin() as conn:
        row = _at_desk(conn, who, lead_id)
        actor = who
        found = _matches(conn, app, row)
        duplicate = choose_duplicate(m for m in found if m.owner_id is not None)
        if duplicate is None:
            seen = f"{len(found)} possible match(es), none with an owner" if found else "no existing client matches"
            raise Conflict(f"lead {lead_id} has no owner to go to ({seen}): convert it or hand it on with /deal")
        decision, why_not = _owner_decision(conn, app, duplicate, note, row, now, asked=True)
        if decision is None:
            raise Conflict(f"{why_not}: hand the lead on with /deal, or ask the head of sales")
        _leave_desk(conn, lead_id)
        _send_to_owner(conn, app, row, now, decision, duplicate, None, actor, note)
        append_events(conn, [_left_desk(conn, app, row, now, actor, "to_owner", note=note,
                                        manager=decision.manager_key)])  # fmt: skip
        return _answer(conn, lead_id, decision.reason)


def preview_hand_over(
    app: Leadflow, lead_id: int, now: datetime, *, hand_to: str, contact: ContactIn | None = None,
    company: CompanyIn | None = None, note: str | None = None, who: Principal,
) -> dict[str, Any]:  # fmt: skip
    """Where `deal_at_desk` would send the lead now, and why, without writing anything (nor holding the teams):
    the same decision against the current team state, for the operator to confirm."""
    with app.engine.connect().execution_options(**READ_ONLY) as conn:
        row = _at_desk(conn, who, lead_id, lock=False)
        handing = _handing(conn, app, row, contact, company, hand_to, note, now, lock=False)
    decision = handing.decision
    return {
        "id": lead_id, "hand_to": hand_to, "kind": handing.kind, "to_owner": handing.owner is not None,
        "manager": {"key": decision.manager_key, "name": decision.manager_name} if decision.manager_key else None,
        "rule": decision.rule_key, "strategy": decision.strategy, "reason": decision.reason,
        "candidates": [{**c._asdict(), "inputs": dict(c.inputs)} for c in decision.candidates],
    }  # fmt: skip


# --- manual reassignment -------------------------------------------------------------------------------------


def hand_to(
    conn: Connection, app: Leadflow, row: RowMapping, target: ManagerState, now: datetime, reason: str, *,
    clock: bool = True,
) -> Decision:  # fmt: skip
    """Give a locked open lead to `target` by hand, in the caller's transaction: the old owner's load and every
    clock of the lead (first contact, the desk's, a wait for opening hours) go; the new assignment says why. A lead
    past `assigned` (contacted, qualified ...) keeps its status: the funnel does not go backwards."""
    decision = by_hand(target, lead_row_to_clean(row), now, reason)
    if row["manager_id"] is not None:
        add_load(conn, row["manager_id"], -1, row["budget"])
    conn.execute(delete(timers).where(timers.c.lead_id == row["id"], timers.c.kind.in_(SLA_TIMERS)))
    keep = row["status"] if row["status"] not in ("new", "assigned") else None
    assign_existing(conn, app, row, now, kind="manual", decision=decision, clock=clock, keep_status=keep)
    return decision


def assign_by_hand(
    app: Leadflow, lead_id: int, now: datetime, *, manager: str, reason: str, who: Principal
) -> dict[str, Any]:
    """A head of sales gives an open lead to a manager, whatever the rules say; the reason is kept with it.

    At capacity, off shift, absent or on vacation does not stop it: the assignment's reason says so. The old owner's
    load, clock and open deals move to the new owner; a lead not yet contacted gets a new first-contact clock.
    """
    if not reason.strip():
        raise InvalidInput.one("reason", "say why the lead is reassigned: it is kept with the assignment")
    with app.engine.begin() as conn:
        guard_lead(conn, who, lead_id, Action.LEAD_ASSIGN)
        actor = who
        row = lock_lead(conn, lead_id)
        if row["status"] not in app.rules.open_statuses:
            hint = ": restore it first" if row["status"] == "junk" else ""
            raise Conflict(f"lead {lead_id} is '{row['status']}', not open: only open leads are reassigned{hint}")
        target = manager_by_key(conn, app, manager, "manager")
        guard_team(who, Action.LEAD_ASSIGN, app.team_id(conn, target.team), f"manager '{target.key}'")
        old = load_manager(conn, row["manager_id"], app.rules.default_timezone) if row["manager_id"] else None
        if old is not None and old.id == target.id:
            raise Conflict(f"lead {lead_id} is already with {target.name}")
        moved = f"from {old.name} to {target.name}" if old else f"to {target.name}"
        contacted = row["first_contact_at"] is not None
        # A lead already contacted owes no first contact: no new clock, and no deadline in the notification.
        decision = hand_to(conn, app, row, target, now, f"reassigned by hand {moved}: {reason}", clock=not contacted)
        if contacted:
            conn.execute(update(leads).where(leads.c.id == lead_id).values(sla_state=row["sla_state"]))
        move_deals(conn, lead_id, old.id if old else None, target.id)
        history = [new_event(lead_id, "lead.reassigned", now, actor, reason=reason, manager=target.key,
                             previous=old.key if old else None)]  # fmt: skip
        if row["queue"] == QUEUE:
            history.append(_left_desk(conn, app, row, now, actor, "assigned_by_hand", manager=target.key))
        append_events(conn, history)
        return _answer(conn, lead_id, decision.reason)


def manager_by_key(conn: Connection, app: Leadflow, key: str, field: str) -> ManagerState:
    """A manager who can be given leads by hand: exists, active, and not a desk operator."""
    manager_id = conn.execute(select(managers.c.id).where(managers.c.key == key)).scalar()
    found = load_manager(conn, manager_id, app.rules.default_timezone) if manager_id is not None else None
    if found is None:
        raise InvalidInput.one(field, f"manager '{key}' does not exist")
    if not found.active:
        raise InvalidInput.one(field, f"{found.name} ({key}) is inactive and takes no leads")
    if found.role != "manager":
        raise InvalidInput.one(field, f"{found.name} ({key}) works the quality desk and takes no leads")
    return found


def by_hand(m: ManagerState, lead: CleanLead, now: datetime, reason: str) -> Decision:
    """A hand-made decision for this manager; what routing would have objected to is said in the reason."""
    why = check_manager(m, lead, Target(team=m.team), now)
    if why:
        reason = f"{reason} ({why}; assigned anyway)"
    candidate = Candidate(m.key, m.name, not why, why, m.open_leads, m.capacity)
    return Decision(m.key, m.id, m.name, None, "manual", reason, (candidate,))


# --- helpers -------------------------------------------------------------------------------------------------


def _at_desk(
    conn: Connection, who: Principal, lead_id: int, action: Action = Action.DESK_WORK, *, lock: bool = True
) -> RowMapping:
    """The lead, when it waits at the desk and `who` may do `action` to it; locked unless only read."""
    guard_lead(conn, who, lead_id, action)
    row = lock_lead(conn, lead_id) if lock else _read_lead(conn, lead_id)
    if row["queue"] != QUEUE:
        owner = conn.execute(select(managers.c.name).where(managers.c.id == row["manager_id"])).scalar()
        where = f"'{row['status']}'" + (f", with {owner}" if owner else "")
        raise Conflict(f"lead {lead_id} is not in the quality desk queue (it is {where}): desk actions need a lead "
                       "waiting at the desk")  # fmt: skip
    return row


def _read_lead(conn: Connection, lead_id: int) -> RowMapping:
    row = conn.execute(select(leads).where(leads.c.id == lead_id)).mappings().first()
    if row is None:
        raise NotFound(f"lead {lead_id} does not exist")
    return row


def _leave_desk(conn: Connection, lead_id: int) -> None:
    conn.execute(delete(timers).where(timers.c.lead_id == lead_id, timers.c.kind == DESK))
    conn.execute(update(leads).where(leads.c.id == lead_id).values(queue=None))


def _desk_team(conn: Connection, app: Leadflow, row: RowMapping) -> str | None:
    return _queued_teams(conn, [row["id"]]).get(row["id"]) or _team_by_rules(app, row)


def _left_desk(
    conn: Connection, app: Leadflow, row: RowMapping, now: datetime, actor: Actor, action: DeskAction, **data: Any
) -> dict[str, Any]:
    """The desk's own record: what was done, by whom, how long the lead waited and whether within the desk SLA."""
    team_key = _desk_team(conn, app, row)
    team = next((t for t in app.rules.teams if t.key == team_key), None)
    waited = now - row["created_at"]
    within = waited <= team.desk_sla if team is not None else None
    return new_event(row["id"], "lead.left_desk", now, actor, action=action, team=team_key,
                     waited=format_duration(waited), waited_seconds=int(waited.total_seconds()), within_sla=within,
                     **{k: v for k, v in data.items() if v is not None})  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Handing:
    """Where a lead handed on from the desk goes: the decision, its kind, and the client it was found to be."""

    decision: Decision
    kind: str  # the assignment's kind: sticky (the client's owner), desk (auto) or manual
    owner: Decision | None  # the client's owner takes it
    client: Client


def _handing(
    conn: Connection, app: Leadflow, row: RowMapping, contact: ContactIn | None, company: CompanyIn | None,
    hand_to: str, note: str | None, now: datetime, *, lock: bool = True,
) -> _Handing:  # fmt: skip
    """The hand-over's decision, before anything is written: the client's owner under the sticky policy, else
    `hand_to`. `lock=False`: a preview, which decides nothing and holds up nobody."""
    if hand_to not in (HEAD, AUTO):
        manager_by_key(conn, app, hand_to, "hand_to")  # a wrong key is refused even when the owner takes it
    clean = lead_row_to_clean(row)
    client = find_client(conn, app, row, contact, company)
    owner, owned_note = _owner_decision(conn, app, client.owned, note, row, now)
    decision, kind = owner, "sticky"
    if decision is None:
        decision, kind = _hand_over(conn, app, row, clean, hand_to, note, now, lock=lock)
        if owned_note:
            decision = replace(decision, reason=f"{owned_note}; {decision.reason}")
    return _Handing(decision, kind, owner, client)


def _hand_over(
    conn: Connection, app: Leadflow, row: RowMapping, clean: CleanLead, hand_to: str, note: str | None, now: datetime,
    *, lock: bool = True,
) -> tuple[Decision, str]:  # fmt: skip
    """The decision for `hand_to`, before anything is written: a bad target fails the action as a whole."""
    said = f": {note}" if note else ""
    if hand_to == HEAD:
        team_key = _desk_team(conn, app, row)
        head_key = conn.execute(select(teams.c.head_key).where(teams.c.key == team_key)).scalar() if team_key else None
        if not head_key:
            raise Conflict(f"team '{team_key}' has no head of sales: hand the lead to 'auto' or to a manager by key")
        head = manager_by_key(conn, app, head_key, "hand_to")
        reason = f"handed over by the quality desk to {head.name}, head of team '{team_key}'{said}"
        return by_hand(head, clean, now, reason), "manual"
    if hand_to == AUTO:
        decision, _ = route_now(conn, clean, app.rules, now, lock=lock)
        if not decision.assigned:
            raise Conflict(f"no manager can take lead {row['id']} now ({decision.reason}): hand it to the head or to "
                           "a manager by key")  # fmt: skip
        return replace(decision, reason=f"handed over by the quality desk{said}; {decision.reason}"), "desk"
    m = manager_by_key(conn, app, hand_to, "hand_to")
    return by_hand(m, clean, now, f"handed over by the quality desk to {m.name}{said}"), "manual"


def _owner_decision(
    conn: Connection, app: Leadflow, owned: Duplicate | None, note: str | None, row: RowMapping, now: datetime,
    *, asked: bool = False,
) -> tuple[Decision | None, str | None]:  # fmt: skip
    """To the client's owner under the sticky policy, or None with a sentence saying why the owner cannot take it.

    `asked`: the operator chose "to the owner" for this lead, so even a team that routes repeat clients by the rules
    (`sticky: never`) sends it there, while the owner is available.
    """
    if owned is None or owned.match.owner_id is None:
        return None, None
    owner = load_manager(conn, owned.match.owner_id, app.rules.default_timezone)
    if owner is not None and owner.role != "manager":
        return None, f"{owned.reason}, who works the {owner.role}, not leads"
    attach = _attach_to(conn, owned.match)
    text = f"duplicate found at the desk: {owned.reason}; please attach it to {attach}"
    if note:
        text = f"{text}; note: {note}"
    policy, wait = sticky_policy(lead_row_to_clean(row), app.rules, owner.team if owner is not None else None)
    if asked and policy == "never":
        policy = "available"
    choice = sticky_choice(owner, text, policy, now, wait)
    if choice.decision is None:
        return None, f"{owned.reason}, who cannot take it now: {choice.why_not}"
    return choice.decision, None


def _attach_to(conn: Connection, m: Match) -> str:
    """'company «Romashka» #3 / contact Ivan #5': the records a duplicate belongs to, for the owner's note."""
    parts = []
    if m.company_id is not None:
        name = conn.execute(select(companies.c.name).where(companies.c.id == m.company_id)).scalar()
        parts.append(f"company '{name}' #{m.company_id}")
    if m.contact_id is not None:
        who = conn.execute(select(contacts.c.name, contacts.c.phone, contacts.c.email).where(
            contacts.c.id == m.contact_id)).first()  # fmt: skip
        label = (who.name or who.phone or who.email) if who else None
        parts.append(f"contact {label} #{m.contact_id}" if label else f"contact #{m.contact_id}")
    if not parts:
        parts.append(f"open lead #{m.id}" if m.kind == "lead" else f"{m.kind} #{m.id}")
    return " / ".join(parts)


def _send_to_owner(
    conn: Connection, app: Leadflow, row: RowMapping, now: datetime, decision: Decision, duplicate: Duplicate,
    conversion: Conversion | None, actor: Actor, note: str | None,
) -> None:  # fmt: skip
    """Give the lead to the client's owner: link it to the client, say it is a duplicate, assign it."""
    match = duplicate.match
    if conversion is None:  # not converted: link the lead to what it duplicates, as intake does
        conn.execute(
            update(leads)
            .where(leads.c.id == row["id"])
            .values(
                contact_id=row["contact_id"] or match.contact_id,
                company_id=row["company_id"] or match.company_id,
                duplicate_of_id=match.id if match.kind == "lead" else row["duplicate_of_id"],
                duplicate_reason=duplicate.reason,
            )
        )
    else:
        conn.execute(update(leads).where(leads.c.id == row["id"]).values(duplicate_reason=duplicate.reason))
    append_events(conn, [new_event(row["id"], "lead.duplicate", now, actor, reason=decision.reason, match_id=match.id,
                                   match_kind=match.kind, note=note)])  # fmt: skip
    assign_existing(conn, app, row, now, kind="sticky", decision=decision)


def _answer(conn: Connection, lead_id: int, reason: str, conversion: Conversion | None = None) -> dict[str, Any]:
    row = conn.execute(
        select(leads.c.status, leads.c.queue, leads.c.sla_state, leads.c.sla_due_at, managers.c.key, managers.c.name)
        .outerjoin(managers, managers.c.id == leads.c.manager_id)
        .where(leads.c.id == lead_id)
    ).one()
    answer: dict[str, Any] = {
        "id": lead_id,
        "status": row.status,
        "queue": row.queue,
        "manager": {"key": row.key, "name": row.name} if row.key else None,
        "reason": reason,
        "sla": {"state": row.sla_state, "due_at": row.sla_due_at},
        "contact": None,
        "company": None,
        "deal": None,
    }
    if conversion is not None:
        converted = conversion.as_dict()
        answer.update(contact=converted["contact"], company=converted["company"], deal=converted["deal"])
    return answer
