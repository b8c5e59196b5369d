"""The FastAPI application: routers, error shapes, the body limit."""

from __future__ import annotations

from fastapi import FastAPI

from leadflow import __version__
from leadflow.api import accounts, assign, channels, clients, desk, docs, health, intake, leads, people, sla, webhooks
from leadflow.api import client_events as client_events_api
from leadflow.api import reports as reports_api
from leadflow.api import tasks as tasks_api
from leadflow.api import tracking as tracking_api
from leadflow.api.auth import Authenticator, public
from leadflow.api.cors import Cors
from leadflow.api.errors import ALWAYS, BodyLimit, CatchAll, install_error_handlers
from leadflow.api.hosts import TrustedHosts, trusted_hosts
from leadflow.api.params import LeadflowRoute
from leadflow.api.security import SecurityHeaders
from leadflow.channels.redact import hide_in_logs
from leadflow.services.context import Leadflow
from leadflow.settings import Settings
from leadflow.web import admin_pages, desk_pages, login, outbox_pages, rules_pages, task_pages, team_pages, work
from leadflow.web import report_pages as report_pages_web
from leadflow.web.live import LiveHub


def create_api(app: Leadflow, settings: Settings) -> FastAPI:
    api = FastAPI(
        title="leadflow",
        version=__version__,
        description="Speed-to-lead engine: take in leads from every channel, clean, route, and explain why.",
        responses=ALWAYS,
        docs_url=None,  # leadflow's own /docs and /redoc (api/docs.py): FastAPI's start with inline scripts
        redoc_url=None,
    )
    # A call-tracking service's token may be in a webhook's address, and every channel's credential must stay out
    # of this process's logs (the access log included), whether or not a worker runs here.
    if secrets := app.channels.secrets():
        hide_in_logs(secrets)
    api.router.route_class = LeadflowRoute
    api.state.leadflow = app
    api.state.settings = settings
    api.state.auth = Authenticator(app, settings.session_times)
    api.state.live = LiveHub(app)
    install_error_handlers(api)
    api.include_router(intake.router)
    api.include_router(leads.router)
    api.include_router(people.router)
    api.include_router(sla.router)
    api.include_router(desk.router)
    api.include_router(desk.lead_actions)
    api.include_router(assign.router)
    api.include_router(health.router)
    api.include_router(accounts.router)
    api.include_router(clients.router)
    api.include_router(channels.router)
    api.include_router(client_events_api.router)
    api.include_router(tracking_api.router)
    api.include_router(tasks_api.router)
    api.include_router(reports_api.router)
    for hook in webhooks.ROUTERS:
        api.include_router(hook)
    api.include_router(login.router)
    api.include_router(work.router)
    api.include_router(rules_pages.router)
    api.include_router(outbox_pages.router)
    api.include_router(admin_pages.router)
    api.include_router(team_pages.router)
    api.include_router(desk_pages.router)
    api.include_router(task_pages.router)
    api.include_router(report_pages_web.router)
    api.include_router(docs.router)
    api.mount(docs.STATIC_URL, docs.static_files(), name="static")
    api.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes, timeout_seconds=settings.body_timeout_seconds)
    api.add_middleware(CatchAll)  # outside the body limit and the routes: it catches what they raise too
    if settings.cors_origins:
        api.add_middleware(Cors, origins=settings.cors_origins)  # outside CatchAll: a 500 is readable by the page
    api.add_middleware(TrustedHosts, hosts=trusted_hosts(settings.allowed_hosts, settings.base_url, settings.host))
    api.add_middleware(SecurityHeaders)  # added last, so it is outermost: every answer has the headers

    @api.get("/healthz", tags=["ops"], dependencies=[public("a load balancer's probe: says only that it runs")])
    def healthz() -> dict[str, str]:
        return {"status": "ok", "database": app.engine.dialect.name}

    return api
