"""`leadflow serve --demo` (what `make run` runs): the printed accounts sign in, and the demo team's queues fill
with leads arriving while the page is open."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support import free_port

LEADFLOW = str(Path(sys.executable).parent / "leadflow")


def _wait_for(condition: object, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError("timed out")


def test_the_demo_prints_accounts_that_sign_in_to_live_queues(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADFLOW_")}
    env["TMPDIR"] = str(tmp_path)  # the demo's throwaway database goes here
    out = tmp_path / "stdout.txt"
    with out.open("w") as stdout, (tmp_path / "stderr.txt").open("w") as stderr:
        server = subprocess.Popen([LEADFLOW, "serve", "--demo", "--port", str(port), "--demo-pace", "1",
                                   "--demo-deadline", "3s"], cwd=tmp_path, env=env, stdout=stdout, stderr=stderr)  # fmt: skip
        try:
            _wait_for(lambda: "Sign in at" in out.read_text() or server.poll() is not None, 90)
            printed = out.read_text()
            accounts = dict(re.findall(r"│ (\w+) +│ (?:admin|head|manager|desk) +│ (\S+) +│", printed))
            assert {"admin", "olena", "taras", "andrii", "iryna"} <= set(accounts), printed
            base = f"http://127.0.0.1:{port}"
            with httpx.Client(base_url=base, timeout=10, trust_env=False) as browser:
                _wait_for(lambda: _answers(browser), 30)
                assert browser.get("/").headers["location"].startswith("/login")
                signed_in = browser.post("/login", data={"username": "olena", "password": accounts["olena"]})
                assert signed_in.status_code == 303
                # Leads arrive on their own; with a 3-second deadline, the chain moves those nobody calls.
                _wait_for(lambda: 'class="lead-title"' in browser.get("/").text, 30)
                head = httpx.Client(base_url=base, timeout=10, trust_env=False)
                assert head.post("/login", data={"username": "iryna", "password": accounts["iryna"]}).status_code == 303
                _wait_for(lambda: "Escalated" in head.get("/feed").text, 30)
                head.close()
        finally:
            server.terminate()
            server.wait(timeout=30)


def _answers(client: httpx.Client) -> bool:
    try:
        return client.get("/login").status_code == 200
    except httpx.HTTPError:
        return False
