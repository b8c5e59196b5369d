"""A stand-in for the Telegram Bot API on loopback: the methods leadflow calls, answered in the Bot API's own shapes
(`{"ok": true, "result": ...}`, or `{"ok": false, "error_code": ..., "description": ...}`), recording every call."""

from __future__ import annotations

import json
import threading
from typing import Any

from tests.channels.inbound.standin import StandInServer


class BotApiStandIn:
    def __init__(self, token: str) -> None:
        self.token = token
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.updates: list[dict[str, Any]] = []  # what getUpdates hands out (those at or past the offset)
        self.planned: list[dict[str, Any]] = []  # answers for the next sendMessage calls, before the normal one
        self.webhook: str | None = None
        self._next_message_id = 1000
        self._lock = threading.Lock()
        self._server = StandInServer(lambda method, path, headers, raw: self._answer(path, json.loads(raw or b"{}")))
        self.url = self._server.url

    def sent(self) -> list[dict[str, Any]]:
        return [body for method, body in self.calls if method == "sendMessage"]

    def _answer(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        prefix, _, method = path.strip("/").rpartition("/")
        if prefix != f"bot{self.token}":
            return 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}
        with self._lock:
            self.calls.append((method, body))
            if method == "sendMessage":
                if self.planned:
                    planned = self.planned.pop(0)
                    return int(planned.get("error_code", 200)), planned
                self._next_message_id += 1
                return 200, {"ok": True, "result": {"message_id": self._next_message_id, "date": 1700000000,
                                                    "chat": {"id": int(body["chat_id"]), "type": "private"},
                                                    "text": body["text"]}}  # fmt: skip
            if method == "getUpdates":
                if self.webhook:
                    return 409, {
                        "ok": False,
                        "error_code": 409,
                        "description": "Conflict: can't use getUpdates method while webhook is active",
                    }
                offset = int(body.get("offset") or 0)
                return 200, {"ok": True, "result": [u for u in self.updates if u["update_id"] >= offset]}
            if method == "setWebhook":
                self.webhook = body["url"]
                return 200, {"ok": True, "result": True, "description": "Webhook was set"}
            if method == "deleteWebhook":
                self.webhook = None
                return 200, {"ok": True, "result": True, "description": "Webhook was deleted"}
        return 404, {"ok": False, "error_code": 404, "description": "Not Found"}

    def close(self) -> None:
        self._server.close()


def update(update_id: int, chat_id: int, message_id: int, text: str | None = None, **message: Any) -> dict[str, Any]:
    """An update as Telegram sends it: a private message from a user to the bot."""
    sender = {"id": chat_id, "is_bot": False, "first_name": "Ivan", "last_name": "Petrenko", "language_code": "uk"}
    body: dict[str, Any] = {"message_id": message_id, "from": sender, "date": 1765000000,
                            "chat": {"id": chat_id, "first_name": "Ivan", "type": "private"}, **message}  # fmt: skip
    if text is not None:
        body["text"] = text
    return {"update_id": update_id, "message": body}
