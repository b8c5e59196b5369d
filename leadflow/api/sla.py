"""First contact and the SLA: record contacts, list breaches; the outbox and its dead letters."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from leadflow.api.auth import permit
from leadflow.api.deps import AppDep
from leadflow.api.errors import CONFLICT, JSON_BODY, NOT_FOUND, REFUSALS
from leadflow.api.params import LeadflowRoute, LeadId, MessageId, Offset
from leadflow.api.schemas import Body
from leadflow.core.fields import CleanText
from leadflow.core.policy import Action, Principal
from leadflow.core.rules import Key
from leadflow.services.context import utcnow
from leadflow.services.delivery import outbox_page, retry_message
from leadflow.services.sla import list_breaches, record_contact

router = APIRouter(prefix="/api/v1", tags=["sla"], route_class=LeadflowRoute, responses=REFUSALS)


class ContactIn(Body):
    manager: Key | None = Field(
        None,
        description="The manager who made the contact (owns or owned the lead); a manager signed in: themselves.",
    )
    kind: Literal["call", "message", "meeting"] = "call"
    outcome: Key = Field(
        "connected", description="call: connected, no_answer, busy, wrong_number; message: sent; meeting: set"
    )
    note: Annotated[CleanText | None, Field(max_length=2000)] = None
    duration_seconds: int | None = Field(
        None, ge=0, le=86400, description="How long the call lasted, in seconds: the reports' talk minutes."
    )


@router.post(
    "/leads/{lead_id}/contact",
    summary="Record a contact; a real one stops the first-contact clock",
    responses={**NOT_FOUND, **CONFLICT, **JSON_BODY},
)
def post_contact(
    lead_id: LeadId, body: ContactIn, app: AppDep, who: Annotated[Principal, permit(Action.LEAD_WORK)]
) -> dict[str, Any]:
    return record_contact(app, lead_id, body.manager, body.kind, body.outcome, utcnow(), body.note, who=who,
                          duration_seconds=body.duration_seconds)  # fmt: skip


def sla_view(row: dict[str, Any], now: datetime) -> dict[str, Any]:
    due = row.get("sla_due_at")
    return {
        "state": row.get("sla_state"),
        "due_at": due,
        "seconds_left": round((due - now).total_seconds(), 1) if due else None,
        "hops": row.get("sla_hops", 0),
        "first_contact_at": row.get("first_contact_at"),
        "response_seconds": row.get("response_seconds"),
        "response_band": row.get("response_band"),
    }


@router.get("/sla/breaches", summary="Leads past their deadline, and leads that reached the end of a chain")
def breaches(
    app: AppDep,
    who: Annotated[Principal, permit(Action.SLA_READ)],
    limit: int = Query(100, ge=1, le=1000),
    offset: Offset = 0,
) -> dict[str, Any]:
    """Uncontacted leads whose chain ended first (oldest first), then those past their deadline (the longest past
    it first), of those the caller may see. `total` counts all of them, whatever the page."""
    return list_breaches(app, utcnow(), limit, offset, who=who)


class OutboxMessageOut(BaseModel):
    id: int
    event_id: int | None
    channel: str
    recipient: str
    subject: str | None
    body: str
    payload: dict[str, Any]
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None


class OutboxPage(BaseModel):
    items: list[OutboxMessageOut]
    total: int
    limit: int
    offset: int


@router.get(
    "/outbox", response_model=OutboxPage, summary="Notifications: pending, sent, or dead (given up after retries)"
)
def list_outbox(
    app: AppDep,
    who: Annotated[Principal, permit(Action.OUTBOX_READ)],
    status: Literal["pending", "sent", "dead"] | None = None,
    limit: int = Query(50, ge=1, le=500),
    offset: Offset = 0,
) -> OutboxPage:
    found = outbox_page(app.engine, status, limit, offset)
    items = [OutboxMessageOut.model_validate(asdict(m)) for m in found.items]
    return OutboxPage(items=items, total=found.total, limit=limit, offset=offset)


@router.post(
    "/outbox/{message_id}/retry",
    response_model=OutboxMessageOut,
    summary="Put a dead notification back in the queue",
    responses={**NOT_FOUND, **CONFLICT},
)
def retry(message_id: MessageId, app: AppDep, who: Annotated[Principal, permit(Action.OUTBOX_RETRY)]) -> dict[str, Any]:
    return asdict(retry_message(app.engine, message_id, utcnow()))
