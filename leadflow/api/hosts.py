"""The Host names the server answers for, so a page on another site cannot reach it by pointing its own name at
this machine's address (DNS rebinding): the browser then sends that site's name as the Host, and is refused.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from leadflow.api.errors import error_response

# Always answered: a page elsewhere cannot make a browser send these, and local health checks use them.
LOOPBACK = ("localhost", "127.0.0.1", "[::1]")
_EVERY_INTERFACE = ("", "0.0.0.0", "[::]")


def host_name(value: str) -> str:
    """The name in a Host header or an address, lowercased, without the port; an IPv6 address in brackets."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[: value.find("]") + 1] or value
    if value.count(":") > 1:  # a bare IPv6 address, as a bind address is written
        return f"[{value}]"
    return value.partition(":")[0].rstrip(".")


def trusted_hosts(listed: Iterable[str], base_url: str | None, bind_host: str) -> frozenset[str]:
    """The loopback names, the public address's host, the bind address when it names one interface, and `listed`."""
    names = {*LOOPBACK, *(host_name(name) if name != "*" else name for name in listed)}
    if base_url:
        names.add(host_name(urlsplit(base_url).netloc.rpartition("@")[2]))
    if host_name(bind_host) not in _EVERY_INTERFACE:
        names.add(host_name(bind_host))
    return frozenset(names)


class TrustedHosts:
    """Answer a request for another Host with 400 in the one error shape ("*" among the hosts turns this off)."""

    def __init__(self, app: ASGIApp, hosts: frozenset[str]) -> None:
        self.app = app
        self.hosts = hosts
        self.any_host = "*" in hosts
        self.seen: set[bytes] = set()  # Host headers already found good, as sent ("127.0.0.1:8000"): a few

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.any_host or scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        raw = None
        for header, value in scope["headers"]:
            if header == b"host":
                raw = value
                break
        if raw in self.seen:
            await self.app(scope, receive, send)
            return
        name = host_name(raw.decode("latin-1")) if raw is not None else None
        if name in self.hosts:
            if raw is not None and len(self.seen) < 64:  # one name with many ports cannot grow it without end
                self.seen.add(raw)
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        if name is None:
            message = "the request has no Host header: say which site it is for"
        else:
            shown = name if len(name) <= 100 else name[:100] + "..."
            message = (
                f"this server does not answer for the host '{shown}'; list it in LEADFLOW_ALLOWED_HOSTS if it should"
            )
        await error_response(Request(scope), 400, "unknown_host", message)(scope, receive, send)
