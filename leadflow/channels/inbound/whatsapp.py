"""WhatsApp through Meta's Cloud API: the business number's webhook brings what clients write and what became of the
replies; replies go out through the Graph API's messages endpoint.

A webhook call is a batch: entries (one per business account) of changes, each change's value holding messages
and statuses. Every message is its own InboundMessage (the client's WhatsApp id is its sender; the phone is `+`
and that id), every status a DeliveryStatus of the reply it names; a part leadflow cannot read is kept as an
Unreadable on its own, and the rest of the batch is taken. A message is known by its `wamid`, a status by the
`wamid` and the state, so a repeated call takes nothing twice.

WhatsApp lets a business write freely only within 24 hours of the client's last message (the customer-service
window); services.conversations refuses a reply outside it before queueing, and Meta's own refusal (code 131047)
is final, not retried.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from functools import partial
from typing import Any

import httpx
import orjson

from leadflow.channels.inbound.config import ChannelsConfig, env_name
from leadflow.channels.inbound.meta import graph_error, graph_failure, unreachable
from leadflow.channels.senders import DeliveryError
from leadflow.core.conversation import DeliveryStatus, Inbound, InboundMessage, Unreadable

CHANNEL = "whatsapp"
OBJECT = "whatsapp_business_account"
MAX_TEXT = 4096  # a text message's body, in characters
LEAD_MESSAGE = 4000  # what a lead's message field holds (core.lead.MAX_TEXT); the thread keeps the whole text
OUTSIDE_WINDOW = 131047  # Meta's code for a free-form message after the 24-hour window
MEDIA = ("image", "video", "audio", "voice", "document", "sticker")
# Meta's statuses of a sent message, in leadflow's words; anything else is kept as an unknown state.
STATES = {"sent": "sent", "delivered": "delivered", "read": "read", "failed": "failed"}


# -- Reading what Meta sends ------------------------------------------------------------------------------------------


def read_body(body: bytes) -> list[Inbound]:
    """A webhook call: every message and status of every change of every entry."""
    payload = orjson.loads(body)
    if not isinstance(payload, dict):
        raise ValueError("a notification is a JSON object")
    if payload.get("object") != OBJECT:
        return [Unreadable(CHANNEL, f"not a WhatsApp notification: object is {str(payload.get('object'))[:60]!r}, "
                                    f"not '{OBJECT}'", raw=payload)]  # fmt: skip
    items: list[Inbound] = []
    for entry in _dicts(payload.get("entry")):
        for change in _dicts(entry.get("changes")):
            items.extend(read_change(change))
    if not items:
        items.append(Unreadable(CHANNEL, "a notification without messages or statuses", raw=payload))
    return items


def read_change(change: Mapping[str, Any]) -> list[Inbound]:
    """One change: a `messages` field's messages and statuses; any other field is kept as not understood."""
    value = change.get("value")
    if change.get("field") != "messages" or not isinstance(value, dict):
        return [Unreadable(CHANNEL, f"ignored: the '{str(change.get('field'))[:60]}' field is not messages",
                           raw=change)]  # fmt: skip
    names = {str(c.get("wa_id")): _profile_name(c) for c in _dicts(value.get("contacts"))}
    business = _obj(value.get("metadata"))
    items: list[Inbound] = []
    for message in _dicts(value.get("messages")):
        items.append(_guarded(partial(read_message, message, names, business), message))
    for status in _dicts(value.get("statuses")):
        items.append(_guarded(partial(read_status, status), status))
    for error in _dicts(value.get("errors")):  # an error of the account, not of one message
        items.append(Unreadable(CHANNEL, f"WhatsApp reported an error: {_error_text(error)}", raw=error))
    return items


def _guarded(read: Callable[[], Inbound], raw: Mapping[str, Any]) -> Inbound:
    """One part read on its own: a part that breaks the reader is kept, and the batch's other parts still count."""
    try:
        return read()
    except Exception as exc:
        return Unreadable(CHANNEL, f"not understood: {type(exc).__name__}: {exc}"[:500], _id_of(raw), raw=raw)


def read_message(
    message: Mapping[str, Any], names: Mapping[str, str | None], business: Mapping[str, Any]
) -> InboundMessage | Unreadable:
    """One client's message, with what its type carries read as text (a caption, a button's text, a place)."""
    wa_id, wamid = message.get("from"), message.get("id")
    if not wa_id or not wamid:
        return Unreadable(CHANNEL, "a message without a sender or id", None, raw=message)
    kind = str(message.get("type") or "unknown")
    read = _READERS.get(kind)
    if read is None:
        return Unreadable(CHANNEL, f"a {kind[:40]} message leadflow cannot show{_errors_of(message)}", str(wamid),
                          raw=message)  # fmt: skip
    part = _obj(message.get(kind))
    found = read(kind, part, message)
    if isinstance(found, str):  # the reason this message is not a client's words
        return Unreadable(CHANNEL, found, str(wamid), raw=message)
    text, meta = found
    meta = {**meta, "type": kind}
    if business.get("phone_number_id"):
        meta["business_number_id"] = str(business["phone_number_id"])
    context = _obj(message.get("context"))
    if context.get("forwarded") or context.get("frequently_forwarded"):
        meta["forwarded"] = True
    lead: dict[str, Any] = {"phone": f"+{str(wa_id).lstrip('+')}"}
    if len(text) > LEAD_MESSAGE:
        lead["message"] = text[:LEAD_MESSAGE]
    referral = message.get("referral")
    if isinstance(referral, dict):  # the client came from a click-to-WhatsApp ad or post
        meta["referral"] = {k: referral[k] for k in ("source_type", "source_id", "source_url", "headline")
                            if k in referral}  # fmt: skip
        lead["utm_source"] = "meta"
        lead["utm_medium"] = f"click_to_whatsapp_{str(referral.get('source_type') or 'ad')[:20]}"
        if referral.get("source_id"):
            lead["utm_content"] = str(referral["source_id"])[:200]
    return InboundMessage(
        CHANNEL, str(wamid), str(wa_id), text[:MAX_TEXT], name=names.get(str(wa_id)), at=_at(message.get("timestamp")),
        kind="contact" if kind == "contacts" else "message", lead=lead, meta=meta,
        reply_to=str(context["id"]) if context.get("id") else None, raw=message,
    )  # fmt: skip


def read_status(status: Mapping[str, Any]) -> DeliveryStatus | Unreadable:
    """What became of a message leadflow sent: sent, delivered, read, failed (with Meta's reason)."""
    wamid, state = status.get("id"), status.get("status")
    if not wamid or not state:
        return Unreadable(CHANNEL, "a status without a message id or state", None, raw=status)
    errors = [_error_text(e) for e in _dicts(status.get("errors"))]
    return DeliveryStatus(CHANNEL, f"{wamid}:{state}", str(wamid), STATES.get(str(state), str(state)[:20]),
                          at=_at(status.get("timestamp")), error="; ".join(errors) or None, raw=status)  # fmt: skip


# Each message type: (type, its part of the message, the message) -> (text, meta), or the reason it is no message.
Reader = Callable[[str, Mapping[str, Any], Mapping[str, Any]], "tuple[str, dict[str, Any]] | str"]


def _text(kind: str, part: Mapping[str, Any], message: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | str:
    body = part.get("body")
    return (str(body), {}) if body else "a text message without text"


def _media(kind: str, part: Mapping[str, Any], message: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | str:
    meta = {"attachment": kind, **{k: part[k] for k in ("id", "mime_type", "filename") if part.get(k)}}
    shown = part.get("caption") or (f"[{kind}: {part['filename']}]" if part.get("filename") else f"[{kind}]")
    return str(shown), meta


def _location(kind: str, part: Mapping[str, Any], message: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | str:
    where = ", ".join(str(part[k]) for k in ("name", "address") if part.get(k))
    point = f"{part.get('latitude')}, {part.get('longitude')}"
    meta = {"location": {k: part[k] for k in ("latitude", "longitude", "name", "address", "url") if k in part}}
    return f"shared a location: {where} ({point})" if where else f"shared a location: {point}", meta


def _contacts(kind: str, part: Mapping[str, Any], message: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | str:
    # A shared contact card is someone's card, often not the client's own: shown, and kept, never made the lead's.
    cards: list[dict[str, Any]] = []
    shown: list[str] = []
    for card in _dicts(message.get("contacts")):
        names = _obj(card.get("name"))
        name = names.get("formatted_name") or names.get("first_name")
        phones = [str(p.get("phone") or p.get("wa_id")) for p in _dicts(card.get("phones"))
                  if p.get("phone") or p.get("wa_id")]  # fmt: skip
        emails = [str(e["email"]) for e in _dicts(card.get("emails")) if e.get("email")]
        cards.append({"name": name, "phones": phones, "emails": emails})
        shown.append(" ".join(str(x) for x in (name, *phones, *emails) if x))
    if not cards:
        return "a shared contact without a card"
    return f"shared a contact: {'; '.join(shown)}", {"contacts": cards}


def _button(kind: str, part: Mapping[str, Any], message: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | str:
    text = part.get("text") or part.get("payload")
    return (str(text), {"button_payload": part.get("payload")}) if text else "a button reply without text"


def _interactive(kind: str, part: Mapping[str, Any], message: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | str:
    answer_kind = str(part.get("type") or "")
    answer = _obj(part.get(answer_kind))
    if answer_kind in ("button_reply", "list_reply") and answer.get("title"):
        text = " - ".join(str(answer[k]) for k in ("title", "description") if answer.get(k))
        return text, {"choice_id": answer.get("id"), "choice": answer_kind}
    if answer_kind == "nfm_reply":  # a WhatsApp Flow's form: its answers as the flow gave them
        return str(answer.get("body") or answer.get("response_json") or "[a form]"), {"choice": answer_kind}
    return f"an interactive reply of the kind '{answer_kind[:40]}' leadflow cannot show"


def _order(kind: str, part: Mapping[str, Any], message: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | str:
    items = list(_dicts(part.get("product_items")))
    lines = [f"{i.get('quantity', 1)} × {i.get('product_retailer_id')}" for i in items]
    shown = f"ordered: {', '.join(lines)}" if lines else "sent an order"
    note = f" ({part['text']})" if part.get("text") else ""
    return shown + note, {"order": {"catalog_id": part.get("catalog_id"), "items": items}}


def _not_words(kind: str, part: Mapping[str, Any], message: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | str:
    # A reaction, a system notice (the client changed numbers), a chat opened without writing: kept, never a lead.
    said = part.get("emoji") or part.get("body") or ""
    return f"ignored: a {kind} is not a client's message" + (f" ({str(said)[:200]})" if said else "")


_READERS: dict[str, Reader] = {
    "text": _text, **{kind: _media for kind in MEDIA}, "location": _location, "contacts": _contacts,
    "button": _button, "interactive": _interactive, "order": _order,
    "reaction": _not_words, "system": _not_words, "request_welcome": _not_words,
}  # fmt: skip


def _profile_name(contact: Mapping[str, Any]) -> str | None:
    profile = contact.get("profile")
    name = profile.get("name") if isinstance(profile, dict) else None
    return str(name)[:200] if name else None


def _errors_of(message: Mapping[str, Any]) -> str:
    errors = [_error_text(e) for e in _dicts(message.get("errors"))]
    return f" ({'; '.join(errors)})" if errors else ""


def _error_text(error: Mapping[str, Any]) -> str:
    data = _obj(error.get("error_data"))
    said = [str(x) for x in (error.get("title") or error.get("message"), data.get("details")) if x]
    return f"{error.get('code', '?')} {': '.join(said)}"[:500]


def _id_of(raw: Mapping[str, Any]) -> str | None:
    wamid = raw.get("id")
    return str(wamid) if isinstance(wamid, str) and wamid else None


def _at(timestamp: Any) -> datetime | None:
    """Meta's timestamps: epoch seconds, as a string."""
    try:
        return datetime.fromtimestamp(int(timestamp), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _obj(value: Any) -> dict[str, Any]:
    """An object from the payload, or an empty one when something else is there."""
    return value if isinstance(value, dict) else {}


def _dicts(value: Any) -> Iterator[dict[str, Any]]:
    """The objects of a list from the payload, skipping anything else in it."""
    if isinstance(value, list):
        yield from (item for item in value if isinstance(item, dict))


# -- Replies -------------------------------------------------------------------------------------------------------


class WhatsAppReplier:
    """Sends a reply as a text message from the business number; the answer's `wamid` names it in later statuses."""

    def __init__(self, config: ChannelsConfig, client: httpx.Client | None = None) -> None:
        if config.whatsapp_access_token is None or not config.whatsapp_phone_number_id:
            raise ValueError(f"WhatsApp replies need {env_name('whatsapp_access_token')} and "
                             f"{env_name('whatsapp_phone_number_id')}")  # fmt: skip
        self._url = f"{config.graph_api_base}/{config.whatsapp_phone_number_id}/messages"
        self._headers = {"Authorization": f"Bearer {config.whatsapp_access_token.get_secret_value()}"}
        self._client = client or httpx.Client(timeout=15)

    def send(self, address: str, text: str, subject: str | None, payload: Mapping[str, Any]) -> str | None:
        body = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": address, "type": "text",
                "text": {"preview_url": False, "body": text[:MAX_TEXT]}}  # fmt: skip
        try:
            response = self._client.post(self._url, json=body, headers=self._headers)
        except httpx.HTTPError as exc:
            raise unreachable("WhatsApp", exc) from None
        if response.status_code >= 300:
            failure = graph_failure("WhatsApp", response, env_name("whatsapp_access_token"))
            if graph_error(response).get("code") == OUTSIDE_WINDOW:
                raise DeliveryError(failure.message + "; the client last wrote more than 24 hours ago, so WhatsApp "
                                    "takes only approved templates: call the client", retryable=False)  # fmt: skip
            raise failure
        return _message_id(response)

    def close(self) -> None:
        self._client.close()


def _message_id(response: httpx.Response) -> str | None:
    try:
        answer = response.json()
    except ValueError:
        return None
    sent = answer.get("messages") if isinstance(answer, dict) else None
    first = sent[0] if isinstance(sent, list) and sent and isinstance(sent[0], dict) else {}
    return str(first["id"]) if first.get("id") else None
