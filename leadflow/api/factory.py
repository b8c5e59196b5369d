"""The app factory `leadflow serve --workers N` hands to uvicorn: each serving process builds its own app.

The processes read the same settings from the environment (serve puts its options there before it starts them).
The parent has already migrated the schema and written the rules' people, and runs the worker (deadlines,
notifications) once for the host, so the serving processes only serve.
"""

from __future__ import annotations

import gc

from fastapi import FastAPI

from leadflow.api.app import create_api
from leadflow.bootstrap import open_app
from leadflow.settings import Settings


def make_api() -> FastAPI:
    settings = Settings()
    api = create_api(open_app(settings, migrate_schema=False, serving=True), settings)
    gc.freeze()  # what startup built lives as long as the process: out of the collector's walks (see serve)
    return api
