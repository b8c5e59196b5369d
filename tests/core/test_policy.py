"""The policy as a pure function: roles per team, key scopes, and what each may do to one lead."""

from __future__ import annotations

import pytest

from leadflow.core.policy import (
    SYSTEM,
    Action,
    Grant,
    LeadAccess,
    Principal,
    can,
    lead_scope,
    lead_verdict,
    needed_for,
    team_ids_for,
)

SALES, VIP = 1, 2
ANNA, BOHDAN = 10, 11
ANNAS = LeadAccess(manager_id=ANNA, team_id=SALES, at_desk=False, past_owner_ids=frozenset({ANNA}))
AT_DESK = LeadAccess(manager_id=None, team_id=VIP, at_desk=True)
WAS_ANNAS = LeadAccess(manager_id=BOHDAN, team_id=SALES, at_desk=False, past_owner_ids=frozenset({ANNA, BOHDAN}))


def user(*grants: Grant, manager_id: int | None = None) -> Principal:
    return Principal("user", "someone", 1, grants, manager_id=manager_id)


def key(scope: str) -> Principal:
    return Principal("key", "k", 1, scope=scope)


@pytest.mark.parametrize(
    ("who", "action", "lead", "verdict"),
    [
        (user(Grant("manager"), manager_id=ANNA), Action.LEAD_WORK, ANNAS, "yes"),
        (user(Grant("manager"), manager_id=BOHDAN), Action.LEAD_READ, ANNAS, "hidden"),
        (user(Grant("manager"), manager_id=ANNA), Action.LEAD_READ, WAS_ANNAS, "yes"),
        (user(Grant("manager"), manager_id=ANNA), Action.LEAD_WORK, WAS_ANNAS, "read_only"),
        (user(Grant("head", SALES)), Action.LEAD_ASSIGN, ANNAS, "yes"),
        (user(Grant("head", VIP)), Action.LEAD_READ, ANNAS, "hidden"),
        (user(Grant("head", None)), Action.LEAD_WORK, AT_DESK, "yes"),
        (user(Grant("desk", VIP)), Action.DESK_WORK, AT_DESK, "yes"),
        (user(Grant("desk", SALES)), Action.DESK_WORK, AT_DESK, "hidden"),
        (user(Grant("desk", VIP)), Action.LEAD_READ, ANNAS, "hidden"),
        # Two roles: the one that allows wins.
        (user(Grant("head", VIP), Grant("manager"), manager_id=ANNA), Action.LEAD_WORK, ANNAS, "yes"),
        (key("read"), Action.LEAD_READ, ANNAS, "yes"),
        (key("read"), Action.LEAD_WORK, ANNAS, "read_only"),
        (key("intake"), Action.LEAD_READ, ANNAS, "hidden"),
        (SYSTEM, Action.CLIENT_DATA, ANNAS, "yes"),
    ],
)
def test_what_each_may_do_to_one_lead(who: Principal, action: Action, lead: LeadAccess, verdict: str) -> None:
    assert lead_verdict(who, action, lead) == verdict


def test_scopes_and_roles_name_what_they_allow() -> None:
    assert can(key("intake"), Action.LEAD_CREATE) and not can(key("intake"), Action.LEAD_READ)
    assert can(key("write"), Action.LEAD_WORK) and not can(key("write"), Action.ACCOUNTS)
    assert not can(key("admin"), Action.SELF)  # a key has no session to end
    assert not can(user(Grant("manager"), manager_id=ANNA), Action.LEAD_ASSIGN)
    assert not can(Principal("user", "nobody"), Action.LEAD_READ)  # a user with no role can do nothing
    assert needed_for(Action.ACCOUNTS) == "the role admin or an API key of scope admin"


def test_lists_are_scoped_to_teams_own_leads_and_the_desk() -> None:
    assert lead_scope(user(Grant("admin"))).everything
    both = lead_scope(user(Grant("head", SALES), Grant("manager"), manager_id=ANNA))
    assert (both.team_ids, both.manager_id, both.everything) == (frozenset({SALES}), ANNA, False)
    assert lead_scope(user(Grant("desk", None))).desk_all_teams
    assert lead_scope(Principal("user", "nobody")).nothing
    assert team_ids_for(user(Grant("head", SALES), Grant("head", VIP)), Action.PEOPLE_WRITE) == {SALES, VIP}
    assert team_ids_for(user(Grant("head", None)), Action.PEOPLE_WRITE) is None
