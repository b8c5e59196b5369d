"""Call-tracking services' webhook: every finished call, from Binotel, Ringostat or any service that posts leadflow's
own JSON, proven by the shared token in a header or in the address (docs/channels.md says why both)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response

from leadflow.api.auth import public
from leadflow.api.deps import AppDep
from leadflow.api.errors import NOT_FOUND
from leadflow.api.params import KEY_PATTERN
from leadflow.api.webhooks.common import take_webhook
from leadflow.channels.inbound import calls
from leadflow.channels.inbound.config import env_name
from leadflow.core.errors import NotFound
from leadflow.services.context import Leadflow

router = APIRouter(
    prefix="/api/v1/channels/calls", tags=["channel webhooks"], responses=NOT_FOUND
)  # 404: the channel is off

Provider = Annotated[str, Path(min_length=1, max_length=60, pattern=KEY_PATTERN,
                                description="binotel, ringostat or generic")]  # fmt: skip
Token = Annotated[str, Path(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.~-]+$",
                             description="LEADFLOW_CHANNELS__CALLS_SECRET, for services that only call a URL")]  # fmt: skip
WHY = ("call-tracking services cannot sign in: each call carries the shared token (LEADFLOW_CHANNELS__CALLS_SECRET) "
       "in the X-Leadflow-Token header or as the address's last segment, checked before anything is read")  # fmt: skip


@router.post("/{provider}", summary="A finished call (binotel, ringostat or generic), token in X-Leadflow-Token",
             dependencies=[public(WHY)])  # fmt: skip
async def call_webhook(provider: Provider, request: Request, app: AppDep) -> Response:
    return await _take(request, app, provider, None)


@router.post("/{provider}/{token}", summary="A finished call, token in the address (services that only call a URL)",
             dependencies=[public(WHY)])  # fmt: skip
async def call_webhook_with_token(provider: Provider, token: Token, request: Request, app: AppDep) -> Response:
    return await _take(request, app, provider, token)


async def _take(request: Request, app: Leadflow, provider: str, token: str | None) -> Response:
    if provider not in calls.PROVIDERS:
        raise NotFound(f"no call-tracking format '{provider[:40]}': use one of {', '.join(calls.PROVIDERS)}")
    secret = app.channels.calls_secret
    if secret is None:
        raise NotFound(f"calls are off: set {env_name('calls_secret')}")
    check = calls.check_token(secret.get_secret_value(), provider, token)
    answer = await take_webhook(request, app, calls.CHANNEL, calls.reader(provider), check)
    if provider == "binotel" and answer.status_code == 200:
        # Binotel reads this exact answer as "received"; anything else and it sends the call again, up to 5 times.
        return Response(calls.BINOTEL_ANSWER, media_type="application/json")
    return answer
