"""What every service's webhook does: check the caller, read the body, take what was read, answer.

A webhook answers 200 to whatever it took, and to what it could not read (kept as a raw channel event with the
reason), because these services deliver again and again what was not answered 2xx; only a call that fails its
signature or token check is refused (401 without one, 403 with a wrong one), counted, and nothing of it kept.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from anyio import to_thread
from fastapi import Request
from fastapi.responses import JSONResponse, Response

from leadflow.api.errors import error_response
from leadflow.core.conversation import Inbound, Refusal, Unreadable
from leadflow.services.channel_state import count_refusal
from leadflow.services.context import Leadflow, utcnow
from leadflow.services.conversations import take_inbound_async

Check = Callable[[bytes, Mapping[str, str]], None]  # raises Refusal; given the body and the headers (lower case)
Read = Callable[[bytes], Sequence[Inbound]]


async def take_webhook(
    request: Request, app: Leadflow, channel: str, read: Read, check: Check | None = None, *, blocking: bool = False
) -> Response:
    """The common path of every webhook: check the caller, read the body, take what was read, answer.

    `check` raises Refusal for a call that is not the service's. `read` turns the body into inbound items, on the
    event loop as intake reads a lead (or on a thread when it is `blocking`: it waits for something, as Lead Ads
    keeping its forms' ids does); an exception there is the adapter not understanding the body: kept as an
    unreadable event, answered 200.
    """
    body = await request.body()
    now = utcnow()
    try:
        if check is not None:
            check(body, {k.lower(): v for k, v in request.headers.items()})
    except Refusal as refused:
        await to_thread.run_sync(count_refusal, app, refused, now)
        code = "unauthenticated" if refused.status == 401 else "forbidden"
        return error_response(request, refused.status, code, f"{channel}: {refused.reason}")
    try:
        items = list(await to_thread.run_sync(read, body) if blocking else read(body))
    except Exception as exc:  # the adapter's parse failed: keep the body, tell the service it arrived
        items = [Unreadable(channel, f"not understood: {type(exc).__name__}: {exc}"[:500], raw=_raw(body))]
    taken = await take_inbound_async(app, items, now)
    return JSONResponse({"ok": True, "taken": [t.outcome for t in taken]})


def _raw(body: bytes) -> dict[str, Any]:
    """A body kept as it came, for an event the adapter could not read."""
    return {"body": body[:65536].decode("utf-8", errors="replace")}
