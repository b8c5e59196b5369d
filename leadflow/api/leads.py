"""Leads: the list, one lead with its history and routing, funnel status changes, restoring junk."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from leadflow.api.auth import permit
from leadflow.api.deps import AppDep
from leadflow.api.errors import CONFLICT, JSON_BODY, NOT_FOUND, REFUSALS
from leadflow.api.params import IsoTime, LeadflowRoute, LeadId, Offset, TextFilter, key_query
from leadflow.api.schemas import (
    AssignmentOut,
    EventOut,
    LeadDetail,
    LeadPage,
    LeadSummary,
    StatusChange,
    manager_ref,
)
from leadflow.api.sla import sla_view
from leadflow.core.policy import Action, Principal
from leadflow.services.context import utcnow
from leadflow.services.explain import explain_lead
from leadflow.services.leads import LeadFilter, get_lead, list_leads, restore_lead, set_status

router = APIRouter(prefix="/api/v1/leads", tags=["leads"], route_class=LeadflowRoute, responses=REFUSALS)


def _summary(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "manager": manager_ref(row)}


@router.get("", response_model=LeadPage, summary="List leads, newest first")
def get_leads(
    app: AppDep,
    who: Annotated[Principal, permit(Action.LEAD_READ)],
    status: Annotated[str | None, key_query(description="A status of the funnel.")] = None,
    manager: Annotated[
        str | None, key_query(description="A manager's key, or 'none' for the unassigned queue.")
    ] = None,
    channel: TextFilter = None,
    created_from: Annotated[IsoTime | None, Query(description="Created at or after (ISO 8601, with a zone).")] = None,
    created_to: Annotated[IsoTime | None, Query(description="Created before (ISO 8601, with a zone).")] = None,
    limit: int = Query(50, ge=1, le=500),
    offset: Offset = 0,
) -> LeadPage:
    lead_filter = LeadFilter(status, manager, channel, created_from, created_to)
    rows, total = list_leads(app, lead_filter, limit, offset, who=who)
    return LeadPage(
        items=[LeadSummary.model_validate(_summary(r)) for r in rows], total=total, limit=limit, offset=offset
    )


@router.get(
    "/{lead_id}",
    response_model=LeadDetail,
    summary="A lead with its history and assignment reasons",
    responses=NOT_FOUND,
)
def get_one(lead_id: LeadId, app: AppDep, who: Annotated[Principal, permit(Action.LEAD_READ)]) -> LeadDetail:
    row = get_lead(app, lead_id, who=who)
    return LeadDetail.model_validate(
        {
            **_summary(row),
            "sla": sla_view(row, utcnow()),
            "assignments": [AssignmentOut.model_validate(_summary(a)) for a in row["assignments"]],
            "events": [EventOut.model_validate(e) for e in row["events"]],
        }
    )


@router.get(
    "/{lead_id}/routing",
    summary="The whole routing decision: rules, candidates, rank inputs, the pick",
    responses=NOT_FOUND,
)
def routing(lead_id: LeadId, app: AppDep, who: Annotated[Principal, permit(Action.LEAD_READ)]) -> dict[str, Any]:
    return explain_lead(app, lead_id, who=who)


@router.post("/{lead_id}/restore", summary="Bring a junk lead back and route it", responses={**NOT_FOUND, **CONFLICT})
def restore(lead_id: LeadId, app: AppDep, who: Annotated[Principal, permit(Action.LEAD_WORK)]) -> dict[str, Any]:
    return restore_lead(app, lead_id, utcnow(), who=who)


@router.post(
    "/{lead_id}/status",
    summary="Move a lead to another funnel status",
    responses={**NOT_FOUND, **CONFLICT, **JSON_BODY},
)
def change_status(
    lead_id: LeadId, change: StatusChange, app: AppDep, who: Annotated[Principal, permit(Action.LEAD_WORK)]
) -> dict[str, Any]:
    return set_status(app, lead_id, change.status, utcnow(), who=who.acting_for(change.actor), reason=change.reason)
