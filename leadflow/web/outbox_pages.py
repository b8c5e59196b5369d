"""Notifications: the outbox (dead letters first), and putting a dead message back in the queue, through the same
services as the API's GET /api/v1/outbox and POST /api/v1/outbox/{id}/retry."""

from __future__ import annotations

from typing import Annotated, Any

from anyio import to_thread
from fastapi import APIRouter, Request
from fastapi.responses import Response

from leadflow.api.params import MessageId, Offset
from leadflow.core.policy import Action
from leadflow.services.context import utcnow
from leadflow.services.delivery import outbox_page, retry_message
from leadflow.store.outbox import ERASED_CANCEL, STATUSES
from leadflow.web.render import after_change, app_of, form_value, render_fragment, render_page
from leadflow.web.viewer import Viewer, WebRoute, page

router = APIRouter(route_class=WebRoute, include_in_schema=False)
Reader = Annotated[Viewer, page(Action.OUTBOX_READ)]
Retrier = Annotated[Viewer, page(Action.OUTBOX_RETRY)]

PAGE_SIZE = 50
TABS = (*reversed(STATUSES), "all")  # dead, sent, pending: what needs a person first


def _tab(status: str | None) -> str:
    return status if status in TABS else "dead"


def _context(request: Request, tab: str, offset: int, done: str | None = None) -> dict[str, Any]:
    found = outbox_page(app_of(request).engine, None if tab == "all" else tab, PAGE_SIZE, max(offset, 0))
    counts = {**found.counts, "all": sum(found.counts.values())}
    return {"messages": found.items, "total": found.total, "counts": counts, "tab": tab, "tabs": TABS,
            "offset": max(offset, 0), "page_size": PAGE_SIZE, "erased": ERASED_CANCEL, "done": done}  # fmt: skip


@router.get("/outbox")
def outbox(request: Request, viewer: Reader, status: str | None = None, offset: Offset = 0) -> Response:
    context = _context(request, _tab(status), offset)
    return render_page(request, viewer, "app/outbox.html", section="outbox", **context)


@router.post("/outbox/{message_id}/retry")
async def retry(request: Request, message_id: MessageId, viewer: Retrier) -> Response:
    tab = _tab(form_value(await request.form(), "status"))
    app = app_of(request)
    await to_thread.run_sync(retry_message, app.engine, message_id, utcnow())
    done = viewer.gettext("Message %(id)s is queued again, with a fresh set of attempts.") % {"id": message_id}

    def fragment() -> str:
        return render_fragment(request, viewer, "app/_outbox_list.html", **_context(request, tab, 0, done))

    return after_change(request, f"/outbox?status={tab}", await to_thread.run_sync(fragment))
