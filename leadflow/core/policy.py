"""Who may do what: the one place that answers `can(principal, action, resource)`.

Pure: the shell authenticates (a session, an API key) and hands over a Principal; services ask here before they
read or change anything, and list queries ask `lead_scope` which leads to show.

People hold roles, each for one team or for every team:
- admin: everything;
- head (head of sales): the leads, people and reports of their teams, the desk, the batch;
- desk (quality desk operator): the desk queue, and the leads passing through it;
- manager (linked to a manager): the leads they own now; the ones they owned before, read only.
Machines hold an API key with one scope: intake (create leads only), read, write (read and work leads), admin.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal


class Action(StrEnum):
    LEAD_CREATE = "lead.create"  # post a lead (a form, a webhook, a channel's event)
    LEAD_READ = "lead.read"
    LEAD_WORK = "lead.work"  # record a contact, change status, restore, convert
    LEAD_ASSIGN = "lead.assign"  # give a lead to a manager by hand
    DESK_READ = "desk.read"
    DESK_WORK = "desk.work"
    ROUTING_BATCH = "routing.batch"  # route the unassigned backlog
    PEOPLE_READ = "people.read"
    PEOPLE_WRITE = "people.write"  # managers: capacity, absence, addresses
    RULES_READ = "rules.read"  # the rules in force, and where a lead would go (a dry run)
    TEAMS_WRITE = "teams.write"  # create, change and remove teams
    SLA_READ = "sla.read"  # breaches
    HEALTH_READ = "health.read"
    OUTBOX_READ = "outbox.read"  # notifications quote clients: every team's
    OUTBOX_RETRY = "outbox.retry"
    ACCOUNTS = "accounts"  # users, API keys, sign-in locks
    AUDIT_READ = "audit.read"
    CLIENT_DATA = "client.data"  # erase or export one client's personal data
    SELF = "self"  # one's own account: who am I, sign out
    REPORTS_READ = "reports.read"  # the reports: a head their teams', a manager their own figures
    REPORTS_PLAN = "reports.plan"  # set sales plans, import advertising costs


ROLES = ("admin", "head", "desk", "manager")
SCOPES = ("intake", "read", "write", "admin")

_READS = frozenset({Action.LEAD_READ, Action.DESK_READ, Action.PEOPLE_READ, Action.SLA_READ, Action.HEALTH_READ,
                    Action.RULES_READ, Action.REPORTS_READ})  # fmt: skip
_WORK = frozenset({Action.LEAD_CREATE, Action.LEAD_WORK, Action.LEAD_ASSIGN, Action.DESK_WORK, Action.ROUTING_BATCH})
EVERYTHING = frozenset(Action)

ROLE_ACTIONS: dict[str, frozenset[Action]] = {
    "admin": EVERYTHING,
    "head": _READS | _WORK | {Action.PEOPLE_WRITE, Action.REPORTS_PLAN, Action.SELF},
    "desk": frozenset(
        {
            Action.LEAD_CREATE,
            Action.LEAD_READ,
            Action.LEAD_WORK,
            Action.LEAD_ASSIGN,
            Action.DESK_READ,
            Action.DESK_WORK,
            Action.PEOPLE_READ,
            Action.HEALTH_READ,
            Action.SELF,
        }
    ),
    "manager": frozenset(
        {
            Action.LEAD_CREATE,
            Action.LEAD_READ,
            Action.LEAD_WORK,
            Action.PEOPLE_READ,
            Action.HEALTH_READ,
            Action.REPORTS_READ,
            Action.SELF,
        }
    ),
}
SCOPE_ACTIONS: dict[str, frozenset[Action]] = {
    "intake": frozenset({Action.LEAD_CREATE}),
    "read": _READS,
    "write": _READS | _WORK | {Action.REPORTS_PLAN},
    "admin": EVERYTHING - {Action.SELF},
}


@dataclass(frozen=True, slots=True)
class Grant:
    role: str
    team_id: int | None = None  # None: every team
    team_key: str | None = None


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking: a signed-in user, a machine's API key, or leadflow itself (the CLI, the worker)."""

    kind: Literal["user", "key", "system"]
    name: str  # the username, the key's name, or the process
    id: int | None = None
    grants: tuple[Grant, ...] = ()  # users
    scope: str | None = None  # keys
    manager_id: int | None = None  # a user who is a manager
    address: str | None = None  # the client address of the request
    session_id: int | None = None
    # The automations whose actions led here, outermost first: what it does is their doing, and a chain that
    # would go on too long is stopped (services/automation.py).
    cause: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """The actor as events and the audit record it."""
        return f"{self.kind}:{self.name}"[:60]

    def at(self, address: str | None) -> Principal:
        """This principal, asking from `address`."""
        return Principal(self.kind, self.name, self.id, self.grants, self.scope, self.manager_id, address,
                         self.session_id, self.cause)  # fmt: skip

    def acting_for(self, person: str | None) -> Principal:
        """A key's principal, recorded as acting for the person an integration names ("key:crm for anna"); a
        signed-in user is who acts, whatever a body says."""
        if self.kind != "key" or not person:
            return self
        return Principal(self.kind, f"{self.name} for {person}", self.id, self.grants, self.scope, self.manager_id,
                         self.address, self.session_id, self.cause)  # fmt: skip

    def roles(self) -> set[str]:
        return {g.role for g in self.grants}


SYSTEM = Principal("system", "leadflow")


def automation(key: str, cause: tuple[str, ...] = ()) -> Principal:
    """leadflow acting for the trigger `key`, which fired because of the automations in `cause`."""
    return Principal("system", f"automation:{key}", cause=(*cause, key))


def actions_of(who: Principal) -> frozenset[Action]:
    if who.kind == "system":
        return EVERYTHING
    if who.kind == "key":
        return SCOPE_ACTIONS.get(who.scope or "", frozenset())
    found: frozenset[Action] = frozenset()
    for grant in who.grants:
        found |= ROLE_ACTIONS.get(grant.role, frozenset())
    return found


def can(who: Principal, action: Action) -> bool:
    """May `who` do this kind of thing at all (before looking at which lead or team)?"""
    return action in actions_of(who)


def needed_for(action: Action) -> str:
    """In words, who may do it: the answer a refused caller reads."""
    scopes = [s for s in SCOPES if action in SCOPE_ACTIONS[s]]
    roles = [r for r in ROLES if action in ROLE_ACTIONS[r]]
    parts = []
    if roles:
        parts.append(f"the role {' or '.join(roles)}")
    if scopes:
        parts.append(f"an API key of scope {' or '.join(scopes)}")
    return " or ".join(parts) if parts else "nobody"


# -- Leads ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LeadAccess:
    """What decides who may see and change one lead."""

    manager_id: int | None  # the owner now
    team_id: int | None  # the owner's team, or the team the lead is headed for
    at_desk: bool  # waiting at the quality desk now
    past_owner_ids: frozenset[int] = frozenset()
    passed_desk: bool = False  # went through the quality desk


Verdict = Literal["yes", "read_only", "hidden"]


def lead_verdict(who: Principal, action: Action, lead: LeadAccess) -> Verdict:
    """yes; read_only (it may be seen but not changed: 403); hidden (as if it did not exist: 404, so that ids
    tell nothing)."""
    if who.kind != "user":
        return "yes" if can(who, action) else "read_only" if can(who, Action.LEAD_READ) else "hidden"
    best: Verdict = "hidden"
    for grant in who.grants:
        verdict = _grant_verdict(grant, who, action, lead)
        if verdict == "yes" or (verdict == "read_only" and action in _READING):
            return "yes"
        if verdict == "read_only":
            best = "read_only"
    return best


_READING = frozenset({Action.LEAD_READ, Action.DESK_READ})


def _grant_verdict(grant: Grant, who: Principal, action: Action, lead: LeadAccess) -> Verdict:
    allowed = action in ROLE_ACTIONS.get(grant.role, frozenset())
    if grant.role == "admin":
        return "yes"
    if grant.role == "head":
        if grant.team_id is None or grant.team_id == lead.team_id:
            return "yes" if allowed else "read_only"
        return "hidden"
    if grant.role == "desk":
        in_team = grant.team_id is None or grant.team_id == lead.team_id
        if lead.at_desk and in_team:
            return "yes" if allowed else "read_only"
        return "read_only" if lead.passed_desk and in_team else "hidden"
    if grant.role == "manager":
        if who.manager_id is not None and lead.manager_id == who.manager_id:
            return "yes" if allowed else "read_only"
        return "read_only" if who.manager_id in lead.past_owner_ids else "hidden"
    return "hidden"


@dataclass(frozen=True, slots=True)
class LeadScope:
    """Which leads a list shows: everything, or the union of the parts set."""

    everything: bool = False
    team_ids: frozenset[int] = frozenset()
    manager_id: int | None = None  # owned now or before
    desk_team_ids: frozenset[int] = frozenset()  # at or through the desk, of these teams
    desk_all_teams: bool = False

    @property
    def nothing(self) -> bool:
        return not (self.everything or self.team_ids or self.manager_id is not None or self.desk_team_ids
                    or self.desk_all_teams)  # fmt: skip


def lead_scope(who: Principal) -> LeadScope:
    if who.kind != "user":
        return LeadScope(everything=can(who, Action.LEAD_READ))
    teams: set[int] = set()
    desk_teams: set[int] = set()
    desk_all = False
    manager_id = None
    for grant in who.grants:
        if grant.role == "admin" or (grant.role == "head" and grant.team_id is None):
            return LeadScope(everything=True)
        if grant.role == "head" and grant.team_id is not None:
            teams.add(grant.team_id)
        elif grant.role == "desk":
            if grant.team_id is None:
                desk_all = True
            else:
                desk_teams.add(grant.team_id)
        elif grant.role == "manager" and who.manager_id is not None:
            manager_id = who.manager_id
    return LeadScope(False, frozenset(teams), manager_id, frozenset(desk_teams), desk_all)


def team_verdict(who: Principal, action: Action, team_id: int | None) -> bool:
    """May `who` do `action` on this team's people (a head only on their own teams)?"""
    if not can(who, action):
        return False
    if who.kind != "user":
        return True
    return any(
        action in ROLE_ACTIONS.get(g.role, frozenset())
        and (g.role == "admin" or g.team_id is None or g.team_id == team_id)
        for g in who.grants
    )


def team_ids_for(who: Principal, action: Action) -> frozenset[int] | None:
    """The teams `who` may do `action` on; None: every team."""
    if who.kind != "user" or team_verdict(who, action, None):
        return None
    return frozenset(g.team_id for g in who.grants if g.team_id is not None and action in ROLE_ACTIONS[g.role])


# -- Reports -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReportScope:
    """Whose figures a report may show: every team's, some teams', or one manager's own."""

    team_ids: frozenset[int] | None = None  # None: every team
    manager_id: int | None = None  # set: only this manager's own leads and figures


def report_scope(who: Principal) -> ReportScope | None:
    """None: `who` may not read reports. A head sees their teams (every team when their role has none), a manager
    their own figures only; an API key of scope read, write or admin, leadflow itself and an admin see everything."""
    if not can(who, Action.REPORTS_READ):
        return None
    if who.kind != "user":
        return ReportScope()
    teams: set[int] = set()
    own = False
    for grant in who.grants:
        if grant.role == "admin" or (grant.role == "head" and grant.team_id is None):
            return ReportScope()
        if grant.role == "head" and grant.team_id is not None:
            teams.add(grant.team_id)
        elif grant.role == "manager" and who.manager_id is not None:
            own = True
    if teams:
        return ReportScope(team_ids=frozenset(teams))
    return ReportScope(manager_id=who.manager_id) if own else None
