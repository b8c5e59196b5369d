"""The live stream over real HTTP: a manager's stream names the change when a lead becomes theirs, says nothing of
other people's leads, and ends once its session does."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable

import httpx

from leadflow.services.context import Leadflow
from tests.support import SERVED, bearer, live_server, new_key, web_sign_in, web_user

RULES = """
default_region: UA
teams:
  - {key: sales, name: Sales, head: halyna, hours: always}
managers:
  - {key: anna, name: Anna, team: sales, products: [credit]}
  - {key: bohdan, name: Bohdan, team: sales, products: [leasing]}
  - {key: halyna, name: Halyna, team: sales, products: []}
routing:
  rules:
    - {key: credit, team: sales, managers: [anna], when: {product: credit}, strategy: round_robin}
    - {key: leasing, team: sales, managers: [bohdan], when: {product: leasing}, strategy: round_robin}
"""


def _listen(client: httpx.Client, path: str, lines: queue.Queue[str | None]) -> threading.Thread:
    def read() -> None:
        try:
            with client.stream("GET", path, timeout=httpx.Timeout(30, read=30)) as answer:
                assert answer.status_code == 200
                for line in answer.iter_lines():
                    lines.put(line)
        except httpx.HTTPError:
            pass
        lines.put(None)  # the stream ended

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


def _events(lines: queue.Queue[str | None], seconds: float) -> list[str]:
    found, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.1)
        except queue.Empty:
            continue
        if line is None:
            found.append("<end>")
            break
        if line.startswith("event: "):
            found.append(line[7:])
    return found


def test_a_stream_names_my_changes_only_and_ends_with_the_session(make_app: Callable[[str], Leadflow]) -> None:
    app = make_app(RULES)
    password = web_user(app, "anna", "manager", manager="anna")
    key = new_key(app, "write")
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as browser:
        csrf = web_sign_in(browser, "anna", password)
        lines: queue.Queue[str | None] = queue.Queue()
        _listen(browser, "/live?watch=queue", lines)
        time.sleep(0.5)  # connected, and the hub has read where the events end
        other = httpx.post(f"{url}/api/v1/leads", json={"phone": "+380671110001", "product": "leasing"},
                           headers=bearer(key))  # fmt: skip
        assert other.json()["manager"]["key"] == "bohdan"
        assert "queue" not in _events(lines, 1.0)  # Bohdan's lead is not Anna's business
        mine = httpx.post(f"{url}/api/v1/leads", json={"phone": "+380671110002", "product": "credit"},
                          headers=bearer(key))  # fmt: skip
        assert mine.json()["manager"]["key"] == "anna"
        assert "queue" in _events(lines, 2.0)
        rows = browser.get("/queue/rows", params={"shown": ""})
        assert f"lead-{mine.json()['id']}" in rows.text and f"lead-{other.json()['id']}" not in rows.text

        # The stream notices with its next signal (or heartbeat, made short here so the test need not wait 15 s).
        SERVED[url].state.live.heartbeat_seconds = 0.5
        assert browser.post("/logout", data={"csrf_token": csrf}).status_code == 303
        httpx.post(f"{url}/api/v1/leads", json={"phone": "+380671110003", "product": "credit"}, headers=bearer(key))
        assert _events(lines, 20.0)[-1:] == ["<end>"]
