"""leadflow as `leadflow serve` runs it (the group writer, the worker in the process), with intake's credential
check taken out: the baseline bench/http.py measures authenticated intake against, in the same run. A bench
fixture only: leadflow itself has no way to turn authentication off.

    LEADFLOW_DATABASE_URL=sqlite:////tmp/x.db LEADFLOW_RULES=rules.yaml \\
        .venv/bin/python -m uvicorn --factory bench.http_open:app --port 8103
"""

from __future__ import annotations

import gc

from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts

from leadflow.api.app import create_api
from leadflow.bootstrap import open_app
from leadflow.core.policy import Action, Principal
from leadflow.settings import Settings
from leadflow.worker import Worker

ANYONE = Principal("key", "bench, no check", scope="intake")


async def _anyone() -> Principal:
    return ANYONE


def app() -> FastAPI:
    settings = Settings()
    lf = open_app(settings, serving=True)
    api = create_api(lf, settings)
    worker = Worker(lf, poll_seconds=settings.worker_poll_seconds)
    worker.start()
    api.state.worker = worker
    for context in iter_route_contexts(api.routes):
        route = context.original_route
        if isinstance(route, APIRoute):
            for dependency in route.dependant.dependencies:
                if getattr(dependency.call, "leadflow_action", None) is Action.LEAD_CREATE:
                    api.dependency_overrides[dependency.call] = _anyone
    gc.freeze()
    return api
