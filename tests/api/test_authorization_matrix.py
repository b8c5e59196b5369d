"""Every route of the app, called as a stranger, as each role and as each key scope, over real HTTP.

The route table comes from the app itself: a route that declares neither the action it performs (permit) nor why
anyone may call it (public) fails here, and so does an action this table does not list. What each caller may do
is written out below, not read back from the policy module.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute, iter_route_contexts

from leadflow.api.app import create_api
from leadflow.api.auth import declared_action, declared_public
from leadflow.core.policy import Action
from leadflow.services.context import Leadflow
from leadflow.settings import Settings
from leadflow.web.viewer import WebRoute
from tests.support import bearer, live_server, new_key, person

RULES = """
default_region: UA
default_timezone: Europe/Kyiv
teams:
  - {key: sales, name: Sales, head: halyna, hours: always}
  - {key: vip, name: VIP, head: oleh, desk: true, hours: always}
  - {key: spare-team, name: Spare}
managers:
  - {key: anna, name: Anna, team: sales}
  - {key: bohdan, name: Bohdan, team: sales}
  - {key: halyna, name: Halyna, team: sales}
  - {key: oleh, name: Oleh, team: vip}
  - {key: dana, name: Dana, team: vip, role: desk}
  - {key: spare, name: Spare, team: sales}
routing:
  rules:
    - {key: to-anna, team: sales, managers: [anna], when: {product: credit}, strategy: round_robin}
    - {key: to-bohdan, team: sales, managers: [bohdan], when: {product: leasing}, strategy: round_robin}
    - {key: vip, team: vip, managers: [oleh], when: {product: yacht}, strategy: round_robin}
"""
ANNA_LEAD = {"name": "Secretname Annasclient", "phone": "+380671110001", "email": "annas.client@example.org",
             "product": "credit"}  # fmt: skip

CALLERS = ("anonymous", "admin", "head", "other_head", "desk", "manager", "other_manager",
           "key_intake", "key_read", "key_write", "key_admin")  # fmt: skip
PEOPLE = {"admin", "head", "other_head", "desk", "manager", "other_manager"}

# Who may perform each action at all (before looking at which lead or team).
ALLOWED: dict[Action, set[str]] = {
    Action.LEAD_CREATE: PEOPLE | {"key_intake", "key_write", "key_admin"},
    Action.LEAD_READ: PEOPLE | {"key_read", "key_write", "key_admin"},
    Action.LEAD_WORK: PEOPLE | {"key_write", "key_admin"},
    Action.LEAD_ASSIGN: {"admin", "head", "other_head", "desk", "key_write", "key_admin"},
    Action.DESK_READ: {"admin", "head", "other_head", "desk", "key_read", "key_write", "key_admin"},
    Action.DESK_WORK: {"admin", "head", "other_head", "desk", "key_write", "key_admin"},
    Action.ROUTING_BATCH: {"admin", "head", "other_head", "key_write", "key_admin"},
    Action.PEOPLE_READ: PEOPLE | {"key_read", "key_write", "key_admin"},
    Action.PEOPLE_WRITE: {"admin", "head", "other_head", "key_admin"},
    Action.RULES_READ: {"admin", "head", "other_head", "key_read", "key_write", "key_admin"},
    Action.TEAMS_WRITE: {"admin", "key_admin"},
    Action.SLA_READ: {"admin", "head", "other_head", "key_read", "key_write", "key_admin"},
    Action.HEALTH_READ: PEOPLE | {"key_read", "key_write", "key_admin"},
    Action.OUTBOX_READ: {"admin", "key_admin"},
    Action.OUTBOX_RETRY: {"admin", "key_admin"},
    Action.ACCOUNTS: {"admin", "key_admin"},
    Action.AUDIT_READ: {"admin", "key_admin"},
    Action.CLIENT_DATA: {"admin", "key_admin"},
    Action.SELF: PEOPLE,
    Action.REPORTS_READ: PEOPLE - {"desk"} | {"key_read", "key_write", "key_admin"},
    Action.REPORTS_PLAN: {"admin", "head", "other_head", "key_write", "key_admin"},
}
# On Anna's lead (team sales, owned by Anna, never at the desk), those who may act at all but may not see it.
HIDDEN_FROM = {"other_head", "desk", "other_manager"}
# Routes whose path names a lead that is Anna's (or a task on it), or something else that every caller can be pointed
# at.
LEAD_ROUTE = re.compile(r"\{(lead|task)_id\}")
# Routes that a team's head may use only for their own teams: pointed at team sales.
TEAM_SCOPED = {("PATCH", "/api/v1/managers/{key}"), ("DELETE", "/api/v1/managers/{key}"),
               ("PATCH", "/api/v1/teams/{key}"), ("POST", "/team/managers/{key}/absent"),
               ("PUT", "/api/v1/reports/plans/{scope}/{month}")}  # fmt: skip
# The batch spans every team: a head of one team is refused in the service.
EVERY_TEAM = {("POST", "/api/v1/assign/unassigned"), ("POST", "/unassigned/route")}


@dataclass
class World:
    url: str
    headers: dict[str, dict[str, str]]
    lead_id: int
    secret_texts: tuple[str, ...]


@pytest.fixture
def world(make_app: Callable[[str], Leadflow]) -> Iterator[World]:
    lf = make_app(RULES)
    headers = {
        "anonymous": {},
        "admin": person(lf, "root", "admin"),
        "head": person(lf, "halyna", "head", manager="halyna", teams=["sales"]),
        "other_head": person(lf, "oleh", "head", manager="oleh", teams=["vip"]),
        "desk": person(lf, "dana", "desk", manager="dana", teams=["vip"]),
        "manager": person(lf, "anna", "manager", manager="anna"),
        "other_manager": person(lf, "bohdan", "manager", manager="bohdan"),
        **{f"key_{scope}": bearer(new_key(lf, scope)) for scope in ("intake", "read", "write", "admin")},
    }
    with live_server(lf) as url, httpx.Client(base_url=url, timeout=30) as client:
        made = client.post("/api/v1/leads", json=ANNA_LEAD, headers=headers["key_write"])
        assert made.status_code == 201 and made.json()["manager"]["key"] == "anna", made.text
        client.post("/api/v1/leads", json={"phone": "+380671110002", "product": "leasing"}, headers=headers["admin"])
        task = client.post("/api/v1/tasks", json={"lead_id": made.json()["id"], "title": "Call back"},
                           headers=headers["key_write"])  # fmt: skip
        assert task.status_code == 201 and task.json()["id"] == 1, task.text  # Anna's: the task routes name it
        yield World(url, headers, made.json()["id"], ("Secretname", "380671110001", "annas.client"))


def route_table() -> list[tuple[str, str, Action | None, str | None]]:
    """(method, path, declared action, why public) of every route."""
    return [(m, p, a, r) for m, p, a, r, _ in _routes()]


def _routes() -> list[tuple[str, str, Action | None, str | None, bool]]:
    from sqlalchemy import create_engine

    from leadflow.core.rules_text import parse_rules

    api = create_api(Leadflow(engine=create_engine("sqlite://"), rules=parse_rules(RULES, "r.yaml")), Settings())
    found = []
    for context in iter_route_contexts(api.routes):
        route = context.original_route
        if not isinstance(route, APIRoute):
            continue
        for method in sorted(route.methods - {"HEAD"}):
            found.append((method, route.path, declared_action(route), declared_public(route),
                          isinstance(route, WebRoute)))  # fmt: skip
    return found


# Signing out ends the caller's session: last, so that the routes after it still see a signed-in caller.
ROUTES = sorted(route_table(), key=lambda r: r[2] is Action.SELF and r[0] == "POST")
# The desk's pages: a browser's forms, answered as pages (sign in first, HTML refusals), for people only.
PAGES = {(m, p) for m, p, _, _, page in _routes() if page}


def test_every_route_declares_who_may_call_it() -> None:
    undeclared = [(m, p) for m, p, action, reason in ROUTES if action is None and not reason]
    assert undeclared == [], f"routes without permit(...) or public(...): {undeclared}"
    unknown = {action for _, _, action, _ in ROUTES if action is not None} - set(ALLOWED)
    assert unknown == set(), f"actions this matrix does not know: {unknown}"
    public = {(m, p) for m, p, action, _ in ROUTES if action is None}
    # The channels' webhooks are called by services that cannot sign in: each checks the service's own signature
    # or token before it reads anything (tests/channels/inbound/ send them forged and unsigned calls).
    webhooks = {(m, p) for m, p in public if p.startswith("/api/v1/channels/")}
    # An e-mail's tracked link and open pixel are followed by whoever reads it: each checks its signed token first
    # (tests/channels/inbound/test_email_tracking.py sends forged ones).
    tracked = {("GET", "/r/{token}"), ("GET", "/r/{token}.gif")}
    assert public - webhooks - tracked <= {("GET", "/healthz"), ("POST", "/api/v1/auth/login"), ("GET", "/login"),
                                           ("POST", "/login"), ("GET", "/docs"), ("GET", "/redoc")}, public  # fmt: skip
    unsigned = [(m, p, r) for m, p, a, r in ROUTES if (m, p) in tracked and "signed token" not in (r or "")]
    assert unsigned == [], f"tracked e-mail routes that do not say how their token is checked: {unsigned}"
    unchecked = [(m, p, r) for m, p, a, r in ROUTES if (m, p) in webhooks and m == "POST"
                 and not any(word in (r or "") for word in ("signature", "token", "Signature", "Token"))]  # fmt: skip
    assert unchecked == [], f"webhooks that do not say how their caller is checked: {unchecked}"


def _path(path: str, lead_id: int) -> str:
    values = {"lead_id": str(lead_id), "key": "sales" if "/teams/" in path else "spare", "message_id": "1",
              "username": "nobody-here", "name": "no such key", "client_id": "1", "task_id": "1",
              "scope": "team:sales", "month": "2026-03"}  # fmt: skip
    if "/managers/" in path and "{key}" in path:
        values["key"] = "spare"
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)


# Bodies that pass validation, so that a refusal is the lead's (404), not the body's (422).
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/api/v1/leads/{lead_id}/status"): {"status": "qualified"},
    ("POST", "/api/v1/leads/{lead_id}/messages"): {"text": "Good afternoon"},
    ("POST", "/api/v1/desk/{lead_id}/junk"): {"reason": "spam"},
    ("POST", "/api/v1/desk/{lead_id}/deal"): {"hand_to": "auto"},
    ("POST", "/api/v1/leads/{lead_id}/convert"): {"to": "contact"},
    ("POST", "/api/v1/leads/{lead_id}/assign"): {"manager": "halyna", "reason": "covering"},
    ("POST", "/api/v1/users/{username}/roles"): {"role": "head", "team": "sales"},
    ("DELETE", "/api/v1/users/{username}/roles"): {"role": "head", "team": "sales"},
    ("POST", "/api/v1/tasks"): {"lead_id": 1, "title": "Call back"},  # Anna's lead
    ("POST", "/api/v1/tasks/{task_id}/cancel"): {"reason": "not needed"},
    ("POST", "/api/v1/tasks/{task_id}/reassign"): {"manager": "halyna"},
    ("POST", "/api/v1/events"): {"id": "matrix-visit", "type": "page_visited", "phone": "+380671110009"},
    ("PUT", "/api/v1/reports/plans/{scope}/{month}"): {"deals_per_day": 2},  # team sales: its head's, not vip's
    ("POST", "/api/v1/reports/costs"): {"csv": "day,channel,amount\n2026-03-02,web,10.00\n"},
}


# Form fields the desk's pages take, so that a refusal is the lead's (404), not the form's (422).
FORMS: dict[tuple[str, str], dict[str, str]] = {
    ("POST", "/leads/{lead_id}/contact"): {"kind": "call", "outcome": "no_answer"},
    ("POST", "/leads/{lead_id}/note"): {"note": "called, no answer"},
    ("POST", "/leads/{lead_id}/reply"): {"text": "Good afternoon"},
    ("POST", "/leads/{lead_id}/status"): {"status": "qualified"},
    ("POST", "/leads/{lead_id}/won"): {"amount": "100"},
    ("POST", "/leads/{lead_id}/lost"): {"reason": "price"},
    ("POST", "/desk/leads/{lead_id}/junk"): {"reason": "spam"},
    ("POST", "/desk/leads/{lead_id}/contact"): {"note": "a client to keep"},
    ("POST", "/desk/leads/{lead_id}/handover-preview"): {"hand_to": "auto"},
    ("POST", "/desk/leads/{lead_id}/deal"): {"hand_to": "auto"},
    ("POST", "/desk/leads/{lead_id}/to-owner"): {"note": "the client's second request"},
    ("POST", "/leads/{lead_id}/restore"): {},
    ("POST", "/leads/{lead_id}/reassign"): {"manager": "halyna", "reason": "covering"},
    ("POST", "/team/managers/{key}/absent"): {"absent": "0"},
    ("POST", "/tasks/{task_id}/done"): {"from": "queue"},
}


# Server-sent events never end: only their opening is looked at.
STREAMS = {"/live"}


def _opened(client: httpx.Client, path: str) -> httpx.Response:
    with client.stream("GET", path) as answer:
        if answer.status_code != 200:
            answer.read()
        return answer


def expected(method: str, path: str, action: Action, caller: str) -> set[int] | None:
    """The refusal `caller` gets, or None when they are let through (whatever the route then answers)."""
    page = (method, path) in PAGES
    if caller == "anonymous":
        return {303} if page else {401}  # a page sends a stranger to sign in
    if page and caller.startswith("key_"):
        return {403}  # pages are for people; machines use the API
    if caller not in ALLOWED[action]:
        return {403}
    if LEAD_ROUTE.search(path) and caller in HIDDEN_FROM:
        return {404}
    if (method, path) in TEAM_SCOPED and caller == "other_head":
        return {403}
    if (method, path) in EVERY_TEAM and caller in ("head", "other_head"):
        return {403}
    return None


@pytest.mark.parametrize("caller", CALLERS)
def test_each_route_lets_in_exactly_who_may_call_it(world: World, caller: str) -> None:
    wrong = []
    with httpx.Client(base_url=world.url, timeout=30, headers=world.headers[caller]) as client:
        for method, path, action, _ in ROUTES:
            if action is None or (method, path) == ("POST", "/logout"):  # the page's sign-out: test_auth_flows
                continue
            page = (method, path) in PAGES
            if path in STREAMS:
                answer = _opened(client, path)
            elif page:
                answer = client.request(method, _path(path, world.lead_id), data=FORMS.get((method, path), {}))
            else:
                answer = client.request(method, _path(path, world.lead_id), json=BODIES.get((method, path), {}))
            refusal = expected(method, path, action, caller)
            got = answer.status_code
            if refusal is None:
                ok = got not in (401, 403) and not (LEAD_ROUTE.search(path) and got == 404)
            else:
                ok = got in refusal and not any(t in answer.text for t in world.secret_texts)
                if page:
                    ok = ok and (got != 303 or answer.headers["location"].startswith("/login"))
                else:
                    ok = ok and set(answer.json()) == {"error", "message", "problems"}
                if got == 401:
                    ok = ok and answer.headers.get("www-authenticate", "").startswith("Bearer")
            if not ok:
                wrong.append(f"{method} {path}: {got} (expected {sorted(refusal) if refusal else 'let through'}) "
                             f"{answer.text[:160]}")  # fmt: skip
    assert wrong == [], "\n".join(wrong)


def test_lists_show_each_caller_only_what_they_may_see(world: World) -> None:
    seen = {}
    for caller in ("admin", "head", "other_head", "desk", "manager", "other_manager", "key_read"):
        answer = httpx.get(f"{world.url}/api/v1/leads", headers=world.headers[caller], timeout=30)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["total"] == len(body["items"])
        seen[caller] = sorted(item["id"] for item in body["items"])
    everything = seen["admin"]
    assert len(everything) == 2
    assert seen["head"] == everything and seen["key_read"] == everything  # both leads are team sales'
    assert seen["manager"] == [world.lead_id]
    assert seen["other_manager"] == [i for i in everything if i != world.lead_id]
    assert seen["other_head"] == seen["desk"] == []
