"""Take in one lead: clean it, set junk aside, match it to an existing client, route it; one transaction."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from anyio import to_thread
from sqlalchemy import bindparam, func, select, update
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.exc import IntegrityError

from leadflow.core.cleaning import clean_lead, company_block, email_domain
from leadflow.core.dedupe import Match, choose_duplicate, fold_target
from leadflow.core.errors import Conflict, FieldProblem
from leadflow.core.junk import check_usable, junk_reason
from leadflow.core.lead import CleanLead, LeadIn, read_lead
from leadflow.core.routing import (
    FALLBACK,
    Decision,
    ManagerState,
    TeamState,
    matching_rules,
    route,
    sticky_choice,
    sticky_policy,
    teams_involved,
)
from leadflow.core.rules import RulesFile, Team
from leadflow.core.schedule import format_duration
from leadflow.core.scoring import NOT_SCORED, qualify
from leadflow.services.context import Leadflow
from leadflow.services.sla import (
    DESK,
    INSERT_TIMER,
    ROUTE_AT,
    Clock,
    clock_columns,
    lead_context,
    notify,
    plan_clock,
    write_timer,
)
from leadflow.store.events import add_event, append_events, new_event, record_assignment
from leadflow.store.fast import Fast
from leadflow.store.lead_rows import identity_keys, lead_row_to_clean, lock_client, lock_lead
from leadflow.store.matching import find_matches
from leadflow.store.tables import leads, managers, teams
from leadflow.store.team_state import add_load, load_manager, load_team_state, lock_teams, save_pointer

# Who sent a lead: (actor, client address, a junk verdict on the request itself); None: leadflow itself (a file).
Sender = tuple[str | None, str | None, str | None] | None


@dataclass(frozen=True, slots=True)
class Intake:
    lead_id: int
    created: bool
    status: str
    manager_id: int | None
    manager_key: str | None
    manager_name: str | None
    reason: str
    merged: bool = False  # the request was folded into the client's open lead `lead_id`
    problems: tuple[FieldProblem, ...] = ()  # fields that could not be kept as given


class IdempotencyKeyReused(Conflict):
    """The same idempotency key (or channel id) came with a different request."""

    code = "idempotency_key_reused"


def receive(
    app: Leadflow, data: Mapping[str, Any], now: datetime, *, idempotency_key: str | None = None,
    problems: Sequence[FieldProblem] = (), sender: Sender = None,
) -> Intake:  # fmt: skip
    """Take in a lead exactly as a channel sent it (a JSON object, a form, a CSV row): read it leniently, keep it."""
    lead_in, found, payload = read_lead(data)
    return take_lead(app, lead_in, now, raw=payload, idempotency_key=idempotency_key, problems=[*problems, *found],
                     sender=sender)  # fmt: skip


def fingerprint(payload: Mapping[str, Any]) -> str:
    """What identifies a request's content, whatever the order of its fields."""
    return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)).hexdigest()


def take_lead(
    app: Leadflow, lead_in: LeadIn, now: datetime, *, raw: dict[str, Any] | None = None,
    idempotency_key: str | None = None, problems: Sequence[FieldProblem] = (), sender: Sender = None,
) -> Intake:  # fmt: skip
    """Commit the lead and its decision together, then return; a repeated delivery returns the first lead.

    A lead with any usable way to reach the client is kept, with what was wrong in it named in its `problems`.
    """
    work = prepare_lead(app, lead_in, now, raw=raw, idempotency_key=idempotency_key, problems=problems,
                        sender=sender)  # fmt: skip
    try:
        return app.transaction(work)
    except IntegrityError as exc:
        return work.taken_meanwhile(exc)


async def take_lead_async(
    app: Leadflow, lead_in: LeadIn, now: datetime, *, raw: dict[str, Any] | None = None,
    idempotency_key: str | None = None, problems: Sequence[FieldProblem] = (), sender: Sender = None,
) -> Intake:  # fmt: skip
    """take_lead() for the HTTP layer: the lead is read and cleaned on the event loop, and the transaction runs on
    the process's group writer (no thread waits for it) or, without one, on a thread of the pool."""
    work = prepare_lead(app, lead_in, now, raw=raw, idempotency_key=idempotency_key, problems=problems,
                        sender=sender)  # fmt: skip
    try:
        return await app.transaction_async(work)
    except IntegrityError as exc:
        return await to_thread.run_sync(work.taken_meanwhile, exc)


async def receive_async(
    app: Leadflow, data: Mapping[str, Any], now: datetime, *, idempotency_key: str | None = None,
    problems: Sequence[FieldProblem] = (), sender: Sender = None,
) -> Intake:  # fmt: skip
    """receive() for the HTTP layer (see take_lead_async)."""
    lead_in, found, payload = read_lead(data)
    return await take_lead_async(app, lead_in, now, raw=payload, idempotency_key=idempotency_key,
                                 problems=[*problems, *found], sender=sender)  # fmt: skip


def prepare_lead(
    app: Leadflow, lead_in: LeadIn, now: datetime, *, raw: dict[str, Any] | None = None,
    idempotency_key: str | None = None, problems: Sequence[FieldProblem] = (), sender: Sender = None,
) -> TakeLead:  # fmt: skip
    """Everything before the transaction: clean, check, predict, fingerprint. Raises InvalidInput before anything
    is written."""
    clean = clean_lead(lead_in, app.rules.default_region, problems)
    check_usable(lead_in, clean, app.rules)
    # Predicted before the transaction: the model is read on its own connection, never two held at once.
    prediction = app.predict(clean) if app.predict is not None and app.rules.scoring.predictive else None
    payload = raw if raw is not None else lead_in.model_dump(mode="json", exclude_none=True)
    actor, address, junk = sender or (None, None, None)
    request = Request(idempotency_key, fingerprint(payload), actor, address, junk)
    return TakeLead(app, clean, payload, request, now, prediction)


@dataclass(frozen=True, slots=True)
class TakeLead:
    """The transaction that takes a prepared lead: called with the connection, inside the transaction."""

    app: Leadflow
    clean: CleanLead
    payload: dict[str, Any]
    request: Request
    now: datetime
    prediction: tuple[float, list[dict[str, Any]]] | None

    def __call__(self, conn: Connection) -> Intake:
        existing = _find_delivery(conn, self.clean, self.request)
        if existing is not None:
            return existing
        return _take(self.app, conn, self.clean, self.payload, self.request, self.now, self.prediction)

    def taken_meanwhile(self, conflict: IntegrityError) -> Intake:
        """After a unique-key conflict: the concurrent delivery of the same lead that committed first (PostgreSQL);
        the conflict itself when that is not what it was."""
        with self.app.engine.connect() as conn:
            existing = _find_delivery(conn, self.clean, self.request)
        if existing is None:
            raise conflict
        return existing


@dataclass(frozen=True, slots=True)
class Request:
    """The delivery: its idempotency key and content, who sent it and from where."""

    idempotency_key: str | None
    fingerprint: str
    actor: str | None = None  # "key:site form", "user:olena"
    address: str | None = None
    junk: str | None = None  # the request itself shows a bot (a filled honeypot field): kept, set aside


_INSERT_LEAD = Fast(leads.insert().returning(leads.c.id))
_TARGET = leads.alias("target")
_DELIVERY = (
    select(
        leads.c.id, leads.c.status, func.coalesce(_TARGET.c.manager_id, leads.c.manager_id).label("manager_id"),
        managers.c.key, managers.c.name, leads.c.request_hash,
        leads.c.merged_into_id, leads.c.problems, _TARGET.c.status.label("target_status"),
    )
    .outerjoin(_TARGET, _TARGET.c.id == leads.c.merged_into_id)
    .outerjoin(managers, managers.c.id == func.coalesce(_TARGET.c.manager_id, leads.c.manager_id))
)  # fmt: skip
# Two statements rather than one OR: each uses its own unique index.
_BY_KEY = Fast(_DELIVERY.where(leads.c.idempotency_key == bindparam("key")))
_BY_EXTERNAL = Fast(
    _DELIVERY.where(leads.c.channel == bindparam("channel"), leads.c.external_id == bindparam("external"))
)


def _find_delivery(conn: Connection, clean: CleanLead, request: Request) -> Intake | None:
    """The lead already taken for this delivery: by its idempotency key, or by the channel's own id for it.

    The same key with a different request is refused: answering with the first lead would lose the second.
    """
    row = _BY_KEY.first(conn, {"key": request.idempotency_key}) if request.idempotency_key else None
    what = f"Idempotency-Key '{request.idempotency_key}'"
    if row is None and clean.external_id:
        row = _BY_EXTERNAL.first(conn, {"channel": clean.channel, "external": clean.external_id})
        what = f"external_id '{clean.external_id}' of channel '{clean.channel}'"
    if row is None:
        return None
    if row.request_hash is not None and row.request_hash != request.fingerprint:
        raise IdempotencyKeyReused(
            f"{what} was already used for a different request (lead {row.merged_into_id or row.id}): "
            "send a new key for a new lead, or the very same request to get the first answer again"
        )
    problems = tuple(FieldProblem(p["field"], p["reason"]) for p in row.problems or ())
    if row.merged_into_id is not None:
        return Intake(row.merged_into_id, False, row.target_status, row.manager_id, row.key, row.name,
                      "already received: folded into the client's open lead", True, problems)  # fmt: skip
    return Intake(row.id, False, row.status, row.manager_id, row.key, row.name,
                  "already received: this is the first delivery", problems=problems)  # fmt: skip


def _take(
    app: Leadflow,
    conn: Connection,
    clean: CleanLead,
    payload: dict[str, Any],
    request: Request,
    now: datetime,
    prediction: tuple[float, list[dict[str, Any]]] | None,
) -> Intake:
    rules = app.rules
    junk = request.junk or junk_reason(clean, rules.junk)
    duplicate = None
    decision: Decision | None = None
    owner: ManagerState | None = None
    not_owner = ""  # why a repeat lead does not go to the client's owner
    probability = prediction[0] if prediction else None
    qualification = qualify(clean, rules.scoring, probability)
    scored = qualification.apply(clean, probability)  # rules may read the score: which team, so which policies
    headed = None if junk else headed_for(scored, rules)
    if junk is None:
        # Two requests of one new client at the same moment would both find no open lead (PostgreSQL; SQLite
        # has one writer): the second waits here and then finds the first.
        lock_client(conn, identity_keys(clean.phone, clean.email, clean.channel, clean.messenger_id))
        free_mail = rules.dedupe.free_mail_domains if headed is not None and headed.match_accounts else None
        matches = find_matches(conn, clean, rules.open_statuses, rules.dedupe.company_similarity, free_mail)
        target = fold_target(matches, now, rules.dedupe.fold_window)
        if target is not None:
            folded = _fold(app, conn, clean, payload, request, target, now)
            if folded is not None:
                return folded
        duplicate = choose_duplicate(matches)
    clean = scored
    desk = headed if headed is not None and headed.desk else None
    if junk is None and desk is None:
        if duplicate is not None and duplicate.match.owner_id is not None:
            owner = load_manager(conn, duplicate.match.owner_id, rules.default_timezone)
            policy, wait = sticky_policy(clean, rules, owner.team if owner is not None else None)
            sticky = sticky_choice(owner, duplicate.reason, policy, now, wait)
            decision, not_owner = sticky.decision, sticky.why_not
        if decision is None:
            decision, state = route_now(conn, clean, rules, now)
            owner = state.managers.get(decision.manager_key) if decision.manager_key else None
            if duplicate is not None:
                why = "routed by rules" if duplicate.match.owner_id is None else f"{not_owner}; routed by rules"
                decision = _with_prefix(decision, f"{duplicate.reason}; {why}")
    if owner is not None and not team_scores(rules, owner.team):
        qualification = NOT_SCORED  # the team chose to work without scores
        clean = qualification.apply(clean, None)
        prediction = None

    status = "junk" if junk else "assigned" if decision and decision.assigned else "new"
    # The team it is headed for: whose head and desk see it while no one owns it (junk too).
    team = headed_for(clean, rules) if junk else headed
    clock = plan_clock(rules, clean, decision, owner, now) if decision and owner else None
    match = duplicate.match if duplicate else None
    lead_id = _INSERT_LEAD.scalar(
        conn,
        {
            "channel": clean.channel, "source": clean.source, "external_id": clean.external_id,
            "idempotency_key": request.idempotency_key, "request_hash": request.fingerprint,
            "problems": problem_rows(clean.problems), "messenger_id": clean.messenger_id, "merged_into_id": None,
            "name": clean.name, "phone": clean.phone, "phone_type": clean.phone_type,
            "email": clean.email, "company": clean.company, "region": clean.region, "product": clean.product,
            "language": clean.language, "budget": clean.budget, "message": clean.message, "utm": clean.utm,
            "utm_campaign": (clean.utm.get("utm_campaign") or "")[:200] or None,
            "raw": payload, "status": status,
            "manager_id": decision.manager_id if decision else None,
            "team_id": app.team_id(conn, team.key if team is not None else None),
            "contact_id": match.contact_id if match and match.kind != "account" else None,
            "company_id": match.company_id if match else None,
            "duplicate_of_id": match.id if match and match.kind == "lead" else None,
            **account_keys(clean),
            "duplicate_reason": duplicate.reason if duplicate else None,
            "junk_reason": junk,
            "created_at": now, "updated_at": now,
            "assigned_at": now if decision and decision.assigned else None,
            "score": qualification.score,
            "score_detail": qualification.detail() or None,
            "temperature": qualification.temperature,
            "department": qualification.department,
            "win_probability": probability,
            "win_factors": prediction[1] if prediction else None,
            "processing_due_at": now + qualification.window if qualification.window else None,
            "queue": "desk" if desk else None,
            **clock_columns(clock, decision.rule_key if decision else None),
        },
    )  # fmt: skip

    history = [new_event(lead_id, "lead.received", now, request.actor, address=request.address,
                         channel=clean.channel, source=clean.source)]  # fmt: skip
    if qualification.score is not None or qualification.temperature is not None:
        history.append(new_event(lead_id, "lead.scored", now, reason=qualification.reason, score=qualification.score,
                                 temperature=qualification.temperature, probability=probability))  # fmt: skip
    if clean.problems:
        history.append(new_event(lead_id, "lead.flagged", now, reason="; ".join(p.reason for p in clean.problems),
                                 problems=problem_rows(clean.problems)))  # fmt: skip
    if junk:
        history.append(new_event(lead_id, "lead.junked", now, reason=junk))
    if duplicate:
        # Another person of a known account is no duplicate: it goes to the account's owner, and stays its own client.
        kind = "lead.account_matched" if duplicate.match.kind == "account" else "lead.duplicate"
        history.append(new_event(lead_id, kind, now, reason=duplicate.reason, match_id=duplicate.match.id))
    if desk is not None:
        history.append(queue_at_desk(conn, lead_id, desk, now))
    told = decision is not None and tells_anyone(app, decision, owner)
    if decision is not None:
        apply_decision(conn, lead_id, decision, "sticky" if decision.strategy == "sticky" else "initial", now,
                       clean.budget)  # fmt: skip
        if not told:
            history.append(decision_event(lead_id, decision, now))
        if decision.wait_until is not None:
            conn.execute(INSERT_TIMER, {"lead_id": lead_id, "kind": ROUTE_AT, "due_at": decision.wait_until,
                                           "data": {"rule": decision.rule_key}, "created_at": now})  # fmt: skip
    append_events(conn, history)
    if clock is not None and owner is not None:
        write_timer(conn, lead_id, clock, owner, decision.rule_key if decision else None, now)
    if decision is not None:
        # Written last, on its own when someone is told: its id goes into every message about it.
        event_id = add_event(conn, decision_event(lead_id, decision, now)) if told else None
        announce(conn, app, lead_id, clean, decision, owner, clock, now, event_id)
    if decision is None:
        why = junk or (f"waiting for the quality desk of team '{desk.key}'" if desk else "")
        return Intake(lead_id, True, status, None, None, None, why, problems=clean.problems)
    return Intake(lead_id, True, status, decision.manager_id, decision.manager_key, decision.manager_name,
                  decision.reason, problems=clean.problems)  # fmt: skip


def account_keys(lead: CleanLead) -> dict[str, str | None]:
    """The columns account matching looks leads up by: the company name's keys and the e-mail's domain."""
    key = lead.company_key
    return {"company_key": key, "company_block": company_block(key) if key else None,
            "email_domain": email_domain(lead.email)}  # fmt: skip


def problem_rows(problems: Sequence[FieldProblem]) -> list[dict[str, str]] | None:
    return [{"field": p.field, "reason": p.reason} for p in problems] or None


# Fields a repeat request may fill in on the open lead when the lead has none yet.
_FILLABLE = ("name", "phone", "phone_type", "email", "messenger_id", "company", "product", "region", "budget",
             "message")  # fmt: skip
_OPEN_LEAD = select(leads, managers.c.key.label("manager_key"), managers.c.name.label("manager_name")).outerjoin(
    managers, managers.c.id == leads.c.manager_id
)


def _fold(
    app: Leadflow, conn: Connection, clean: CleanLead, payload: dict[str, Any], request: Request, target: Match,
    now: datetime,
) -> Intake | None:  # fmt: skip
    """The client wrote again while their lead is open: keep the request as a row of its own, folded into that lead.

    The open lead gets the new activity (an event, blank fields filled in, its owner told); no second lead runs a
    chain of its own, so one client is called by one manager. Returns None when the lead closed meanwhile.
    """
    lock_lead(conn, target.id)  # the lead may be escalated or closed right now: wait for that, then look
    lead = conn.execute(_OPEN_LEAD.where(leads.c.id == target.id)).mappings().first()
    if lead is None or lead["status"] not in app.rules.open_statuses:
        return None
    seconds = int((now - lead["created_at"]).total_seconds())
    age = f"{format_duration(timedelta(seconds=seconds))} after it" if seconds >= 1 else "moments after it"
    reason = f"folded into open lead #{target.id}: the same client ({target.by} {target.value}) wrote again {age}"
    request_id = _INSERT_LEAD.scalar(
        conn,
        {
            "channel": clean.channel, "source": clean.source, "external_id": clean.external_id,
            "idempotency_key": request.idempotency_key, "request_hash": request.fingerprint,
            "problems": problem_rows(clean.problems), "messenger_id": clean.messenger_id,
            "merged_into_id": target.id, **account_keys(clean), "name": clean.name, "phone": clean.phone, "phone_type": clean.phone_type,
            "email": clean.email, "company": clean.company, "region": clean.region, "product": clean.product,
            "language": clean.language, "budget": clean.budget, "message": clean.message, "utm": clean.utm,
            "utm_campaign": (clean.utm.get("utm_campaign") or "")[:200] or None,
            "raw": payload, "status": "merged", "manager_id": None, "team_id": None,
            "contact_id": lead["contact_id"], "company_id": lead["company_id"], "duplicate_of_id": target.id,
            "duplicate_reason": reason, "junk_reason": None, "created_at": now, "updated_at": now,
            "assigned_at": None, "score": None, "score_detail": None, "temperature": None, "department": None,
            "win_probability": None, "win_factors": None, "processing_due_at": None, "queue": None,
            "sla_state": None, "sla_due_at": None, "rule_key": None,
        },
    )  # fmt: skip
    filled = {name: getattr(clean, name) for name in _FILLABLE if lead[name] is None and getattr(clean, name)}
    conn.execute(update(leads).where(leads.c.id == target.id).values(updated_at=now, **filled))
    append_events(conn, [
        new_event(request_id, "lead.received", now, channel=clean.channel, source=clean.source),
        new_event(request_id, "lead.merged", now, reason=reason, into=target.id),
    ])  # fmt: skip
    repeat = new_event(target.id, "lead.repeat", now, reason=f"the client wrote again via {clean.channel}",
                       request=request_id, channel=clean.channel, product=clean.product, message=clean.message,
                       filled=sorted(filled))  # fmt: skip
    repeat_id = add_event(conn, repeat)  # its id goes into the owner's message
    if lead["manager_id"] is not None:
        owner = load_manager(conn, lead["manager_id"], app.rules.default_timezone)
        context = lead_context(app, target.id, lead_row_to_clean(lead)) | {"message": clean.message}
        notify(conn, app, "lead.repeat", repeat_id, owner, context, now)
    return Intake(target.id, False, lead["status"], lead["manager_id"], lead["manager_key"], lead["manager_name"],
                  reason, merged=True, problems=clean.problems)  # fmt: skip


def queue_at_desk(conn: Connection, lead_id: int, desk: Team, now: datetime) -> dict[str, Any]:
    """Start the desk's deadline for a lead put in its queue; return the event that says so."""
    conn.execute(INSERT_TIMER, {"lead_id": lead_id, "kind": DESK, "due_at": now + desk.desk_sla,
                                "data": {"team": desk.key}, "created_at": now})  # fmt: skip
    return new_event(lead_id, "lead.queued", now, queue="desk", team=desk.key,
                     reason=f"team '{desk.key}' takes new leads through the quality desk")  # fmt: skip


def headed_for(clean: CleanLead, rules: RulesFile) -> Team | None:
    """The team the lead is headed for: the first matching rule's, else the fallback's."""
    matched = matching_rules(clean, rules)
    target = matched[0] if matched else rules.routing.fallback
    if target is None:
        return None
    return next((t for t in rules.teams if t.key == target.team), None)


def desk_team(clean: CleanLead, rules: RulesFile) -> Team | None:
    """The team the lead is headed for, when that team takes new leads through its quality desk."""
    team = headed_for(clean, rules)
    return team if team is not None and team.desk else None


def team_scores(rules: RulesFile, team_key: str) -> bool:
    return next((t.scoring for t in rules.teams if t.key == team_key), True)


def assign_existing(
    conn: Connection,
    app: Leadflow,
    row: RowMapping,
    now: datetime,
    *,
    kind: str,
    decision: Decision | None = None,
    clock: bool = True,
    keep_status: str | None = None,
) -> Decision:
    """Route a stored lead (restored, waited for opening, handed on by the desk) and write it like intake does.

    `clock=False` for a lead that already had its first contact: it owes none to the new owner. `keep_status`: the
    status it stays in (a contacted lead handed on stays contacted: the funnel does not go backwards).
    """
    clean = lead_row_to_clean(row)
    owner: ManagerState | None = None
    if decision is None:
        decision, state = route_now(conn, clean, app.rules, now)
        owner = state.managers.get(decision.manager_key) if decision.manager_key else None
    elif decision.manager_id is not None:
        owner = load_manager(conn, decision.manager_id, app.rules.default_timezone)
    deadline = plan_clock(app.rules, clean, decision, owner, now) if owner and clock else None
    conn.execute(
        update(leads)
        .where(leads.c.id == row["id"])
        .values(
            status=keep_status or ("assigned" if decision.assigned else "new"),
            manager_id=decision.manager_id,
            assigned_at=now if decision.assigned else None,
            updated_at=now,
            sla_hops=0,
            queue=None,
            **(clock_columns(deadline, decision.rule_key) if clock else {}),
        )
    )
    apply_decision(conn, row["id"], decision, kind, now, row["budget"])
    event_id = add_event(conn, decision_event(row["id"], decision, now))
    if deadline is not None and owner is not None:
        write_timer(conn, row["id"], deadline, owner, decision.rule_key, now)
    if decision.wait_until is not None:
        conn.execute(INSERT_TIMER, {"lead_id": row["id"], "kind": ROUTE_AT, "due_at": decision.wait_until,
                                       "data": {"rule": decision.rule_key}, "created_at": now})  # fmt: skip
    announce(conn, app, row["id"], clean, decision, owner, deadline, now, event_id)
    return decision


def route_now(
    conn: Connection, clean: CleanLead, rules: RulesFile, now: datetime, *, lock: bool = True
) -> tuple[Decision, TeamState]:
    """Lock the teams the lead may go to, read their state, decide. `lock=False`: a decision nothing is written
    from (a dry run, a preview), which must not hold up those that are."""
    team_keys = teams_involved(clean, rules)
    if lock:
        lock_teams(conn, team_keys)
    rule_keys = [r.key for r in matching_rules(clean, rules)] + [FALLBACK]
    state = load_team_state(conn, team_keys, rule_keys, rules.default_timezone)
    return route(clean, rules, state, now), state


def tells_anyone(app: Leadflow, decision: Decision, owner: ManagerState | None) -> bool:
    """Whether announce() has anyone to tell; asked before the decision's event is written, so that its id is read
    back only when a message will carry it."""
    if not decision.assigned:
        return True  # the team chats
    return bool(owner and (owner.email or owner.telegram_chat_id)) or bool(app.notify.webhook_urls)


def announce(
    conn: Connection, app: Leadflow, lead_id: int, clean: CleanLead, decision: Decision,
    owner: ManagerState | None, clock: Clock | None, now: datetime, event_id: int | None,
) -> None:  # fmt: skip
    """Tell the new owner (and the webhooks); a lead no one could take is announced to the team chat. event_id: the
    decision's event, which every message names."""
    if not tells_anyone(app, decision, owner):
        return  # nobody to tell: skip building the message on the hot path
    context = lead_context(app, lead_id, clean) | {"manager_name": decision.manager_name, "reason": decision.reason}
    if clock is not None and owner is not None:
        local = clock.due_at.astimezone(ZoneInfo(owner.hours.timezone))
        context["due_at_local"] = local.strftime("%H:%M %d.%m")
    if decision.assigned:
        notify(conn, app, "lead.assigned", event_id, owner, context, now)
    else:
        query = select(teams).where(teams.c.key.in_(teams_involved(clean, app.rules)))
        chats: list[RowMapping | None] = [*conn.execute(query).mappings().all()] or [None]
        for chat in chats:
            notify(conn, app, "lead.unassigned", event_id, None,
                   context | {"team_name": chat["name"] if chat else None}, now, team_chat=chat)  # fmt: skip


def apply_decision(
    conn: Connection, lead_id: int, decision: Decision, kind: str, now: datetime, value: Decimal | None = None
) -> None:
    record_assignment(conn, lead_id, decision, kind, now)
    if decision.manager_id is not None:
        add_load(conn, decision.manager_id, +1, value)
    if decision.pointer is not None and decision.moves_rotation:
        save_pointer(conn, *decision.pointer, decision.credits[1] if decision.credits else None)


def decision_event(lead_id: int, decision: Decision, now: datetime) -> dict[str, Any]:
    # The rules looked at, compactly: [key, matched, outcome]; the explain endpoint shows them.
    checked = [[c.key, c.matched, c.outcome] for c in decision.checked]
    if decision.assigned:
        return new_event(lead_id, "lead.assigned", now, manager_id=decision.manager_id, manager=decision.manager_key,
                         rule=decision.rule_key, reason=decision.reason, rules=checked)  # fmt: skip
    return new_event(lead_id, "lead.unassigned", now, reason=decision.reason, rules=checked,
                     wait_until=decision.wait_until.isoformat() if decision.wait_until else None)  # fmt: skip


def _with_prefix(decision: Decision, prefix: str) -> Decision:
    return replace(decision, reason=f"{prefix}; {decision.reason}")
