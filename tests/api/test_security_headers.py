"""Security headers on every answer (JSON, errors, visitors' pages, static files), and visitors' pages that need
no inline script or style; on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, HTTPException
from fastapi.testclient import TestClient

from leadflow.api.app import create_api
from leadflow.api.security import CONTENT_SECURITY_POLICY
from leadflow.services.context import Leadflow
from leadflow.settings import Settings
from leadflow.web.pages import error_page, form_page, thanks_page
from tests.support import THREE_MANAGERS, admin_headers, live_server

BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


class Inline(HTMLParser):
    """What in a page a strict policy refuses: inline scripts, <style>, style="..." and on... handlers."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.found: list[str] = []
        self.scripts: list[str] = []
        self.stylesheets: list[str] = []
        self._in_script = False
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        for name, _ in attrs:
            if name == "style" or name.startswith("on"):
                self.found.append(f"<{tag} {name}=...>")
        if tag == "style":
            self.found.append("<style>")
        if tag == "script":
            if not named.get("src"):
                self.found.append("<script> without src")
            self.scripts.append(named.get("src") or "")
            self._in_script = True
        if tag == "link" and named.get("rel") == "stylesheet":
            self.stylesheets.append(named.get("href") or "")

    def handle_endtag(self, tag: str) -> None:
        self._in_script = self._in_script and tag != "script"

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.found.append("script text")


def assert_hardened(r: httpx.Response, *, https: bool = False) -> None:
    assert r.headers["content-security-policy"] == CONTENT_SECURITY_POLICY, r.headers
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "strict-origin-when-cross-origin"
    assert r.headers["x-frame-options"] == "DENY"
    assert ("strict-transport-security" in r.headers) is https, r.headers


def test_the_policy_refuses_inline_script_frames_and_foreign_forms() -> None:
    directives = dict(d.split(" ", 1) for d in CONTENT_SECURITY_POLICY.split("; "))
    assert directives == {
        "default-src": "'self'",
        "script-src": "'self'",
        "object-src": "'none'",
        "base-uri": "'none'",
        "frame-ancestors": "'none'",
        "form-action": "'self'",
    }


@pytest.fixture
def lf(make_app: Callable[[str], Leadflow]) -> Leadflow:
    return make_app(THREE_MANAGERS)


@pytest.fixture
def http(lf: Leadflow) -> Iterator[httpx.Client]:
    with (
        live_server(lf, max_body_bytes=1024, form_redirect_hosts=["thanks.example.org"]) as url,
        httpx.Client(base_url=url, timeout=30, headers=admin_headers(lf)) as client,
    ):
        yield client


def test_answers_over_http_carry_the_headers(http: httpx.Client) -> None:
    ok = http.get("/healthz")
    assert ok.status_code == 200
    assert_hardened(ok)
    missing = http.get("/api/v1/no-such-thing")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    assert_hardened(missing)
    too_big = http.post(
        "/api/v1/leads", content=b"{" + b" " * 2000 + b"}", headers={"Content-Type": "application/json"}
    )
    assert too_big.status_code == 413
    assert_hardened(too_big)
    sheet = http.get("/static/leadflow.css")
    assert sheet.status_code == 200 and sheet.headers["content-type"].startswith("text/css")
    assert_hardened(sheet)


def test_strict_transport_security_only_when_the_request_came_over_https(http: httpx.Client) -> None:
    assert_hardened(http.get("/healthz"))
    # A TLS-terminating proxy on this host says so; uvicorn trusts it from loopback (--forwarded-allow-ips).
    over_tls = http.get("/healthz", headers={"X-Forwarded-Proto": "https"})
    assert_hardened(over_tls, https=True)
    assert over_tls.headers["strict-transport-security"] == "max-age=31536000"
    assert_hardened(http.get("/api/v1/nothing", headers={"X-Forwarded-Proto": "https"}), https=True)


def test_a_visitors_pages_carry_the_headers_and_load_only_leadflows_style_sheet(http: httpx.Client) -> None:
    thanks = http.post("/api/v1/leads", data={"name": "Ivan", "phone": "0671234567"}, headers=BROWSER)
    again = http.post("/api/v1/leads", data={"name": "Ivan", "phone": "067-12"}, headers=BROWSER)
    site = {"Origin": "https://shop.example.com"}
    redirect = http.post("/api/v1/leads", data={"phone": "0501234567", "_redirect": "https://shop.example.com/ok"},
                         headers=BROWSER | site)  # fmt: skip
    assert (thanks.status_code, again.status_code, redirect.status_code) == (201, 422, 303)
    for page in (thanks, again):
        assert page.headers["content-type"].startswith("text/html")
        assert_hardened(page)
        parsed = Inline(page.text)
        assert parsed.found == [] and parsed.scripts == []
        assert parsed.stylesheets == ["/static/leadflow.css"]
    assert_hardened(redirect)
    # The form again posts to this server, which form-action 'self' allows.
    assert '<form method="post" action="/api/v1/leads"' in again.text


@pytest.mark.parametrize(
    "page",
    [
        thanks_page("uk"),
        form_page("en", "/api/v1/leads", [{"field": "phone", "reason": "too short"}], {"phone": "067", "_lang": "en"}),
        error_page("ru", 500, "something went wrong", [], "abcd1234"),
    ],
    ids=["thanks", "form", "error"],
)
def test_no_visitors_page_has_inline_script_or_style(page: str) -> None:
    parsed = Inline(page)
    assert parsed.found == [] and parsed.scripts == [] and parsed.stylesheets == ["/static/leadflow.css"]


# Every error, in process (the headers are the app's, whatever serves it) -----------------------------------------


def _api_with_failing_routes(lf: Leadflow, **settings: Any) -> FastAPI:
    api = create_api(lf, Settings(allowed_hosts=["testserver"], **settings))

    def needs_a_key() -> None:
        raise HTTPException(401, "send an API key", headers={"WWW-Authenticate": "Bearer"})

    def takes_a_number(n: int) -> int:
        return n

    def explode() -> None:
        raise RuntimeError("boom")

    api.add_api_route("/test/401", needs_a_key)
    api.add_api_route("/test/422", takes_a_number)
    api.add_api_route("/test/500", explode)
    return api


def test_every_error_carries_the_headers(lf: Leadflow) -> None:
    with TestClient(_api_with_failing_routes(lf)) as client:
        answers = {
            401: client.get("/test/401"),
            404: client.get("/nowhere"),
            405: client.delete("/healthz"),
            422: client.get("/test/422", params={"n": "x"}),
            500: client.get("/test/500"),
        }
        page = client.get("/test/500", headers=BROWSER)
        unknown_host = client.get("/healthz", headers={"Host": "evil.example"})
    for status, answer in answers.items():
        assert answer.status_code == status, answer.text
        assert set(answer.json()) == {"error", "message", "problems"}
        assert_hardened(answer)
    assert answers[401].headers["www-authenticate"] == "Bearer"
    assert page.status_code == 500 and page.headers["content-type"].startswith("text/html")
    assert_hardened(page)
    assert unknown_host.status_code == 400
    assert_hardened(unknown_host)


def test_an_https_request_gets_strict_transport_security_on_errors_too(lf: Leadflow) -> None:
    with TestClient(_api_with_failing_routes(lf), base_url="https://testserver") as client:
        assert_hardened(client.get("/test/500"), https=True)
        assert_hardened(client.get("/healthz"), https=True)
