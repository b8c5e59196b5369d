"""GET /api/v1/health over HTTP: the database, the worker, and where notifications would go; /healthz as before."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import create_engine

from leadflow.api.app import create_api
from leadflow.core.rules_text import parse_rules
from leadflow.demo import DEMO_RULES
from leadflow.demo.run import demo_senders
from leadflow.services.context import Leadflow
from leadflow.settings import Settings
from leadflow.worker import Worker
from tests.support import SLA_TEAM, admin_headers, live_server


def test_health_names_the_missing_channels_and_healthz_is_unchanged(make_app: Callable[[str], Leadflow]) -> None:
    lf = make_app(SLA_TEAM)
    with live_server(lf) as url, httpx.Client(base_url=url, timeout=30, headers=admin_headers(lf)) as client:
        health = client.get("/api/v1/health")
        healthz = client.get("/healthz")
    assert health.status_code == 200
    body = health.json()
    assert (body["status"], body["database"]) == ("ok", lf.engine.dialect.name)
    assert body["notifications"]["channels"] == []
    assert body["notifications"]["warnings"][0].startswith("no notification channel is enabled")
    assert "LEADFLOW_NOTIFY__TELEGRAM_BOT_TOKEN" in body["notifications"]["warnings"][0]
    assert body["worker"] == {"in_process": False, "status": "ok", "overdue_deadlines": 0,
                              "overdue_notifications": 0, "oldest_overdue_seconds": None}  # fmt: skip
    assert healthz.status_code == 200
    assert healthz.json() == {"status": "ok", "database": lf.engine.dialect.name}


def test_the_worker_in_the_process_decides_the_channels(make_app: Callable[[str], Leadflow]) -> None:
    lf = make_app(DEMO_RULES.read_text())  # the demo's team chat, and its local stand-in for Telegram
    api = create_api(lf, Settings(allowed_hosts=["testserver"]))  # the test client's Host
    api.state.worker = Worker(lf, senders=demo_senders())
    with TestClient(api, headers=admin_headers(lf)) as client:
        body = client.get("/api/v1/health").json()
    assert body["notifications"] == {"channels": ["telegram"], "warnings": []}
    assert body["worker"]["in_process"] is True


def test_a_database_that_does_not_answer_is_a_503(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'never-migrated.db'}")
    lf = Leadflow(engine=engine, rules=parse_rules(SLA_TEAM, "rules.yaml"))
    with TestClient(create_api(lf, Settings(allowed_hosts=["testserver"]))) as client:
        answer = client.get("/api/v1/health", headers={"Authorization": "Bearer lf_" + "x" * 43})
        probe = client.get("/healthz")
    engine.dispose()
    # The key cannot even be checked: the same 503 as the health report's own, in the one error shape.
    assert answer.status_code == 503 and answer.headers["retry-after"]
    body = answer.json()
    assert body["error"] == "unavailable"
    assert "the database failed: no such table" in body["message"]
    assert probe.status_code == 200  # the probe of a load balancer says only that the process runs
