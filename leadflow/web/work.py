"""A manager's day: the queue (most urgent first, live), the lead card and its one-click actions, search, the
pipeline board, and the page's language. Every read and change goes through the same services as the API."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from anyio import to_thread
from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse

from leadflow.api.auth import SESSION_COOKIE
from leadflow.api.params import MAX_ID, LeadId
from leadflow.core.errors import FieldProblem, InvalidInput, NotFound
from leadflow.core.policy import Action, LeadAccess
from leadflow.services import accounts
from leadflow.services.access import lead_access
from leadflow.services.context import Leadflow, utcnow
from leadflow.services.conversations import thread_of
from leadflow.services.conversion import won_status
from leadflow.services.leads import Sale, get_lead, set_status
from leadflow.services.replies import send_reply
from leadflow.services.sla import record_contact
from leadflow.services.tasks import my_tasks
from leadflow.services.worklist import add_note, client_leads, my_queue, pipeline, search
from leadflow.web.i18n import LANGUAGES
from leadflow.web.live import Watcher, event_stream_line, hub_of
from leadflow.web.render import (
    Labels,
    after_change,
    app_of,
    form_value,
    html_fragment,
    plain_number,
    render_fragment,
    render_page,
    shown_ids,
)
from leadflow.web.timeline import timeline
from leadflow.web.viewer import Viewer, WebRoute, page

MAX_TALK_MINUTES = 1440  # a day: the API takes up to 86,400 seconds

router = APIRouter(route_class=WebRoute, include_in_schema=False)
Reader = Annotated[Viewer, page(Action.LEAD_READ)]
Worker = Annotated[Viewer, page(Action.LEAD_WORK)]
Someone = Annotated[Viewer, page(Action.SELF)]


@dataclass(frozen=True, slots=True)
class CardPanel:
    """More on a lead card for some readers (the desk's actions, the head's reassignment): a template, who sees it,
    and what it needs."""

    template: str
    shows: Callable[[Viewer, dict[str, Any], LeadAccess | None], bool]
    context: Callable[[Request, Viewer, dict[str, Any]], dict[str, Any]] = lambda request, viewer, lead: {}


CARD_PANELS: list[CardPanel] = []


# -- The queue ----------------------------------------------------------------------------------------------------


@router.get("/")
def home(request: Request, viewer: Someone) -> Response:
    """The start page: a manager's queue; others go to where their day starts (a stranger, to sign in)."""
    if viewer.start_page() != "/":
        return RedirectResponse(viewer.start_page(), status_code=303)
    tasks = my_tasks(app_of(request), utcnow(), who=viewer.who)  # "My tasks", beside the queue
    return render_page(request, viewer, "app/queue.html", section="queue", tasks=tasks,
                       **_queue_context(request, viewer, None))  # fmt: skip


def _queue_context(request: Request, viewer: Viewer, shown: str | None) -> dict[str, Any]:
    app = app_of(request)
    queue = my_queue(app, who=viewer.who)
    ids = [lead["id"] for lead in queue]
    before = shown_ids(shown)
    fresh = set(ids) - before if shown is not None else set()
    gone = [_gone_note(app, viewer, lead_id) for lead_id in sorted(before - set(ids))]
    return {"queue": queue, "shown": ",".join(map(str, ids)), "fresh": fresh, "gone": [g for g in gone if g]}


@router.get("/queue/rows")
def queue_rows(request: Request, viewer: Reader, shown: str | None = None) -> Response:
    context = _queue_context(request, viewer, shown)
    return html_fragment(request, viewer, "app/_queue_rows.html", **context)


def _gone_note(app: Leadflow, viewer: Viewer, lead_id: int) -> str | None:
    """Why a lead left the queue, when someone else moved it (the chain, a head, the desk)."""
    _ = viewer.gettext
    try:
        lead = get_lead(app, lead_id, who=viewer.who)
    except NotFound:
        return None
    moved = [e for e in lead["events"] if e["type"] in ("lead.escalated", "lead.chain_exhausted", "lead.reassigned")]
    name = lead["name"] or f"#{lead_id}"
    if lead["manager_id"] != viewer.manager_id and moved:
        reason = moved[-1]["data"].get("reason") or ""
        to = lead["manager_name"] or _("nobody")
        return _("%(lead)s went to %(to)s: %(reason)s") % {"lead": name, "to": to, "reason": reason}
    if lead["manager_id"] != viewer.manager_id:
        return _("%(lead)s is no longer yours.") % {"lead": name}
    return None


# -- The lead card ------------------------------------------------------------------------------------------------


def card_context(request: Request, viewer: Viewer, lead_id: int, done: str | None = None) -> dict[str, Any]:
    app = app_of(request)
    lead = get_lead(app, lead_id, who=viewer.who)
    with app.engine.connect() as conn:
        access = lead_access(conn, lead_id)
    # A lead waiting at the quality desk is the desk's to decide on (its own panel), not yet anyone's to call.
    can_work = viewer.may(Action.LEAD_WORK, access) and lead["status"] in app.rules.open_statuses and (
        lead["queue"] != "desk")  # fmt: skip
    labels = Labels(viewer, app.rules)
    context: dict[str, Any] = {
        "lead": lead, "can_work": can_work and lead["merged_into_id"] is None, "done": done,
        "others": client_leads(app, lead, who=viewer.who), "timeline": timeline(lead, labels, viewer),
        "thread": thread_of(app, lead_id, who=viewer.who),
    }  # fmt: skip
    context["panels"] = [p.template for p in CARD_PANELS if p.shows(viewer, lead, access)]
    for p in CARD_PANELS:
        if p.template in context["panels"]:
            context.update(p.context(request, viewer, lead))
    return context


@router.get("/leads/{lead_id}")
def lead_card(request: Request, lead_id: LeadId, viewer: Reader, part: str | None = None) -> Response:
    context = card_context(request, viewer, lead_id)
    if part == "card":
        return html_fragment(request, viewer, "app/_lead_card.html", **context)
    return render_page(request, viewer, "app/lead.html", **context)


def card_after(request: Request, viewer: Viewer, lead_id: int, done: str) -> Response:
    """The card again after a change: the fragment for htmx, a redirect to the card for a plain form."""
    back = _back(request, lead_id)
    if back != f"/leads/{lead_id}":
        return after_change(request, back)
    try:
        fragment = render_fragment(
            request, viewer, "app/_lead_card.html", **card_context(request, viewer, lead_id, done)
        )
    except NotFound:  # the change took the lead out of the viewer's sight (handed over): back to their start page
        return after_change(request, viewer.start_page(), None)
    return after_change(request, back, fragment)


def _back(request: Request, lead_id: int) -> str:
    wanted = request.query_params.get("back", "")
    return wanted if wanted.startswith("/") and not wanted.startswith("//") else f"/leads/{lead_id}"


@router.post("/leads/{lead_id}/contact")
async def contact(request: Request, lead_id: LeadId, viewer: Worker) -> Response:
    form = await request.form()
    kind, outcome = form_value(form, "kind"), form_value(form, "outcome")
    app = app_of(request)
    manager = form_value(form, "manager") or None
    seconds = _talk_seconds(form)
    await to_thread.run_sync(
        lambda: record_contact(app, lead_id, manager, kind, outcome, utcnow(), who=viewer.who, duration_seconds=seconds)
    )
    labels = Labels(viewer, app.rules)
    done = viewer.gettext("Recorded: %(what)s") % {"what": f"{labels.kind(kind)} — {labels.outcome(outcome)}"}
    return await to_thread.run_sync(card_after, request, viewer, lead_id, done)


@router.post("/leads/{lead_id}/reply")
async def reply(request: Request, lead_id: LeadId, viewer: Worker) -> Response:
    text = form_value(await request.form(), "text")
    app = app_of(request)
    sent = await to_thread.run_sync(lambda: send_reply(app, lead_id, text, utcnow(), who=viewer.who))
    done = viewer.gettext("The reply is on its way through %(channel)s.") % {
        "channel": Labels(viewer, app.rules).channel(sent["channel"])
    }
    return await to_thread.run_sync(card_after, request, viewer, lead_id, done)


@router.post("/leads/{lead_id}/note")
async def note(request: Request, lead_id: LeadId, viewer: Worker) -> Response:
    text = form_value(await request.form(), "note")
    await to_thread.run_sync(lambda: add_note(app_of(request), lead_id, text, utcnow(), who=viewer.who))
    return await to_thread.run_sync(card_after, request, viewer, lead_id, viewer.gettext("The note is added."))


@router.post("/leads/{lead_id}/status")
async def move(request: Request, lead_id: LeadId, viewer: Worker) -> Response:
    form = await request.form()
    status = form_value(form, "status")
    app = app_of(request)
    if status and status not in app.rules.open_statuses:
        raise InvalidInput.one("status", "a lead is closed as won or lost with its own form, which asks for the result")
    await to_thread.run_sync(lambda: set_status(app, lead_id, status, utcnow(), who=viewer.who))
    if form_value(form, "back") == "pipeline":
        return after_change(request, "/pipeline", await to_thread.run_sync(_board_fragment, request, viewer))
    labels = Labels(viewer, app.rules)
    done = viewer.gettext("Moved to %(status)s.") % {"status": labels.status(status)}
    return await to_thread.run_sync(card_after, request, viewer, lead_id, done)


def _decimal(form: Any, name: str) -> Decimal | None:
    text = plain_number(form_value(form, name))
    if not text:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise InvalidInput.one(name, f"{name} should be a number, like 1200 or 1200.50") from None
    if not value.is_finite() or abs(value) >= Decimal("1e14"):
        raise InvalidInput.one(name, f"{name} should be a number, like 1200 or 1200.50")
    return value


def _talk_seconds(form: Any) -> int | None:
    """The call's talk time, typed in minutes (the reports' talk minutes); empty when nobody typed it."""
    minutes = _decimal(form, "minutes")
    if minutes is None:
        return None
    if not 0 <= minutes <= MAX_TALK_MINUTES:
        raise InvalidInput.one("minutes", f"talk time is between 0 and {MAX_TALK_MINUTES} minutes")
    return int((minutes * 60).to_integral_value())


def _whole(form: Any, name: str) -> int | None:
    text = form_value(form, name)
    if not text:
        return None
    if not text.isdigit() or len(text) > 9:
        raise InvalidInput([FieldProblem(name, f"{name} should be a whole number, like 3")])
    return int(text)


@router.post("/leads/{lead_id}/won")
async def won(request: Request, lead_id: LeadId, viewer: Worker) -> Response:
    form = await request.form()
    app = app_of(request)
    sale = Sale(_decimal(form, "amount"), _whole(form, "units"), _decimal(form, "margin"))
    status = won_status(app.rules)
    await to_thread.run_sync(lambda: set_status(app, lead_id, status, utcnow(), who=viewer.who, sale=sale))
    return await to_thread.run_sync(card_after, request, viewer, lead_id, viewer.gettext("Closed as won."))


@router.post("/leads/{lead_id}/lost")
async def lost(request: Request, lead_id: LeadId, viewer: Worker) -> Response:
    reason = form_value(await request.form(), "reason")
    app = app_of(request)
    if reason not in app.rules.lost_reasons:
        raise InvalidInput.one("reason", f"pick why the lead was lost: {', '.join(app.rules.lost_reasons)}")
    status = next((s.key for s in app.rules.funnel if s.outcome == "lost"), None)
    if status is None:
        raise InvalidInput.one("status", "the funnel has no status with outcome 'lost'")
    await to_thread.run_sync(lambda: set_status(app, lead_id, status, utcnow(), who=viewer.who, reason=reason))
    return await to_thread.run_sync(card_after, request, viewer, lead_id, viewer.gettext("Closed as lost."))


# -- Search and the pipeline --------------------------------------------------------------------------------------


@router.get("/search")
def find(request: Request, viewer: Reader, q: str = "") -> Response:
    problem, found = None, []
    if q.strip():
        try:
            found = search(app_of(request), q, who=viewer.who)
        except InvalidInput as exc:
            problem = exc.problems[0].reason if exc.problems else str(exc)
    return render_page(request, viewer, "app/search.html", query=q, found=found, problem=problem, fresh=set(),
                       show_owner=True)  # fmt: skip


def _board_fragment(request: Request, viewer: Viewer) -> str:
    board = pipeline(app_of(request), utcnow(), who=viewer.who)
    return render_fragment(request, viewer, "app/_board.html", board=board)


@router.get("/pipeline")
def board(request: Request, viewer: Worker) -> Response:
    return render_page(request, viewer, "app/pipeline.html", section="pipeline",
                       board=pipeline(app_of(request), utcnow(), who=viewer.who))  # fmt: skip


# -- The page's language, and the live signal ---------------------------------------------------------------------


@router.post("/me/language")
async def language(request: Request, viewer: Someone) -> Response:
    form = await request.form()
    chosen = form_value(form, "language") or None
    app = app_of(request)
    user_id = viewer.who.id or 0
    await app.transaction_async(lambda conn: accounts.set_language(conn, user_id, chosen, LANGUAGES))
    request.app.state.auth.forget()
    target = form_value(form, "next")
    return RedirectResponse(target if target.startswith("/") and not target.startswith("//") else "/", status_code=303)


async def _still_signed_in(request: Request) -> bool:
    token = request.cookies.get(SESSION_COOKIE) or request.headers.get("authorization", "").partition(" ")[2]
    return await request.app.state.auth.holder(token.strip()) is not None


@router.get("/live")
async def live(
    request: Request, viewer: Reader, watch: str = "queue", lead: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None
) -> Response:
    """Server-sent events naming what changed (queue, lead, team, desk); the page fetches its fragment again."""
    hub = hub_of(request.app.state)
    watcher = Watcher(viewer.who, lead_id=lead if watch == "lead" else None)

    async def stream() -> AsyncIterator[str]:
        yield "retry: 1000\n\n"
        async for name, data in hub.watch(watcher):
            if await request.is_disconnected():
                return
            if not await _still_signed_in(request):
                return  # signed out or disabled meanwhile: the stream ends with the next signal or heartbeat
            yield event_stream_line(name, data)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})  # fmt: skip
