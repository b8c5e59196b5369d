"""The head of sales' pages: the team board (load, who is on shift, today's speed to lead, absence), the live feed of
routing moves, the unassigned queue and the batch that routes it, the junk, the breaches, and the reassignment
panel on a lead card. Reads come from services/board.py and services/sla.py; changes go through the same
services as the API's routes."""

from __future__ import annotations

from typing import Annotated, Any

from anyio import to_thread
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import TypeAdapter, ValidationError

from leadflow.api.desk import Reason
from leadflow.api.params import LeadId, ManagerKey, Offset
from leadflow.core.errors import Forbidden, InvalidInput
from leadflow.core.policy import Action, LeadAccess, team_ids_for
from leadflow.core.rules import Key
from leadflow.services import board
from leadflow.services.batch import assign_backlog
from leadflow.services.context import utcnow
from leadflow.services.desk import assign_by_hand
from leadflow.services.people import ManagerPatch, update_manager
from leadflow.services.sla import list_breaches
from leadflow.web import work
from leadflow.web.render import (
    N_,
    actor_name,
    after_change,
    app_of,
    form_value,
    html_fragment,
    render_fragment,
    render_page,
)
from leadflow.web.viewer import Viewer, WebRoute, page

router = APIRouter(route_class=WebRoute, include_in_schema=False)
Head = Annotated[Viewer, page(Action.PEOPLE_WRITE)]
SlaReader = Annotated[Viewer, page(Action.SLA_READ)]
Assigner = Annotated[Viewer, page(Action.LEAD_ASSIGN)]
Batcher = Annotated[Viewer, page(Action.ROUTING_BATCH)]
BREACHES_PER_PAGE = 100
_REASON = TypeAdapter(Reason)
_KEY = TypeAdapter(Key)


# -- The team board -----------------------------------------------------------------------------------------------

# The response bands (services/sla.py's BANDS, as leads.response_band holds them) as a reader reads them.
BAND_NAMES = {"≤20m": N_("≤20 min"), "≤3h": N_("≤3 h"), "≤12h": N_("≤12 h"), ">12h": N_("> 12 h")}


def _board(request: Request, viewer: Viewer) -> dict[str, Any]:
    """The board's data, with each team's chart (Chart.js, through desk.js) and the bands' names in the reader's
    language."""
    _ = viewer.gettext
    found = board.team_board(app_of(request), utcnow(), viewer.timezone, who=viewer.who)
    names = {band: _(BAND_NAMES[band]) if band in BAND_NAMES else band for band in found["bands"]}
    for team in found["teams"]:
        data = [team["bands"][band] for band in found["bands"]]
        team["chart"] = {"type": "bar", "labels": [names[band] for band in found["bands"]],
                         "datasets": [{"label": _("First contacts"), "data": data}]}  # fmt: skip
    return {"board": found, "band_names": names}


@router.get("/team")
def team(request: Request, viewer: Head) -> Response:
    return render_page(request, viewer, "app/team.html", section="team", **_board(request, viewer))


@router.get("/team/board")
def team_board_fragment(request: Request, viewer: Head) -> Response:
    return html_fragment(request, viewer, "app/_team_board.html", **_board(request, viewer))


@router.post("/team/managers/{key}/absent")
async def mark_absent(request: Request, key: ManagerKey, viewer: Head) -> Response:
    """Absent (1) or back (0): the same change as PATCH /api/v1/managers/{key} with {"absent": ...}."""
    wanted = form_value(await request.form(), "absent")
    if wanted not in ("1", "0"):
        raise InvalidInput.one("absent", "absent is 1 (the manager is away) or 0 (back at work)")
    patch = ManagerPatch(absent=wanted == "1")
    app = app_of(request)
    await to_thread.run_sync(lambda: update_manager(app, key, patch, utcnow(), who=viewer.who))
    fragment = await to_thread.run_sync(
        lambda: render_fragment(request, viewer, "app/_team_board.html", **_board(request, viewer))
    )
    return after_change(request, "/team", fragment)


# -- The live feed ------------------------------------------------------------------------------------------------


def _feed(request: Request, viewer: Viewer) -> dict[str, Any]:
    items = board.live_feed(app_of(request), who=viewer.who)
    for item in items:
        item["by"] = actor_name(item["actor"])
    return {"items": items}


@router.get("/feed")
def feed(request: Request, viewer: SlaReader) -> Response:
    return render_page(request, viewer, "app/feed.html", section="feed", **_feed(request, viewer))


@router.get("/feed/items")
def feed_items(request: Request, viewer: SlaReader) -> Response:
    return html_fragment(request, viewer, "app/_feed_items.html", **_feed(request, viewer))


# -- Reassignment by hand (a panel on the lead card) -------------------------------------------------------------


def _shows_reassign(viewer: Viewer, lead: dict[str, Any], access: LeadAccess | None) -> bool:
    return viewer.may(Action.LEAD_ASSIGN, access) and lead["merged_into_id"] is None


def _reassign_context(request: Request, viewer: Viewer, lead: dict[str, Any]) -> dict[str, Any]:
    """Only an open lead is reassigned (a closed one is refused by the service): the panel shows for those."""
    app = app_of(request)
    if lead["status"] not in app.rules.open_statuses:
        return {"reassign_managers": None}
    return {"reassign_managers": board.reassign_choices(app, lead, who=viewer.who)}


work.CARD_PANELS.append(work.CardPanel("app/_reassign_panel.html", _shows_reassign, _reassign_context))


def _checked(adapter: TypeAdapter[str], field: str, text: str) -> str:
    try:
        return adapter.validate_python(text)
    except ValidationError as exc:
        raise InvalidInput.one(field, f"{field}: {exc.errors()[0]['msg']}") from None


@router.post("/leads/{lead_id}/reassign")
async def reassign(request: Request, lead_id: LeadId, viewer: Assigner) -> Response:
    """To the manager picked, with the reason: the same change as POST /api/v1/leads/{lead_id}/assign."""
    form = await request.form()
    manager, reason = form_value(form, "manager"), form_value(form, "reason")
    if not manager:
        raise InvalidInput.one("manager", "pick the manager who takes the lead")
    manager = _checked(_KEY, "manager", manager)
    if reason:  # an empty one is refused by the service, with its own words
        reason = _checked(_REASON, "reason", reason)
    app = app_of(request)
    done = await to_thread.run_sync(
        lambda: assign_by_hand(app, lead_id, utcnow(), manager=manager, reason=reason, who=viewer.who)
    )
    owner = (done.get("manager") or {}).get("name") or manager
    message = viewer.gettext("Reassigned to %(name)s.") % {"name": owner}
    return await to_thread.run_sync(work.card_after, request, viewer, lead_id, message)


# -- The unassigned queue -----------------------------------------------------------------------------------------


def _unassigned_page(
    request: Request, viewer: Viewer, *, status: int = 200, report: dict[str, Any] | None = None,
    refused: str | None = None,
) -> Response:  # fmt: skip
    app = app_of(request)
    found = board.unassigned_leads(app, who=viewer.who)
    may_route = team_ids_for(viewer.who, Action.ROUTING_BATCH) is None  # the batch spans every team
    return render_page(request, viewer, "app/unassigned.html", status=status, section="unassigned", found=found,
                       may_route=may_route, report=report, refused=refused)  # fmt: skip


@router.get("/unassigned")
def unassigned(request: Request, viewer: Batcher) -> Response:
    return _unassigned_page(request, viewer)


@router.post("/unassigned/route")
def route_unassigned(request: Request, viewer: Batcher) -> Response:
    """Route the whole unassigned queue now (POST /api/v1/assign/unassigned); the page shows what the run did. The
    batch spans every team, so a head of only some teams is refused: the page says so."""
    try:
        report = assign_backlog(app_of(request), utcnow(), who=viewer.who)
    except Forbidden as exc:
        return _unassigned_page(request, viewer, status=403, refused=str(exc))
    return _unassigned_page(request, viewer, report=report.summary())


# -- Junk and breaches --------------------------------------------------------------------------------------------


@router.get("/junk")
def junk(request: Request, viewer: SlaReader, offset: Offset = 0) -> Response:
    found = board.junk_leads(app_of(request), who=viewer.who, offset=offset)
    for item in found["items"]:
        item["by"] = actor_name(item["actor"])
    return render_page(request, viewer, "app/junk.html", section="junk", found=found)


@router.get("/breaches")
def breaches(request: Request, viewer: SlaReader, offset: Offset = 0,
             limit: int = Query(BREACHES_PER_PAGE, ge=1, le=500)) -> Response:  # fmt: skip
    app = app_of(request)
    now = utcnow()
    found = list_breaches(app, now, limit, offset, who=viewer.who)
    names = board.manager_names(app) if found["items"] else {}
    for item in found["items"]:
        due = item["sla_due_at"]
        item["late_seconds"] = round((now - due).total_seconds()) if due is not None else None
        item["manager_name"] = names.get(item["manager"], item["manager"]) if item["manager"] else None
    return render_page(request, viewer, "app/breaches.html", section="breaches", found=found)
