"""Route the unassigned backlog in one run."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from leadflow.api.deps import AppDep
from leadflow.api.params import MAX_ID, LeadflowRoute
from leadflow.services.batch import assign_backlog
from leadflow.services.context import utcnow

router = APIRouter(prefix="/api/v1/assign", tags=["routing"], route_class=LeadflowRoute)


@router.post("/unassigned", summary="Route the unassigned queue: highest budgets first, fair, within caps")
def assign_unassigned(
    app: AppDep,
    dry_run: bool = Query(False, description="Plan only: the distribution it would make, nothing written."),
    limit: int | None = Query(None, ge=1, le=MAX_ID, description="Only the first N leads of the queue."),
    chunk: int = Query(500, ge=1, le=5000, description="Leads per transaction."),
) -> dict[str, Any]:
    # A plain def: FastAPI runs it in its thread pool, so a long run does not block the event loop.
    return assign_backlog(app, utcnow(), dry_run=dry_run, chunk=chunk, limit=limit).summary()
