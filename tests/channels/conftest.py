"""Local receivers for the channel tests: an HTTP server and an SMTP server, both on 127.0.0.1 only."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    # httpx honours proxy variables; the tests must only ever talk to 127.0.0.1 directly.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "*")


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


def _reply(status: int, body: bytes | Any, headers: dict[str, str] | None, delay: float) -> Reply:
    all_headers = dict(headers or {})
    if not isinstance(body, bytes):
        body = json.dumps(body).encode()
        all_headers.setdefault("Content-Type", "application/json")
    return Reply(status, body, all_headers, delay)


class LocalHTTP:
    """A recording HTTP server on an ephemeral loopback port, told in advance how to answer."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.default = Reply()
        self._planned: list[Reply] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                reply = server._record(
                    Recorded("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                )
                if reply.delay:
                    time.sleep(reply.delay)
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a time-out test)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def _record(self, request: Recorded) -> Reply:
        with self._lock:
            self.requests.append(request)
            return self._planned.pop(0) if self._planned else self.default

    def answer(
        self,
        status: int = 200,
        body: bytes | Any = b"ok",
        headers: dict[str, str] | None = None,
        *,
        times: int = 1,
        delay: float = 0.0,
    ) -> None:
        """Answer the next `times` requests like this (a non-bytes body is sent as JSON), then as by default."""
        reply = _reply(status, body, headers, delay)
        with self._lock:
            self._planned.extend([reply] * times)

    def fail(self, times: int | None = None, status: int = 500, body: bytes = b"upstream is down") -> None:
        """Fail the next `times` requests, or every request from now on when times is None."""
        if times is None:
            self.default = Reply(status, body)
        else:
            self.answer(status, body, times=times)

    def answer_always(
        self, status: int = 200, body: bytes | Any = b"ok", headers: dict[str, str] | None = None
    ) -> None:
        """The default answer, once the planned ones are used up."""
        self.default = _reply(status, body, headers, 0.0)

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def http_server() -> Iterator[LocalHTTP]:
    server = LocalHTTP()
    yield server
    server.close()


def free_port() -> int:
    """A port nobody listens on right now (aiosmtpd 1.4's Controller cannot be given port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def unused_port() -> int:
    """A loopback port with nothing listening: connecting to it is refused at once."""
    return free_port()


class RecordingHandler:
    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"


@dataclass
class LocalSMTP:
    host: str
    port: int
    handler: RecordingHandler

    @property
    def envelopes(self) -> list[Envelope]:
        return self.handler.envelopes


USERS = {"robot": "s3cret"}


def _authenticate(server: SMTPServer, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
    if isinstance(data, LoginPassword) and USERS.get(data.login.decode()) == data.password.decode():
        return AuthResult(success=True)
    return AuthResult(success=False, handled=False)


def _start_smtp(**kwargs: Any) -> tuple[Controller, LocalSMTP]:
    handler = RecordingHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    return controller, LocalSMTP("127.0.0.1", port, handler)


@pytest.fixture
def smtp_server() -> Iterator[LocalSMTP]:
    """Plain SMTP, no STARTTLS, no AUTH."""
    controller, server = _start_smtp()
    yield server
    controller.stop()


@pytest.fixture
def smtp_server_with_login() -> Iterator[LocalSMTP]:
    """Plain SMTP that requires AUTH (allowed without TLS here: a loopback test server only)."""
    controller, server = _start_smtp(auth_required=True, auth_require_tls=False, authenticator=_authenticate)
    yield server
    controller.stop()
