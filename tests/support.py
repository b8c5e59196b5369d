"""Shared test helpers: a real uvicorn server on loopback, rules texts."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from leadflow.api.app import create_api
from leadflow.core.policy import SYSTEM
from leadflow.services import accounts
from leadflow.services.context import Leadflow, utcnow
from leadflow.settings import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def live_server(app: Leadflow, **settings: object) -> Iterator[str]:
    """Serve the API for `app` on a free loopback port in a thread; yields the base URL."""
    port = free_port()
    config = Settings(host="127.0.0.1", port=port, **settings)  # type: ignore[arg-type]
    api = create_api(app, config)
    # A page's live stream never ends by itself: stopping gives open answers half a second, as serve gives them 3 s.
    server = uvicorn.Server(uvicorn.Config(api, host="127.0.0.1", port=port, log_level="warning", lifespan="off",
                                           timeout_graceful_shutdown=0.5))  # fmt: skip
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.01)
    url = f"http://127.0.0.1:{port}"
    SERVED[url] = api
    try:
        yield url
    finally:
        SERVED.pop(url, None)
        server.should_exit = True
        thread.join(timeout=10)


# The app each live server serves, by its URL: for a test that tunes the running app (the live hub's heartbeat).
SERVED: dict[str, FastAPI] = {}


# Tables of accounts and keys, which a test made before what it watches (they are not the lead's writes).
ACCOUNT_TABLES = ("users", "user_roles", "api_keys", "sessions", "login_failures", "instance")


def new_key(app: Leadflow, scope: str = "admin", **options: object) -> str:
    """A new API key of this scope in the app's database."""
    with app.engine.begin() as conn:
        key, _ = accounts.create_key(conn, f"{scope} {uuid.uuid4().hex[:10]}", scope, utcnow(), actor=SYSTEM,
                                     **options)  # type: ignore[arg-type]  # fmt: skip
    return key


def key_by_cli(env: dict[str, str], cwd: Path, scope: str = "write") -> dict[str, str]:
    """Headers with a key made by the real `leadflow api-keys create` in the database `env` names (which it
    migrates), as an operator makes one before pointing a client at `leadflow serve`."""
    leadflow = str(Path(sys.executable).parent / "leadflow")
    made = subprocess.run([leadflow, "api-keys", "create", "--scope", scope, "--name", f"test {uuid.uuid4().hex[:8]}"],
                          env=env, cwd=cwd, capture_output=True, text=True, timeout=120, check=True)  # fmt: skip
    found = re.search(r"lf_[A-Za-z0-9_-]{43}", made.stdout)
    assert found, made.stdout + made.stderr
    return bearer(found.group(0))


def error_body(answer: httpx.Response, status: int, field: str | None = None) -> dict[str, Any]:
    """The one error shape, with this status (and a problem naming `field`, when given)."""
    assert answer.status_code == status, answer.text
    body: dict[str, Any] = answer.json()
    assert set(body) == {"error", "message", "problems"}, body
    if field is not None:
        assert field in [p["field"] for p in body["problems"]], body
    return body


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def admin_headers(app: Leadflow) -> dict[str, str]:
    """Headers that authenticate as an admin key (most API tests are about something else than who may ask)."""
    return bearer(new_key(app, "admin"))


def person(
    app: Leadflow, username: str, role: str, *, manager: str | None = None, teams: list[str] | None = None
) -> dict[str, str]:
    """Headers that authenticate as a new user with this role, signed in (a session token, as the API's login
    gives)."""
    password = f"{username}-password-1"
    with app.engine.begin() as conn:
        accounts.create_user(conn, username, password, utcnow(), role=role, teams_=teams, manager=manager,
                             actor=SYSTEM)  # fmt: skip
        session = accounts.sign_in(conn, accounts.key_secret(conn), username, password, utcnow(), address=None,
                                   user_agent=None, throttle=accounts.Throttle(),
                                   times=accounts.SessionTimes())  # fmt: skip
    return bearer(session.token)


THREE_MANAGERS = """
default_region: UA
default_timezone: Europe/Kyiv
teams:
  - {key: sales, name: Sales, timezone: Europe/Kyiv, head: head}
managers:
  - {key: anna, name: Anna, team: sales, capacity: 1000, products: [credit], regions: [UA]}
  - {key: bohdan, name: Bohdan, team: sales, capacity: 1000, products: [credit, leasing], regions: [UA, PL]}
  - {key: chrystia, name: Chrystia, team: sales, capacity: 1000, products: [leasing], regions: [PL]}
  - {key: head, name: Head of sales, team: sales, capacity: 1000, active: true}
routing:
  rules:
    - {key: all, team: sales, managers: [anna, bohdan, chrystia], strategy: round_robin}
junk:
  own_domains: [ourcompany.ua]
  keywords: [casino]
  blocked_sources: [spam-partner]
"""


SLA_TEAM = """
default_timezone: Europe/Kyiv
default_language: uk
teams:
  - {key: sales, name: Sales, head: head, telegram_chat_id: "-100500"}
managers:
  - {key: anna, name: Anna, team: sales, email: anna@example.test, languages: [uk]}
  - {key: bohdan, name: Bohdan, team: sales, email: bohdan@example.test, languages: [ru]}
  - {key: chrystia, name: Chrystia, team: sales, email: chrystia@example.test, languages: [en]}
  - {key: head, name: Halyna, team: sales, email: head@example.test, languages: [uk]}
routing:
  rules:
    - {key: all, team: sales, managers: [anna, bohdan, chrystia], strategy: round_robin}
sla:
  default: {first_contact: 2s, count: wall_clock, chain: {max_hops: 3}}
"""


def web_user(app: Leadflow, username: str, role: str, *, manager: str | None = None,
             teams: list[str] | None = None, language: str | None = None) -> str:  # fmt: skip
    """A new user with this role; returns the password, for signing in through /login as a browser does."""
    password = f"{username}-password-1"
    with app.engine.begin() as conn:
        accounts.create_user(conn, username, password, utcnow(), role=role, teams_=teams, manager=manager,
                             actor=SYSTEM)  # fmt: skip
        if language:
            user_id = accounts.get_user(conn, username)["id"]
            accounts.set_language(conn, user_id, language, ("uk", "ru", "en"))
    return password


def web_sign_in(client: httpx.Client, username: str, password: str) -> str:
    """Sign `client` in through the sign-in page (it keeps the session cookie); returns the session's CSRF token,
    read from a page as a browser's form has it."""
    answer = client.post("/login", data={"username": username, "password": password, "next": "/search"})
    assert answer.status_code == 303, answer.text
    page = client.get("/search")
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, page.text[:500]
    return found.group(1)
