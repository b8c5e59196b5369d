"""Which Host names the server answers for (DNS rebinding), and which other sites' pages may call it (CORS); over
HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import socket
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx
import pytest
from pydantic import ValidationError

from leadflow.api.hosts import LOOPBACK, host_name, trusted_hosts
from leadflow.services.context import Leadflow
from leadflow.settings import Settings
from tests.support import THREE_MANAGERS, admin_headers, live_server

PREFLIGHT = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,idempotency-key"}


@pytest.fixture
def lf(make_app: Callable[[str], Leadflow]) -> Leadflow:
    return make_app(THREE_MANAGERS)


def assert_error(r: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert r.status_code == status, r.text
    body: dict[str, object] = r.json()
    assert set(body) == {"error", "message", "problems"} and body["error"] == code, body
    return body


# Hosts ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("127.0.0.1:8000", "127.0.0.1"),
        ("LOCALHOST", "localhost"),
        ("leads.example.com.:443", "leads.example.com"),
        ("[::1]:8000", "[::1]"),
        ("::1", "[::1]"),
        ("", ""),
    ],
)
def test_a_host_name_is_read_without_its_port(header: str, name: str) -> None:
    assert host_name(header) == name


def test_the_trusted_hosts_are_loopback_the_public_address_and_a_named_bind_address() -> None:
    assert trusted_hosts([], None, "127.0.0.1") == set(LOOPBACK)
    assert trusted_hosts([], None, "0.0.0.0") == set(LOOPBACK)
    assert trusted_hosts([], None, "::") == set(LOOPBACK)
    assert trusted_hosts([], "https://Leads.Example.com/crm", "0.0.0.0") == {*LOOPBACK, "leads.example.com"}
    assert trusted_hosts([], None, "192.168.1.5") == {*LOOPBACK, "192.168.1.5"}
    assert trusted_hosts([], "http://[2001:db8::1]:8000", "::1") == {*LOOPBACK, "[2001:db8::1]"}
    assert trusted_hosts(["crm.example.com", "10.0.0.2"], None, "0.0.0.0") == {*LOOPBACK, "crm.example.com", "10.0.0.2"}


def _get(url: str, host: str | None) -> bytes:
    """A raw request, so the Host header is exactly what the test says (or missing)."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as s:
        host_line = f"Host: {host}\r\n" if host else ""
        s.sendall(f"GET /healthz HTTP/1.1\r\nConnection: close\r\n{host_line}\r\n".encode())
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    return answer


def test_a_request_for_another_host_is_refused_in_the_one_shape(lf: Leadflow) -> None:
    with live_server(lf) as url, httpx.Client(base_url=url, timeout=30, headers=admin_headers(lf)) as client:
        port = urlsplit(url).port
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost", f"[::1]:{port}"):
            assert client.get("/healthz", headers={"Host": host}).status_code == 200, host
        # A page on evil.example whose name now points at 127.0.0.1: its browser sends its own name.
        refused = client.get("/healthz", headers={"Host": f"evil.example:{port}"})
        body = assert_error(refused, 400, "unknown_host")
        assert "'evil.example'" in str(body["message"]) and "LEADFLOW_ALLOWED_HOSTS" in str(body["message"])
        assert refused.headers["x-frame-options"] == "DENY"
        page = client.get("/healthz", headers={"Host": "evil.example", "Accept": "text/html"})
        assert page.status_code == 400 and page.headers["content-type"].startswith("text/html")
        assert assert_error(client.post("/api/v1/leads", json={"phone": "0671234567"}, headers={"Host": "evil.example"}),
                            400, "unknown_host")  # fmt: skip
        assert b" 400 " in _get(url, None).split(b"\r\n")[0]
        assert b" 200 " in _get(url, f"127.0.0.1:{port}").split(b"\r\n")[0]


def test_the_public_address_and_the_listed_hosts_are_answered(lf: Leadflow) -> None:
    with live_server(lf, base_url="https://leads.example.com", allowed_hosts=["crm.example.com"]) as url:
        for host, status in (("leads.example.com", 200), ("crm.example.com", 200), ("evil.example", 400)):
            assert httpx.get(f"{url}/healthz", headers={"Host": host}, timeout=30).status_code == status, host
    with live_server(lf, allowed_hosts=["*"]) as url:
        assert httpx.get(f"{url}/healthz", headers={"Host": "anything.example"}, timeout=30).status_code == 200


# CORS -------------------------------------------------------------------------------------------------------------


def test_cors_is_off_by_default(lf: Leadflow) -> None:
    site = {"Origin": "https://app.example.com"}
    with live_server(lf) as url, httpx.Client(base_url=url, timeout=30, headers=admin_headers(lf)) as client:
        answers = [
            client.get("/healthz", headers=site),
            client.options("/api/v1/leads", headers=site | PREFLIGHT),
            client.get("/api/v1/nothing", headers=site),
        ]
    assert answers[1].status_code == 405  # no preflight answer: the browser stops there
    for answer in answers:
        assert not [h for h in answer.headers if h.startswith("access-control-")], answer.headers


def test_a_listed_origin_may_call_and_others_are_refused(lf: Leadflow) -> None:
    listed, unlisted = "https://app.example.com", "https://evil.example"
    with (
        live_server(lf, cors_origins=[listed, "http://localhost:3000"]) as url,
        httpx.Client(base_url=url, timeout=30, headers=admin_headers(lf)) as client,
    ):
        ok = client.options("/api/v1/leads", headers={"Origin": listed} | PREFLIGHT)
        refused = client.options("/api/v1/leads", headers={"Origin": unlisted} | PREFLIGHT)
        bad_method = client.options("/api/v1/leads", headers={"Origin": listed, "Access-Control-Request-Method": "PUT"})
        simple = client.get("/healthz", headers={"Origin": listed})
        other = client.get("/healthz", headers={"Origin": unlisted})
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == listed
    assert ok.headers["access-control-allow-methods"] == "GET, POST, PATCH, DELETE"
    allowed = {h.strip().lower() for h in ok.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type", "idempotency-key", "x-csrf-token"} <= allowed
    assert ok.headers["access-control-allow-credentials"] == "true"
    body = assert_error(refused, 400, "cors_refused")
    assert unlisted in str(body["message"]) and "access-control-allow-origin" not in refused.headers
    assert "GET, POST, PATCH, DELETE" in str(assert_error(bad_method, 400, "cors_refused")["message"])
    assert refused.headers["x-content-type-options"] == "nosniff"
    assert simple.headers["access-control-allow-origin"] == listed and "Origin" in simple.headers["vary"]
    assert "access-control-allow-origin" not in other.headers


def test_any_origin_may_call_without_credentials(lf: Leadflow) -> None:
    with live_server(lf, cors_origins=["*"]) as url:
        ok = httpx.options(f"{url}/api/v1/leads", headers={"Origin": "https://any.example"} | PREFLIGHT, timeout=30)
    assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in ok.headers


def test_an_origin_is_written_with_its_scheme() -> None:
    assert Settings(cors_origins="https://App.example.com/, http://localhost:3000").cors_origins == [  # type: ignore[arg-type]
        "https://app.example.com",
        "http://localhost:3000",
    ]
    with pytest.raises(ValidationError, match=r"'app\.example\.com' is not an origin"):
        Settings(cors_origins="app.example.com")  # type: ignore[arg-type]
