"""Telegram: a bot clients write to. Its updates arrive by webhook (Telegram calls leadflow, proving itself with the
secret token given at setWebhook) or by long polling (leadflow asks getUpdates; no public address needed). Either
way each update is read here into core.conversation values; replies go out through sendMessage, paced to the Bot
API's limits (about one message a second to a chat, thirty a second in all).

A message is known by its chat and message id, the same whether it came by webhook or by polling, so switching
modes (or an update delivered twice) takes nothing twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson

from leadflow.channels.inbound.config import ChannelsConfig, env_name
from leadflow.channels.inbound.ports import PollerServices
from leadflow.channels.senders import DeliveryError, telegram_result
from leadflow.core.conversation import Inbound, InboundMessage, Unreadable, prove

log = logging.getLogger("leadflow.channels.telegram")

CHANNEL = "telegram"
SECRET_HEADER = "x-telegram-bot-api-secret-token"
MAX_TEXT = 4096
PER_CHAT_SECONDS = 1.0  # the Bot API's advice: at most one message a second to one chat
GLOBAL_SECONDS = 1 / 30  # and about thirty a second in all
LONG_POLL_SECONDS = 10  # getUpdates' timeout: short enough that stopping the worker is quick
ATTACHMENTS = ("photo", "document", "video", "voice", "audio", "sticker", "video_note", "animation")


# -- Checking and reading what Telegram sends ---------------------------------------------------------------------


def check_secret(secret: str) -> Callable[[bytes, Mapping[str, str]], None]:
    """The webhook's check: the secret token leadflow gave Telegram at setWebhook, compared in constant time."""

    def check(_: bytes, headers: Mapping[str, str]) -> None:
        prove(CHANNEL, headers.get(SECRET_HEADER), secret, "secret token")

    return check


def read_body(body: bytes) -> list[Inbound]:
    """A webhook call: one update."""
    update = orjson.loads(body)
    if not isinstance(update, dict):
        raise ValueError("an update is a JSON object")
    return read_update(update)


def read_update(update: Mapping[str, Any]) -> list[Inbound]:
    """One update as leadflow sees it: a client's message (text, a shared contact, a caption), or what it is not."""
    message = update.get("message")
    if not isinstance(message, dict):
        kind = next((k for k in update if k != "update_id"), "nothing")
        return [Unreadable(CHANNEL, f"ignored: a {kind} update is not a client's message",
                           f"update:{update.get('update_id')}", raw=update)]  # fmt: skip
    chat = message.get("chat") or {}
    chat_id, message_id = chat.get("id"), message.get("message_id")
    if chat_id is None or message_id is None:
        return [Unreadable(CHANNEL, "a message without a chat or message id", None, raw=update)]
    event_id = f"{chat_id}:{message_id}"
    if chat.get("type", "private") != "private":
        return [Unreadable(CHANNEL, f"ignored: a message in a {chat.get('type')} chat, not from a client to the bot",
                           event_id, raw=update)]  # fmt: skip
    sender = message.get("from") or {}
    name = " ".join(str(p) for p in (sender.get("first_name"), sender.get("last_name")) if p) or None
    lead: dict[str, Any] = {}
    if sender.get("language_code"):
        lead["language"] = str(sender["language_code"])[:10]
    meta: dict[str, Any] = {}
    if sender.get("username"):
        meta["username"] = sender["username"]
    text = message.get("text") or message.get("caption")
    kind = "message"
    contact = message.get("contact")
    if isinstance(contact, dict) and contact.get("phone_number"):
        kind = "contact"
        lead["phone"] = str(contact["phone_number"])
        own = contact.get("user_id") is not None and contact.get("user_id") == sender.get("id")
        meta["contact_is_the_client"] = own
        text = text or f"shared a contact: {contact['phone_number']}"
    attached = [a for a in ATTACHMENTS if a in message]
    if attached:
        meta["attachment"] = attached[0]
        text = text or f"[{attached[0]}]"
    if isinstance(text, str) and text.startswith("/start"):
        # A deep link (t.me/bot?start=spring_ad) tells which ad brought the client.
        payload = text[len("/start") :].strip()
        if payload:
            lead["utm_campaign"] = payload[:200]
        text = "started a chat with the bot" + (f" ({payload})" if payload else "")
    if not text:
        return [Unreadable(CHANNEL, "a message with nothing leadflow can show (no text, contact or caption)",
                           event_id, raw=update)]  # fmt: skip
    at = datetime.fromtimestamp(message["date"], UTC) if isinstance(message.get("date"), int) else None
    return [InboundMessage(CHANNEL, event_id, str(chat_id), str(text)[:MAX_TEXT], name=name, at=at, kind=kind,
                           lead=lead, meta=meta, raw=update)]  # fmt: skip


# -- Talking to the Bot API -----------------------------------------------------------------------------------------


class BotApi:
    """The Bot API methods leadflow calls. The token is in every URL, so no URL is ever logged or put in an error."""

    def __init__(self, config: ChannelsConfig, client: httpx.Client | None = None) -> None:
        if config.telegram_bot_token is None:
            raise ValueError(f"Telegram needs a bot token: set {env_name('telegram_bot_token')}")
        self._base = f"{config.telegram_api_base}/bot{config.telegram_bot_token.get_secret_value()}"
        self._client = client or httpx.Client(timeout=LONG_POLL_SECONDS + 10)

    def call(self, method: str, body: Mapping[str, Any], timeout: float | None = None) -> Any:
        """Call a method; returns its `result`, or raises DeliveryError saying what Telegram answered."""
        try:
            response = self._client.post(f"{self._base}/{method}", json=dict(body), timeout=timeout or 15)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"Telegram {method} failed: {type(exc).__name__}", retryable=True) from None
        return telegram_result(response, method, env_name("telegram_bot_token"))

    def close(self) -> None:
        self._client.close()


class Pacer:
    """When the next message may go: one a second to a chat, thirty a second in all. The clock is an argument."""

    def __init__(self, per_chat: float = PER_CHAT_SECONDS, overall: float = GLOBAL_SECONDS) -> None:
        self.per_chat = per_chat
        self.overall = overall
        self._chats: dict[str, float] = {}
        self._last = float("-inf")
        self._lock = threading.Lock()

    def reserve(self, chat: str, now: float) -> float:
        """Book the next slot for `chat`; returns the seconds to wait for it (0: send now)."""
        with self._lock:
            at = max(now, self._chats.get(chat, float("-inf")) + self.per_chat, self._last + self.overall)
            self._chats[chat] = self._last = at
            if len(self._chats) > 10_000:  # forget chats whose slot has long passed
                self._chats = {c: t for c, t in self._chats.items() if t > now - 60}
            return at - now


class TelegramReplier:
    """Replies to a client's chat through sendMessage, paced to the Bot API's limits."""

    def __init__(self, config: ChannelsConfig, client: httpx.Client | None = None, pacer: Pacer | None = None) -> None:
        self.api = BotApi(config, client)
        self.pacer = pacer or Pacer()

    def send(self, address: str, text: str, subject: str | None, payload: Mapping[str, Any]) -> str | None:
        wait = self.pacer.reserve(address, time.monotonic())
        if wait > 5:  # a long queue for this chat: the outbox tries again then, instead of holding the sender
            raise DeliveryError("Telegram's pace for this chat is taken", retryable=True,
                                retry_after=timedelta(seconds=wait))  # fmt: skip
        if wait > 0:
            time.sleep(wait)
        body = {"chat_id": address, "text": text[:MAX_TEXT], "link_preview_options": {"is_disabled": True}}
        result = self.api.call("sendMessage", body)
        return str(result["message_id"]) if isinstance(result, dict) and "message_id" in result else None

    def close(self) -> None:
        self.api.close()


def set_webhook(config: ChannelsConfig, url: str, client: httpx.Client | None = None) -> None:
    """Tell Telegram where to send updates, with the secret it must send back."""
    if config.telegram_webhook_secret is None:
        raise ValueError(f"set {env_name('telegram_webhook_secret')} first: Telegram sends it with every update")
    api = BotApi(config, client)
    try:
        api.call("setWebhook", {"url": url, "secret_token": config.telegram_webhook_secret.get_secret_value(),
                                "allowed_updates": ["message"]})  # fmt: skip
    finally:
        api.close()


def delete_webhook(config: ChannelsConfig, client: httpx.Client | None = None) -> None:
    """Stop Telegram calling leadflow (long polling needs that: getUpdates is refused while a webhook is set)."""
    api = BotApi(config, client)
    try:
        api.call("deleteWebhook", {"drop_pending_updates": False})
    finally:
        api.close()


# -- Long polling -----------------------------------------------------------------------------------------------------

Take = Callable[[Sequence[Inbound]], object]  # commits what was read (services.conversations.take_inbound)


class TelegramPoller:
    """Asks getUpdates for new updates, takes them, and only then moves the offset on (kept in the database), so a
    crash between the two takes the same updates again, which the dedupe drops."""

    name = "telegram-poller"

    def __init__(self, config: ChannelsConfig, take: Take, offsets: OffsetStore,
                 client: httpx.Client | None = None, long_poll: int = LONG_POLL_SECONDS) -> None:  # fmt: skip
        self.api = BotApi(config, client)
        self.take = take
        self.offsets = offsets
        self.long_poll = long_poll

    def poll_once(self) -> int:
        """One getUpdates round; returns how many updates it took."""
        offset = self.offsets.load()
        body: dict[str, Any] = {"timeout": self.long_poll, "allowed_updates": ["message"]}
        if offset is not None:
            body["offset"] = offset
        updates = self.api.call("getUpdates", body, timeout=self.long_poll + 10)
        if not isinstance(updates, list) or not updates:
            return 0
        items: list[Inbound] = []
        for update in updates:
            try:
                items.extend(read_update(update))
            except Exception as exc:  # one odd update must not stop the rest
                items.append(Unreadable(CHANNEL, f"not understood: {type(exc).__name__}: {exc}"[:500],
                                        f"update:{update.get('update_id')}", raw=update))  # fmt: skip
        self.take(items)
        self.offsets.save(max(int(u["update_id"]) for u in updates) + 1)
        return len(updates)

    def run(self, stop: threading.Event) -> None:
        backoff = 1.0
        while not stop.is_set():
            try:
                self.poll_once()
                if backoff > 1.0:  # it works again: the error shown is no longer true
                    self.offsets.recovered()
                backoff = 1.0
            except DeliveryError as exc:
                self.offsets.failed(exc.message)
                log.warning("Telegram polling failed, trying again in %.0f s: %s", backoff, exc.message)
                stop.wait(backoff)
                backoff = min(backoff * 2, 60)
            except Exception as exc:
                self.offsets.failed(f"{type(exc).__name__}: {exc}")
                log.exception("Telegram polling failed, trying again in %.0f s", backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, 60)
        self.api.close()


class OffsetStore:
    """Where the poller keeps its offset and its last error (the channel_state table, through the worker)."""

    def __init__(self, services: PollerServices) -> None:
        self.services = services

    def load(self) -> int | None:
        value = self.services.load_state(CHANNEL, "offset")
        return int(value) if value else None

    def save(self, offset: int) -> None:
        self.services.save_state(CHANNEL, "offset", str(offset))

    def failed(self, error: str) -> None:
        self.services.note_error(CHANNEL, error)

    def recovered(self) -> None:
        if self.services.clear_error is not None:
            self.services.clear_error(CHANNEL)


def telegram_poller(config: ChannelsConfig, services: PollerServices) -> TelegramPoller:
    return TelegramPoller(config, services.take, OffsetStore(services))
