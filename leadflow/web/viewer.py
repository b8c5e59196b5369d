"""Who is looking at a page: the signed-in person, their language, time zone, CSRF token and what they may open.

Every page route declares `page(action)`, as every API route declares `permit(action)`: the same authentication
(the session cookie; a change must carry the session's CSRF token) and the same policy. A page differs only in how
a refusal is answered: a visitor who is not signed in is sent to the sign-in page, and an error is a page (or, for
a request htmx made, a message in the page's notice area), never JSON.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import Depends, Request
from fastapi.routing import APIRoute
from starlette.responses import Response

from leadflow.api.auth import SESSION_COOKIE, authenticate
from leadflow.core.errors import Forbidden
from leadflow.core.policy import Action, LeadAccess, Principal, can, lead_verdict, needed_for, report_scope
from leadflow.services.accounts import SessionHolder
from leadflow.services.context import Leadflow
from leadflow.web.i18n import N_, Formats, pick_language, translator

PAGE_FLAG = "leadflow_page"


class WebRoute(APIRoute):
    """A page's route: marks the request as a page's before anything runs, so the error handlers answer it as
    one (api/errors.py asks `is_page`)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def as_page(request: Request) -> Response:
            request.scope[PAGE_FLAG] = True
            return await handler(request)

        return as_page


def is_page(request: Request) -> bool:
    return bool(request.scope.get(PAGE_FLAG))


def from_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


@dataclass(frozen=True, slots=True)
class NavItem:
    href: str
    label: str  # an English message id, translated where it is shown
    section: str


# The desk's sections, each shown to whoever may do what it is for ("manager": and has leads of their own;
# "reports": and has figures to see, their own or their teams').
NAVIGATION = (
    (NavItem("/", N_("My queue"), "queue"), Action.LEAD_WORK, "manager"),
    (NavItem("/pipeline", N_("Pipeline"), "pipeline"), Action.LEAD_WORK, "manager"),
    (NavItem("/desk", N_("Quality desk"), "desk"), Action.DESK_WORK, None),
    (NavItem("/team", N_("Team"), "team"), Action.PEOPLE_WRITE, None),
    (NavItem("/feed", N_("Live feed"), "feed"), Action.SLA_READ, None),
    (NavItem("/unassigned", N_("Unassigned"), "unassigned"), Action.ROUTING_BATCH, None),
    (NavItem("/junk", N_("Junk"), "junk"), Action.SLA_READ, None),
    (NavItem("/breaches", N_("Breaches"), "breaches"), Action.SLA_READ, None),
    (NavItem("/reports", N_("Reports"), "reports"), Action.REPORTS_READ, "reports"),
    (NavItem("/rules", N_("Rules"), "rules"), Action.RULES_READ, None),
    (NavItem("/outbox", N_("Notifications"), "outbox"), Action.OUTBOX_READ, None),
    (NavItem("/admin/users", N_("Admin"), "admin"), Action.ACCOUNTS, None),
)


@dataclass(frozen=True)
class Viewer:
    who: Principal
    display_name: str
    language: str
    csrf_token: str
    timezone: ZoneInfo
    formats: Formats = field(repr=False)
    gettext: Callable[[str], str] = field(repr=False)

    @property
    def manager_id(self) -> int | None:
        return self.who.manager_id

    def can(self, action: Action) -> bool:
        return can(self.who, action)

    def may(self, action: Action, lead: LeadAccess | None) -> bool:
        """May this person do `action` to this lead (its access facts; None: it does not exist)?"""
        return lead is not None and lead_verdict(self.who, action, lead) == "yes"

    def has_role(self, *roles: str) -> bool:
        return bool(self.who.roles() & set(roles))

    def navigation(self) -> list[NavItem]:
        shown = []
        for item, action, role in NAVIGATION:
            if not self.can(action):
                continue
            if role == "manager" and self.manager_id is None:
                continue
            if role == "reports" and report_scope(self.who) is None:
                continue
            shown.append(item)
        return shown

    def start_page(self) -> str:
        """Where this person's day starts: the head's team board, the desk's queue, a manager's own queue."""
        if self.has_role("admin", "head"):
            return "/team"
        if self.has_role("desk"):
            return "/desk"
        return "/"


@cache
def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def team_timezone(app: Leadflow, who: Principal) -> ZoneInfo:
    """The time zone a person's pages show times in: their team's, else the rules file's default."""
    teams = {t.key: t for t in app.rules.teams}
    keys = [g.team_key for g in who.grants if g.team_key]
    if who.manager_id is not None:
        keys = [m.team for m in app.rules.managers if m.key == who.name] + keys
    for key in keys:
        team = teams.get(key)
        if team is not None and team.timezone:
            return _zone(team.timezone)
    return _zone(app.rules.default_timezone)


async def viewer_of(request: Request, who: Principal) -> Viewer:
    holder = await request.app.state.auth.holder(request.cookies.get(SESSION_COOKIE, "")) if (
        request.cookies.get(SESSION_COOKIE)) else None  # fmt: skip
    session = holder if isinstance(holder, SessionHolder) else None
    language = pick_language(request.headers.get("accept-language"), session.language if session else None)
    app: Leadflow = request.app.state.leadflow
    zone = team_timezone(app, who)
    return Viewer(
        who=who,
        display_name=(session.display_name if session else "") or who.name,
        language=language,
        csrf_token=session.csrf_token if session else "",
        timezone=zone,
        formats=Formats(language, zone),
        gettext=translator(language),
    )


def page(action: Action) -> Any:
    """The dependency a page declares: a signed-in person who may do `action`, as a Viewer."""

    async def viewer(request: Request) -> Viewer:
        request.scope[PAGE_FLAG] = True
        who = getattr(request.state, "principal", None) or await authenticate(request, action)
        if who.kind != "user":
            raise Forbidden("the desk's pages are for people who sign in; machines use the API")
        if not can(who, action):
            raise Forbidden(f"'{who.name}' may not open this ({action.value}): it takes {needed_for(action)}")
        request.state.principal = who
        return await viewer_of(request, who)

    viewer.leadflow_action = action  # type: ignore[attr-defined]  # the route table test reads it
    return Depends(viewer)
