"""Signing in and out, sessions and CSRF, throttling, keys and their revocation, intake keys in public forms,
and the audit, over real HTTP on loopback against SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from leadflow.core.policy import SYSTEM
from leadflow.services import accounts
from leadflow.services.context import Leadflow, utcnow
from leadflow.store.tables import api_keys, events, leads, managers, sessions
from tests.support import admin_headers, bearer, live_server, new_key

RULES = """
default_region: UA
default_timezone: Europe/Kyiv
teams:
  - {key: sales, name: Sales, head: halyna, hours: always}
managers:
  - {key: anna, name: Anna, team: sales, email: anna@example.org}
  - {key: bohdan, name: Bohdan, team: sales, email: bohdan@example.org}
  - {key: halyna, name: Halyna, team: sales}
routing:
  rules:
    - {key: to-anna, team: sales, managers: [anna], when: {product: credit}, strategy: round_robin}
    - {key: to-bohdan, team: sales, managers: [bohdan], when: {product: leasing}, strategy: round_robin}
"""
PASSWORD = "correct horse battery"


@pytest.fixture
def lf(make_app: Callable[[str], Leadflow]) -> Leadflow:
    lf = make_app(RULES)
    with lf.engine.begin() as conn:
        for name, role in (("anna", "manager"), ("bohdan", "manager")):
            accounts.create_user(conn, name, PASSWORD, utcnow(), role=role, manager=name, actor=SYSTEM)
        accounts.create_user(conn, "root", PASSWORD, utcnow(), role="admin", actor=SYSTEM)
    return lf


@pytest.fixture
def url(lf: Leadflow) -> Iterator[str]:
    with live_server(lf, login_failures_per_account=3, login_failures_per_address=50) as url:
        yield url


def client(url: str, **headers: str) -> httpx.Client:
    return httpx.Client(base_url=url, timeout=30, headers=headers, follow_redirects=False)


def login(api: httpx.Client, username: str, password: str = PASSWORD) -> httpx.Response:
    return api.post("/api/v1/auth/login", json={"username": username, "password": password})


def lead_of(api_key: dict[str, str], url: str, product: str, phone: str) -> int:
    with client(url, **api_key) as api:
        r = api.post("/api/v1/leads", json={"name": "Client", "phone": phone, "product": product})
        assert r.status_code == 201, r.text
        lead_id: int = r.json()["id"]
        return lead_id


def test_a_manager_cannot_read_change_or_contact_another_managers_lead(lf: Leadflow, url: str) -> None:
    admin = admin_headers(lf)
    annas = lead_of(admin, url, "credit", "+380671112201")
    bohdans = lead_of(admin, url, "leasing", "+380671112202")
    with client(url) as api:
        token = login(api, "anna").json()["token"]
        api.headers.update(bearer(token))
        assert api.get(f"/api/v1/leads/{annas}").status_code == 200
        for method, path, body in (
            ("GET", f"/api/v1/leads/{bohdans}", None),
            ("GET", f"/api/v1/leads/{bohdans}/routing", None),
            ("POST", f"/api/v1/leads/{bohdans}/status", {"status": "qualified"}),
            ("POST", f"/api/v1/leads/{bohdans}/contact", {"kind": "call", "outcome": "connected"}),
            ("POST", f"/api/v1/leads/{bohdans}/convert", {"to": "contact"}),
            ("POST", f"/api/v1/leads/{bohdans}/restore", None),
        ):
            r = api.request(method, path, json=body)
            assert r.status_code == 404, (path, r.text)  # as if it did not exist: the id tells nothing
            assert "+380671112202" not in r.text
        # Her own contact on her own lead, named or not; not one in Bohdan's name.
        assert api.post(f"/api/v1/leads/{annas}/contact", json={"manager": "bohdan"}).status_code == 403
        r = api.post(f"/api/v1/leads/{annas}/contact", json={"kind": "call", "outcome": "connected"})
        assert r.status_code == 200 and r.json()["first_contact"], r.text
        listed = api.get("/api/v1/leads").json()
        assert [i["id"] for i in listed["items"]] == [annas] and listed["total"] == 1
    with lf.engine.connect() as conn:
        status = conn.execute(select(leads.c.status, leads.c.first_contact_at).where(leads.c.id == bohdans)).one()
    assert status.status == "assigned" and status.first_contact_at is None


def test_a_former_owner_reads_the_lead_but_cannot_change_it(lf: Leadflow, url: str) -> None:
    admin = admin_headers(lf)
    lead_id = lead_of(admin, url, "credit", "+380671112203")
    with client(url, **admin) as api:
        moved = api.post(f"/api/v1/leads/{lead_id}/assign", json={"manager": "bohdan", "reason": "anna is ill"})
        assert moved.status_code == 200, moved.text
    with client(url) as api:
        api.headers.update(bearer(login(api, "anna").json()["token"]))
        assert api.get(f"/api/v1/leads/{lead_id}").status_code == 200
        r = api.post(f"/api/v1/leads/{lead_id}/status", json={"status": "qualified"})
        assert r.status_code == 403 and "only read" in r.json()["message"]
        # Her late call still counts (the client was reached), recorded as hers.
        late = api.post(f"/api/v1/leads/{lead_id}/contact", json={"kind": "call", "outcome": "connected"})
        assert late.status_code == 200 and late.json()["late"] is True, late.text


def test_a_session_cookie_needs_the_csrf_token_for_every_change(lf: Leadflow, url: str) -> None:
    lead_id = lead_of(admin_headers(lf), url, "credit", "+380671112204")
    with client(url) as browser:
        page = browser.get("/login")
        assert page.status_code == 200 and 'name="password"' in page.text
        signed_in = browser.post("/login", data={"username": "anna", "password": PASSWORD, "next": "/"})
        assert signed_in.status_code == 303 and signed_in.headers["location"] == "/"
        cookie = signed_in.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie and "secure" not in cookie  # plain HTTP here
        home = browser.get("/")
        assert home.status_code == 200 and "anna" in home.text
        csrf = home.text.split('name="csrf_token" value="')[1].split('"')[0]
        # Reads need no token; a change without one is what another site's form would send.
        assert browser.get(f"/api/v1/leads/{lead_id}").status_code == 200
        forged = browser.post(f"/api/v1/leads/{lead_id}/status", json={"status": "qualified"})
        assert forged.status_code == 403 and "CSRF" in forged.json()["message"]
        cross_site = browser.post("/api/v1/assign/unassigned", data={"dry_run": "false"},
                                  headers={"Origin": "https://evil.example"})  # fmt: skip
        assert cross_site.status_code == 403
        wrong = browser.post(f"/api/v1/leads/{lead_id}/status", json={"status": "qualified"},
                             headers={"X-CSRF-Token": "not-the-token"})  # fmt: skip
        assert wrong.status_code == 403
        ok = browser.post(f"/api/v1/leads/{lead_id}/status", json={"status": "qualified"},
                          headers={"X-CSRF-Token": csrf})  # fmt: skip
        assert ok.status_code == 200, ok.text
        out = browser.post("/logout", data={"csrf_token": csrf})
        assert out.status_code == 303
        browser.cookies.clear()
        browser.cookies.set("leadflow_session", signed_in.cookies["leadflow_session"])
        assert browser.get(f"/api/v1/leads/{lead_id}").status_code == 401  # the session row was revoked
    with lf.engine.connect() as conn:
        changed = conn.execute(select(events.c.actor).where(events.c.type == "lead.status_changed")).scalars().all()
    assert changed == ["user:anna"]


def test_failed_sign_ins_lock_the_account_and_an_admin_sees_the_lock(lf: Leadflow, url: str) -> None:
    with client(url) as api:
        for _ in range(3):
            assert login(api, "anna", "wrong password").status_code == 401
        locked = login(api, "anna")  # the right password, during the lock
        assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 0
        assert "too many failed sign-ins" in locked.json()["message"]
        assert login(api, "bohdan").status_code == 200  # another account is not locked
        api.headers.update(bearer(login(api, "root").json()["token"]))
        locks = api.get("/api/v1/auth/locks").json()
        assert [(x["kind"], x["value"], x["failures"]) for x in locks] == [("account", "anna", 3)]
        assert api.post("/api/v1/users/anna/password", json={"password": "a brand new one"}).status_code == 204
        assert api.get("/api/v1/auth/locks").json() == []
    with client(url) as api:
        assert login(api, "anna", "a brand new one").status_code == 200
        unknown = login(api, "nobody", "whatever it is")
        assert unknown.status_code == 401 and unknown.json()["message"] == "wrong username or password"


def test_a_revoked_key_and_a_disabled_user_are_refused_at_once(lf: Leadflow, url: str) -> None:
    key = new_key(lf, "read")
    with client(url, **admin_headers(lf)) as admin, client(url, **bearer(key)) as machine:
        assert machine.get("/api/v1/leads").status_code == 200
        name = next(k["name"] for k in admin.get("/api/v1/api-keys").json() if k["name"].startswith("read "))
        assert admin.delete(f"/api/v1/api-keys/{name}").status_code == 200
        refused = machine.get("/api/v1/leads")
        assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer")
        listed = next(k for k in admin.get("/api/v1/api-keys").json() if k["name"] == name)
        assert listed["revoked_at"] is not None and listed["last_used_at"] is not None
        assert "digest" not in listed and "key" not in listed
        with client(url) as person_api:
            person_api.headers.update(bearer(login(person_api, "bohdan").json()["token"]))
            assert person_api.get("/api/v1/leads").status_code == 200
            assert admin.post("/api/v1/users/bohdan/disable").status_code == 200
            assert person_api.get("/api/v1/leads").status_code == 401
            assert login(person_api, "bohdan").status_code == 401


def test_a_key_revoked_by_another_process_is_refused_within_a_second(lf: Leadflow, url: str) -> None:
    key = new_key(lf, "read")
    with client(url, **bearer(key)) as machine:
        assert machine.get("/api/v1/leads").status_code == 200
        with lf.engine.begin() as conn:  # as `leadflow api-keys revoke` does, from another process
            conn.execute(update(api_keys).where(api_keys.c.revoked_at.is_(None), api_keys.c.scope == "read")
                         .values(revoked_at=utcnow()))  # fmt: skip
        time.sleep(1.1)
        assert machine.get("/api/v1/leads").status_code == 401


def test_sessions_end_after_idle_and_absolute_timeouts(lf: Leadflow, url: str) -> None:
    with client(url) as api:
        idle_token = login(api, "anna").json()["token"]
        whole_token = login(api, "bohdan").json()["token"]
        assert api.get("/api/v1/auth/me", headers=bearer(idle_token)).json()["name"] == "anna"
    with lf.engine.begin() as conn:
        long_ago = utcnow() - timedelta(hours=5)  # the idle timeout is 4 hours
        conn.execute(update(sessions).where(sessions.c.user_id == _user_id(conn, "anna")).values(last_seen_at=long_ago))
        conn.execute(update(sessions).where(sessions.c.user_id == _user_id(conn, "bohdan"))
                     .values(expires_at=utcnow() - timedelta(seconds=1)))  # fmt: skip
    time.sleep(1.1)
    with client(url) as api:
        assert api.get("/api/v1/auth/me", headers=bearer(idle_token)).status_code == 401
        assert api.get("/api/v1/auth/me", headers=bearer(whole_token)).status_code == 401


def _user_id(conn: Any, username: str) -> int:
    from leadflow.store.tables import users

    found: int = conn.execute(select(users.c.id).where(users.c.username == username)).scalar_one()
    return found


def test_wrong_credentials_are_401_and_a_wrong_scope_403_naming_it(lf: Leadflow, url: str) -> None:
    intake = new_key(lf, "intake")
    with client(url) as api:
        assert api.get("/api/v1/leads").status_code == 401
        assert api.get("/api/v1/leads", headers={"Authorization": "Basic dXNlcjpwYXNz"}).status_code == 401
        assert api.get("/api/v1/leads", headers=bearer("lf_not-a-key")).status_code == 401
        in_query = api.get("/api/v1/leads", params={"api_key": intake})
        assert in_query.status_code == 401 and "Authorization header" in in_query.json()["message"]
        scoped = api.get("/api/v1/leads", headers=bearer(intake))
        assert scoped.status_code == 403 and "scope read or write or admin" in scoped.json()["message"]


def test_an_anonymous_patch_cannot_redirect_a_managers_notifications(lf: Leadflow, url: str) -> None:
    hijack = {"email": "attacker@evil.example", "telegram_chat_id": "666"}
    with client(url) as api:
        assert api.patch("/api/v1/managers/anna", json=hijack).status_code == 401
        api.headers.update(bearer(login(api, "bohdan").json()["token"]))
        assert api.patch("/api/v1/managers/anna", json=hijack).status_code == 403
    with lf.engine.connect() as conn:
        row = conn.execute(select(managers.c.email, managers.c.telegram_chat_id).where(managers.c.key == "anna")).one()
    assert (row.email, row.telegram_chat_id) == ("anna@example.org", None)


def test_an_intake_key_in_a_page_creates_leads_only_from_its_sites_within_its_limits(lf: Leadflow, url: str) -> None:
    key = new_key(lf, "intake", origins=["https://shop.example"], rate_per_minute=100, address_rate_per_minute=3)
    site = {"Origin": "https://shop.example"}
    with client(url) as browser:
        form = {"_key": key, "name": "Ivan", "phone": "+380671112210", "product": "credit"}
        posted = browser.post("/api/v1/leads", data=form, headers={**site, "Accept": "text/html"})
        assert posted.status_code == 201 and "Thank you" in posted.text
        elsewhere = browser.post("/api/v1/leads", data={**form, "phone": "+380671112211"},
                                 headers={"Origin": "https://evil.example"})  # fmt: skip
        assert elsewhere.status_code == 403 and "shop.example" in elsewhere.json()["message"]
        by_header = browser.post("/api/v1/leads", json={"phone": "+380671112212"}, headers={**site, **bearer(key)})
        assert by_header.status_code == 201
        third = browser.post("/api/v1/leads", data={**form, "phone": "+380671112214"}, headers=site)
        assert third.status_code == 201
        over = browser.post("/api/v1/leads", data={**form, "phone": "+380671112213"}, headers=site)
        assert over.status_code == 429 and int(over.headers["retry-after"]) >= 1
        assert browser.get("/api/v1/leads", headers=bearer(key)).status_code == 403
    with lf.engine.connect() as conn:
        assert conn.execute(select(leads.c.phone).order_by(leads.c.id)).scalars().all() == [
            "+380671112210", "+380671112212", "+380671112214"]  # fmt: skip
        actors = conn.execute(select(events.c.actor, events.c.address).where(events.c.type == "lead.received"))
        assert {(a.actor.split(" ")[0], a.address) for a in actors} == {("key:intake", "127.0.0.1")}


def test_a_bot_filling_the_hidden_field_is_kept_as_junk_with_the_reason(lf: Leadflow, url: str) -> None:
    key = new_key(lf, "intake")
    with client(url) as browser:
        bot = {"_key": key, "name": "Buy now", "phone": "+380671112220", "_gotcha": "http://spam.example"}
        r = browser.post("/api/v1/leads", data=bot)
        assert r.status_code == 201 and r.json()["status"] == "junk", r.text
        human = browser.post("/api/v1/leads", data={"_key": key, "phone": "+380671112221", "_gotcha": ""})
        assert human.json()["status"] != "junk"
    with lf.engine.connect() as conn:
        reason = conn.execute(select(leads.c.junk_reason).where(leads.c.phone == "+380671112220")).scalar_one()
    assert "hidden field '_gotcha'" in reason


def test_every_change_is_audited_with_its_actor_and_address(lf: Leadflow, url: str) -> None:
    lead_id = lead_of(admin_headers(lf), url, "credit", "+380671112230")
    with client(url) as api:
        api.headers.update(bearer(login(api, "root").json()["token"]))
        assert api.patch("/api/v1/managers/bohdan", json={"absent": True}).status_code == 200
        assert api.post(f"/api/v1/leads/{lead_id}/status", json={"status": "qualified"}).status_code == 200
        audit = api.get("/api/v1/audit", params={"actor": "user:root"}).json()
        kinds = [(e["type"], e["address"]) for e in audit["items"]]
        assert ("manager.updated", "127.0.0.1") in kinds and ("lead.status_changed", "127.0.0.1") in kinds
        assert audit["total"] == len(audit["items"])
        one = api.get("/api/v1/audit", params={"lead": lead_id}).json()["items"]
        assert {e["type"] for e in one} == {"lead.received", "lead.status_changed"}
        assert all(e["actor"].startswith(("user:", "key:")) for e in one)
        manager_view = client(url, **bearer(login(api, "anna").json()["token"]))
        assert manager_view.get("/api/v1/audit").status_code == 403
