"""Route the unassigned backlog in one run."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from leadflow.api.auth import permit
from leadflow.api.deps import AppDep
from leadflow.api.errors import REFUSALS
from leadflow.api.params import MAX_ID, LeadflowRoute
from leadflow.core.policy import Action, Principal
from leadflow.core.rules import BATCH_ORDER_FIELDS
from leadflow.services.batch import assign_backlog
from leadflow.services.context import utcnow

# One "field [asc|desc]" a value: what the batch understands, so the document says exactly what is taken.
BATCH_ORDER_PATTERN = rf"^\s*({'|'.join(BATCH_ORDER_FIELDS)})(\s+(asc|desc))?\s*$"

router = APIRouter(prefix="/api/v1/assign", tags=["routing"], route_class=LeadflowRoute, responses=REFUSALS)


@router.post(
    "/unassigned",
    summary="Route the unassigned queue: as many leads as fit, the most important first, fair, within caps",
)
def assign_unassigned(
    app: AppDep,
    who: Annotated[Principal, permit(Action.ROUTING_BATCH)],
    dry_run: bool = Query(False, description="Plan only: the distribution it would make, nothing written."),
    limit: int | None = Query(None, ge=1, le=MAX_ID, description="Only the first N leads of the queue."),
    chunk: int = Query(500, ge=1, le=5000, description="Leads per transaction."),
    order: list[str] = Query(
        [],
        # The document states the form; the batch itself refuses anything else with a sentence that says why.
        json_schema_extra={"items": {"type": "string", "pattern": BATCH_ORDER_PATTERN}},
        description="The batch order, most important first, e.g. order=score desc&order=budget desc "
        "(fields: score, win_probability, budget, created_at); the rules file's routing.batch_order by default.",
    ),
) -> dict[str, Any]:
    # A plain def: FastAPI runs it in its thread pool, so a long run does not block the event loop.
    report = assign_backlog(app, utcnow(), dry_run=dry_run, chunk=chunk, limit=limit, order=order or None, who=who)
    return report.summary()
