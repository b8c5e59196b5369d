"""What the messaging channels deliver, once each adapter has read its service's payload: pure values, no I/O.

An inbound adapter (leadflow/channels/inbound/<service>.py) turns one webhook body, one polled update or one e-mail
into a list of these; the conversations service (services/conversations.py) takes each in one transaction:

- `InboundMessage`: a client wrote (or shared a contact, sent a lead form, called). It joins the client's open lead
  as a message of its thread, or makes a new lead through the normal intake;
- `DeliveryStatus`: the service says what became of a message leadflow sent (sent, delivered, read, failed); it is
  recorded on that message, never made into a lead;
- `Unreadable`: something the adapter could not make sense of, kept as a raw channel event with the reason.

Every item carries the service's own id for it (`event_id`), so a repeated delivery creates nothing new.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# Channels that converse: a manager's reply goes back through the same channel.
CHAT_CHANNELS = ("telegram", "whatsapp", "viber", "messenger", "instagram")
REPLY_CHANNELS = (*CHAT_CHANNELS, "email")
# What an outgoing message can become, in the order a service reports it.
DELIVERY_STATES = ("queued", "sent", "delivered", "read", "failed")


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """One thing a client sent through a channel.

    `sender` is the client's address in the channel, what a reply is sent to: a Telegram chat id, a WhatsApp or
    Viber user id, an e-mail address. `lead` holds lead fields the message brings (a phone shared through a bot's
    button, a lead form's answers, a call's campaign): they go to intake when the message makes a new lead, and a
    phone or e-mail among them also finds the client's open lead.
    """

    channel: str  # telegram, whatsapp, viber, messenger, instagram, facebook_leads, email, call
    event_id: str  # the service's own id of this message or event: a repeat with the same id creates nothing
    sender: str | None  # the client's address in the channel (chat id, user id, e-mail address)
    text: str | None = None
    name: str | None = None
    at: datetime | None = None  # when the service says it happened (None: when leadflow received it)
    kind: str = "message"  # message, contact, form, call_missed, call_answered, ...
    lead: Mapping[str, Any] = field(default_factory=dict)  # LeadIn fields: phone, email, company, source, utm_*...
    thread: str | None = None  # the service's conversation id, where it has one (an e-mail's Message-ID)
    reply_to: str | None = None  # the id of the message this one answers (an e-mail's In-Reply-To)
    meta: Mapping[str, Any] = field(default_factory=dict)  # shown with the message (duration, recording link...)
    raw: Mapping[str, Any] = field(default_factory=dict)  # the part of the payload this item came from


@dataclass(frozen=True, slots=True)
class DeliveryStatus:
    """The service's word on a message leadflow sent, found by the id the service gave it when it was sent."""

    channel: str
    event_id: str  # unique per status callback (for example "<message id>:<status>")
    message_external_id: str
    state: str  # one of DELIVERY_STATES
    at: datetime | None = None
    error: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A payload, or part of one, the adapter does not understand: kept with the reason, never a lead."""

    channel: str
    reason: str
    event_id: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)


Inbound = InboundMessage | DeliveryStatus | Unreadable


class Refusal(Exception):
    """A call the adapter refuses before reading it: a missing or wrong signature or token. Nothing is stored;
    the refusal is counted for the admins (`leadflow channels status`)."""

    def __init__(self, channel: str, reason: str, status: int = 401) -> None:
        super().__init__(f"{channel}: {reason}")
        self.channel = channel
        self.reason = reason  # "missing signature", "wrong signature", "replayed", ...
        self.status = status  # 401: no credential given; 403: a wrong one


def prove(channel: str, given: str | None, expected: str, what: str, *, prefix: str = "") -> None:
    """The one way a webhook's credential (a token, a signature) is checked: compared in constant time; none given
    is a Refusal with 401, a wrong one with 403, each named for the count ("missing signature")."""
    if not given:
        raise Refusal(channel, f"{prefix}missing {what}", 401)
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise Refusal(channel, f"{prefix}wrong {what}", 403)


def moves_forward(current: str, state: str) -> bool:
    """Whether a service's word on a sent message changes what is known of it: states only move forward (a late
    "delivered" never undoes "read"); a failure counts whenever it comes."""
    order = DELIVERY_STATES.index
    return state == "failed" or order(state) > order(current if current in DELIVERY_STATES else "queued")
