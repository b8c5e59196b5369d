"""Adding and removing a user's roles through the JSON API: at once for their sessions, audited, refused when it
would leave nobody able to act."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from leadflow.core.policy import SYSTEM
from leadflow.services import accounts
from leadflow.services.context import Leadflow, utcnow
from tests.support import admin_headers, live_server, person

RULES = """
default_timezone: Europe/Kyiv
teams:
  - {key: sales, name: Sales, head: halyna, hours: always}
  - {key: vip, name: VIP, hours: always}
managers:
  - {key: anna, name: Anna, team: sales}
  - {key: bohdan, name: Bohdan, team: sales}
  - {key: halyna, name: Halyna, team: sales}
routing:
  rules:
    - {key: to-anna, team: sales, managers: [anna]}
"""


def test_a_role_added_and_removed_through_the_api_takes_effect_at_once(make_app: Callable[[str], Leadflow]) -> None:
    app = make_app(RULES)
    admin = admin_headers(app)
    bohdan = person(app, "bohdan", "manager", manager="bohdan")
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as api:
        lead = api.post("/api/v1/leads", json={"phone": "+380671110001"}, headers=admin).json()["id"]
        assert api.get(f"/api/v1/leads/{lead}", headers=bohdan).status_code == 404

        added = api.post("/api/v1/users/bohdan/roles", json={"role": "head", "team": "sales"}, headers=admin)
        assert added.status_code == 200, added.text
        assert {"role": "head", "team": "sales"} in added.json()["roles"]
        assert api.get(f"/api/v1/leads/{lead}", headers=bohdan).status_code == 200  # the same session, at once

        twice = api.post("/api/v1/users/bohdan/roles", json={"role": "head", "team": "sales"}, headers=admin)
        assert twice.status_code == 409 and "already has the role head" in twice.json()["message"]
        assert api.post("/api/v1/users/bohdan/roles", json={"role": "head", "team": "mars"},
                        headers=admin).status_code == 422  # fmt: skip
        assert api.post("/api/v1/users/bohdan/roles", json={"role": "king"}, headers=admin).status_code == 422
        assert api.post("/api/v1/users/nobody/roles", json={"role": "head"}, headers=admin).status_code == 404
        refused = api.post("/api/v1/users/bohdan/roles", json={"role": "admin"}, headers=bohdan)
        assert refused.status_code == 403

        removed = api.request("DELETE", "/api/v1/users/bohdan/roles", json={"role": "head", "team": "sales"},
                              headers=admin)  # fmt: skip
        assert removed.status_code == 200, removed.text
        assert removed.json()["roles"] == [{"role": "manager", "team": None}]
        assert api.get(f"/api/v1/leads/{lead}", headers=bohdan).status_code == 404
        missing = api.request("DELETE", "/api/v1/users/bohdan/roles", json={"role": "head"}, headers=admin)
        assert missing.status_code == 404
        last = api.request("DELETE", "/api/v1/users/bohdan/roles", json={"role": "manager"}, headers=admin)
        assert last.status_code == 409 and "only role" in last.json()["message"]

        audit = api.get("/api/v1/audit", params={"actor": "user:nobody"}, headers=admin).json()
        assert audit["total"] == 0
        changes = [e for e in api.get("/api/v1/audit", headers=admin).json()["items"] if "role" in e["type"]]
        assert [(e["type"], e["data"]) for e in changes] == [
            ("user.role_removed", {"username": "bohdan", "role": "head", "team": "sales"}),
            ("user.role_added", {"username": "bohdan", "role": "head", "team": "sales"}),
        ]
        assert all(e["actor"].startswith("key:admin") for e in changes)


def test_a_manager_role_needs_a_linked_account_and_the_last_admin_keeps_theirs(
    make_app: Callable[[str], Leadflow],
) -> None:
    app = make_app(RULES)
    with app.engine.begin() as conn:
        accounts.create_user(conn, "root", "root-password-1", utcnow(), role="admin", actor=SYSTEM)
        accounts.create_user(conn, "halyna", "halyna-password-1", utcnow(), role="head", teams_=["sales"],
                             actor=SYSTEM)  # fmt: skip
    admin = admin_headers(app)
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30, headers=admin) as api:
        unlinked = api.post("/api/v1/users/halyna/roles", json={"role": "manager"})
        assert unlinked.status_code == 422 and "linked to a manager" in unlinked.text
        assert api.post("/api/v1/users/root/roles", json={"role": "admin", "team": "sales"}).status_code == 422
        assert api.post("/api/v1/users/root/roles", json={"role": "head", "team": "vip"}).status_code == 200
        lone = api.request("DELETE", "/api/v1/users/root/roles", json={"role": "admin"})
        assert lone.status_code == 409 and "last active admin" in lone.text
        assert api.post("/api/v1/users/halyna/roles", json={"role": "admin"}).status_code == 200
        assert api.request("DELETE", "/api/v1/users/root/roles", json={"role": "admin"}).status_code == 200
        assert api.get("/api/v1/users").json()[-1]["roles"] == [{"role": "head", "team": "vip"}]
