"""`leadflow serve` holds at most LEADFLOW_LIMIT_CONCURRENCY connections: past them a request gets 503 at once,
rather than the process running out of memory or file descriptors."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support import free_port

LEADFLOW = str(Path(sys.executable).parent / "leadflow")
RULES = """\
teams:
  - {key: sales, name: Sales}
managers:
  - {key: anna, name: Anna, team: sales}
routing:
  rules:
    - {key: all, team: sales}
"""


def _status(port: int) -> int | None:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5, trust_env=False).status_code
    except httpx.HTTPError:
        return None


def _wait_for(port: int, status: int, seconds: float) -> int | None:
    deadline = time.monotonic() + seconds
    while (seen := _status(port)) != status and time.monotonic() < deadline:
        time.sleep(0.1)
    return seen


def test_connections_past_the_limit_get_503(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(RULES)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADFLOW_")}
    env |= {"LEADFLOW_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}", "LEADFLOW_RULES": str(tmp_path / "rules.yaml"),
            "LEADFLOW_LIMIT_CONCURRENCY": "3"}  # fmt: skip
    port = free_port()
    with (tmp_path / "stderr.txt").open("w") as stderr:
        server = subprocess.Popen([LEADFLOW, "serve", "--port", str(port), "--no-worker"], cwd=tmp_path, env=env,
                                  stdout=subprocess.DEVNULL, stderr=stderr)  # fmt: skip
        idle: list[socket.socket] = []
        try:
            assert _wait_for(port, 200, 60) == 200, (tmp_path / "stderr.txt").read_text()
            # Two connections that never finish their headers; with the request's own, that is the limit.
            for _ in range(2):
                s = socket.create_connection(("127.0.0.1", port), timeout=10)
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                idle.append(s)
            assert _wait_for(port, 503, 10) == 503
            for s in idle:
                s.close()
            assert _wait_for(port, 200, 10) == 200
        finally:
            for s in idle:
                s.close()
            server.terminate()
            server.wait(timeout=30)
