"""The services' webhooks, one module per service: public routes (a service cannot sign in), each checked by the
service's own signature or token before anything is read (see common.py)."""

from __future__ import annotations

from fastapi import APIRouter

from leadflow.api.webhooks import calls, meta, telegram, viber

# Each service's module adds its router here.
ROUTERS: list[APIRouter] = [telegram.router, viber.router, calls.router, meta.router]
