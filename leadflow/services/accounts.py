"""Users, API keys, sessions and sign-in throttling: the rows behind authentication.

Passwords are hashed with argon2id (argon2-cffi's defaults, RFC 9106's second recommended set); a hash made with
older parameters is replaced at the next successful sign-in. API keys and session tokens are 256-bit random
strings, so a slow hash would add nothing: they are stored as HMAC-SHA256 under a secret made once per
installation (the `instance` table), and found by that digest. Neither a password nor a key is ever logged or
returned after it is made.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from leadflow.core.errors import Conflict, InvalidInput, LeadflowError, NotFound, TooManyRequests
from leadflow.core.policy import ROLES, SCOPES, Grant, Principal
from leadflow.store.events import append_events, new_event
from leadflow.store.tables import (
    api_keys,
    events,
    instance,
    login_failures,
    managers,
    sessions,
    teams,
    user_roles,
    users,
)

KEY_PREFIX = "lf_"
SESSION_PREFIX = "lfs_"
_hasher = PasswordHasher()
MIN_PASSWORD = 10


@functools.cache
def _dummy_hash(hasher: PasswordHasher) -> str:
    """Checked when the username is unknown, so that a wrong name takes as long as a wrong password."""
    return hasher.hash(secrets.token_urlsafe(16))


class SignInRefused(LeadflowError):
    """Wrong username or password, or a disabled account: one answer for all, so none can be told apart."""


def key_secret(conn: Connection) -> bytes:
    """The installation's secret for keyed hashes (made by the migration; made here when a restore lost it)."""
    query = select(instance.c.value).where(instance.c.name == "key_secret")
    value = conn.execute(query).scalar()
    if value is None:
        insert_ = (postgresql if conn.dialect.name == "postgresql" else sqlite).insert
        made = insert_(instance).values(name="key_secret", value=secrets.token_hex(32))
        conn.execute(made.on_conflict_do_nothing(index_elements=["name"]))  # two at once keep the first one's
        value = conn.execute(query).scalar_one()
    return bytes.fromhex(value)


def digest(secret: bytes, token: str) -> str:
    return hmac.new(secret, token.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


# -- Users ------------------------------------------------------------------------------------------------------


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise InvalidInput.one("password", f"is shorter than {MIN_PASSWORD} characters")
    if len(password) > 1024:
        raise InvalidInput.one("password", "is longer than 1024 characters")


def new_password() -> str:
    return secrets.token_urlsafe(12)


def _team_ids(conn: Connection, team_keys: list[str]) -> dict[str, int]:
    found = dict(conn.execute(select(teams.c.key, teams.c.id).where(teams.c.key.in_(team_keys))).all())
    missing = [k for k in team_keys if k not in found]
    if missing:
        raise InvalidInput.one("team", f"there is no team {', '.join(repr(k) for k in missing)}")
    return found


def create_user(
    conn: Connection, username: str, password: str, now: datetime, *, role: str, teams_: list[str] | None = None,
    name: str | None = None, manager: str | None = None, actor: Principal,
) -> dict[str, Any]:  # fmt: skip
    """A user with one role, for the given teams or (none given) for every team. A manager's account names the
    manager it is (their leads)."""
    username = username.strip().lower()
    if not username or len(username) > 40 or not username.replace(".", "").replace("-", "").replace("_", "").isalnum():
        raise InvalidInput.one("username", "is 1-40 letters, digits, '.', '-' or '_'")
    if role not in ROLES:
        raise InvalidInput.one("role", f"is one of {', '.join(ROLES)}")
    check_password(password)
    manager_id = None
    if manager is not None:
        manager_id = conn.execute(select(managers.c.id).where(managers.c.key == manager)).scalar()
        if manager_id is None:
            raise InvalidInput.one("manager", f"there is no manager '{manager}'")
    if role == "manager" and manager_id is None:
        raise InvalidInput.one("manager", "a manager's account names the manager it is (--manager KEY)")
    team_ids = _team_ids(conn, teams_ or [])
    try:
        user_id = conn.execute(
            insert(users).returning(users.c.id),
            {"username": username, "name": name or username, "password_hash": _hasher.hash(password),
             "manager_id": manager_id, "created_at": now, "password_changed_at": now},
        ).scalar_one()  # fmt: skip
    except IntegrityError:
        raise Conflict(f"there is already a user '{username}'") from None
    rows = [{"user_id": user_id, "role": role, "team_id": t} for t in team_ids.values()] or [
        {"user_id": user_id, "role": role, "team_id": None}
    ]
    conn.execute(insert(user_roles), rows)
    _audit(conn, actor, "user.created", now, username=username, role=role, teams=sorted(team_ids))
    return get_user(conn, username)


def _user_rows(conn: Connection, username: str | None = None) -> list[dict[str, Any]]:
    query = (
        select(users.c.id, users.c.username, users.c.name, users.c.created_at, users.c.last_login_at,
               users.c.disabled_at, managers.c.key.label("manager"))
        .outerjoin(managers, managers.c.id == users.c.manager_id)
        .order_by(users.c.username)
    )  # fmt: skip
    if username is not None:
        query = query.where(users.c.username == username.strip().lower())
    found = [dict(r) for r in conn.execute(query).mappings()]
    roles = conn.execute(
        select(user_roles.c.user_id, user_roles.c.role, teams.c.key)
        .outerjoin(teams, teams.c.id == user_roles.c.team_id)
        .where(user_roles.c.user_id.in_([u["id"] for u in found]))
        .order_by(user_roles.c.role, teams.c.key)
    ).all()
    for user in found:
        user["roles"] = [{"role": r, "team": t} for uid, r, t in roles if uid == user["id"]]
        user["active"] = user["disabled_at"] is None
    return found


def list_users(conn: Connection) -> list[dict[str, Any]]:
    return _user_rows(conn)


def get_user(conn: Connection, username: str) -> dict[str, Any]:
    found = _user_rows(conn, username)
    if not found:
        raise NotFound(f"there is no user '{username}'")
    return found[0]


def disable_user(conn: Connection, username: str, now: datetime, actor: Principal) -> dict[str, Any]:
    """Sign the user out everywhere and refuse their sign-ins; their history stays."""
    user = get_user(conn, username)
    conn.execute(update(users).where(users.c.id == user["id"], users.c.disabled_at.is_(None)).values(disabled_at=now))
    _revoke_sessions(conn, user["id"], now)
    _audit(conn, actor, "user.disabled", now, username=user["username"])
    return get_user(conn, username)


def set_password(conn: Connection, username: str, password: str, now: datetime, actor: Principal) -> None:
    """A new password: every session of the user ends, and any sign-in lock on the account is lifted."""
    check_password(password)
    user = get_user(conn, username)
    conn.execute(update(users).where(users.c.id == user["id"]).values(
        password_hash=_hasher.hash(password), password_changed_at=now))  # fmt: skip
    _revoke_sessions(conn, user["id"], now)
    conn.execute(delete(login_failures).where(login_failures.c.username == user["username"]))
    _audit(conn, actor, "user.password_reset", now, username=user["username"])


def add_role(
    conn: Connection, username: str, role: str, team_key: str | None, now: datetime, actor: Principal
) -> dict[str, Any]:
    """One more role for a user, for one team or (None) for every team; their sessions see it at their next
    request (the caller forgets the authenticator's memory)."""
    user = get_user(conn, username)
    team_id = _role_team(conn, role, team_key)
    if role == "manager" and user["manager"] is None:
        raise InvalidInput.one("role", "a manager's role needs an account linked to a manager (create it with one)")
    held = {(r["role"], r["team"]) for r in user["roles"]}
    if (role, team_key) in held or (role, None) in held:
        where = f" of team '{team_key}'" if (role, team_key) in held and team_key else ""
        raise Conflict(f"'{user['username']}' already has the role {role}{where or ' for every team'}")
    conn.execute(insert(user_roles), {"user_id": user["id"], "role": role, "team_id": team_id})
    _audit(conn, actor, "user.role_added", now, username=user["username"], role=role, team=team_key)
    return get_user(conn, username)


def remove_role(
    conn: Connection, username: str, role: str, team_key: str | None, now: datetime, actor: Principal
) -> dict[str, Any]:
    """Take one role (of one team, or the one for every team) from a user. A user keeps at least one role (disable
    the account instead), and the last active admin keeps theirs, so that someone can still manage accounts."""
    user = get_user(conn, username)
    team_id = _role_team(conn, role, team_key)
    if (role, team_key) not in {(r["role"], r["team"]) for r in user["roles"]}:
        where = f" of team '{team_key}'" if team_key else " for every team"
        raise NotFound(f"'{user['username']}' has no role {role}{where}")
    if len(user["roles"]) == 1:
        raise Conflict(f"this is the only role of '{user['username']}': disable the account instead")
    if role == "admin" and user["active"] and _active_admins(conn) == {user["id"]}:
        raise Conflict(f"'{user['username']}' is the last active admin: make another admin first")
    team_test = user_roles.c.team_id.is_(None) if team_id is None else user_roles.c.team_id == team_id
    conn.execute(delete(user_roles).where(user_roles.c.user_id == user["id"], user_roles.c.role == role, team_test))
    _audit(conn, actor, "user.role_removed", now, username=user["username"], role=role, team=team_key)
    return get_user(conn, username)


def _role_team(conn: Connection, role: str, team_key: str | None) -> int | None:
    if role not in ROLES:
        raise InvalidInput.one("role", f"is one of {', '.join(ROLES)}")
    if role == "admin" and team_key is not None:
        raise InvalidInput.one("team", "an admin is an admin of every team: leave the team out")
    return _team_ids(conn, [team_key])[team_key] if team_key is not None else None


def _active_admins(conn: Connection) -> set[int]:
    query = (select(user_roles.c.user_id).join(users, users.c.id == user_roles.c.user_id)
             .where(user_roles.c.role == "admin", users.c.disabled_at.is_(None)))  # fmt: skip
    return set(conn.execute(query).scalars())


def set_language(conn: Connection, user_id: int, language: str | None, languages: tuple[str, ...]) -> None:
    """A user's own language for the pages (None: the browser's)."""
    if language is not None and language not in languages:
        raise InvalidInput.one("language", f"'{language}' is not one of {', '.join(languages)}")
    conn.execute(update(users).where(users.c.id == user_id).values(language=language))


def _revoke_sessions(conn: Connection, user_id: int, now: datetime) -> None:
    conn.execute(update(sessions).where(sessions.c.user_id == user_id, sessions.c.revoked_at.is_(None))
                 .values(revoked_at=now))  # fmt: skip


def _audit(conn: Connection, actor: Principal, type_: str, now: datetime, **data: Any) -> None:
    append_events(conn, [new_event(None, type_, now, actor, **data)])


def has_accounts(conn: Connection) -> bool:
    """Is there anyone who can sign in or any key that works?"""
    user = conn.execute(select(users.c.id).where(users.c.disabled_at.is_(None)).limit(1)).first()
    key = conn.execute(select(api_keys.c.id).where(api_keys.c.revoked_at.is_(None)).limit(1)).first()
    return user is not None or key is not None


# -- Signing in -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Throttle:
    window: timedelta = timedelta(minutes=15)
    per_account: int = 5  # failures within the window lock the account for the rest of it
    per_address: int = 20


@dataclass(frozen=True, slots=True)
class SessionTimes:
    idle: timedelta = timedelta(hours=4)
    absolute: timedelta = timedelta(hours=12)


@dataclass(frozen=True, slots=True)
class NewSession:
    token: str
    csrf_token: str
    expires_at: datetime
    user: dict[str, Any]


def _locked_for(conn: Connection, column: Any, value: str, limit: int, now: datetime, throttle: Throttle) -> int:
    """Seconds until the lock on this account or address lifts; 0 when it is not locked."""
    since = now - throttle.window
    times = conn.execute(
        select(login_failures.c.at).where(column == value, login_failures.c.at > since)
        .order_by(login_failures.c.at.desc()).limit(limit)
    ).scalars().all()  # fmt: skip
    if len(times) < limit:
        return 0
    return max(1, int((times[-1] + throttle.window - now).total_seconds()) + 1)


def sign_in(
    conn: Connection, secret: bytes, username: str, password: str, now: datetime, *, address: str | None,
    user_agent: str | None, throttle: Throttle, times: SessionTimes,
) -> NewSession:  # fmt: skip
    """Check the password and open a session; too many failures for the account or the address lock it."""
    username = username.strip().lower()[:40]
    for column, value, limit, what in (
        (login_failures.c.username, username, throttle.per_account, "this account"),
        (login_failures.c.address, address, throttle.per_address, "this address"),
    ):
        if value is None:
            continue
        wait = _locked_for(conn, column, value, limit, now, throttle)
        if wait:
            raise TooManyRequests(f"too many failed sign-ins for {what}: try again in {wait} s", wait)
    row = conn.execute(
        select(users.c.id, users.c.password_hash, users.c.disabled_at).where(users.c.username == username)
    ).first()
    verified = _verify(row.password_hash if row is not None else _dummy_hash(_hasher), password)
    if row is None or not verified or row.disabled_at is not None:
        raise SignInRefused("wrong username or password")
    if _hasher.check_needs_rehash(row.password_hash):
        conn.execute(update(users).where(users.c.id == row.id).values(password_hash=_hasher.hash(password)))
    conn.execute(delete(login_failures).where(login_failures.c.username == username))
    conn.execute(update(users).where(users.c.id == row.id).values(last_login_at=now))
    token = SESSION_PREFIX + secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    expires = now + times.absolute
    conn.execute(insert(sessions), {"digest": digest(secret, token), "user_id": row.id, "csrf_token": csrf,
                                    "created_at": now, "last_seen_at": now, "expires_at": expires,
                                    "address": address, "user_agent": (user_agent or "")[:300] or None})  # fmt: skip
    append_events(conn, [new_event(None, "user.signed_in", now, f"user:{username}", address=address)])
    return NewSession(token, csrf, expires, get_user(conn, username))


def record_failure(conn: Connection, username: str, address: str | None, now: datetime, throttle: Throttle) -> None:
    """A failed sign-in, kept (in its own transaction: the refused one is rolled back) for the throttle."""
    conn.execute(insert(login_failures), {"username": username.strip().lower()[:40], "address": address, "at": now})
    conn.execute(delete(login_failures).where(login_failures.c.at < now - throttle.window * 4))


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def sign_out(conn: Connection, session_id: int, now: datetime) -> None:
    conn.execute(update(sessions).where(sessions.c.id == session_id, sessions.c.revoked_at.is_(None))
                 .values(revoked_at=now))  # fmt: skip


def sign_in_locks(conn: Connection, now: datetime, throttle: Throttle) -> list[dict[str, Any]]:
    """Accounts and addresses locked now by failed sign-ins, for an admin to see (and lift by a new password)."""
    since = now - throttle.window
    found = []
    for column, limit, kind in ((login_failures.c.username, throttle.per_account, "account"),
                                (login_failures.c.address, throttle.per_address, "address")):  # fmt: skip
        rows = conn.execute(
            select(column, func.count(), func.min(login_failures.c.at), func.max(login_failures.c.at))
            .where(login_failures.c.at > since, column.is_not(None)).group_by(column)
            .having(func.count() >= limit)
        ).all()  # fmt: skip
        for value, count, _first, _last in rows:
            wait = _locked_for(conn, column, value, limit, now, throttle)
            if wait:
                found.append({"kind": kind, "value": value, "failures": count,
                              "locked_until": now + timedelta(seconds=wait)})  # fmt: skip
    return found


# -- Who a token is ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeyHolder:
    principal: Principal
    origins: tuple[str, ...] | None
    rate_per_minute: int | None
    address_rate_per_minute: int | None
    last_used_at: datetime | None


@dataclass(frozen=True, slots=True)
class SessionHolder:
    principal: Principal
    csrf_token: str
    last_seen_at: datetime
    expires_at: datetime
    display_name: str = ""
    language: str | None = None  # the user's own choice for the pages; None: the browser's


def find_key(conn: Connection, key_digest: str) -> KeyHolder | None:
    row = conn.execute(select(api_keys).where(api_keys.c.digest == key_digest, api_keys.c.revoked_at.is_(None))).first()
    if row is None:
        return None
    principal = Principal("key", row.name, row.id, scope=row.scope)
    return KeyHolder(principal, tuple(row.origins) if row.origins else None, row.rate_per_minute,
                     row.address_rate_per_minute, row.last_used_at)  # fmt: skip


def grants_of(conn: Connection, user_id: int) -> tuple[Grant, ...]:
    rows = conn.execute(
        select(user_roles.c.role, user_roles.c.team_id, teams.c.key)
        .outerjoin(teams, teams.c.id == user_roles.c.team_id).where(user_roles.c.user_id == user_id)
    ).all()  # fmt: skip
    return tuple(Grant(role, team_id, team_key) for role, team_id, team_key in rows)


def find_session(conn: Connection, token_digest: str, now: datetime, times: SessionTimes) -> SessionHolder | None:
    row = conn.execute(
        select(sessions.c.id, sessions.c.csrf_token, sessions.c.last_seen_at, sessions.c.expires_at,
               users.c.id.label("user_id"), users.c.username, users.c.manager_id, users.c.name, users.c.language)
        .join(users, users.c.id == sessions.c.user_id)
        .where(sessions.c.digest == token_digest, sessions.c.revoked_at.is_(None), users.c.disabled_at.is_(None))
    ).first()  # fmt: skip
    if row is None or row.expires_at <= now or row.last_seen_at + times.idle <= now:
        return None
    principal = Principal("user", row.username, row.user_id, grants_of(conn, row.user_id),
                          manager_id=row.manager_id, session_id=row.id)  # fmt: skip
    return SessionHolder(principal, row.csrf_token, row.last_seen_at, row.expires_at, row.name, row.language)


def touch_session(conn: Connection, session_id: int, now: datetime) -> None:
    conn.execute(update(sessions).where(sessions.c.id == session_id).values(last_seen_at=now))


def touch_key(conn: Connection, key_id: int, now: datetime) -> None:
    conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(last_used_at=now))


# -- API keys ---------------------------------------------------------------------------------------------------


def create_key(
    conn: Connection, name: str, scope: str, now: datetime, *, actor: Principal, origins: list[str] | None = None,
    rate_per_minute: int | None = None, address_rate_per_minute: int | None = None,
) -> tuple[str, dict[str, Any]]:  # fmt: skip
    """A new key and its row; the key itself is shown this once and never again."""
    name = " ".join(name.split())
    if not name or len(name) > 50:
        raise InvalidInput.one("name", "is 1-50 characters")
    if scope not in SCOPES:
        raise InvalidInput.one("scope", f"is one of {', '.join(SCOPES)}")
    if scope != "intake" and (origins or rate_per_minute or address_rate_per_minute):
        raise InvalidInput.one("scope", "allowed origins and rate limits are for intake keys")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    try:
        conn.execute(insert(api_keys), {
            "name": name, "scope": scope, "digest": digest(key_secret(conn), key), "prefix": key[:10],
            "origins": [o.rstrip("/").lower() for o in origins] if origins else None,
            "rate_per_minute": rate_per_minute, "address_rate_per_minute": address_rate_per_minute,
            "created_at": now, "created_by": actor.label,
        })  # fmt: skip
    except IntegrityError:
        raise Conflict(f"there is already a key named '{name}'") from None
    _audit(conn, actor, "api_key.created", now, name=name, scope=scope)
    return key, get_key(conn, name)


_KEY_COLUMNS = (api_keys.c.name, api_keys.c.scope, api_keys.c.prefix, api_keys.c.origins, api_keys.c.rate_per_minute,
                api_keys.c.address_rate_per_minute, api_keys.c.created_at, api_keys.c.created_by,
                api_keys.c.last_used_at, api_keys.c.revoked_at)  # fmt: skip


def list_keys(conn: Connection) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(select(*_KEY_COLUMNS).order_by(api_keys.c.name)).mappings()]


def get_key(conn: Connection, name: str) -> dict[str, Any]:
    row = conn.execute(select(*_KEY_COLUMNS).where(api_keys.c.name == name)).mappings().first()
    if row is None:
        raise NotFound(f"there is no API key named '{name}'")
    return dict(row)


def revoke_key(conn: Connection, name: str, now: datetime, actor: Principal) -> dict[str, Any]:
    get_key(conn, name)
    conn.execute(update(api_keys).where(api_keys.c.name == name, api_keys.c.revoked_at.is_(None))
                 .values(revoked_at=now))  # fmt: skip
    _audit(conn, actor, "api_key.revoked", now, name=name)
    return get_key(conn, name)


# -- The audit --------------------------------------------------------------------------------------------------


def audit(
    conn: Connection, *, actor: str | None = None, lead: int | None = None, since: datetime | None = None,
    until: datetime | None = None, limit: int = 100, offset: int = 0,
) -> dict[str, Any]:  # fmt: skip
    """Changes made by principals, newest first: {items, total, limit, offset}. `actor` is "user:NAME" or
    "key:NAME"; a key's changes for the people it names count as its own ("key:crm for anna")."""
    # Principals ("user:olena", "key:crm", "system:cli"); the processes' own steps ("sla", "batch") are not the audit.
    query = select(events).where(events.c.actor.like("%:%"))
    if actor is not None:
        query = query.where((events.c.actor == actor) | events.c.actor.like(actor.replace("%", "") + " for %"))
    if lead is not None:
        query = query.where(events.c.lead_id == lead)
    if since is not None:
        query = query.where(events.c.at >= since)
    if until is not None:
        query = query.where(events.c.at < until)
    total = conn.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    rows = conn.execute(query.order_by(events.c.id.desc()).limit(limit).offset(offset)).mappings()
    return {"items": [dict(r) for r in rows], "total": total, "limit": limit, "offset": offset}


# -- The first start --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FirstAccount:
    username: str
    role: str
    password: str


def first_start(conn: Connection, now: datetime, actor: Principal) -> tuple[list[FirstAccount], str] | None:
    """On a database with no account and no key: an admin, an account for every manager (a team's head as its
    head, a desk operator as desk), and an admin API key, each with a random secret to be shown once. None when
    there are accounts already."""
    if has_accounts(conn) or conn.execute(select(users.c.id).limit(1)).first() is not None:
        return None
    made = [FirstAccount("admin", "admin", new_password())]
    create_user(conn, "admin", made[0].password, now, role="admin", name="Administrator", actor=actor)
    heads = dict(conn.execute(select(teams.c.head_key, teams.c.key).where(teams.c.head_key.is_not(None))).all())
    people = conn.execute(
        select(managers.c.key, managers.c.name, managers.c.role, teams.c.key.label("team"))
        .join(teams, teams.c.id == managers.c.team_id).where(managers.c.active).order_by(managers.c.id)
    ).all()  # fmt: skip
    for person in people:
        if person.key == "admin":
            continue
        role = "head" if person.key in heads else "desk" if person.role == "desk" else "manager"
        password = new_password()
        create_user(conn, person.key, password, now, role=role, teams_=[heads.get(person.key, person.team)],
                    name=person.name, manager=person.key, actor=actor)  # fmt: skip
        made.append(FirstAccount(person.key, role, password))
    key, _ = create_key(conn, "first start", "admin", now, actor=actor)
    return made, key
