"""The quality desk's pages: the incoming queue (oldest first, each lead with its desk deadline, live), and on the card
of a lead waiting at the desk the operator's panel: possible duplicates beside the lead, junk with a reason, convert
and keep, convert and hand over (where it would go shown first), send to the client's owner. And the card's restore
panel for a junk lead. Every read and change goes through services/desk.py, as the API's desk routes do."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, TypeVar

from anyio import to_thread
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel

from leadflow.api.desk import HandOverIn, JunkIn, KeepIn, ToOwnerIn
from leadflow.api.params import LeadId, Offset
from leadflow.core.errors import Conflict, NotFound
from leadflow.core.policy import Action, LeadAccess
from leadflow.services import desk
from leadflow.services.context import utcnow
from leadflow.services.leads import restore_lead
from leadflow.web import work
from leadflow.web.render import (
    N_,
    app_of,
    form_model,
    form_value,
    html_fragment,
    plain_number,
    render_fragment,
    render_page,
    shown_ids,
)
from leadflow.web.viewer import Viewer, WebRoute, from_htmx, page

router = APIRouter(route_class=WebRoute, include_in_schema=False)
DeskReader = Annotated[Viewer, page(Action.DESK_READ)]
DeskWorker = Annotated[Viewer, page(Action.DESK_WORK)]
Worker = Annotated[Viewer, page(Action.LEAD_WORK)]

PAGE_SIZE = 50
M = TypeVar("M", bound=BaseModel)
# Reasons an operator often gives; offered as suggestions, any other reason may be typed.
JUNK_REASONS = (
    N_("spam"), N_("a test lead"), N_("our own address"), N_("an unrelated offer"), N_("wrong contact details"),
    N_("a job seeker"), N_("not a priority"),
)  # fmt: skip


# -- The queue ----------------------------------------------------------------------------------------------------


def _queue_context(request: Request, viewer: Viewer, limit: int, offset: int, shown: str | None) -> dict[str, Any]:
    found = desk.desk_queue(app_of(request), utcnow(), who=viewer.who, limit=limit, offset=offset)
    ids = [item["id"] for item in found["items"]]
    before = shown_ids(shown)
    fresh = set(ids) - before if shown is not None else set()
    return {**found, "shown": ",".join(map(str, ids)), "fresh": fresh}


@router.get("/desk")
def desk_page(
    request: Request, viewer: DeskReader, limit: int = Query(PAGE_SIZE, ge=1, le=200), offset: Offset = 0
) -> Response:
    context = _queue_context(request, viewer, limit, offset, None)
    return render_page(request, viewer, "app/desk.html", section="desk", **context)


@router.get("/desk/rows")
def desk_rows(
    request: Request, viewer: DeskReader, limit: int = Query(PAGE_SIZE, ge=1, le=200), offset: Offset = 0,
    shown: str | None = None,
) -> Response:  # fmt: skip
    context = _queue_context(request, viewer, limit, offset, shown)
    return html_fragment(request, viewer, "app/_desk_rows.html", **context)


# -- The card's panels --------------------------------------------------------------------------------------------


def _desk_panel_shows(viewer: Viewer, lead: dict[str, Any], access: LeadAccess | None) -> bool:
    return lead["queue"] == desk.QUEUE and lead["merged_into_id"] is None and viewer.may(Action.DESK_WORK, access)


def _desk_panel_context(request: Request, viewer: Viewer, lead: dict[str, Any]) -> dict[str, Any]:
    app = app_of(request)
    try:
        item = desk.desk_lead(app, lead["id"], utcnow(), who=viewer.who)
    except (Conflict, NotFound):  # it left the desk between the card's reads: the panel goes with it
        item = None
    team = next((t for t in app.rules.teams if item and t.key == item["team"]), None)
    return {"desk_item": item, "desk_has_head": bool(team and team.head),
            "desk_team": (team.name or team.key) if team else None,
            "junk_reasons": [viewer.gettext(r) for r in JUNK_REASONS]}  # fmt: skip


def _restore_panel_shows(viewer: Viewer, lead: dict[str, Any], access: LeadAccess | None) -> bool:
    return lead["status"] == "junk" and lead["merged_into_id"] is None and viewer.may(Action.LEAD_WORK, access)


work.CARD_PANELS.append(work.CardPanel("app/_desk_panel.html", _desk_panel_shows, _desk_panel_context))
work.CARD_PANELS.append(work.CardPanel("app/_restore_panel.html", _restore_panel_shows))


# -- Reading the forms as the API reads its bodies -----------------------------------------------------------------


def _given(**values: str) -> dict[str, str] | None:
    """A nested part of a body (contact, company, deal): the fields filled in, or none at all."""
    filled = {name: value for name, value in values.items() if value}
    return filled or None


def _client(form: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "contact": _given(name=form_value(form, "contact_name"), phone=form_value(form, "contact_phone"),
                          email=form_value(form, "contact_email")),
        "company": _given(name=form_value(form, "company_name")),
    }  # fmt: skip


def _hand_overform_model(form: Mapping[str, Any]) -> HandOverIn:
    return form_model(HandOverIn, {
        **_client(form), "deal": _given(title=form_value(form, "deal_title"), amount=plain_number(form_value(form, "deal_amount"))),
        "hand_to": form_value(form, "hand_to") or desk.AUTO, "note": form_value(form, "note") or None,
    })  # fmt: skip


def _manager_name(result: dict[str, Any], viewer: Viewer) -> str:
    manager = result.get("manager")
    return str(manager["name"] or manager["key"]) if manager else viewer.gettext("nobody")


# -- The desk's actions -------------------------------------------------------------------------------------------


@router.post("/desk/leads/{lead_id}/junk")
async def junk(request: Request, lead_id: LeadId, viewer: DeskWorker) -> Response:
    reason = form_value(await request.form(), "reason")
    if reason:  # an empty one is the service's to refuse, with its own sentence
        reason = form_model(JunkIn, {"reason": reason}).reason
    app = app_of(request)
    await to_thread.run_sync(lambda: desk.junk_at_desk(app, lead_id, utcnow(), reason=reason, who=viewer.who))
    done = viewer.gettext("Set aside as junk: %(reason)s") % {"reason": reason}
    return await to_thread.run_sync(work.card_after, request, viewer, lead_id, done)


@router.post("/desk/leads/{lead_id}/contact")
async def keep_as_contact(request: Request, lead_id: LeadId, viewer: DeskWorker) -> Response:
    form = await request.form()
    body = form_model(KeepIn, {**_client(form), "note": form_value(form, "note") or None})
    app = app_of(request)
    result = await to_thread.run_sync(lambda: desk.contact_at_desk(
        app, lead_id, utcnow(), contact=body.contact, company=body.company, note=body.note, who=viewer.who))  # fmt: skip
    done = viewer.gettext("Converted to a contact: %(reason)s") % {"reason": result["reason"]}
    return await to_thread.run_sync(work.card_after, request, viewer, lead_id, done)


@router.post("/desk/leads/{lead_id}/handover-preview")
async def hand_over_preview(request: Request, lead_id: LeadId, viewer: DeskWorker) -> Response:
    """Where the hand-over would send the lead now, and why; nothing is written until the operator confirms."""
    form = await request.form()
    body = _hand_overform_model(form)
    app = app_of(request)
    preview = await to_thread.run_sync(lambda: desk.preview_hand_over(
        app, lead_id, utcnow(), hand_to=body.hand_to, contact=body.contact, company=body.company, note=body.note,
        who=viewer.who))  # fmt: skip
    fields = {name: form_value(form, name) for name in ("contact_name", "contact_phone", "contact_email",
                                                          "company_name", "deal_title", "deal_amount", "note")}  # fmt: skip
    context: dict[str, Any] = {"preview": preview, "fields": fields | {"hand_to": body.hand_to}, "lead_id": lead_id}
    if from_htmx(request):
        html = render_fragment(request, viewer, "app/_handover_preview.html", level=3, **context)
        return Response(html, media_type="text/html")
    return render_page(request, viewer, "app/handover_preview.html", section="desk", level=2, **context)


@router.post("/desk/leads/{lead_id}/deal")
async def hand_over(request: Request, lead_id: LeadId, viewer: DeskWorker) -> Response:
    body = _hand_overform_model(await request.form())
    app = app_of(request)
    result = await to_thread.run_sync(lambda: desk.deal_at_desk(
        app, lead_id, utcnow(), deal=body.deal, contact=body.contact, company=body.company, hand_to=body.hand_to,
        note=body.note, who=viewer.who))  # fmt: skip
    done = viewer.gettext("Handed over to %(name)s: %(reason)s") % {
        "name": _manager_name(result, viewer), "reason": result["reason"]}  # fmt: skip
    return await to_thread.run_sync(work.card_after, request, viewer, lead_id, done)


@router.post("/desk/leads/{lead_id}/to-owner")
async def to_owner(request: Request, lead_id: LeadId, viewer: DeskWorker) -> Response:
    body = form_model(ToOwnerIn, {"note": form_value(await request.form(), "note") or None})
    app = app_of(request)
    result = await to_thread.run_sync(lambda: desk.to_owner_at_desk(app, lead_id, utcnow(), note=body.note,
                                                                     who=viewer.who))  # fmt: skip
    done = viewer.gettext("Sent to the client's owner, %(name)s: %(reason)s") % {
        "name": _manager_name(result, viewer), "reason": result["reason"]}  # fmt: skip
    return await to_thread.run_sync(work.card_after, request, viewer, lead_id, done)


# -- Restoring a junk lead ----------------------------------------------------------------------------------------


@router.post("/leads/{lead_id}/restore")
async def restore(request: Request, lead_id: LeadId, viewer: Worker) -> Response:
    """Bring a junk lead back (the card's panel, and the head's junk list, which passes ?back=/junk)."""
    app = app_of(request)
    result = await to_thread.run_sync(lambda: restore_lead(app, lead_id, utcnow(), who=viewer.who))
    done = viewer.gettext("Restored: %(reason)s") % {"reason": result["reason"]}
    return await to_thread.run_sync(work.card_after, request, viewer, lead_id, done)
