"""Who is asking, and may they: every route declares the action it performs with `permit(action)`.

A request is authenticated by, in order:
- `Authorization: Bearer <token>`: an API key (`lf_...`) or a session token from POST /api/v1/auth/login
  (`lfs_...`), for API clients that act as a person;
- the session cookie a browser got at sign-in; a request that changes anything must then also carry the session's
  CSRF token (the `X-CSRF-Token` header, or a `csrf_token` form field), which another site cannot read;
- on POST /api/v1/leads only, a `_key` field of an HTML form: a plain form cannot set a header, and an intake key
  can do nothing but create leads.
Keys are never taken from the query string: addresses end up in proxies' and browsers' logs.

What a token is, is looked up in the database and remembered for one second, so a revoked key or a disabled user
is refused within a second everywhere, and at once in the process that revoked it.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar
from urllib.parse import parse_qs

from anyio import to_thread
from fastapi import Depends, Request
from fastapi.routing import APIRoute
from fastapi.security import HTTPBearer
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from leadflow.core.errors import Forbidden, TooManyRequests, Unauthenticated, Unavailable
from leadflow.core.policy import Action, Principal, can, needed_for
from leadflow.core.rate import SlidingWindows
from leadflow.services import accounts
from leadflow.services.accounts import KeyHolder, SessionHolder, SessionTimes
from leadflow.services.context import Leadflow, utcnow

log = logging.getLogger("leadflow.api")
T = TypeVar("T")
SESSION_COOKIE = "leadflow_session"
CSRF_HEADER = "x-csrf-token"
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})
_QUERY_KEYS = frozenset({"api_key", "apikey", "key", "token", "access_token"})
_CACHE_SECONDS = 1.0
_CACHE_MAX = 10_000
_TOUCH_SECONDS = 60  # last use and last activity are written at most this often


@dataclass(frozen=True, slots=True)
class Seen:
    holder: KeyHolder | SessionHolder
    until: float


class Authenticator:
    """Tokens to principals for one process: the database's answer, remembered a second."""

    def __init__(self, app: Leadflow, times: SessionTimes) -> None:
        self.app = app
        self.times = times
        self._secret: bytes | None = None
        self._seen: dict[str, Seen] = {}
        self._limits = SlidingWindows()
        self._pending: dict[str, asyncio.Future[KeyHolder | SessionHolder | None]] = {}
        self._touches: set[asyncio.Task[None]] = set()

    def secret(self) -> bytes:
        if self._secret is None:
            with self.app.engine.begin() as conn:  # a secret it has to make (a restore lost it) must be kept
                self._secret = accounts.key_secret(conn)
        return self._secret

    def forget(self) -> None:
        """Drop what is remembered: a key was revoked or a user disabled here."""
        self._seen.clear()

    async def holder(self, token: str) -> KeyHolder | SessionHolder | None:
        if self._secret is None:
            await _database(to_thread.run_sync, self.secret)
        assert self._secret is not None
        token_digest = accounts.digest(self._secret, token)
        seen = self._seen.get(token_digest)
        now = time.monotonic()
        if seen is not None and seen.until > now:
            return seen.holder
        # One look-up per token at a time: the requests that find the memory expired together wait for it.
        pending = self._pending.get(token_digest)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[KeyHolder | SessionHolder | None] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_retrieved)
        self._pending[token_digest] = future
        try:
            found = await _database(to_thread.run_sync, self._look_up, token, token_digest)
            future.set_result(found)
        except Exception as exc:
            future.set_exception(exc)
            raise
        except BaseException:  # cancelled: the requests waiting for this look-up are cancelled with it
            future.cancel()
            raise
        finally:
            self._pending.pop(token_digest, None)
        if found is None:
            self._seen.pop(token_digest, None)
            return None
        if len(self._seen) >= _CACHE_MAX:
            self._seen.clear()
        self._seen[token_digest] = Seen(found, now + _CACHE_SECONDS)
        self._touch(found)
        return found

    def _look_up(self, token: str, token_digest: str) -> KeyHolder | SessionHolder | None:
        with self.app.engine.connect() as conn:
            if token.startswith(accounts.SESSION_PREFIX):
                return accounts.find_session(conn, token_digest, utcnow(), self.times)
            return accounts.find_key(conn, token_digest)

    def _touch(self, found: KeyHolder | SessionHolder) -> None:
        """Record the last use (a key) or activity (a session) at most once a minute, through the process's writer
        and off the request's path: it is for people to read, and must not wait for the write lock."""
        now = utcnow()
        if isinstance(found, SessionHolder):
            if (now - found.last_seen_at).total_seconds() <= _TOUCH_SECONDS:
                return
            session_id = found.principal.session_id or 0
            work: Callable[[Connection], None] = lambda conn: accounts.touch_session(conn, session_id, now)  # noqa: E731
        else:
            if found.last_used_at is not None and (now - found.last_used_at).total_seconds() <= _TOUCH_SECONDS:
                return
            key_id = found.principal.id or 0
            work = lambda conn: accounts.touch_key(conn, key_id, now)  # noqa: E731
        task = asyncio.get_running_loop().create_task(self._write(work))
        self._touches.add(task)
        task.add_done_callback(self._touches.discard)

    async def _write(self, work: Callable[[Connection], None]) -> None:
        try:
            await self.app.transaction_async(work)
        except Exception:  # a last-used time is not worth failing anything for
            log.warning("could not record when a key or session was last used", exc_info=True)

    def check_rate(self, key: KeyHolder, address: str | None) -> None:
        """An intake key's limits: leads per minute for the key, and from one client address."""
        now = time.monotonic()
        for limit, counted, what in (
            (key.rate_per_minute, (key.principal.name,), "this key"),
            (key.address_rate_per_minute, (key.principal.name, address or "-"), "this address"),
        ):
            if limit:
                wait = self._limits.hit(counted, limit, now)
                if wait:
                    raise TooManyRequests(f"too many leads from {what}: at most {limit} a minute; try again in {wait} s",
                                          wait)  # fmt: skip


async def _database(run: Callable[..., Awaitable[T]], *args: Any) -> T:
    """run(*args), a database read; a database that fails is 503 (the credentials cannot be checked), not 500."""
    try:
        return await run(*args)
    except SQLAlchemyError as exc:
        problem = " ".join(str(getattr(exc, "orig", None) or exc).split())
        raise Unavailable(f"the credentials cannot be checked: the database failed: {problem}") from None


def _retrieved(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # seen: a failure every waiter got is not "never retrieved"


def authenticator(request: Request) -> Authenticator:
    found: Authenticator = request.app.state.auth
    return found


def client_address(request: Request) -> str | None:
    return request.client.host if request.client else None


async def _form_field(request: Request, name: str) -> str | None:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/x-www-form-urlencoded":
        body = await request.body()
        values = parse_qs(body.decode("utf-8", "replace"), max_num_fields=1000).get(name)
        return values[0] if values else None
    if kind == "multipart/form-data":
        await request.body()  # kept on the request, so the route reads the same bytes again
        value = (await request.form()).get(name)
        return value if isinstance(value, str) else None
    return None


async def authenticate(request: Request, action: Action) -> Principal:
    """The principal of this request, or Unauthenticated; the caller checks what it may do."""
    if _QUERY_KEYS & set(request.query_params):
        raise Unauthenticated(
            "send the key in the Authorization header (Authorization: Bearer <key>), never in the address: "
            "addresses are written to logs"
        )
    auth = authenticator(request)
    address = client_address(request)
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("the Authorization header reads: Bearer <key>")
        holder = await auth.holder(token.strip())
        if holder is None:
            raise Unauthenticated("the key or session token is not valid: unknown, revoked, or expired")
        return await _checked(request, auth, holder, address, action, cookie=False)
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        holder = await auth.holder(cookie)
        if isinstance(holder, SessionHolder):
            return await _checked(request, auth, holder, address, action, cookie=True)
        raise Unauthenticated("the session has ended: sign in again")
    if action is Action.LEAD_CREATE:
        form_key = await _form_field(request, "_key")
        if form_key:
            holder = await auth.holder(form_key)
            if isinstance(holder, KeyHolder):
                return await _checked(request, auth, holder, address, action, cookie=False)
            raise Unauthenticated("the form's key is not valid: unknown or revoked")
    raise Unauthenticated("sign in, or send an API key: Authorization: Bearer <key>")


async def _checked(
    request: Request, auth: Authenticator, holder: KeyHolder | SessionHolder, address: str | None, action: Action,
    *, cookie: bool,
) -> Principal:  # fmt: skip
    if isinstance(holder, SessionHolder):
        if cookie and request.method not in _SAFE:
            sent = request.headers.get(CSRF_HEADER) or await _form_field(request, "csrf_token") or ""
            if not hmac.compare_digest(sent.encode(), holder.csrf_token.encode()):
                raise Forbidden(
                    "this change came without the session's CSRF token (the X-CSRF-Token header or a csrf_token "
                    "form field): it may have been sent by another site"
                )
        return holder.principal.at(address)
    principal = holder.principal.at(address)
    if principal.scope == "intake" and action is Action.LEAD_CREATE:
        if holder.origins is not None:
            origin = (request.headers.get("origin") or "").rstrip("/").lower()
            if origin not in holder.origins:
                raise Forbidden(f"this key takes leads only from {', '.join(holder.origins)}")
        auth.check_rate(holder, address)
    return principal


# Declares the Bearer scheme in the OpenAPI document (Swagger's Authorize button); the check itself is ours.
BEARER = HTTPBearer(auto_error=False, description="An API key (lf_...) or a session token from /api/v1/auth/login")


def permit(action: Action) -> Any:
    """The dependency a route declares: authenticate, then refuse (403, naming what is needed) what the principal
    may not do at all. Which lead or team it may touch, the service decides."""

    async def check(request: Request, _: Annotated[Any, Depends(BEARER)] = None) -> Principal:
        settled = getattr(request.state, "principal", None)
        if settled is not None:  # checked already, before the body was read (api/params.py)
            return settled
        who = await authenticate(request, action)
        if not can(who, action):
            raise Forbidden(f"{who.kind} '{who.name}' may not do this ({action.value}): it takes {needed_for(action)}")
        request.state.principal = who
        return who

    check.leadflow_action = action  # type: ignore[attr-defined]  # the route table test and the docs read it
    return Depends(check)


def declared_action(route: APIRoute) -> Action | None:
    """The action a route declared with permit(), if any."""
    for dependency in route.dependant.dependencies:
        action = getattr(dependency.call, "leadflow_action", None)
        if action is not None:
            return action
    return None


def declared_public(route: APIRoute) -> str | None:
    """Why a route is open to anyone, if it said so with public()."""
    for dependency in route.dependant.dependencies:
        reason = getattr(dependency.call, "leadflow_public", None)
        if reason is not None:
            return reason
    return None


def public(reason: str) -> Any:
    """The dependency of a route anyone may call: says so in the route table, with why."""

    async def open_to_all() -> None:
        return None

    open_to_all.leadflow_public = reason  # type: ignore[attr-defined]
    return Depends(open_to_all)
