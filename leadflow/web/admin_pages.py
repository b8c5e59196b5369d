"""Administration: users and their roles, API keys, and the audit. The same services and the same body models as
the JSON API (leadflow/api/accounts.py), so a form is refused for the same reasons a request would be.

A password or key made here is shown once, on the page that answers the form (never in a list, a redirect or a
log), with Cache-Control: no-store; only its hash is kept.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any, TypeVar

from anyio import to_thread
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy.engine import Connection

from leadflow.api.accounts import KeyIn, KeyName, RoleIn, UserIn, Username
from leadflow.api.params import Offset
from leadflow.core.policy import ROLES, SCOPES, Action
from leadflow.services import accounts, people
from leadflow.services.context import Leadflow, utcnow
from leadflow.store.db import READ_ONLY
from leadflow.web.render import (
    EVENT_LABELS,
    N_,
    after_change,
    app_of,
    form_model,
    form_value,
    render_fragment,
    render_page,
)
from leadflow.web.viewer import Viewer, WebRoute, page

router = APIRouter(route_class=WebRoute, include_in_schema=False)
Admin = Annotated[Viewer, page(Action.ACCOUNTS)]
Auditor = Annotated[Viewer, page(Action.AUDIT_READ)]

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
AUDIT_PAGE = 50

# The audit's own words (a lead's events are worded by render.EVENT_LABELS).
AUDIT_LABELS = {
    "user.created": N_("User created"), "user.disabled": N_("User disabled"),
    "user.password_reset": N_("Password set"), "user.role_added": N_("Role added"),
    "user.role_removed": N_("Role removed"), "user.signed_in": N_("Signed in"),
    "api_key.created": N_("API key created"), "api_key.revoked": N_("API key revoked"),
}  # fmt: skip
ROLE_LABELS = {"admin": N_("admin"), "head": N_("head of sales"), "desk": N_("quality desk"), "manager": N_("manager")}


def _read(app: Leadflow, work: Callable[[Connection], T]) -> T:
    with app.engine.connect().execution_options(**READ_ONLY) as conn:
        return work(conn)


def _change(request: Request, work: Callable[[Connection], T]) -> T:
    """A change to accounts, in its own transaction; sessions and keys are looked up afresh afterwards."""
    with app_of(request).engine.begin() as conn:
        done = work(conn)
    request.app.state.auth.forget()
    return done


def _once(
    request: Request, viewer: Viewer, *, title: str, said: str, secret: str | None, back: str, is_key: bool = False
) -> Response:
    """The one page that shows a new secret (a password, or an API key); never cached, never shown again."""
    secret_is = "key" if is_key else "password"
    response = render_page(request, viewer, "app/once.html", section="admin", title=title, said=said, secret=secret,
                           secret_is=secret_is, back=back)  # fmt: skip
    response.headers["Cache-Control"] = "no-store"
    return response


# -- Users --------------------------------------------------------------------------------------------------------


def _users_context(request: Request, viewer: Viewer, done: str | None = None) -> dict[str, Any]:
    app = app_of(request)
    return {"users": _read(app, accounts.list_users), "teams": people.list_teams(app),
            "managers": people.list_managers(app), "roles": ROLES, "role_labels": ROLE_LABELS, "done": done,
            "me": viewer.who.name}  # fmt: skip


def _users_after(request: Request, viewer: Viewer, done: str) -> Response:
    fragment = render_fragment(request, viewer, "app/_admin_users_table.html", **_users_context(request, viewer, done))
    return after_change(request, "/admin/users", fragment)


@router.get("/admin/users")
def users_page(request: Request, viewer: Admin) -> Response:
    return render_page(request, viewer, "app/admin_users.html", section="admin", **_users_context(request, viewer))


@router.post("/admin/users")
async def create_user(request: Request, viewer: Admin) -> Response:
    form = await request.form()
    given = form_value(form, "password")
    password = given or accounts.new_password()
    body = form_model(UserIn, {
        "username": form_value(form, "username").lower(), "password": password, "role": form_value(form, "role"),
        "teams": [form_value(form, "team")] if form_value(form, "team") else [],
        "name": form_value(form, "name") or None, "manager": form_value(form, "manager") or None,
    })  # fmt: skip
    user = await to_thread.run_sync(lambda: _change(request, lambda conn: accounts.create_user(
        conn, body.username, body.password, utcnow(), role=body.role, teams_=body.teams, name=body.name,
        manager=body.manager, actor=viewer.who)))  # fmt: skip
    _ = viewer.gettext
    said = _("%(user)s can sign in now.") % {"user": user["username"]}
    if given:
        said += " " + _("They sign in with the password you gave.")
    return _once(request, viewer, title=_("User created"), said=said, secret=None if given else password,
                 back="/admin/users")  # fmt: skip


@router.post("/admin/users/{username}/disable")
async def disable_user(request: Request, username: Username, viewer: Admin) -> Response:
    await request.form()  # the CSRF token was read from it
    user = await to_thread.run_sync(
        lambda: _change(request, lambda conn: accounts.disable_user(conn, username, utcnow(), viewer.who))
    )
    done = viewer.gettext("%(user)s is disabled and signed out.") % {"user": user["username"]}
    return await to_thread.run_sync(_users_after, request, viewer, done)


@router.post("/admin/users/{username}/password")
async def new_password(request: Request, username: Username, viewer: Admin) -> Response:
    await request.form()
    password = accounts.new_password()
    await to_thread.run_sync(
        lambda: _change(request, lambda conn: accounts.set_password(conn, username, password, utcnow(), viewer.who))
    )
    _ = viewer.gettext
    said = _("%(user)s has a new password; their sessions have ended.") % {"user": username.lower()}
    return _once(request, viewer, title=_("New password"), said=said, secret=password, back="/admin/users")


def _role(form: Mapping[str, Any]) -> RoleIn:
    return form_model(RoleIn, {"role": form_value(form, "role"), "team": form_value(form, "team") or None})


@router.post("/admin/users/{username}/roles")
async def add_role(request: Request, username: Username, viewer: Admin) -> Response:
    role = _role(await request.form())
    user = await to_thread.run_sync(lambda: _change(
        request, lambda conn: accounts.add_role(conn, username, role.role, role.team, utcnow(), viewer.who)))  # fmt: skip
    done = viewer.gettext("%(user)s has the role %(role)s now.") % {"user": user["username"], "role": role.role}
    return await to_thread.run_sync(_users_after, request, viewer, done)


@router.post("/admin/users/{username}/roles/remove")
async def remove_role(request: Request, username: Username, viewer: Admin) -> Response:
    role = _role(await request.form())
    user = await to_thread.run_sync(lambda: _change(
        request, lambda conn: accounts.remove_role(conn, username, role.role, role.team, utcnow(), viewer.who)))  # fmt: skip
    done = viewer.gettext("%(user)s no longer has the role %(role)s.") % {"user": user["username"], "role": role.role}
    return await to_thread.run_sync(_users_after, request, viewer, done)


# -- API keys -----------------------------------------------------------------------------------------------------


def _keys_context(request: Request, done: str | None = None) -> dict[str, Any]:
    return {"keys": _read(app_of(request), accounts.list_keys), "scopes": SCOPES, "done": done}


@router.get("/admin/keys")
def keys_page(request: Request, viewer: Admin) -> Response:
    return render_page(request, viewer, "app/admin_keys.html", section="admin", **_keys_context(request))


def _origins(text: str) -> list[str] | None:
    found = [part for part in text.replace(",", " ").split() if part]
    return found or None


@router.post("/admin/keys")
async def create_key(request: Request, viewer: Admin) -> Response:
    form = await request.form()
    body = form_model(KeyIn, {
        "name": form_value(form, "name"), "scope": form_value(form, "scope"),
        "origins": _origins(form_value(form, "origins")),
        "rate_per_minute": form_value(form, "rate_per_minute") or None,
        "address_rate_per_minute": form_value(form, "address_rate_per_minute") or None,
    })  # fmt: skip
    key, row = await to_thread.run_sync(lambda: _change(request, lambda conn: accounts.create_key(
        conn, body.name, body.scope, utcnow(), actor=viewer.who, origins=body.origins,
        rate_per_minute=body.rate_per_minute, address_rate_per_minute=body.address_rate_per_minute)))  # fmt: skip
    _ = viewer.gettext
    said = _("The key %(name)s (scope %(scope)s) works now.") % {"name": row["name"], "scope": row["scope"]}
    return _once(request, viewer, title=_("API key created"), said=said, secret=key, back="/admin/keys", is_key=True)


@router.post("/admin/keys/{name}/revoke")
async def revoke_key(request: Request, name: KeyName, viewer: Admin) -> Response:
    await request.form()
    await to_thread.run_sync(lambda: _change(request, lambda conn: accounts.revoke_key(conn, name, utcnow(),
                                                                                         viewer.who)))  # fmt: skip
    done = viewer.gettext("The key %(name)s is revoked: it is refused from now on.") % {"name": name}

    def fragment() -> str:
        return render_fragment(request, viewer, "app/_admin_keys_table.html", **_keys_context(request, done))

    return after_change(request, "/admin/keys", await to_thread.run_sync(fragment))


# -- The audit ----------------------------------------------------------------------------------------------------


def audit_label(viewer: Viewer, type_: str) -> str:
    if type_ in AUDIT_LABELS:
        return viewer.gettext(AUDIT_LABELS[type_])
    return viewer.gettext(EVENT_LABELS[type_]) if type_ in EVENT_LABELS else type_


@router.get("/admin/audit")
def audit_page(request: Request, viewer: Auditor, actor: str = "", offset: Offset = 0) -> Response:
    actor = " ".join(actor.split())[:60]
    found = _read(app_of(request), lambda conn: accounts.audit(conn, actor=actor or None, limit=AUDIT_PAGE,
                                                             offset=offset))  # fmt: skip
    return render_page(request, viewer, "app/admin_audit.html", section="admin", found=found, actor=actor,
                       page_size=AUDIT_PAGE, label=lambda t: audit_label(viewer, t))  # fmt: skip
