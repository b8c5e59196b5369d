"""Administration over real HTTP: users and roles, API keys shown once, the audit; secrets never shown twice."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

import httpx
import pytest
from sqlalchemy import select

from leadflow.services import accounts
from leadflow.services.context import Leadflow
from leadflow.store.tables import users
from tests.support import bearer, live_server, new_key, web_sign_in, web_user

RULES = """
default_timezone: Europe/Kyiv
teams:
  - {key: sales, name: Sales, head: halyna, hours: always}
  - {key: vip, name: VIP, head: oleh, hours: always}
managers:
  - {key: anna, name: Anna, team: sales}
  - {key: bohdan, name: Bohdan, team: sales}
  - {key: halyna, name: Halyna, team: sales}
  - {key: oleh, name: Oleh, team: vip}
routing:
  rules:
    - {key: to-anna, team: sales, managers: [anna]}
"""
SECRET = re.compile(r'<input id="once-secret" class="secret" value="([^"]+)"')


def _once(page: httpx.Response) -> str:
    assert page.status_code == 200, page.text
    assert page.headers["cache-control"] == "no-store"
    found = SECRET.search(page.text)
    assert found, page.text
    return found.group(1)


def _installed(app: Leadflow) -> Leadflow:
    """The installation's key secret, as the migration makes it (the PostgreSQL tests empty every table, and the
    authenticator's own look-up of a missing secret does not commit the one it makes)."""
    with app.engine.begin() as conn:
        accounts.key_secret(conn)
    return app


def _hashes(app: Leadflow) -> list[str]:
    with app.engine.connect() as conn:
        return list(conn.execute(select(users.c.password_hash)).scalars())


def test_an_admin_creates_a_user_who_signs_in_with_the_password_shown_once(
    make_app: Callable[[str], Leadflow], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    app = make_app(RULES)
    password = web_user(app, "root", "admin")
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as admin:
        csrf = web_sign_in(admin, "root", password)
        made = admin.post("/admin/users", data={"csrf_token": csrf, "username": "Bohdan", "name": "Bohdan M.",
                                                "role": "manager", "manager": "bohdan", "team": "", "password": ""})  # fmt: skip
        shown = _once(made)
        assert "cannot be shown again" in made.text
        listed = admin.get("/admin/users")
        assert listed.status_code == 200
        assert 'data-user="bohdan"' in listed.text and "Bohdan M." in listed.text
        assert shown not in listed.text and not any(h in listed.text for h in _hashes(app))
        with httpx.Client(base_url=url, timeout=30) as bohdan:
            web_sign_in(bohdan, "bohdan", shown)
            assert bohdan.get("/").status_code == 200

        given = admin.post("/admin/users", data={"csrf_token": csrf, "username": "oleh", "role": "head",
                                                 "team": "vip", "manager": "oleh", "password": "oleh-own-password"})  # fmt: skip
        assert given.status_code == 200 and SECRET.search(given.text) is None and "oleh-own-password" not in given.text
        again = admin.post("/admin/users", data={"csrf_token": csrf, "username": "oleh", "role": "admin"})
        assert again.status_code == 409
        short = admin.post("/admin/users", data={"csrf_token": csrf, "username": "x", "role": "admin",
                                                 "password": "Zq9-tiny"})  # fmt: skip
        assert short.status_code == 422 and "password" in short.text and "Zq9-tiny" not in short.text

        reset = admin.post("/admin/users/bohdan/password", data={"csrf_token": csrf})
        fresh = _once(reset)
        assert fresh != shown
        with httpx.Client(base_url=url, timeout=30) as bohdan:
            refused = bohdan.post("/login", data={"username": "bohdan", "password": shown})
            assert refused.status_code == 401
            web_sign_in(bohdan, "bohdan", fresh)
            disabled = admin.post("/admin/users/bohdan/disable", data={"csrf_token": csrf},
                                  headers={"HX-Request": "true"})  # fmt: skip
            assert disabled.status_code == 200 and "disabled and signed out" in disabled.text
            out = bohdan.get("/", follow_redirects=False)
            assert out.status_code == 303 and out.headers["location"].startswith("/login")
    assert caplog.records and shown not in caplog.text and fresh not in caplog.text


def test_a_key_is_shown_once_works_until_revoked_and_never_appears_in_the_list(
    make_app: Callable[[str], Leadflow], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    app = _installed(make_app(RULES))
    password = web_user(app, "root", "admin")
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as admin:
        csrf = web_sign_in(admin, "root", password)
        made = admin.post("/admin/keys", data={"csrf_token": csrf, "name": "crm sync", "scope": "read"})
        key = _once(made)
        assert key.startswith("lf_") and "cannot be shown again" in made.text
        assert httpx.get(f"{url}/api/v1/leads", headers=bearer(key), timeout=30).status_code == 200
        listed = admin.get("/admin/keys")
        assert 'data-key="crm sync"' in listed.text and key[:10] in listed.text and key not in listed.text

        intake = admin.post("/admin/keys", data={"csrf_token": csrf, "name": "site form", "scope": "intake",
                                                 "origins": "https://shop.example\nhttps://www.shop.example",
                                                 "rate_per_minute": "60"})  # fmt: skip
        _once(intake)
        listed = admin.get("/admin/keys")
        assert "https://www.shop.example" in listed.text and "60 a minute" in listed.text
        bad = admin.post("/admin/keys", data={"csrf_token": csrf, "name": "x", "scope": "read", "origins": "shop"})
        assert bad.status_code == 422

        revoked = admin.post("/admin/keys/crm%20sync/revoke", data={"csrf_token": csrf}, headers={"HX-Request": "true"})
        assert revoked.status_code == 200 and "is revoked" in revoked.text and key not in revoked.text
        assert httpx.get(f"{url}/api/v1/leads", headers=bearer(key), timeout=30).status_code == 401
    assert caplog.records and key not in caplog.text


def test_an_added_role_opens_a_teams_leads_and_the_audit_names_who_did_it(make_app: Callable[[str], Leadflow]) -> None:
    app = make_app(RULES)
    root = web_user(app, "root", "admin")
    bohdan = web_user(app, "bohdan", "manager", manager="bohdan")
    writer = new_key(app, "write")
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as admin, \
            httpx.Client(base_url=url, timeout=30) as other:  # fmt: skip
        lead = admin.post("/api/v1/leads", json={"phone": "+380671110001", "name": "Client"}, headers=bearer(writer))
        lead_id = lead.json()["id"]
        csrf = web_sign_in(admin, "root", root)
        web_sign_in(other, "bohdan", bohdan)
        assert other.get(f"/leads/{lead_id}").status_code == 404  # Anna's lead
        assert other.get("/rules").status_code == 403

        added = admin.post("/admin/users/bohdan/roles", data={"csrf_token": csrf, "role": "head", "team": "sales"},
                           headers={"HX-Request": "true"})  # fmt: skip
        assert added.status_code == 200 and 'data-role="head" data-team="sales"' in added.text
        assert other.get(f"/leads/{lead_id}").status_code == 200  # at once: the same session
        assert other.get("/rules").status_code == 200
        twice = admin.post("/admin/users/bohdan/roles", data={"csrf_token": csrf, "role": "head", "team": "sales"})
        assert twice.status_code == 409
        nowhere = admin.post("/admin/users/bohdan/roles", data={"csrf_token": csrf, "role": "head", "team": "mars"})
        assert nowhere.status_code == 422

        removed = admin.post("/admin/users/bohdan/roles/remove", data={"csrf_token": csrf, "role": "head",
                                                                       "team": "sales"})  # fmt: skip
        assert removed.status_code == 303
        assert other.get(f"/leads/{lead_id}").status_code == 404
        last = admin.post("/admin/users/bohdan/roles/remove", data={"csrf_token": csrf, "role": "manager"})
        assert last.status_code == 409

        audit = admin.get("/admin/audit")
        assert audit.status_code == 200
        rows = re.findall(r'<tr data-type="([^"]+)" data-actor="([^"]+)">', audit.text)
        assert rows[:2] == [("user.role_removed", "user:root"), ("user.role_added", "user:root")]
        assert "Role added" in audit.text and "team: sales" in audit.text
        mine = admin.get("/admin/audit", params={"actor": "user:bohdan"})
        assert {t for t, a in re.findall(r'<tr data-type="([^"]+)" data-actor="([^"]+)">', mine.text)} == {
            "user.signed_in"}  # fmt: skip


def test_only_admins_open_the_administration(make_app: Callable[[str], Leadflow]) -> None:
    app = make_app(RULES)
    head = web_user(app, "halyna", "head", manager="halyna", teams=["sales"])
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        csrf = web_sign_in(client, "halyna", head)
        for path in ("/admin/users", "/admin/keys", "/admin/audit"):
            assert client.get(path).status_code == 403, path
        tried = client.post("/admin/users/halyna/roles", data={"csrf_token": csrf, "role": "admin"})
        assert tried.status_code == 403
        assert client.post("/admin/keys", data={"csrf_token": csrf, "name": "x", "scope": "admin"}).status_code == 403
