"""Shared test helpers: a real uvicorn server on loopback, rules texts."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from leadflow.api.app import create_api
from leadflow.services.context import Leadflow
from leadflow.settings import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def live_server(app: Leadflow, **settings: object) -> Iterator[str]:
    """Serve the API for `app` on a free loopback port in a thread; yields the base URL."""
    port = free_port()
    config = Settings(host="127.0.0.1", port=port, **settings)  # type: ignore[arg-type]
    server = uvicorn.Server(
        uvicorn.Config(create_api(app, config), host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


THREE_MANAGERS = """
default_region: UA
default_timezone: Europe/Kyiv
teams:
  - {key: sales, name: Sales, timezone: Europe/Kyiv, head: head}
managers:
  - {key: anna, name: Anna, team: sales, capacity: 1000, products: [credit], regions: [UA]}
  - {key: bohdan, name: Bohdan, team: sales, capacity: 1000, products: [credit, leasing], regions: [UA, PL]}
  - {key: chrystia, name: Chrystia, team: sales, capacity: 1000, products: [leasing], regions: [PL]}
  - {key: head, name: Head of sales, team: sales, capacity: 1000, active: true}
routing:
  rules:
    - {key: all, team: sales, managers: [anna, bohdan, chrystia], strategy: round_robin}
junk:
  own_domains: [ourcompany.ua]
  keywords: [casino]
  blocked_sources: [spam-partner]
"""


SLA_TEAM = """
default_timezone: Europe/Kyiv
default_language: uk
teams:
  - {key: sales, name: Sales, head: head, telegram_chat_id: "-100500"}
managers:
  - {key: anna, name: Anna, team: sales, email: anna@example.test, languages: [uk]}
  - {key: bohdan, name: Bohdan, team: sales, email: bohdan@example.test, languages: [ru]}
  - {key: chrystia, name: Chrystia, team: sales, email: chrystia@example.test, languages: [en]}
  - {key: head, name: Halyna, team: sales, email: head@example.test, languages: [uk]}
routing:
  rules:
    - {key: all, team: sales, managers: [anna, bohdan, chrystia], strategy: round_robin}
sla:
  default: {first_contact: 2s, count: wall_clock, chain: {max_hops: 3}}
"""
