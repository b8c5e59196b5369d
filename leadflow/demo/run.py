"""Starting and stopping the demo: the rules, the port, the API in a thread, the worker, the summary."""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from rich.console import Console
from sqlalchemy import func, select

from leadflow.api.app import create_api
from leadflow.bootstrap import open_app, read_rules
from leadflow.channels.config import NotifyConfig
from leadflow.channels.senders import LogSender, Sender
from leadflow.core.errors import LeadflowError
from leadflow.core.policy import Principal
from leadflow.core.rules import RulesFile
from leadflow.core.rules_text import RulesError
from leadflow.core.schedule import ScheduleError, parse_duration
from leadflow.demo.board import Board, DemoSummary
from leadflow.demo.driver import DemoDriver
from leadflow.demo.screen import print_summary
from leadflow.services.accounts import create_key
from leadflow.services.context import utcnow
from leadflow.settings import Settings
from leadflow.store.tables import leads
from leadflow.worker import Worker

__all__ = ["DEMO_RULES", "HOST", "DemoError", "demo_rules", "demo_senders", "run_demo"]

DEMO_RULES = Path(__file__).parents[1] / "examples" / "demo-rules.yaml"
DEMO = Principal("system", "demo")
HOST = "127.0.0.1"


class DemoError(LeadflowError):
    """Something the person running the demo can fix: a bad argument, a busy port, a broken rules file."""


def demo_rules(deadline: timedelta, path: Path = DEMO_RULES) -> RulesFile:
    """The demo rules with another first-contact deadline (RulesFile is frozen: copied level by level)."""
    rules = read_rules(path)
    policy = rules.sla.default.model_copy(update={"first_contact": deadline})
    return rules.model_copy(update={"sla": rules.sla.model_copy(update={"default": policy})})


def _listen(port: int, any_free_port: bool) -> socket.socket:
    """A socket bound to the port, handed to uvicorn as it is (no other program can take the port in between).

    When the port is taken and `any_free_port` is set, the system picks a free one.
    """
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does, so a just-closed port is free
    try:
        sock.bind((HOST, port))
    except OSError as exc:
        if not any_free_port:
            sock.close()
            raise DemoError(
                f"port {port} on {HOST} is taken ({exc.strerror}); is `leadflow serve` running? "
                "Choose another with --port, or leave --port out to take a free one"
            ) from None
        sock.bind((HOST, 0))
    return sock


def _serve(app: FastAPI, sock: socket.socket) -> tuple[uvicorn.Server, threading.Thread]:
    """The API in a thread; the calling thread keeps Ctrl-C (uvicorn takes signals only in the main thread)."""
    host, port = sock.getsockname()[:2]
    # log_config=None leaves the process's logging as it is; warnings still reach stderr.
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", access_log=False, lifespan="off", log_config=None
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="leadflow-demo-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise DemoError(f"the API did not start on {host}:{port}")
        time.sleep(0.02)
    return server, thread


def demo_senders() -> dict[str, Sender]:
    """Notifications go nowhere outside this machine: the team chat's Telegram messages are marked sent, not sent.

    The demo's chat id is made up, and a Telegram error on every escalation would only bury the screen.
    """
    chat = logging.getLogger("leadflow.demo.team_chat")
    chat.propagate = False
    if not chat.handlers:
        chat.addHandler(logging.NullHandler())
    return {"log": LogSender(), "telegram": LogSender(chat)}


def _deadline(text: str) -> timedelta:
    try:
        window = parse_duration(text)
    except ScheduleError as exc:
        raise DemoError(f"deadline: {exc}") from None
    if window < timedelta(seconds=1):
        raise DemoError(f"deadline {text!r} is shorter than a second: the worker looks four times a second")
    return window


def run_demo(
    database_url: str,
    *,
    port: int = 8000,
    any_free_port: bool = False,
    deadline: str = "20s",
    pace_seconds: float = 4.0,
    duration_seconds: float | None = None,
    seed: int = 7,
    console: Console | None = None,
    live: bool = True,
) -> DemoSummary:
    """Run the demo until Ctrl-C or `duration_seconds`, then print and return the summary.

    The API listens on `port`; when it is taken, on a free port if `any_free_port`, else DemoError.
    `live=False` (or a console that is not a terminal) prints one plain line per happening instead of the live
    table. Raises DemoError for a bad argument, a busy port or broken demo rules.
    """
    console = console or Console(soft_wrap=True)
    window = _deadline(deadline)
    if pace_seconds <= 0:
        raise DemoError("pace_seconds must be more than zero")
    if duration_seconds is not None and duration_seconds <= 0:
        raise DemoError("duration_seconds must be more than zero")
    sock = _listen(port, any_free_port)
    try:
        chosen = sock.getsockname()[1]
        if chosen != port:
            console.print(f"port {port} is taken (is `leadflow serve` running?): the demo listens on port {chosen}; "
                          "--port chooses one", soft_wrap=True, highlight=False)  # fmt: skip
        settings = Settings(  # nothing from the environment's notification settings: the demo must not message anyone
            database_url=database_url, rules=DEMO_RULES, host=HOST, port=chosen, base_url=None, notify=NotifyConfig()
        )
        try:
            rules = demo_rules(window)
            app = replace(open_app(settings), rules=rules)  # the people come from the file, the deadline from here
        except RulesError as exc:
            raise DemoError(str(exc)) from None
        with app.engine.connect() as conn:
            baseline = conn.execute(select(func.coalesce(func.max(leads.c.id), 0))).scalar_one()
            # The simulated site and managers call the API as an integration would: with a key of their own.
            key, _ = create_key(conn, f"demo {uuid.uuid4().hex[:8]}", "write", utcnow(), actor=DEMO)
            conn.commit()
        board = Board(app.engine, rules, baseline)
        demo = DemoDriver(board, rules, settings.public_url, app.engine.url.render_as_string(hide_password=True),
                          window, pace_seconds, seed, console, live and console.is_terminal, key)  # fmt: skip
        api = create_api(app, settings)
        worker = Worker(app, poll_seconds=settings.worker_poll_seconds, senders=demo_senders())
        api.state.worker = worker  # GET /api/v1/health shows the stand-in team chat as the channel
        server, api_thread = _serve(api, sock)
        worker_threads = worker.start()
        try:
            demo.run(duration_seconds)
        except KeyboardInterrupt:
            pass  # Ctrl-C is how a person ends the demo
        finally:
            demo.close()  # first, so the server has no open connection to wait for
            worker.stop.set()
            server.should_exit = True
            for thread in [*worker_threads, api_thread]:
                thread.join(timeout=10)
    finally:
        sock.close()
    summary = board.summary()
    app.engine.dispose()
    print_summary(console, summary, demo.database)
    return summary
