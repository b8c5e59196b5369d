"""A stand-in for Viber's REST Bot API on loopback, and the callbacks Viber posts, in Viber's documented shapes.

The API answers HTTP 200 with `{"status": 0, "status_message": "ok", ...}`, or a non-zero status naming what went
wrong (its error codes); it checks X-Viber-Auth-Token as Viber does. Callbacks are signed as Viber signs them:
X-Viber-Content-Signature is the hex HMAC-SHA256 of the raw body, keyed with the bot's token.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from typing import Any

from tests.channels.inbound.standin import StandInServer


class ViberApiStandIn:
    """send_message and set_webhook under /pa, recording every call with its headers."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.calls: list[tuple[str, dict[str, str], dict[str, Any]]] = []  # (method, headers lower-cased, body)
        self.planned: list[tuple[int, Any]] = []  # (HTTP status, answer) for the next calls, before the normal one
        self.webhook: str | None = None
        self._next_token = 5_491_000_000_000_000_000  # Viber's message tokens are 64-bit numbers
        self._lock = threading.Lock()
        self._server = StandInServer(lambda method, path, headers, raw: self._answer(path, headers, raw))
        self.url = f"{self._server.url}/pa"

    def plan(self, status: int, answer: Any) -> None:
        """Answer the next call so (then normally again)."""
        with self._lock:
            self.planned.append((status, answer))

    def sent(self) -> list[dict[str, Any]]:
        return [body for method, _, body in self.calls if method == "send_message"]

    def _answer(self, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, Any]:
        if not path.startswith("/pa/"):
            return 404, b"not found"
        method = path.removeprefix("/pa/")
        body = json.loads(raw or b"{}")
        with self._lock:
            self.calls.append((method, headers, body))
            if headers.get("x-viber-auth-token") != self.token:
                return 200, {"status": 2, "status_message": "invalidAuthToken"}
            if self.planned:
                return self.planned.pop(0)
            if method == "send_message":
                self._next_token += 1
                return 200, {"status": 0, "status_message": "ok", "message_token": self._next_token,
                             "chat_hostname": "SN-CHAT-05_"}  # fmt: skip
            if method == "set_webhook":
                self.webhook = body.get("url")
                return 200, {"status": 0, "status_message": "ok", "event_types": body.get("event_types", []),
                             "chat_hostname": "SN-CHAT-05_"}  # fmt: skip
        return 200, {"status": 3, "status_message": "badData"}

    def close(self) -> None:
        self._server.close()


def sign(token: str, body: bytes) -> str:
    return hmac.new(token.encode(), body, hashlib.sha256).hexdigest()


def now_ms() -> int:
    return int(time.time() * 1000)


def user(user_id: str, name: str = "Olena Kovalenko") -> dict[str, Any]:
    return {"id": user_id, "name": name, "avatar": "https://media-direct.cdn.viber.com/download_photo?dlid=x",
            "language": "uk", "country": "UA", "api_version": 10}  # fmt: skip


def message(token: int, user_id: str, text: str | None = "", **fields: Any) -> dict[str, Any]:
    """A message from a user to the bot; a text one unless `fields` say otherwise (type, contact, media...)."""
    body: dict[str, Any] = {"type": "text", "text": text, **fields}
    if text is None:
        body.pop("text")
    return {"event": "message", "timestamp": now_ms(), "chat_hostname": "SN-CHAT-05_", "message_token": token,
            "sender": user(user_id), "message": body, "silent": False}  # fmt: skip


def contact(token: int, user_id: str, phone: str, name: str = "Olena") -> dict[str, Any]:
    return message(token, user_id, None, type="contact", contact={"name": name, "phone_number": phone})


def receipt(event: str, token: int, user_id: str, desc: str | None = None) -> dict[str, Any]:
    """delivered, seen or failed: what became of a message the bot sent."""
    body: dict[str, Any] = {"event": event, "timestamp": now_ms(), "chat_hostname": "SN-CHAT-05_",
                            "message_token": token, "user_id": user_id}  # fmt: skip
    if desc is not None:
        body["desc"] = desc
    return body
