"""Telegram's webhook: updates from the bot's clients, proven by the secret token set with setWebhook."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from leadflow.api.auth import public
from leadflow.api.deps import AppDep
from leadflow.api.errors import NOT_FOUND
from leadflow.api.webhooks.common import take_webhook
from leadflow.channels.inbound import telegram
from leadflow.channels.inbound.config import env_name
from leadflow.core.errors import NotFound

router = APIRouter(
    prefix="/api/v1/channels/telegram", tags=["channel webhooks"], responses=NOT_FOUND
)  # 404: the channel is off


@router.post(
    "/webhook",
    summary="Telegram's updates (webhook mode)",
    dependencies=[public("Telegram cannot sign in: each call carries the X-Telegram-Bot-Api-Secret-Token set with "
                         "setWebhook, checked before anything is read")],
)  # fmt: skip
async def telegram_webhook(request: Request, app: AppDep) -> Response:
    config = app.channels
    if config.telegram_bot_token is None or config.telegram_mode != "webhook" or not config.telegram_webhook_secret:
        raise NotFound(f"Telegram's webhook is off: set {env_name('telegram_bot_token')} and "
                       f"{env_name('telegram_webhook_secret')} (and leave {env_name('telegram_mode')} at webhook)")  # fmt: skip
    check = telegram.check_secret(config.telegram_webhook_secret.get_secret_value())
    return await take_webhook(request, app, telegram.CHANNEL, telegram.read_body, check)
