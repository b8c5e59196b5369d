"""What the API answers with: the OpenAPI document at /docs is generated from these."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from leadflow.core.fields import CleanText
from leadflow.core.rules import Key


class ManagerRef(BaseModel):
    key: str
    name: str


class ProblemOut(BaseModel):
    field: str
    reason: str


class ErrorOut(BaseModel):
    """Every error answer: a code to branch on, a sentence for people, and each problem with its field."""

    error: str = Field(description="invalid_input, not_found, conflict, too_large, internal, ...")
    message: str
    problems: list[ProblemOut]


class Body(BaseModel):
    """A request body: a field it does not know is refused (422 naming it), never silently dropped."""

    model_config = ConfigDict(extra="forbid")


class IntakeOut(BaseModel):
    id: int = Field(description="The lead: the new one, the first delivery's, or the open lead a repeat joined.")
    created: bool = Field(description="false: nothing new was created (a repeated delivery, or a folded repeat).")
    merged: bool = Field(False, description="The client's repeat request was folded into their open lead `id`.")
    status: str
    manager: ManagerRef | None
    reason: str
    problems: list[ProblemOut] = Field(
        default_factory=list, description="Fields that could not be kept as sent; the lead is kept and flagged."
    )
    url: str


class EventOut(BaseModel):
    id: int
    type: str
    actor: str | None
    at: datetime
    data: dict[str, Any]


class AssignmentOut(BaseModel):
    id: int
    kind: str
    manager: ManagerRef | None
    rule_key: str | None
    strategy: str | None
    reason: str
    candidates: list[dict[str, Any]]
    at: datetime


class LeadSummary(BaseModel):
    id: int
    status: str
    channel: str
    source: str | None
    name: str | None
    phone: str | None
    phone_type: str | None
    email: str | None
    company: str | None
    region: str | None
    product: str | None
    language: str | None
    budget: Decimal | None
    manager: ManagerRef | None
    created_at: datetime
    assigned_at: datetime | None
    duplicate_reason: str | None
    junk_reason: str | None
    score: int | None
    temperature: str | None
    queue: str | None
    messenger_id: str | None = None
    merged_into_id: int | None = None
    problems: list[ProblemOut] | None = None


class LeadDetail(LeadSummary):
    external_id: str | None
    message: str | None
    utm: dict[str, str]
    raw: dict[str, Any]
    contact_id: int | None
    company_id: int | None
    duplicate_of_id: int | None
    first_contact_at: datetime | None
    updated_at: datetime
    rule_key: str | None
    score_detail: list[dict[str, Any]] | None
    department: str | None
    win_probability: float | None
    win_factors: list[dict[str, Any]] | None
    processing_due_at: datetime | None
    sla: dict[str, Any]
    assignments: list[AssignmentOut]
    events: list[EventOut]


class LeadPage(BaseModel):
    items: list[LeadSummary]
    total: int
    limit: int
    offset: int


class StatusChange(Body):
    status: Key = Field(description="A status of the funnel.")
    reason: Annotated[CleanText | None, Field(max_length=1000, description="Why; required for junk.")] = None
    actor: Annotated[
        CleanText | None,
        Field(max_length=60, description="For an integration's key: the person it acts for (kept in the history)."),
    ] = None


class ManagerOut(BaseModel):
    id: int
    key: str
    name: str
    team: str
    email: str | None
    telegram_chat_id: str | None
    regions: list[str]
    products: list[str]
    languages: list[str]
    capacity: int
    open_leads: int
    hours: dict[str, Any] | str | None
    active: bool
    absent: bool
    accepts: dict[str, Any] | None = None
    extension: str | None = Field(None, description="Their internal phone number: calls on it are their contacts.")


class TeamOut(BaseModel):
    id: int
    key: str
    name: str
    timezone: str | None
    head_key: str | None
    hours: dict[str, Any] | str | None
    telegram_chat_id: str | None = None
    scoring: bool = True
    desk: bool = False
    desk_sla_seconds: int | None = None
    sticky: str = "available"
    sticky_wait_seconds: int = 0
    match_accounts: bool = False
    managers: int | None = None


def manager_ref(row: dict[str, Any]) -> ManagerRef | None:
    if row.get("manager_key") is None:
        return None
    return ManagerRef(key=row["manager_key"], name=row["manager_name"])
