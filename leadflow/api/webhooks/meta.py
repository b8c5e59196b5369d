"""Meta's webhooks: WhatsApp (what clients write to the business number, and what became of the replies) and Lead
Ads (a page's new form leads). Both are signed with the app's secret and checked once by Meta's verify-token
handshake; both answer 200 to whatever they kept, because Meta sends again, for days, a call not answered 2xx."""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any

from anyio import to_thread
from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response
from starlette.background import BackgroundTask

from leadflow.api.auth import public
from leadflow.api.deps import AppDep
from leadflow.api.errors import NOT_FOUND, error_response
from leadflow.api.webhooks.common import take_webhook
from leadflow.channels.inbound import lead_ads, whatsapp
from leadflow.channels.inbound.config import ChannelsConfig, env_name
from leadflow.channels.inbound.lead_ads import LeadFetcher
from leadflow.channels.inbound.meta import check_handshake, check_signature
from leadflow.core.conversation import Inbound, Refusal
from leadflow.core.errors import NotFound, Unavailable
from leadflow.services.channel_state import count_refusal, hold_events, poller_services
from leadflow.services.context import Leadflow, utcnow

log = logging.getLogger("leadflow.api.webhooks.meta")
# The handshake's answer is the challenge as plain text; its errors are JSON like every other.
CHALLENGE: dict[int | str, dict[str, Any]] = {
    200: {"description": "hub.challenge, echoed", "content": {"text/plain": {"schema": {"type": "string"}}}}
}

router = APIRouter(prefix="/api/v1/channels", tags=["channel webhooks"], responses=NOT_FOUND)  # 404: the channel is off

SIGNED = ("Meta cannot sign in: each call carries X-Hub-Signature-256, the HMAC-SHA256 of the body with the app's "
          f"secret ({env_name('meta_app_secret')}), checked before anything is read")  # fmt: skip
HANDSHAKE = (f"Meta's subscription check: the challenge is echoed only to a caller with the verify token "
             f"({env_name('meta_verify_token')})")  # fmt: skip


# -- WhatsApp ---------------------------------------------------------------------------------------------------------


@router.get("/whatsapp/webhook", summary="Meta's check of WhatsApp's webhook address (hub.challenge)",
            dependencies=[public(HANDSHAKE)], responses=CHALLENGE)  # fmt: skip
async def whatsapp_handshake(request: Request, app: AppDep) -> Response:
    return await _handshake(request, app, whatsapp.CHANNEL, _whatsapp_on(app.channels))


@router.post("/whatsapp/webhook", summary="WhatsApp's notifications: clients' messages, statuses of replies",
             dependencies=[public(SIGNED)])  # fmt: skip
async def whatsapp_webhook(request: Request, app: AppDep) -> Response:
    _whatsapp_on(app.channels)
    secret = _app_secret(app.channels)
    return await take_webhook(request, app, whatsapp.CHANNEL, whatsapp.read_body,
                              check_signature(whatsapp.CHANNEL, secret))  # fmt: skip


def _whatsapp_on(config: ChannelsConfig) -> str:
    """The verify token, when WhatsApp is set up; 404 naming the setting when it is not."""
    if config.whatsapp_access_token is None:
        raise NotFound(f"WhatsApp's webhook is off: set {env_name('whatsapp_access_token')}")
    return _verify_token(config)


# -- Lead Ads ---------------------------------------------------------------------------------------------------------


@router.get("/lead-ads/webhook", summary="Meta's check of the Lead Ads webhook address (hub.challenge)",
            dependencies=[public(HANDSHAKE)], responses=CHALLENGE)  # fmt: skip
async def lead_ads_handshake(request: Request, app: AppDep) -> Response:
    return await _handshake(request, app, lead_ads.CHANNEL, _lead_ads_on(app.channels))


@router.post("/lead-ads/webhook", summary="A page's new form leads (their answers are fetched from the Graph API)",
             dependencies=[public(SIGNED)])  # fmt: skip
async def lead_ads_webhook(request: Request, app: AppDep) -> Response:
    _lead_ads_on(app.channels)
    secret = _app_secret(app.channels)
    keeper = _FormKeeper(app)
    answer = await take_webhook(request, app, lead_ads.CHANNEL, keeper.read,
                                check_signature(lead_ads.CHANNEL, secret), blocking=True)  # fmt: skip
    if keeper.failed:  # Meta must send it again: 2xx would lose the leads
        raise Unavailable("the new leads could not be kept; Meta sends them again")
    if keeper.fresh:  # fetched right after the answer; the worker's poller fetches what this misses
        answer.background = BackgroundTask(_fetch_now, app, keeper.fresh)
    return answer


class _FormKeeper:
    """Reads a Lead Ads call and keeps the ids of its new leads (committed before Meta is answered)."""

    def __init__(self, app: Leadflow) -> None:
        self.app = app
        self.fresh: list[str] = []
        self.failed = False

    def read(self, body: bytes) -> list[Inbound]:
        notices, others = lead_ads.read_body(body)  # a body it cannot read is kept by take_webhook, answered 200
        if not notices:
            return others
        now = utcnow()
        kept = {notice.leadgen_id: notice.kept(now.timestamp()) for notice in notices}
        try:
            self.fresh = hold_events(self.app, lead_ads.CHANNEL, kept, now, taken_in=(lead_ads.CHANNEL,))
        except Exception:
            log.exception("Lead Ads: the new leads' ids could not be kept; answering 503 so that Meta sends them again")
            self.failed = True
            return []
        return others


def _fetch_now(app: Leadflow, leadgen_ids: Collection[str]) -> None:
    try:
        fetcher = LeadFetcher(app.channels, poller_services(app, utcnow))
        try:
            fetcher.fetch(only=leadgen_ids)
        finally:
            fetcher.close()
    except Exception:  # the forms stay kept: the worker's poller fetches them
        log.exception("Lead Ads: fetching the new leads right away failed; the worker asks again")


def _lead_ads_on(config: ChannelsConfig) -> str:
    if config.meta_page_access_token is None:
        raise NotFound(f"the Lead Ads webhook is off: set {env_name('meta_page_access_token')}")
    return _verify_token(config)


# -- Both -------------------------------------------------------------------------------------------------------------


async def _handshake(request: Request, app: Leadflow, channel: str, verify_token: str) -> Response:
    try:
        challenge = check_handshake(channel, verify_token, request.query_params)
    except Refusal as refused:
        await to_thread.run_sync(count_refusal, app, refused, utcnow())
        code = "unauthenticated" if refused.status == 401 else "forbidden"
        return error_response(request, refused.status, code, f"{channel}: {refused.reason}")
    return PlainTextResponse(challenge)


def _verify_token(config: ChannelsConfig) -> str:
    if config.meta_verify_token is None:  # the settings' check makes this unreachable; said plainly all the same
        raise NotFound(f"Meta's webhooks are off: set {env_name('meta_verify_token')}")
    return config.meta_verify_token.get_secret_value()


def _app_secret(config: ChannelsConfig) -> str:
    if config.meta_app_secret is None:
        raise NotFound(f"Meta's webhooks are off: set {env_name('meta_app_secret')}")
    return config.meta_app_secret.get_secret_value()
