"""A client's data exported and erased over HTTP, by an admin only, and the erasure audited."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from sqlalchemy import func, select

from leadflow.services.context import Leadflow
from leadflow.store.tables import events, leads
from tests.support import THREE_MANAGERS, admin_headers, bearer, live_server, new_key


def test_an_admin_exports_then_erases_a_client_and_the_leads_still_count(
    make_app: Callable[[str], Leadflow],
) -> None:
    lf = make_app(THREE_MANAGERS)
    with live_server(lf) as url, httpx.Client(base_url=url, timeout=30, headers=admin_headers(lf)) as api:
        first = api.post("/api/v1/leads", json={"name": "Mykola Zakharchenko", "phone": "067 555 12 34",
                                                "email": "mykola.z@example.org", "message": "call me after 6"})  # fmt: skip
        again = api.post("/api/v1/leads", json={"phone": "+380675551234", "message": "still waiting"})
        other = api.post("/api/v1/leads", json={"name": "Somebody Else", "phone": "+380679990000"})
        assert {first.status_code, again.status_code, other.status_code} <= {200, 201}
        lead_id = first.json()["id"]
        writer = new_key(lf, "write")
        refused = api.delete(f"/api/v1/leads/{lead_id}/client", headers=bearer(writer))
        assert refused.status_code == 403 and "client.data" in refused.json()["message"]
        exported = api.get(f"/api/v1/leads/{lead_id}/client/export")
        assert exported.status_code == 200, exported.text
        assert "mykola.z@example.org" in exported.text and "Somebody Else" not in exported.text
        with lf.engine.connect() as conn:
            before = dict(conn.execute(select(leads.c.status, func.count()).group_by(leads.c.status)).all())
        erased = api.delete(f"/api/v1/leads/{lead_id}/client")
        assert erased.status_code == 200, erased.text
        assert lead_id in erased.json()["leads"]
        detail = api.get(f"/api/v1/leads/{lead_id}").json()
        assert detail["phone"] is None and detail["name"] is None and detail["email"] is None
        assert "555" not in api.get(f"/api/v1/leads/{lead_id}").text.replace(str(lead_id), "")
        assert api.get(f"/api/v1/leads/{other.json()['id']}").json()["name"] == "Somebody Else"
        assert api.delete("/api/v1/leads/999999/client").status_code == 404
        audit = api.get("/api/v1/audit", params={"lead": lead_id}).json()["items"]
        assert any(e["type"] == "client.erased" and e["actor"].startswith("key:admin") for e in audit)
    with lf.engine.connect() as conn:
        after = dict(conn.execute(select(leads.c.status, func.count()).group_by(leads.c.status)).all())
        assert conn.execute(select(func.count()).where(events.c.type == "client.erased")).scalar_one() >= 1
    assert after == before
