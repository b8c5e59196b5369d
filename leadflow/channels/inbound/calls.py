"""Calls: call-tracking services tell leadflow of every finished call, and each becomes a message of the client's
thread (channel "call"): a missed call (`call_missed`) or one that got through (`call_answered`).

Three formats are read, one small mapping each: Binotel's API CALL COMPLETED (a PHP-style form,
`callDetails[externalNumber]=...`), Ringostat's webhook with the fields named as docs/channels.md lists them (JSON or
a form), and leadflow's own JSON for any other service or PBX. Each turns into the same InboundMessage: `sender` and
the lead's `phone` are the client's number, the lead's `source` is the service and its utm_* come from the tracking
number or campaign the service reports; `meta` carries what is shown with the call (durations, the recording link,
the tracking number, the extension, the direction).

Which of those calls is a manager's contact with the client is decided here too (`call_contact`), from the rules
file's `extension:` of each manager: the conversations service records it.

These services call a URL and mostly cannot sign a body or set a header, so the caller is proven by a shared token
(LEADFLOW_CHANNELS__CALLS_SECRET), given in the `X-Leadflow-Token` header or as the last segment of the webhook's
path, compared in constant time.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import parse_qsl

import orjson

from leadflow.core.conversation import Inbound, InboundMessage, Unreadable, prove

CHANNEL = "call"
PROVIDERS = ("binotel", "ringostat", "generic")
TOKEN_HEADER = "x-leadflow-token"
# The answer Binotel documents as "received"; anything else and it sends the call again (10 min, 30 min, 1 h, 4 h
# and 10 h later).
BINOTEL_ANSWER = b'{"status":"success"}'
# Dispositions of a call that got through; every other one (no answer, busy, cancelled, voicemail...) is missed.
BINOTEL_ANSWERED = frozenset({"ANSWER", "TRANSFER"})
RINGOSTAT_ANSWERED = frozenset({"ANSWERED", "ANSWER"})
# Binotel's words for how a call ended, as people say them (Ringostat's already read well in lower case).
ENDINGS = {"NOANSWER": "no answer", "CANCEL": "cancelled", "VM": "voicemail", "VM-SUCCESS": "voicemail left",
           "CHANUNAVAIL": "unreachable", "CONGESTION": "network busy"}  # fmt: skip
# Placeholders analytics put where a UTM value is unknown: no campaign at all.
UTM_NOTHING = frozenset({"", "(not set)", "(none)", "(not provided)", "(direct)", "none", "null"})
UTM_FIELDS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
MAX_FIELD = 200

Direction = Literal["incoming", "outgoing"]


@dataclass(frozen=True, slots=True)
class Call:
    """A finished call as every service's payload reads: what its message and its lead are made of."""

    provider: str
    call_id: str
    direction: Direction
    client: str  # the client's number: who called in, or whom a manager called
    answered: bool
    extension: str | None = None  # the manager's extension that answered or made the call
    tracking_number: str | None = None  # the company's number the client dialled (an incoming call)
    duration_seconds: int | None = None  # from the first ring to the end
    talk_seconds: int | None = None
    recording_url: str | None = None
    started_at: datetime | None = None
    disposition: str | None = None  # the service's own word for how it ended
    name: str | None = None  # the client's name, where the service knows it
    utm: Mapping[str, str] | None = None


# -- The caller's token ------------------------------------------------------------------------------------------


def check_token(secret: str, provider: str, in_path: str | None) -> Callable[[bytes, Mapping[str, str]], None]:
    """The webhook's check: the token in the path when the address carries one, else the X-Leadflow-Token header,
    compared in constant time with LEADFLOW_CHANNELS__CALLS_SECRET."""

    def check(_: bytes, headers: Mapping[str, str]) -> None:
        given = in_path if in_path is not None else headers.get(TOKEN_HEADER)
        prove(CHANNEL, given, secret, "token", prefix=f"{provider}: ")

    return check


# -- Reading the services' bodies --------------------------------------------------------------------------------


def reader(provider: str) -> Callable[[bytes], list[Inbound]]:
    """The body reader of one service's webhook."""
    mapping = {"binotel": read_binotel, "ringostat": read_ringostat, "generic": read_generic}[provider]
    return lambda body: mapping(read_fields(body))


def read_fields(body: bytes) -> dict[str, Any]:
    """A body as these services send it: a JSON object, or a form whose keys may nest the way PHP reads them
    (`callDetails[pbxNumberData][number]=...` is {"callDetails": {"pbxNumberData": {"number": ...}}})."""
    text = body.decode("utf-8")
    if text.lstrip().startswith(("{", "[")):
        data = orjson.loads(text)
        if not isinstance(data, dict):
            raise ValueError("a call is a JSON object")
        return data
    pairs = parse_qsl(text, keep_blank_values=True)
    if not pairs:
        raise ValueError("the body has no fields")
    fields: dict[str, Any] = {}
    for key, value in pairs:
        _put(fields, _key_path(key), value)
    return fields


_BRACKETS = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")


def _key_path(key: str) -> list[str]:
    found = _BRACKETS.match(key)
    if found is None:
        return [key]
    return [found.group(1), *re.findall(r"\[([^\[\]]*)\]", found.group(2))]


def _put(fields: dict[str, Any], path: list[str], value: str) -> None:
    node = fields
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[path[-1]] = value


def read_binotel(fields: Mapping[str, Any]) -> list[Inbound]:
    """Binotel's API CALL COMPLETED: `requestType=apiCallCompleted` and the call under `callDetails[...]`."""
    if fields.get("requestType") != "apiCallCompleted":
        kind = _text(fields.get("requestType")) or "an unnamed"
        return [Unreadable(CHANNEL, f"ignored: Binotel's {kind} request is not a finished call", raw=fields)]
    details = _mapping(fields.get("callDetails"))
    call_id = _text(details.get("generalCallID")) or _text(details.get("callID"))
    if not call_id:
        raise ValueError("a Binotel call without callDetails[generalCallID]")
    disposition = (_text(details.get("disposition")) or "").upper() or None
    talk = _seconds(details.get("billsec"))
    wait = _seconds(details.get("waitsec"))
    pbx = _mapping(details.get("pbxNumberData"))
    tracking = _text(pbx.get("number")) or _text(details.get("didNumber"))
    tracking_name = _text(pbx.get("name")) or _text(details.get("didName"))
    campaign = _mapping(details.get("callTrackingData")) or _mapping(details.get("getCallData"))
    call = Call(
        provider="binotel", call_id=call_id,
        direction="outgoing" if _text(details.get("callType")) == "1" else "incoming",
        client=_text(details.get("externalNumber")) or "",
        answered=disposition in BINOTEL_ANSWERED if disposition else bool(talk),
        extension=_text(details.get("internalNumber")), tracking_number=tracking,
        duration_seconds=(wait or 0) + (talk or 0) if wait is not None or talk is not None else None,
        talk_seconds=talk, recording_url=_link(details.get("linkToCallRecordInMyBusiness")),
        started_at=_when(details.get("startTime")), disposition=disposition,
        name=_text(_mapping(details.get("customerData")).get("name")),
        utm=_utm(campaign, tracking_name or tracking),
    )  # fmt: skip
    return [message_of(call, fields)]


def read_ringostat(fields: Mapping[str, Any]) -> list[Inbound]:
    """Ringostat's webhook (after an incoming or an outgoing call), with the fields named as docs/channels.md lists
    them: call_id, call_type, caller, dst, disposition, duration, billsec, recording, extension, calldate, utm_*."""
    call_id = _text(fields.get("call_id")) or _text(fields.get("uniqueid"))
    if not call_id:
        raise ValueError("a Ringostat call without call_id: add it to the webhook's parameters")
    outgoing = (_text(fields.get("call_type")) or "in").lower() in ("out", "outgoing")
    disposition = (_text(fields.get("disposition")) or "").upper() or None
    talk = _seconds(fields.get("billsec"))
    tracking = None if outgoing else _text(fields.get("dst"))
    call = Call(
        provider="ringostat", call_id=call_id, direction="outgoing" if outgoing else "incoming",
        client=_text(fields.get("dst" if outgoing else "caller")) or "",
        answered=disposition in RINGOSTAT_ANSWERED if disposition else bool(talk),
        extension=_text(fields.get("extension")), tracking_number=tracking,
        duration_seconds=_seconds(fields.get("duration")), talk_seconds=talk,
        recording_url=_link(fields.get("recording")), started_at=_when(fields.get("calldate")),
        disposition=disposition, utm=_utm(fields, tracking),
    )  # fmt: skip
    return [message_of(call, fields)]


def read_generic(fields: Mapping[str, Any]) -> list[Inbound]:
    """leadflow's own call format (docs/channels.md): call_id, caller, called, campaign, status (missed or
    answered), duration, talk_seconds, recording_url, extension, started_at, and optionally direction, name, utm_*."""
    call_id = _text(fields.get("call_id"))
    if not call_id:
        raise ValueError("a call without call_id")
    status = (_text(fields.get("status")) or "").lower()
    if status not in ("missed", "answered"):
        raise ValueError(f"status is {status or 'missing'}: a call is missed or answered")
    outgoing = (_text(fields.get("direction")) or "incoming").lower() == "outgoing"
    tracking = None if outgoing else _text(fields.get("called"))
    utm = {**fields, "utm_campaign": fields.get("utm_campaign") or fields.get("campaign")}
    call = Call(
        provider="generic", call_id=call_id, direction="outgoing" if outgoing else "incoming",
        client=_text(fields.get("called" if outgoing else "caller")) or "", answered=status == "answered",
        extension=_text(fields.get("extension")), tracking_number=tracking,
        duration_seconds=_seconds(fields.get("duration")), talk_seconds=_seconds(fields.get("talk_seconds")),
        recording_url=_link(fields.get("recording_url")), started_at=_when(fields.get("started_at")),
        name=_text(fields.get("name")), utm=_utm(utm, tracking),
    )  # fmt: skip
    return [message_of(call, fields)]


def message_of(call: Call, raw: Mapping[str, Any]) -> Inbound:
    """The call as the client's message: `lead` for a new lead (the phone, the service as its source, its campaign,
    and `call: missed|answered`, which the rules' scoring may read as `extra.call`), `meta` shown with it."""
    event_id = f"{call.provider}:{call.call_id}"[:200]
    if not call.client:
        return Unreadable(CHANNEL, "a call without the client's number (a hidden caller id): no one to call back",
                          event_id, raw=raw)  # fmt: skip
    lead: dict[str, Any] = {"phone": call.client, "source": call.provider, **(call.utm or {}),
                            "call": "answered" if call.answered else "missed"}  # fmt: skip
    meta = {"provider": call.provider, "direction": call.direction, "duration_seconds": call.duration_seconds,
            "talk_seconds": call.talk_seconds, "recording_url": call.recording_url,
            "tracking_number": call.tracking_number, "extension": call.extension,
            "disposition": call.disposition}  # fmt: skip
    return InboundMessage(CHANNEL, event_id, call.client, describe(call), name=call.name, at=call.started_at,
                          kind="call_answered" if call.answered else "call_missed", lead=lead, meta=meta,
                          raw=raw)  # fmt: skip


def describe(call: Call) -> str:
    """The call in a sentence, as the thread and the lead's message show it."""
    who = f"extension {call.extension}" if call.extension else "the office"
    if call.direction == "outgoing":
        how = f"talked {_duration(call.talk_seconds)}" if call.answered else _ended(call, "no answer")
        return f"Call to the client from {who}: {how}"
    if call.answered:
        return f"Call answered by {who}, talked {_duration(call.talk_seconds)}"
    to = f" to {call.tracking_number}" if call.tracking_number else ""
    rang = f", rang {_duration(call.duration_seconds)}" if call.duration_seconds else ""
    return f"Missed call{to} ({_ended(call, 'not answered')}{rang})"


def _ended(call: Call, otherwise: str) -> str:
    if not call.disposition:
        return otherwise
    return ENDINGS.get(call.disposition, call.disposition.lower().replace("_", " "))


def _duration(seconds: int | None) -> str:
    if not seconds:
        return "0 s"
    minutes, rest = divmod(seconds, 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


# -- Whose contact a call is ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallContact:
    """A call that was a manager's contact with the client (or their attempt at one)."""

    manager_key: str
    outcome: Literal["connected", "no_answer"]
    note: str
    talk_seconds: int | None = None  # how long they talked, where the service said


def call_contact(item: InboundMessage, extensions: Mapping[str, str]) -> tuple[CallContact | None, str]:
    """The contact a call is, and why: an incoming call answered on a manager's extension (connected), or a call a
    manager made to the client (connected when they talked, else no_answer). A missed call is nobody's contact."""
    extension = item.meta.get("extension")
    outgoing = item.meta.get("direction") == "outgoing"
    if not outgoing and item.kind != "call_answered":
        return None, "a missed call: the client waits for a call back"
    if not extension:
        return None, "the service did not say which extension took the call: no manager's contact"
    manager_key = extensions.get(str(extension))  # extension -> manager key, as the managers' rows hold them
    if manager_key is None:
        return None, f"extension {extension} is no manager's (set `extension:` in the rules file): no contact"
    outcome: Literal["connected", "no_answer"] = "connected" if item.kind == "call_answered" else "no_answer"
    talked = item.meta.get("talk_seconds")
    how = f"talked {_duration(talked if isinstance(talked, int) else None)}" if outcome == "connected" else "no answer"
    made = "called the client" if outgoing else "answered the client's call"
    talk = talked if isinstance(talked, int) and outcome == "connected" else None
    return CallContact(manager_key, outcome, f"{made} on extension {extension}: {how}", talk), ""


# -- Small readers -------------------------------------------------------------------------------------------------


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, bool | Mapping | list):
        return None
    text = str(value).strip()
    return text[:MAX_FIELD] or None


def _seconds(value: Any) -> int | None:
    text = _text(value)
    if text is None:
        return None
    try:
        return max(int(float(text)), 0)
    except ValueError:
        return None


def _link(value: Any) -> str | None:
    """A recording link, when it is a web address (never a javascript: or data: one, which a page would run)."""
    text = str(value).strip() if isinstance(value, str) else ""
    return text[:2000] if text.startswith(("https://", "http://")) else None


def _when(value: Any) -> datetime | None:
    """A Unix time, or an ISO 8601 time with its offset; anything else is left out (the call's time is then when
    leadflow received it)."""
    text = _text(value)
    if text is None:
        return None
    try:
        found = datetime.fromtimestamp(int(text), UTC) if text.isdigit() else datetime.fromisoformat(text)
    except (ValueError, OverflowError, OSError):  # not a time, or one out of any calendar's range
        return None
    return found if found.tzinfo is not None else None


def _utm(source: Mapping[str, Any], tracking: str | None) -> dict[str, str]:
    """The campaign the service reports; without one, the tracking number (its name, where the service gives it)
    stands for the campaign, which is what a tracking number is bought for."""
    found = {name: text for name in UTM_FIELDS if (text := _text(source.get(name))) and text.lower() not in UTM_NOTHING}
    if "utm_campaign" not in found and tracking:
        found["utm_campaign"] = tracking
    return found
