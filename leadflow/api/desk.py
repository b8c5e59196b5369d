"""The quality desk's queue and actions, lead conversion, and manual reassignment by a head of sales."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from leadflow.api.auth import permit
from leadflow.api.deps import AppDep
from leadflow.api.errors import CONFLICT, JSON_BODY, NOT_FOUND, REFUSALS
from leadflow.api.params import LeadflowRoute, LeadId, Offset
from leadflow.api.schemas import ManagerRef
from leadflow.core.fields import CleanText
from leadflow.core.policy import Action, Principal
from leadflow.core.rules import Key
from leadflow.services import desk
from leadflow.services.context import utcnow
from leadflow.services.conversion import CompanyIn, ContactIn, DealIn, convert

router = APIRouter(prefix="/api/v1/desk", tags=["desk"], route_class=LeadflowRoute, responses=REFUSALS)
lead_actions = APIRouter(prefix="/api/v1/leads", tags=["leads"], route_class=LeadflowRoute, responses=REFUSALS)

# Who does it is the signed-in person or the key; an integration's key may name the person it acts for.
Actor = Annotated[
    CleanText | None,
    Field(None, min_length=1, max_length=60, description="For an integration's key: the person it acts for."),
]
Note = Annotated[
    CleanText | None, Field(None, min_length=1, max_length=1000, description="Kept in the reason and history.")
]
Reason = Annotated[CleanText, Field(min_length=1, max_length=1000)]


ACTION_ERRORS = {**NOT_FOUND, **CONFLICT, **JSON_BODY}
DeskWorker = Annotated[Principal, permit(Action.DESK_WORK)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class JunkIn(_Body):
    reason: Reason = Field(..., description="Why it is junk: own address, unrelated offer, not a priority ...")
    actor: Actor = None


class KeepIn(_Body):
    contact: ContactIn | None = Field(None, description="What the desk found out; the lead's own data otherwise.")
    company: CompanyIn | None = Field(None, description="The lead's `company` when absent.")
    note: Note = None
    actor: Actor = None


class HandOverIn(_Body):
    deal: DealIn | None = Field(None, description="Title (the company or person) and amount (the lead's budget).")
    contact: ContactIn | None = None
    company: CompanyIn | None = None
    hand_to: Key = Field(..., description="head: the team's head; auto: a free manager by the rules; or a manager key.")
    note: Note = None
    actor: Actor = None


class ToOwnerIn(_Body):
    note: Note = None
    actor: Actor = None


class ConvertIn(_Body):
    to: Literal["contact", "deal"] = Field(..., description="contact: Contact + Company; deal: also a Deal.")
    contact: ContactIn | None = None
    company: CompanyIn | None = None
    deal: DealIn | None = None
    actor: Actor = None


class AssignIn(_Body):
    manager: Key = Field(..., description="Key of the manager who takes the lead.")
    reason: Reason = Field(..., description="Why: kept with the assignment and shown to the new owner.")
    actor: Actor = None


class OwnerRef(BaseModel):
    key: str | None
    name: str | None


class MatchOut(BaseModel):
    kind: str
    id: int
    by: str
    value: str
    score: float
    owner: OwnerRef | None
    contact_id: int | None
    company_id: int | None


class DuplicateOut(MatchOut):
    reason: str


class DeskItem(BaseModel):
    id: int
    name: str | None
    phone: str | None
    email: str | None
    company: str | None
    region: str | None
    product: str | None
    language: str | None
    budget: Decimal | None
    channel: str
    source: str | None
    message: str | None
    created_at: datetime
    waiting_seconds: int
    team: str | None
    due_at: datetime | None
    overdue: bool
    score: int | None
    temperature: str | None
    department: str | None
    win_probability: float | None
    duplicate: DuplicateOut | None
    matches: list[MatchOut]


class DeskPage(BaseModel):
    items: list[DeskItem]
    total: int
    limit: int
    offset: int


class RecordRef(BaseModel):
    id: int
    created: bool


class DealOut(BaseModel):
    id: int
    title: str | None
    amount: Decimal | None
    stage: str
    manager: ManagerRef | None = None


class SlaOut(BaseModel):
    state: str | None
    due_at: datetime | None


class DeskResult(BaseModel):
    id: int
    status: str
    queue: str | None
    manager: ManagerRef | None
    reason: str
    sla: SlaOut
    contact: RecordRef | None
    company: RecordRef | None
    deal: DealOut | None


class ConvertOut(BaseModel):
    id: int
    status: str
    to: str
    contact: RecordRef | None
    company: RecordRef | None
    deal: DealOut | None


@router.get("", response_model=DeskPage, summary="Leads waiting at the quality desk, oldest first")
def queue(
    app: AppDep,
    who: Annotated[Principal, permit(Action.DESK_READ)],
    limit: int = Query(50, ge=1, le=200),
    offset: Offset = 0,
) -> dict[str, Any]:
    return desk.desk_queue(app, utcnow(), who=who, limit=limit, offset=offset)


@router.post(
    "/{lead_id}/junk",
    response_model=DeskResult,
    summary="Junk: set aside with a reason, restorable",
    responses=ACTION_ERRORS,
)
def junk(lead_id: LeadId, body: JunkIn, app: AppDep, who: DeskWorker) -> dict[str, Any]:
    return desk.junk_at_desk(app, lead_id, utcnow(), reason=body.reason, who=who.acting_for(body.actor))


@router.post(
    "/{lead_id}/contact",
    response_model=DeskResult,
    summary="Low value: Contact + Company, kept for later",
    responses=ACTION_ERRORS,
)
def keep_as_contact(lead_id: LeadId, body: KeepIn, app: AppDep, who: DeskWorker) -> dict[str, Any]:
    return desk.contact_at_desk(
        app, lead_id, utcnow(), contact=body.contact, company=body.company, note=body.note,
        who=who.acting_for(body.actor),
    )  # fmt: skip


@router.post(
    "/{lead_id}/deal",
    response_model=DeskResult,
    summary="Hot: Deal + Contact + Company, handed on",
    responses=ACTION_ERRORS,
)
def hand_over_deal(lead_id: LeadId, body: HandOverIn, app: AppDep, who: DeskWorker) -> dict[str, Any]:
    return desk.deal_at_desk(
        app, lead_id, utcnow(), deal=body.deal, contact=body.contact, company=body.company, hand_to=body.hand_to,
        note=body.note, who=who.acting_for(body.actor),
    )  # fmt: skip


@router.post(
    "/{lead_id}/to-owner",
    response_model=DeskResult,
    summary="A duplicate: to the client's owner",
    responses=ACTION_ERRORS,
)
def to_owner(lead_id: LeadId, body: ToOwnerIn, app: AppDep, who: DeskWorker) -> dict[str, Any]:
    return desk.to_owner_at_desk(app, lead_id, utcnow(), note=body.note, who=who.acting_for(body.actor))


@lead_actions.post(
    "/{lead_id}/convert",
    response_model=ConvertOut,
    summary="Convert a lead to Contact/Company/Deal",
    responses=ACTION_ERRORS,
)
def convert_lead(
    lead_id: LeadId, body: ConvertIn, app: AppDep, who: Annotated[Principal, permit(Action.LEAD_WORK)]
) -> dict[str, Any]:
    return convert(app, lead_id, utcnow(), to=body.to, contact=body.contact, company=body.company, deal=body.deal,
                   who=who.acting_for(body.actor))  # fmt: skip


@lead_actions.post(
    "/{lead_id}/assign",
    response_model=DeskResult,
    summary="Reassign a lead by hand, with a reason",
    responses=ACTION_ERRORS,
)
def assign(
    lead_id: LeadId, body: AssignIn, app: AppDep, who: Annotated[Principal, permit(Action.LEAD_ASSIGN)]
) -> dict[str, Any]:
    return desk.assign_by_hand(app, lead_id, utcnow(), manager=body.manager, reason=body.reason,
                               who=who.acting_for(body.actor))  # fmt: skip
