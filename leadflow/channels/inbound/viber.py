"""Viber: a bot account clients write to. Viber posts every event to the one webhook the bot has, signed with the
bot's token (`X-Viber-Content-Signature`: the hex HMAC-SHA256 of the raw body); each is read here into
core.conversation values. Replies go out through send_message; Viber's later word on them (delivered, seen, failed)
comes back through the same webhook, naming the token send_message gave the reply.

What makes a lead is a client's message (text, a shared contact, a picture...). Subscribing, unsubscribing and
opening the chat without writing are kept as channel events with the reason, never a lead: the client said nothing
yet, and a bot may not write to someone who only opened the chat.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson

from leadflow.channels.inbound.config import ChannelsConfig, env_name
from leadflow.channels.senders import DeliveryError, retry_after
from leadflow.core.conversation import DeliveryStatus, Inbound, InboundMessage, Refusal, Unreadable, prove

CHANNEL = "viber"
WEBHOOK_PATH = "/api/v1/channels/viber/webhook"
SIGNATURE_HEADER = "x-viber-content-signature"
MAX_TEXT = 7000  # send_message's limit for a text, in characters
LEAD_MESSAGE = 4000  # what a lead's message field holds (core.lead.MAX_TEXT); the thread keeps the whole text
# Viber retries a callback for about an hour; a signed body much older than that is someone replaying it.
REPLAY_WINDOW = timedelta(hours=6)
# The events leadflow asks for at set_webhook (messages come whatever is asked).
EVENT_TYPES = ("delivered", "seen", "failed", "subscribed", "unsubscribed", "conversation_started")
# Viber's receipts, in leadflow's words for what became of a sent message.
RECEIPTS = {"delivered": "delivered", "seen": "read", "failed": "failed"}

Check = Callable[[bytes, Mapping[str, str]], None]


# -- Checking and reading what Viber sends ----------------------------------------------------------------------------


def signature(token: str, body: bytes) -> str:
    """What Viber puts in X-Viber-Content-Signature: the hex HMAC-SHA256 of the body, keyed with the bot's token."""
    return hmac.new(token.encode(), body, hashlib.sha256).hexdigest()


def check_signature(token: str, now: datetime) -> Check:
    """The webhook's check: the body's signature, compared in constant time, and a timestamp within the window."""

    def check(body: bytes, headers: Mapping[str, str]) -> None:
        prove(CHANNEL, headers.get(SIGNATURE_HEADER, "").strip().lower(), signature(token, body), "signature")
        sent_at = _timestamp_of(body)
        if sent_at is not None and now - sent_at > REPLAY_WINDOW:
            raise Refusal(CHANNEL, "replayed (timestamp older than the window)", 403)

    return check


def _timestamp_of(body: bytes) -> datetime | None:
    """The event's own time, if the (already authenticated) body has one; reading it properly is read_body's job."""
    try:
        event = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return _at(event.get("timestamp")) if isinstance(event, dict) else None


def _at(milliseconds: Any) -> datetime | None:
    """Viber's timestamps are epoch milliseconds."""
    if isinstance(milliseconds, int) and not isinstance(milliseconds, bool) and milliseconds > 0:
        try:
            return datetime.fromtimestamp(milliseconds / 1000, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    return None


def read_body(body: bytes) -> list[Inbound]:
    """A webhook call: one event."""
    event = orjson.loads(body)
    if not isinstance(event, dict):
        raise ValueError("a Viber callback is a JSON object")
    return read_event(event)


def read_event(event: Mapping[str, Any]) -> list[Inbound]:
    """One callback as leadflow sees it: a client's message, a receipt for a reply, or a note of what it is not."""
    name = event.get("event")
    reader = _READERS.get(name) if isinstance(name, str) else None
    if reader is None:
        said = f"not understood: an event {str(name)[:60]!r} is not one Viber's REST Bot API sends"
        return [Unreadable(CHANNEL, said, _event_id(name, event), raw=event)]
    return reader(event)


def _token(event: Mapping[str, Any]) -> str | None:
    token = event.get("message_token")
    return str(token) if isinstance(token, int | str) and not isinstance(token, bool) and str(token) else None


def _event_id(name: object, event: Mapping[str, Any]) -> str | None:
    token = _token(event)
    return f"{name}:{token}" if token is not None else None


def _person(user: Any) -> str:
    if not isinstance(user, dict):
        return "a user"
    name, user_id = str(user.get("name") or "")[:100], str(user.get("id"))[:100]
    return f"{name} ({user_id})" if name else f"user {user_id}"


def _webhook_check(event: Mapping[str, Any]) -> list[Inbound]:
    # Kept (not a lead) so `leadflow channels status` shows that Viber reached leadflow when the webhook was set.
    return [Unreadable(CHANNEL, "ignored: Viber's check of the webhook address (set_webhook)",
                       _event_id("webhook", event), raw=event)]  # fmt: skip


def _subscribed(event: Mapping[str, Any]) -> list[Inbound]:
    return [Unreadable(CHANNEL, f"ignored: {_person(event.get('user'))} subscribed to the bot; a lead comes with "
                       "their first message", _event_id("subscribed", event), raw=event)]  # fmt: skip


def _unsubscribed(event: Mapping[str, Any]) -> list[Inbound]:
    who = str(event.get("user_id"))[:100]
    return [Unreadable(CHANNEL, f"ignored: user {who} unsubscribed from the bot; Viber refuses replies to them until "
                       "they write again", _event_id("unsubscribed", event), raw=event)]  # fmt: skip


def _conversation_started(event: Mapping[str, Any]) -> list[Inbound]:
    # The client opened the chat (from a link or a QR code) and wrote nothing: no lead yet, and a bot may not write
    # to someone who has not subscribed. The context says which link brought them.
    context = event.get("context")
    via = f" from the link with context {str(context)[:200]!r}" if context else ""
    subscribed = " (subscribed)" if event.get("subscribed") is True else ""
    return [Unreadable(CHANNEL, f"ignored: {_person(event.get('user'))}{subscribed} opened the chat{via} without "
                       "writing; a lead comes with their first message or shared contact",
                       _event_id("conversation_started", event), raw=event)]  # fmt: skip


def _receipt(event: Mapping[str, Any]) -> list[Inbound]:
    name = str(event["event"])
    token = _token(event)
    if token is None:
        return [Unreadable(CHANNEL, f"a {name} receipt without a message token", None, raw=event)]
    error = None
    if name == "failed":
        error = str(event.get("desc") or "Viber could not deliver it")[:2000]
    return [DeliveryStatus(CHANNEL, f"{token}:{name}", token, RECEIPTS[name], at=_at(event.get("timestamp")),
                           error=error, raw=event)]  # fmt: skip


def _message(event: Mapping[str, Any]) -> list[Inbound]:
    sender = event.get("sender")
    token = _token(event)
    sender_id = sender.get("id") if isinstance(sender, dict) else None
    if not isinstance(sender, dict) or not sender_id or token is None:
        return [Unreadable(CHANNEL, "a message without a sender id or a message token", token, raw=event)]
    message = event.get("message")
    if not isinstance(message, dict):
        return [Unreadable(CHANNEL, "a message event without a message", token, raw=event)]
    kind, text, lead, meta = _content(message)
    if sender.get("language"):
        lead["language"] = str(sender["language"])[:10]
    if sender.get("country"):
        lead["region"] = str(sender["country"])[:60]  # the country the client's Viber number is registered in
    if text and len(text) > LEAD_MESSAGE:
        lead["message"] = text[:LEAD_MESSAGE]  # the lead's field has a limit; the thread keeps the whole text
    tracking = message.get("tracking_data")
    if tracking:
        # Viber hands back the tracking_data of the bot's last message: leadflow's id of the reply being answered
        # (leadflow's own id, not Viber's, so it is shown beside the message rather than used as reply_to).
        meta["answers_message"] = str(tracking)[:200]
    name = sender.get("name")
    return [InboundMessage(CHANNEL, token, str(sender_id), text, name=str(name)[:200] if name else None,
                           at=_at(event.get("timestamp")), kind=kind, lead=lead, meta=meta, raw=event)]  # fmt: skip


def _content(message: Mapping[str, Any]) -> tuple[str, str, dict[str, Any], dict[str, Any]]:
    """A message's kind, the text shown in the thread, the lead fields it brings and what is shown beside it."""
    kind_of = str(message.get("type") or "unknown")[:30]
    text = message.get("text") if isinstance(message.get("text"), str) else None
    lead: dict[str, Any] = {}
    meta: dict[str, Any] = {"type": kind_of}
    if kind_of == "contact":
        given = message.get("contact")
        contact: Mapping[str, Any] = given if isinstance(given, dict) else {}
        phone, name = contact.get("phone_number"), contact.get("name")
        if phone:
            lead["phone"] = str(phone)[:40]
        if name:
            meta["contact_name"] = str(name)[:200]
        shared = " ".join(str(p) for p in (name, phone) if p)
        return "contact", text or f"shared a contact: {shared or 'empty'}", lead, meta
    for field in ("media", "thumbnail", "file_name", "size", "duration", "sticker_id"):
        if message.get(field) not in (None, ""):
            meta[field] = message[field]
    location = message.get("location")
    if kind_of == "location" and isinstance(location, dict):
        meta["location"] = {"lat": location.get("lat"), "lon": location.get("lon")}
        return "message", text or f"[location] {location.get('lat')}, {location.get('lon')}", lead, meta
    if kind_of == "url" and message.get("media"):
        return "message", text or str(message["media"]), lead, meta
    return "message", text or f"[{kind_of}]", lead, meta


_READERS: dict[str, Callable[[Mapping[str, Any]], list[Inbound]]] = {
    "webhook": _webhook_check,
    "subscribed": _subscribed,
    "unsubscribed": _unsubscribed,
    "conversation_started": _conversation_started,
    "message": _message,
    "delivered": _receipt,
    "seen": _receipt,
    "failed": _receipt,
}


# -- Talking to Viber's REST API --------------------------------------------------------------------------------------

# Viber's statuses other than 0 (ok), from its error codes, with what a person should do. Only the rate limit is
# worth trying again soon; an unlisted status ("general error") is tried again too, a few times.
_STATUSES: dict[int, tuple[str, str]] = {
    1: (
        "invalidUrl",
        "Viber could not use the webhook address: it must be https with a trusted certificate, "
        "and leadflow must answer there",
    ),
    2: ("invalidAuthToken", f"the bot's token was refused: check {env_name('viber_auth_token')}"),
    3: ("badData", "Viber could not read the request"),
    4: ("missingData", "Viber says a required field is missing"),
    5: ("receiverNotRegistered", "the client is not registered with Viber (any more): answer them in another channel"),
    6: (
        "receiverNotSubscribed",
        "the client is not subscribed to the bot (they unsubscribed, or only opened the "
        "chat): Viber lets the bot write again once they write to it",
    ),
    7: ("publicAccountBlocked", "the bot account is blocked: contact Viber"),
    8: ("publicAccountNotFound", f"no bot account has this token: check {env_name('viber_auth_token')}"),
    9: ("publicAccountSuspended", "the bot account is suspended: contact Viber"),
    10: (
        "webhookNotSet",
        "Viber sends nothing from a bot without a webhook: run `leadflow channels viber set-webhook URL`",
    ),
    11: ("receiverNoSuitableDevice", "the client's Viber app cannot receive messages from bots"),
    12: ("tooManyRequests", "Viber's rate limit: at most 100 messages to one client within an hour without a reply"),
    13: ("apiVersionNotSupported", "the client's Viber app is too old for this message"),
    14: ("incompatibleWithVersion", "the message does not fit the API version it asks for"),
    15: ("publicAccountNotAuthorized", "the bot account may not send this: contact Viber"),
    16: ("inchatReplyMessageNotAllowed", "Viber does not allow this reply in the chat"),
    17: ("publicAccountIsNotInline", "the bot account is not inline"),
    18: ("noPublicChat", "the bot account has no public chat"),
    19: ("cannotSendBroadcast", "Viber refused a broadcast"),
    20: ("broadcastNotAllowed", "the bot may not broadcast"),
    21: ("unsupportedCountry", "Viber does not deliver this message to the client's country"),
    22: ("paymentUnsupported", "the bot does not support payment messages"),
    23: ("freeMessagesExceeded", "the bot's free messages of the month are used up: see the bot's billing with Viber"),
    24: ("noBalance", "the bot's balance is empty: top it up with Viber"),
}
_RETRYABLE = frozenset({12})
# The per-client limit clears within the hour (or when the client answers): waiting minutes, not seconds, helps.
RATE_LIMIT_WAIT = timedelta(minutes=10)


class ViberApi:
    """The REST API methods leadflow calls, each with the bot's token in X-Viber-Auth-Token (never in an error)."""

    def __init__(self, config: ChannelsConfig, client: httpx.Client | None = None) -> None:
        if config.viber_auth_token is None:
            raise ValueError(f"Viber needs the bot's token: set {env_name('viber_auth_token')}")
        self._base = config.viber_api_base
        self._headers = {"X-Viber-Auth-Token": config.viber_auth_token.get_secret_value()}
        self._client = client or httpx.Client(timeout=15, follow_redirects=False)

    def call(self, method: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Call a method; returns Viber's answer (status 0), or raises DeliveryError saying what Viber answered."""
        try:
            response = self._client.post(f"{self._base}/{method}", json=dict(body), headers=self._headers)
        except httpx.TimeoutException as exc:
            late = f"Viber {method} did not answer in time ({type(exc).__name__})"
            raise DeliveryError(late, retryable=True) from None
        except httpx.HTTPError as exc:
            raise DeliveryError(f"could not reach Viber's {method}: {type(exc).__name__}", retryable=True) from None
        if not response.is_success:
            code = response.status_code
            raise DeliveryError(f"Viber {method} answered HTTP {code}", retryable=code >= 500 or code in (408, 429),
                                retry_after=retry_after(response))  # fmt: skip
        try:
            answer = response.json()
        except ValueError:
            answer = None
        status = answer.get("status") if isinstance(answer, dict) else None
        if not isinstance(answer, dict) or not isinstance(status, int):
            raise DeliveryError(f"Viber {method} answered without a status (not Viber talking?)", retryable=True)
        if status == 0:
            return answer
        name, advice = _STATUSES.get(status, ("general error", "an error Viber does not explain: tried again later"))
        said = str(answer.get("status_message") or name)[:200]
        raise DeliveryError(f"Viber refused {method} (status {status}, {said}): {advice}",
                            retryable=status in _RETRYABLE or status not in _STATUSES,
                            retry_after=RATE_LIMIT_WAIT if status == 12 else None)  # fmt: skip

    def close(self) -> None:
        self._client.close()


class ViberReplier:
    """Replies to a client through send_message; the reply's leadflow id rides along as tracking_data, and Viber's
    message_token comes back as the service's id, which its delivered / seen / failed callbacks name."""

    def __init__(self, config: ChannelsConfig, client: httpx.Client | None = None) -> None:
        self.api = ViberApi(config, client)
        self.sender_name = config.viber_sender_name

    def send(self, address: str, text: str, subject: str | None, payload: Mapping[str, Any]) -> str | None:
        if not address:
            raise DeliveryError("a Viber reply needs the client's Viber user id", retryable=False)
        body: dict[str, Any] = {"receiver": address, "min_api_version": 1, "sender": {"name": self.sender_name},
                                "type": "text", "text": text[:MAX_TEXT]}  # fmt: skip
        if payload.get("message_id") is not None:
            body["tracking_data"] = str(payload["message_id"])
        answer = self.api.call("send_message", body)
        token = answer.get("message_token")
        return str(token) if token is not None else None

    def close(self) -> None:
        self.api.close()


def webhook_url(address: str) -> str:
    """The webhook's address from leadflow's public address (https://leads.example.com) or the full one."""
    address = address.strip()
    trimmed = address.rstrip("/")
    _, _, after_scheme = trimmed.partition("://")
    return trimmed + WEBHOOK_PATH if "/" not in after_scheme else address


def set_webhook(config: ChannelsConfig, url: str, client: httpx.Client | None = None) -> list[str]:
    """Tell Viber where to post the bot's events; returns the event types Viber will send. Viber checks the address
    at once with a `webhook` callback, so leadflow must already be serving there."""
    api = ViberApi(config, client)
    try:
        answer = api.call("set_webhook", {"url": webhook_url(url), "event_types": list(EVENT_TYPES),
                                          "send_name": True, "send_photo": False})  # fmt: skip
    finally:
        api.close()
    types = answer.get("event_types")
    return [str(t) for t in types] if isinstance(types, list) else list(EVENT_TYPES)
