"""/docs and /redoc: leadflow's own pages, started without inline script, under a policy that adds only the CDN."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy import create_engine

from leadflow.api.app import create_api
from leadflow.api.docs import CDN
from leadflow.core.rules_text import parse_rules
from leadflow.services.context import Leadflow
from leadflow.settings import Settings
from tests.api.test_security_headers import Inline
from tests.support import THREE_MANAGERS

ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def api() -> FastAPI:
    # The pages read nothing from the database: an empty in-memory one is enough.
    rules = parse_rules(THREE_MANAGERS, "test-rules.yaml")
    return create_api(Leadflow(engine=create_engine("sqlite://"), rules=rules), Settings(allowed_hosts=["testserver"]))


@pytest.fixture
def client(api: FastAPI) -> TestClient:
    return TestClient(api)


def directives(policy: str) -> dict[str, list[str]]:
    names = [d.split()[0] for d in policy.split("; ")]
    assert len(names) == len(set(names)), f"a browser reads only the first of a repeated directive: {policy}"
    return {d.split()[0]: d.split()[1:] for d in policy.split("; ")}


def test_fastapis_own_pages_are_off(api: FastAPI) -> None:
    assert api.docs_url is None and api.redoc_url is None
    routes = {getattr(r.original_route, "path", ""): r.original_route for r in iter_route_contexts(api.routes)}
    assert "/docs/oauth2-redirect" not in routes  # FastAPI's, with an inline script of its own
    for path in ("/docs", "/redoc"):
        assert getattr(routes[path], "endpoint", None).__module__ == "leadflow.api.docs"


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_the_docs_pages_have_no_inline_script_and_allow_only_the_cdn(client: TestClient, path: str) -> None:
    page = client.get(path)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    parsed = Inline(page.text)
    assert parsed.found == []
    assert parsed.scripts and all(src.startswith((f"{CDN}/", "/static/")) for src in parsed.scripts)
    assert all(href.startswith((f"{CDN}/", "/static/")) for href in parsed.stylesheets)
    policy = directives(page.headers["content-security-policy"])
    for kind in ("script-src", "style-src", "img-src"):
        allowed = [s for s in policy[kind] if not s.startswith("'nonce-")]
        assert set(allowed) <= {"'self'", CDN, "data:"} and CDN in allowed, (kind, allowed)
    assert not {"'unsafe-inline'", "'unsafe-eval'"} & {s for sources in policy.values() for s in sources}
    assert policy["frame-ancestors"] == ["'none'"] and policy["object-src"] == ["'none'"]
    assert page.headers["x-frame-options"] == "DENY" and page.headers["x-content-type-options"] == "nosniff"
    # The rest of the server keeps the strict policy.
    assert CDN not in client.get("/healthz").headers["content-security-policy"]


def test_swagger_ui_is_started_by_a_static_file_that_reads_the_documents_address(client: TestClient) -> None:
    page = client.get("/docs").text
    assert 'data-openapi-url="/openapi.json"' in page
    assert "/static/swagger-init.js" in Inline(page).scripts
    init = client.get("/static/swagger-init.js")
    assert init.status_code == 200 and init.headers["content-type"].startswith("text/javascript")
    assert "SwaggerUIBundle(" in init.text and "dataset.openapiUrl" in init.text
    assert client.get("/openapi.json").json()["info"]["title"] == "leadflow"


def test_redoc_marks_its_styles_with_a_fresh_nonce_the_policy_names(client: TestClient) -> None:
    nonces = []
    for _ in range(2):
        page = client.get("/redoc")
        assert '<div id="redoc" data-spec-url="/openapi.json"></div>' in page.text
        [nonce] = re.findall(r'<script src="/static/redoc-init.js" nonce="([^"]+)"></script>', page.text)
        assert f"'nonce-{nonce}'" in directives(page.headers["content-security-policy"])["style-src"]
        nonces.append(nonce)
    assert nonces[0] != nonces[1]
    init = client.get("/static/redoc-init.js")
    assert init.status_code == 200 and init.headers["content-type"].startswith("text/javascript")
    # The script hands ReDoc its own nonce (browsers blank the attribute, the property keeps it).
    assert "Redoc.init(" in init.text and "document.currentScript.nonce" in init.text
    assert "dataset.specUrl" in init.text


def test_the_docs_pages_follow_a_root_path(api: FastAPI) -> None:
    with TestClient(api, root_path="/leadflow") as client:
        page = client.get("/docs").text
    assert 'data-openapi-url="/leadflow/openapi.json"' in page and "/leadflow/static/swagger-init.js" in page


def test_the_static_files_and_templates_ship_in_the_package() -> None:
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["leadflow"]
    package = ROOT / "leadflow"
    for folder in ("web/static", "web/templates"):
        files = [p.relative_to(package).as_posix() for p in (package / folder).rglob("*") if p.is_file()]
        assert files, folder
        unshipped = [f for f in files if not any(fnmatch.fnmatch(f, pattern) for pattern in patterns)]
        assert unshipped == []
