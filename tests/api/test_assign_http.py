"""The unassigned backlog routed in one run over HTTP: a dry run first, then the real thing."""

from collections.abc import Callable, Iterator

import httpx
import pytest

from leadflow.services.context import Leadflow
from tests.support import THREE_MANAGERS, admin_headers, live_server


@pytest.fixture
def api(make_app: Callable[[str], Leadflow]) -> Iterator[httpx.Client]:
    lf = make_app(THREE_MANAGERS)
    with live_server(lf) as url, httpx.Client(base_url=url, timeout=60, headers=admin_headers(lf)) as client:
        yield client


def test_backlog_is_planned_then_assigned_evenly(api: httpx.Client) -> None:
    for key in ("anna", "bohdan", "chrystia"):
        assert api.patch(f"/api/v1/managers/{key}", json={"active": False}).status_code == 200
    for i in range(30):
        lead = api.post("/api/v1/leads", json={"phone": f"+38067{i:07d}", "budget": 1000 + i}).json()
        assert lead["status"] == "new" and lead["manager"] is None
    for key in ("anna", "bohdan", "chrystia"):
        api.patch(f"/api/v1/managers/{key}", json={"active": True})

    plan = api.post("/api/v1/assign/unassigned", params={"dry_run": "true"}).json()
    assert plan["dry_run"] is True and plan["assigned"] == 30
    assert api.get("/api/v1/leads", params={"manager": "none"}).json()["total"] == 30  # nothing written

    done = api.post("/api/v1/assign/unassigned").json()
    assert done["assigned"] == 30 and done["left_unassigned"] == 0
    assert sorted(m["leads"] for m in done["per_manager"]) == [10, 10, 10]
    assert {m["key"]: m["leads"] for m in done["per_manager"]} == {m["key"]: m["leads"] for m in plan["per_manager"]}
    assert api.get("/api/v1/leads", params={"manager": "none"}).json()["total"] == 0
    assert api.post("/api/v1/assign/unassigned").json()["assigned"] == 0
    assert api.post("/api/v1/assign/unassigned", params={"chunk": 0}).status_code == 422


def test_the_batch_order_is_a_query_parameter(api: httpx.Client) -> None:
    for i in range(3):
        api.post("/api/v1/leads", json={"phone": f"+38068{i:07d}", "budget": 100 + i})  # taken at once
    plan = api.post("/api/v1/assign/unassigned", params=[("dry_run", "true"), ("order", "score desc"),
                                                         ("order", "created_at asc")])  # fmt: skip
    assert plan.status_code == 200 and plan.json()["assigned"] == 0
    wrong = api.post("/api/v1/assign/unassigned", params={"order": "mood desc"})
    assert wrong.status_code == 422 and "not a batch order" in wrong.text
