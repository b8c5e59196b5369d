"""Signing in and out, who am I; and, for admins, users, API keys, sign-in locks and the audit."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any, Literal

from anyio import to_thread
from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import Field

from leadflow.api.auth import SESSION_COOKIE, authenticator, client_address, permit, public
from leadflow.api.deps import AppDep, SettingsDep
from leadflow.api.errors import CONFLICT, JSON_BODY, NOT_FOUND, REFUSALS, error_responses
from leadflow.api.params import IsoTime, LeadflowRoute, Offset
from leadflow.api.schemas import Body
from leadflow.core.fields import CLEAN_TEXT_PATTERN
from leadflow.core.policy import Action, Principal
from leadflow.core.rules import Key
from leadflow.services import accounts
from leadflow.services.accounts import NewSession
from leadflow.services.context import Leadflow, utcnow
from leadflow.settings import Settings
from leadflow.store.db import READ_ONLY

router = APIRouter(prefix="/api/v1", route_class=LeadflowRoute, responses=REFUSALS)
Who = Principal
AUTH: list[str | Enum] = ["auth"]
ADMIN: list[str | Enum] = ["accounts"]


USERNAME = r"^[A-Za-z0-9._-]{1,40}$"
Username = Annotated[str, Path(pattern=USERNAME, description="The user's sign-in name.")]
KeyName = Annotated[str, Path(min_length=1, max_length=50, pattern=CLEAN_TEXT_PATTERN, description="The key's name.")]
Password = Annotated[str, Field(min_length=accounts.MIN_PASSWORD, max_length=1024, pattern=CLEAN_TEXT_PATTERN)]


class LoginIn(Body):
    username: str = Field(min_length=1, max_length=200, pattern=CLEAN_TEXT_PATTERN)
    password: str = Field(min_length=1, max_length=1024, pattern=CLEAN_TEXT_PATTERN)


def open_session(app: Leadflow, settings: Settings, request: Request, username: str, password: str) -> NewSession:
    """Check the password and open a session (on a thread: argon2 takes tens of milliseconds on purpose)."""
    secret = authenticator(request).secret()
    now, address = utcnow(), client_address(request)
    try:
        with app.engine.begin() as conn:
            return accounts.sign_in(conn, secret, username, password, now, address=address,
                                    user_agent=request.headers.get("user-agent"), throttle=settings.throttle,
                                    times=settings.session_times)  # fmt: skip
    except accounts.SignInRefused:
        with app.engine.begin() as conn:
            accounts.record_failure(conn, username, address, now, settings.throttle)
        raise


def set_session_cookie(response: Response, request: Request, session: NewSession, settings: Settings) -> None:
    response.set_cookie(SESSION_COOKIE, session.token, max_age=settings.session_hours * 3600, httponly=True,
                        samesite="lax", secure=request.url.scheme == "https", path="/")  # fmt: skip


def end_session(app: Leadflow, request: Request, who: Principal, response: Response) -> None:
    if who.session_id is not None:
        with app.engine.begin() as conn:
            accounts.sign_out(conn, who.session_id, utcnow())
        authenticator(request).forget()
    response.delete_cookie(SESSION_COOKIE, path="/")


@router.post(
    "/auth/login",
    tags=AUTH,
    summary="Sign in as a person: a session token (Bearer) and the session cookie",
    dependencies=[public("signing in is how one gets credentials")],
    responses={**JSON_BODY, **error_responses(401, 429)},
)
async def login(
    body: LoginIn, request: Request, response: Response, app: AppDep, settings: SettingsDep
) -> dict[str, Any]:
    session = await to_thread.run_sync(open_session, app, settings, request, body.username, body.password)
    set_session_cookie(response, request, session, settings)
    return {"token": session.token, "csrf_token": session.csrf_token, "expires_at": session.expires_at,
            "user": _user_out(session.user)}  # fmt: skip


@router.post("/auth/logout", tags=AUTH, status_code=204, summary="Sign out: the session ends everywhere")
def logout(request: Request, app: AppDep, who: Annotated[Who, permit(Action.SELF)]) -> Response:
    response = Response(status_code=204)
    end_session(app, request, who, response)
    return response


@router.get("/auth/me", tags=AUTH, summary="Who the credentials are, and what they may do")
def me(request: Request, who: Annotated[Who, permit(Action.SELF)]) -> dict[str, Any]:
    return {"kind": who.kind, "name": who.name,
            "roles": [{"role": g.role, "team": g.team_key} for g in who.grants]}  # fmt: skip


def _user_out(user: dict[str, Any]) -> dict[str, Any]:
    return {k: user[k] for k in ("username", "name", "manager", "roles", "active", "created_at", "last_login_at")}


class UserIn(Body):
    username: str = Field(pattern=USERNAME)
    password: Password
    role: Literal["admin", "head", "desk", "manager"]
    teams: list[Key] = Field(default_factory=list, description="The teams the role is for; none: every team.")
    name: str | None = Field(None, max_length=200, pattern=CLEAN_TEXT_PATTERN)
    manager: Key | None = Field(None, description="A manager's account: which manager they are.")


class PasswordIn(Body):
    password: Password


@router.get("/users", tags=ADMIN, summary="Users with their roles")
def list_users(app: AppDep, who: Annotated[Who, permit(Action.ACCOUNTS)]) -> list[dict[str, Any]]:
    with app.engine.connect() as conn:
        return [_user_out(u) for u in accounts.list_users(conn)]


@router.post("/users", tags=ADMIN, status_code=201, summary="Create a user", responses={**CONFLICT, **JSON_BODY})
def create_user(body: UserIn, app: AppDep, who: Annotated[Who, permit(Action.ACCOUNTS)]) -> dict[str, Any]:
    with app.engine.begin() as conn:
        user = accounts.create_user(conn, body.username, body.password, utcnow(), role=body.role, teams_=body.teams,
                                    name=body.name, manager=body.manager, actor=who)  # fmt: skip
    return _user_out(user)


@router.post("/users/{username}/disable", tags=ADMIN, summary="Disable a user: signed out at once", responses=NOT_FOUND)
def disable_user(username: Username, request: Request, app: AppDep,
                 who: Annotated[Who, permit(Action.ACCOUNTS)]) -> dict[str, Any]:  # fmt: skip
    with app.engine.begin() as conn:
        user = accounts.disable_user(conn, username, utcnow(), who)
    authenticator(request).forget()
    return _user_out(user)


@router.post(
    "/users/{username}/password",
    tags=ADMIN,
    status_code=204,
    summary="Set a user's password: their sessions end, a sign-in lock lifts",
    responses={**NOT_FOUND, **JSON_BODY},
)
def set_password(username: Username, body: PasswordIn, request: Request, app: AppDep,
                 who: Annotated[Who, permit(Action.ACCOUNTS)]) -> Response:  # fmt: skip
    with app.engine.begin() as conn:
        accounts.set_password(conn, username, body.password, utcnow(), who)
    authenticator(request).forget()
    return Response(status_code=204)


class RoleIn(Body):
    role: Literal["admin", "head", "desk", "manager"]
    team: Key | None = Field(None, description="The team the role is for; none: every team.")


@router.post(
    "/users/{username}/roles",
    tags=ADMIN,
    summary="Give a user one more role (for a team, or every team)",
    responses={**NOT_FOUND, **CONFLICT, **JSON_BODY},
)
def add_role(username: Username, body: RoleIn, request: Request, app: AppDep,
             who: Annotated[Who, permit(Action.ACCOUNTS)]) -> dict[str, Any]:  # fmt: skip
    with app.engine.begin() as conn:
        user = accounts.add_role(conn, username, body.role, body.team, utcnow(), who)
    authenticator(request).forget()  # their sessions take the new role at their next request
    return _user_out(user)


@router.delete(
    "/users/{username}/roles",
    tags=ADMIN,
    summary="Take a role from a user (one team's, or the one for every team)",
    responses={**NOT_FOUND, **CONFLICT, **JSON_BODY},
)
def remove_role(username: Username, body: RoleIn, request: Request, app: AppDep,
                who: Annotated[Who, permit(Action.ACCOUNTS)]) -> dict[str, Any]:  # fmt: skip
    with app.engine.begin() as conn:
        user = accounts.remove_role(conn, username, body.role, body.team, utcnow(), who)
    authenticator(request).forget()  # refused at once, as a disabled user is
    return _user_out(user)


@router.get("/auth/locks", tags=ADMIN, summary="Accounts and addresses locked by failed sign-ins")
def locks(app: AppDep, settings: SettingsDep, who: Annotated[Who, permit(Action.ACCOUNTS)]) -> list[dict[str, Any]]:
    with app.engine.connect() as conn:
        return accounts.sign_in_locks(conn, utcnow(), settings.throttle)


class KeyIn(Body):
    name: str = Field(min_length=1, max_length=50, pattern=CLEAN_TEXT_PATTERN)
    scope: Literal["intake", "read", "write", "admin"]
    origins: list[Annotated[str, Field(max_length=200, pattern=r"^https?://[^/\s]+$")]] | None = Field(
        None, description="Intake keys in a page: the sites (https://example.com) allowed to post with it."
    )
    rate_per_minute: int | None = Field(None, ge=1, le=1_000_000, description="Intake keys: leads a minute.")
    address_rate_per_minute: int | None = Field(None, ge=1, le=1_000_000,
                                                description="Intake keys: leads a minute from one address.")  # fmt: skip


@router.get("/api-keys", tags=ADMIN, summary="API keys: name, scope, created, last used, revoked")
def list_keys(app: AppDep, who: Annotated[Who, permit(Action.ACCOUNTS)]) -> list[dict[str, Any]]:
    with app.engine.connect() as conn:
        return accounts.list_keys(conn)


@router.post(
    "/api-keys",
    tags=ADMIN,
    status_code=201,
    summary="Create a key: shown this once",
    responses={**CONFLICT, **JSON_BODY},
)
def create_key(body: KeyIn, app: AppDep, who: Annotated[Who, permit(Action.ACCOUNTS)]) -> dict[str, Any]:
    with app.engine.begin() as conn:
        key, row = accounts.create_key(conn, body.name, body.scope, utcnow(), actor=who, origins=body.origins,
                                       rate_per_minute=body.rate_per_minute,
                                       address_rate_per_minute=body.address_rate_per_minute)  # fmt: skip
    return {**row, "key": key}


@router.delete("/api-keys/{name}", tags=ADMIN, summary="Revoke a key: refused at once", responses=NOT_FOUND)
def revoke_key(
    name: KeyName, request: Request, app: AppDep, who: Annotated[Who, permit(Action.ACCOUNTS)]
) -> dict[str, Any]:
    with app.engine.begin() as conn:
        row = accounts.revoke_key(conn, name, utcnow(), who)
    authenticator(request).forget()
    return row


@router.get("/audit", tags=ADMIN, summary="Changes made by people and keys: who, from where, when")
def audit(
    app: AppDep,
    who: Annotated[Who, permit(Action.AUDIT_READ)],
    actor: Annotated[
        str | None, Query(max_length=60, pattern=CLEAN_TEXT_PATTERN, description="user:NAME or key:NAME")
    ] = None,
    lead: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    since: Annotated[IsoTime | None, Query(description="At or after (ISO 8601, with a zone).")] = None,
    until: Annotated[IsoTime | None, Query(description="Before (ISO 8601, with a zone).")] = None,
    limit: int = Query(100, ge=1, le=1000),
    offset: Offset = 0,
) -> dict[str, Any]:
    with app.engine.connect().execution_options(**READ_ONLY) as conn:
        return accounts.audit(conn, actor=actor, lead=lead, since=since, until=until, limit=limit, offset=offset)
