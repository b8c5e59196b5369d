"""leadflow as `leadflow serve` runs it (the group writer, the worker in the process), with intake's credential
check taken out (``app``), and the same with it (``keyed``): the pair bench/http.py measures authenticated
intake by, in the same run. A bench fixture only: leadflow itself has no way to turn authentication off.

    LEADFLOW_DATABASE_URL=sqlite:////tmp/x.db LEADFLOW_RULES=rules.yaml \\
        .venv/bin/python -m uvicorn --factory bench.http_open:app --port 8103
"""

from __future__ import annotations

import gc

from fastapi import FastAPI, Request

from leadflow.api import auth
from leadflow.api.app import create_api
from leadflow.bootstrap import open_app
from leadflow.core.policy import Action, Principal
from leadflow.settings import Settings
from leadflow.worker import Worker

ANYONE = Principal("key", "bench, no check", scope="intake")


async def _no_check(request: Request, action: Action) -> Principal:
    return ANYONE


def _build() -> FastAPI:
    settings = Settings()
    lf = open_app(settings, serving=True)
    api = create_api(lf, settings)
    worker = Worker(lf, poll_seconds=settings.worker_poll_seconds)
    worker.start()
    api.state.worker = worker
    gc.freeze()
    return api


def app() -> FastAPI:
    """Without the check: the route's permit() dependency calls this module-level function; in its place, every
    request is "a key"."""
    auth.authenticate = _no_check  # type: ignore[assignment]
    return _build()


def keyed() -> FastAPI:
    """The same, with the check: the pair differs in nothing else (launcher, options, worker)."""
    return _build()
