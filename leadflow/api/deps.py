"""How routers reach the running Leadflow and the settings (set on app.state at start)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from leadflow.services.context import Leadflow
from leadflow.settings import Settings


# async: a plain look-up, answered on the event loop. A sync dependency would cost a hop to the thread pool and
# back on every request.
async def _app(request: Request) -> Leadflow:
    app: Leadflow = request.app.state.leadflow
    return app


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


AppDep = Annotated[Leadflow, Depends(_app)]
SettingsDep = Annotated[Settings, Depends(_settings)]
