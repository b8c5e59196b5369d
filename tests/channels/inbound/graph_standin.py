"""A stand-in for Meta's Graph API on loopback, in its own shapes: WhatsApp's messages endpoint
(`POST /{version}/{phone_number_id}/messages`) and a lead's answers (`GET /{version}/{leadgen_id}`), with the Graph
API's error objects (`{"error": {"message", "type", "code", "error_subcode", "fbtrace_id", ...}}`). It records every
call, and can be told to be down or to refuse the next sends. Also: the webhook bodies Meta sends, and their
signature."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.channels.inbound.standin import StandInServer

VERSION = "v21.0"


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: Any


def graph_error(code: int, message: str, kind: str = "OAuthException", **more: Any) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "code": code, "fbtrace_id": "AbCdEfGh123", **more}}


TOKEN_REFUSED = graph_error(190, "Invalid OAuth access token - Cannot parse access token")
DOWN = graph_error(2, "An unexpected error has occurred. Please retry your request later.", is_transient=True)


class GraphStandIn:
    def __init__(self, whatsapp_token: str, page_token: str, phone_number_id: str) -> None:
        self.whatsapp_token = whatsapp_token
        self.page_token = page_token
        self.phone_number_id = phone_number_id
        self.leads: dict[str, dict[str, Any]] = {}  # leadgen id -> the lead as the Graph API has it
        self.calls: list[Call] = []
        self.planned: list[tuple[int, dict[str, Any]]] = []  # answers for the next sends, before the normal one
        self.down = False
        self._next_message = 0
        self._lock = threading.Lock()
        self._server = StandInServer(self._request)
        self.url = self._server.url
        self.base = f"{self.url}/{VERSION}"  # what LEADFLOW_CHANNELS__GRAPH_API_BASE names

    def sent(self) -> list[Call]:
        return [c for c in self.calls if c.method == "POST"]

    def fetched(self) -> list[Call]:
        return [c for c in self.calls if c.method == "GET"]

    def _handle(self, call: Call) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.calls.append(call)
            segments = call.path.strip("/").split("/")
            if not segments or segments[0] != VERSION:
                return 400, graph_error(2500, "Unknown path components", "OAuthException")
            if self.down:
                return 500, DOWN
            if call.method == "POST" and segments[1:] == [self.phone_number_id, "messages"]:
                return self._send(call)
            if call.method == "GET" and len(segments) == 2:
                return self._lead(call, segments[1])
            return 400, graph_error(100, "Unsupported request", "GraphMethodException")

    def _token(self, call: Call) -> str:
        given = call.headers.get("authorization", "")
        if given.startswith("Bearer "):
            return given[len("Bearer ") :]
        return (call.query.get("access_token") or [""])[0]

    def _send(self, call: Call) -> tuple[int, dict[str, Any]]:
        if self._token(call) != self.whatsapp_token:
            return 401, TOKEN_REFUSED
        body: dict[str, Any] = call.body if isinstance(call.body, dict) else {}
        text: dict[str, Any] = body["text"] if isinstance(body.get("text"), dict) else {}
        if body.get("messaging_product") != "whatsapp" or not body.get("to") or not text.get("body"):
            return 400, graph_error(100, "(#100) Invalid parameter")
        if self.planned:
            return self.planned.pop(0)
        self._next_message += 1
        wamid = f"wamid.HBgMMzgwNjcxMjM0NTY3FQIAERgS{self._next_message:06d}"
        return 200, {"messaging_product": "whatsapp", "contacts": [{"input": body["to"], "wa_id": body["to"]}],
                     "messages": [{"id": wamid}]}  # fmt: skip

    def _lead(self, call: Call, leadgen_id: str) -> tuple[int, dict[str, Any]]:
        if self._token(call) != self.page_token:
            return 400, TOKEN_REFUSED
        lead = self.leads.get(leadgen_id)
        if lead is None:
            return 400, graph_error(
                100, f"Unsupported get request. Object with ID '{leadgen_id}' does not exist, cannot be loaded due "
                     "to missing permissions, or does not support this operation.", "GraphMethodException",
                error_subcode=33,
            )  # fmt: skip
        fields = (call.query.get("fields") or ["id,created_time,field_data"])[0].split(",")
        return 200, {k: v for k, v in lead.items() if k in fields}

    def _request(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, Any]:
        try:
            body = json.loads(raw or b"{}") if method == "POST" else None
        except ValueError:
            body = None
        parts = urlsplit(path)
        return self._handle(Call(method, parts.path, parse_qs(parts.query), headers, body))

    def close(self) -> None:
        self._server.close()


# -- What Meta sends --------------------------------------------------------------------------------------------------


def sign(app_secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def whatsapp_body(*changes: dict[str, Any], entries: int = 1) -> dict[str, Any]:
    """A WhatsApp notification; the changes are spread over `entries` entries."""
    spread: list[list[dict[str, Any]]] = [[] for _ in range(entries)]
    for i, change in enumerate(changes):
        spread[i % entries].append(change)
    return {"object": "whatsapp_business_account",
            "entry": [{"id": f"10203040506070{i}", "changes": c} for i, c in enumerate(spread)]}  # fmt: skip


def messages_change(*messages: dict[str, Any], contacts: dict[str, str] | None = None,
                    statuses: list[dict[str, Any]] | None = None) -> dict[str, Any]:  # fmt: skip
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "380441112233", "phone_number_id": "106540352242922"},
    }
    if contacts:
        value["contacts"] = [{"profile": {"name": name}, "wa_id": wa_id} for wa_id, name in contacts.items()]
    if messages:
        value["messages"] = list(messages)
    if statuses:
        value["statuses"] = statuses
    return {"field": "messages", "value": value}


def wa_message(wa_id: str, wamid: str, kind: str = "text", timestamp: int | None = None, **part: Any) -> dict[str, Any]:
    # Written just now unless a test says when: WhatsApp's 24-hour window counts from when the client wrote.
    when = int(time.time()) if timestamp is None else timestamp
    message: dict[str, Any] = {"from": wa_id, "id": wamid, "timestamp": str(when), "type": kind}
    message.update(part)
    return message


def wa_text(wa_id: str, wamid: str, text: str, **more: Any) -> dict[str, Any]:
    return wa_message(wa_id, wamid, "text", text={"body": text}, **more)


def wa_status(wamid: str, status: str, recipient: str, **more: Any) -> dict[str, Any]:
    return {"id": wamid, "status": status, "timestamp": "1765000100", "recipient_id": recipient, **more}


def leadgen_body(*leads: dict[str, Any], page_id: str = "444555666777") -> dict[str, Any]:
    """A page notification of new leads (`leads`: leadgen_id, form_id, ad_id... each)."""
    changes = [{"field": "leadgen", "value": {"page_id": page_id, "created_time": 1765000000, **lead}}
               for lead in leads]  # fmt: skip
    return {"object": "page", "entry": [{"id": page_id, "time": 1765000001, "changes": changes}]}


def graph_lead(leadgen_id: str, answers: dict[str, str | list[str]], platform: str = "fb",
               form_id: str = "999888777") -> dict[str, Any]:  # fmt: skip
    """A lead as the Graph API keeps it."""
    return {
        "id": leadgen_id, "created_time": "2025-12-06T10:15:00+0000", "form_id": form_id, "platform": platform,
        "is_organic": False, "ad_id": "120200000000001",
        "field_data": [{"name": k, "values": v if isinstance(v, list) else [v]} for k, v in answers.items()],
    }  # fmt: skip
