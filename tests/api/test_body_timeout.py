"""A request body must arrive whole within body_timeout_seconds, else 408 and the connection is closed: over a raw
socket to the real server, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import pytest

from leadflow.api.deadline import Deadline
from leadflow.services.context import Leadflow
from tests.support import THREE_MANAGERS, admin_headers, live_server

TIMEOUT = 1.0


@pytest.fixture
def lf(make_app: Callable[[str], Leadflow]) -> Leadflow:
    return make_app(THREE_MANAGERS)


@pytest.fixture
def server(lf: Leadflow) -> Iterator[tuple[str, int]]:
    with live_server(lf, body_timeout_seconds=TIMEOUT) as url:
        parts = urlsplit(url)
        yield str(parts.hostname), int(parts.port or 0)


def _head(
    address: tuple[str, int], length: int, *, close: bool = False, headers: dict[str, str] | None = None
) -> bytes:
    lines = ["POST /api/v1/leads HTTP/1.1", f"Host: {address[0]}:{address[1]}", "Content-Type: application/json",
             f"Content-Length: {length}", *(["Connection: close"] if close else []),
             *(f"{name}: {value}" for name, value in (headers or {}).items())]  # fmt: skip
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _read_to_close(s: socket.socket) -> tuple[bytes, float]:
    """Everything the server sends until it closes, and when it closed (the socket's timeout fails the test)."""
    answer = b""
    while chunk := s.recv(65536):
        answer += chunk
    return answer, time.monotonic()


def _status_and_body(answer: bytes) -> tuple[int, dict[str, object]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


def test_a_half_sent_body_is_answered_408_within_the_timeout_and_closed(server: tuple[str, int]) -> None:
    with socket.create_connection(server, timeout=TIMEOUT + 4) as s:
        s.sendall(_head(server, 1000) + b'{"phone": ')
        sent = time.monotonic()
        answer, closed = _read_to_close(s)
    status, body = _status_and_body(answer)
    assert status == 408, answer
    assert body["error"] == "request_timeout" and set(body) == {"error", "message", "problems"}
    assert "1 seconds" in str(body["message"])
    assert b"connection: close" in answer.lower()
    assert TIMEOUT - 0.1 <= closed - sent <= TIMEOUT + 2


def test_a_body_that_trickles_in_past_the_timeout_is_refused_too(server: tuple[str, int]) -> None:
    # A byte every 0.2 s: never idle, but the whole body is late.
    with socket.create_connection(server, timeout=TIMEOUT + 4) as s:
        s.sendall(_head(server, 100))
        started = time.monotonic()
        answer = b""
        s.settimeout(0.2)
        while not answer and time.monotonic() - started < TIMEOUT + 3:
            s.sendall(b" ")
            try:
                answer = s.recv(65536)
            except TimeoutError:
                continue
        assert time.monotonic() - started <= TIMEOUT + 2
    assert _status_and_body(answer)[0] == 408, answer


def test_a_body_sent_in_parts_within_the_timeout_is_taken(server: tuple[str, int], lf: Leadflow) -> None:
    body = json.dumps({"name": "Ivan", "phone": "+380671234567"}).encode()
    with socket.create_connection(server, timeout=10) as s:
        s.sendall(_head(server, len(body), close=True, headers=admin_headers(lf)) + body[:10])
        time.sleep(TIMEOUT / 3)
        s.sendall(body[10:])
        answer, _ = _read_to_close(s)
    assert _status_and_body(answer)[0] == 201, answer


# The deadline itself ----------------------------------------------------------------------------------------------


async def test_a_deadline_ends_its_block_and_only_its_block() -> None:
    with Deadline(0.05) as late:
        await asyncio.sleep(5)
    assert late.passed
    await asyncio.sleep(0.01)  # nothing of the cancellation is left over for the task
    with Deadline(5) as early:
        await asyncio.sleep(0.01)
    assert not early.passed


async def test_a_cancellation_from_elsewhere_goes_on_through_a_deadline() -> None:
    async def read() -> None:
        with Deadline(5):
            await asyncio.sleep(5)

    task = asyncio.ensure_future(read())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
