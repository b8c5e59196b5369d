"""Viber's webhook: every event of the bot (messages, receipts of replies, subscriptions), signed with its token."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from leadflow.api.auth import public
from leadflow.api.deps import AppDep
from leadflow.api.errors import NOT_FOUND
from leadflow.api.webhooks.common import take_webhook
from leadflow.channels.inbound import viber
from leadflow.channels.inbound.config import env_name
from leadflow.core.errors import NotFound
from leadflow.services.context import utcnow

router = APIRouter(
    prefix="/api/v1/channels/viber", tags=["channel webhooks"], responses=NOT_FOUND
)  # 404: the channel is off


@router.post(
    "/webhook",
    summary="Viber's callbacks: messages to the bot, receipts of replies, subscriptions",
    dependencies=[public("Viber cannot sign in: each call carries X-Viber-Content-Signature, the HMAC-SHA256 of the "
                         "body with the bot's token, checked before anything is read")],
)  # fmt: skip
async def viber_webhook(request: Request, app: AppDep) -> Response:
    token = app.channels.viber_auth_token
    if token is None:
        raise NotFound(f"Viber's webhook is off: set {env_name('viber_auth_token')}")
    check = viber.check_signature(token.get_secret_value(), utcnow())
    return await take_webhook(request, app, viber.CHANNEL, viber.read_body, check)
