"""The FastAPI application: routers, error shapes, the body limit."""

from __future__ import annotations

from fastapi import FastAPI

from leadflow import __version__
from leadflow.api import assign, desk, health, intake, leads, people, sla
from leadflow.api.errors import ALWAYS, BodyLimit, CatchAll, install_error_handlers
from leadflow.api.params import LeadflowRoute
from leadflow.services.context import Leadflow
from leadflow.settings import Settings


def create_api(app: Leadflow, settings: Settings) -> FastAPI:
    api = FastAPI(
        title="leadflow",
        version=__version__,
        description="Speed-to-lead engine: take in leads from every channel, clean, route, and explain why.",
        responses=ALWAYS,
    )
    api.router.route_class = LeadflowRoute
    api.state.leadflow = app
    api.state.settings = settings
    install_error_handlers(api)
    api.include_router(intake.router)
    api.include_router(leads.router)
    api.include_router(people.router)
    api.include_router(sla.router)
    api.include_router(desk.router)
    api.include_router(desk.lead_actions)
    api.include_router(assign.router)
    api.include_router(health.router)
    api.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    api.add_middleware(CatchAll)  # added last, so it is outside the others: it catches what they raise too

    @api.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, str]:
        return {"status": "ok", "database": app.engine.dialect.name}

    return api
