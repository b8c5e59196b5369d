"""The policy applied to stored leads: may this principal see or change this lead, and which leads does a list show.

Services call `guard_lead` before they read or change a lead and `visible` to filter a list; the rules themselves
are in core/policy.py. A lead the caller may not see is "not found", exactly as a lead that does not exist.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, exists, false, or_, select
from sqlalchemy.engine import Connection

from leadflow.core.errors import Forbidden, NotFound
from leadflow.core.policy import Action, LeadAccess, Principal, lead_scope, lead_verdict, team_ids_for, team_verdict
from leadflow.store.tables import assignments, events, leads, managers

# A lead's team: its owner's, or (no owner yet) the team it was headed for when it came in.
_OWNER_TEAM = select(managers.c.team_id).where(managers.c.id == leads.c.manager_id).scalar_subquery()
_PASSED_DESK = exists().where(events.c.lead_id == leads.c.id, events.c.type == "lead.queued")


def lead_access(conn: Connection, lead_id: int) -> LeadAccess | None:
    row = conn.execute(
        select(leads.c.manager_id, leads.c.team_id, leads.c.queue, _OWNER_TEAM.label("owner_team"),
               _PASSED_DESK.label("passed_desk")).where(leads.c.id == lead_id)
    ).first()  # fmt: skip
    if row is None:
        return None
    past = conn.execute(
        select(assignments.c.manager_id).where(assignments.c.lead_id == lead_id, assignments.c.manager_id.is_not(None))
    ).scalars()
    team_id = row.owner_team if row.manager_id is not None else row.team_id
    return LeadAccess(row.manager_id, team_id, row.queue == "desk", frozenset(past), bool(row.passed_desk))


def guard_lead(conn: Connection, who: Principal, lead_id: int, action: Action) -> None:
    """Raise NotFound when `who` may not see the lead (or it does not exist), Forbidden when they may see it but not
    do `action` to it."""
    if who.kind == "system":
        return
    access = lead_access(conn, lead_id)
    verdict = "hidden" if access is None else lead_verdict(who, action, access)
    if verdict == "hidden":
        raise NotFound(f"lead {lead_id} does not exist")
    if verdict == "read_only":
        raise Forbidden(f"lead {lead_id} is not yours to change: you may only read it")


def guard_contact(conn: Connection, who: Principal, lead_id: int, manager_id: int | None) -> None:
    """A contact recorded on a lead: a manager records only their own (on a lead they own or owned: a former
    owner's late call counts); a head, the desk or a key may record anyone's on a lead they may work."""
    if who.kind == "system":
        return
    access = lead_access(conn, lead_id)
    if access is None:
        raise NotFound(f"lead {lead_id} does not exist")
    verdict = lead_verdict(who, Action.LEAD_WORK, access)
    for_others = who.kind == "key" or bool(who.roles() & {"admin", "head", "desk"})
    if verdict == "yes" and for_others:
        return
    own = who.manager_id is not None and manager_id == who.manager_id
    if own and (access.manager_id == who.manager_id or who.manager_id in access.past_owner_ids):
        return
    if verdict == "hidden":
        raise NotFound(f"lead {lead_id} does not exist")
    raise Forbidden("a manager records their own contacts, on leads they own or owned")


def _in_teams(team_ids: frozenset[int]) -> ColumnElement[bool]:
    owned_by_team = leads.c.manager_id.in_(select(managers.c.id).where(managers.c.team_id.in_(team_ids)))
    return or_(owned_by_team, and_(leads.c.manager_id.is_(None), leads.c.team_id.in_(team_ids)))


def visible(who: Principal) -> ColumnElement[bool] | None:
    """The condition on `leads` a list adds for `who`; None: every lead."""
    scope = lead_scope(who)
    if scope.everything:
        return None
    if scope.nothing:
        return false()
    parts: list[ColumnElement[bool]] = []
    if scope.team_ids:
        parts.append(_in_teams(scope.team_ids))
    if scope.manager_id is not None:
        owned_before = select(assignments.c.lead_id).where(assignments.c.manager_id == scope.manager_id)
        parts.append(or_(leads.c.manager_id == scope.manager_id, leads.c.id.in_(owned_before)))
    if scope.desk_all_teams or scope.desk_team_ids:
        desk = or_(leads.c.queue == "desk", _PASSED_DESK)
        parts.append(desk if scope.desk_all_teams else and_(desk, _in_teams(scope.desk_team_ids)))
    return or_(*parts)


def restrict(query: Any, who: Principal) -> Any:
    """`query` (on leads) showing only what `who` may see."""
    condition = visible(who)
    return query if condition is None else query.where(condition)


def guard_team(who: Principal, action: Action, team_id: int | None, what: str) -> None:
    """Refuse `action` on a team's people when `who` holds it only for other teams."""
    if not team_verdict(who, action, team_id):
        raise Forbidden(f"{what} is not in a team of yours")


def every_team(who: Principal, action: Action, what: str) -> None:
    """Refuse what spans every team to someone who holds `action` only for some."""
    if team_ids_for(who, action) is not None:
        raise Forbidden(f"{what} spans every team: it takes an admin, or a head of every team")
