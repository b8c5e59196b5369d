"""Lead intake and the read side."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import ValidationError

from leadflow.api.deps import AppDep, SettingsDep
from leadflow.api.errors import error_body
from leadflow.api.schemas import (
    AssignmentOut,
    EventOut,
    IntakeOut,
    LeadDetail,
    LeadPage,
    LeadSummary,
    ManagerRef,
    StatusChange,
    manager_ref,
)
from leadflow.api.sla import sla_view
from leadflow.core.errors import FieldProblem, InvalidInput
from leadflow.core.lead import LEAD_FIELDS, LeadIn
from leadflow.services.context import utcnow
from leadflow.services.explain import dry_run, explain_lead
from leadflow.services.intake import take_lead
from leadflow.services.leads import LeadFilter, get_lead, list_leads, restore_lead, set_status

router = APIRouter(prefix="/api/v1/leads", tags=["leads"])

_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
_THANKS = """<!doctype html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Thank you</title></head><body style="font-family:sans-serif;max-width:30em;margin:3em auto">
<h1>Thank you!</h1><p>We have your request and will contact you shortly.</p>
<p lang="uk">Дякуємо! Ми отримали вашу заявку і скоро зв'яжемося з вами.</p></body></html>"""


def problems_of(exc: ValidationError) -> InvalidInput:
    return InvalidInput(
        [FieldProblem(".".join(str(p) for p in e["loc"]) or "body", e["msg"]) for e in exc.errors(include_url=False)]
    )


async def _read_lead(request: Request) -> tuple[LeadIn, dict[str, Any], bool]:
    """The lead from a JSON body or an HTML form; unknown form inputs are kept under `extra`."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    is_form = content_type in _FORM_TYPES
    if is_form:
        form = await request.form()
        raw = {k: v for k, v in form.multi_items() if isinstance(v, str)}
        extra = {k: v for k, v in raw.items() if k not in LEAD_FIELDS and not k.startswith("_")}
        data: Any = {k: v for k, v in raw.items() if k in LEAD_FIELDS and k != "extra"}
        data["extra"] = extra or None
    elif content_type == "application/json" or content_type.endswith("+json"):
        body = await request.body()
        try:
            data = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidInput.one("body", f"the body is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise InvalidInput.one("body", 'a lead is a JSON object, like {"name": ..., "phone": ...}')
        raw = data
    else:
        raise _UnsupportedType(content_type)
    try:
        return LeadIn.model_validate(data), raw, is_form
    except ValidationError as exc:
        raise problems_of(exc) from None


class _UnsupportedType(Exception):
    def __init__(self, content_type: str) -> None:
        self.content_type = content_type


@router.post(
    "",
    response_model=IntakeOut,
    status_code=201,
    summary="Take in a lead (JSON or HTML form)",
    responses={200: {"description": "A repeated delivery: the first lead, nothing new created"}},
)
async def post_lead(
    request: Request,
    app: AppDep,
    settings: SettingsDep,
    idempotency_key: str | None = Header(None, max_length=200),
) -> Response:
    """Answer only after the lead and its routing decision are committed.

    A repeated delivery (same `Idempotency-Key`, or same `channel` + `external_id`) returns the first lead with
    status 200 and creates nothing.
    """
    try:
        lead, raw, is_form = await _read_lead(request)
    except _UnsupportedType as exc:
        message = f"content type '{exc.content_type}' is not accepted: send application/json or a form"
        return JSONResponse(error_body("unsupported_media_type", message), status_code=415)
    result = await run_in_threadpool(take_lead, app, lead, utcnow(), raw=raw, idempotency_key=idempotency_key)
    if is_form and "text/html" in request.headers.get("accept", ""):
        return HTMLResponse(_THANKS, status_code=201 if result.created else 200)
    manager = ManagerRef(key=result.manager_key, name=result.manager_name or "") if result.manager_key else None
    body = IntakeOut(
        id=result.lead_id,
        created=result.created,
        status=result.status,
        manager=manager,
        reason=result.reason,
        url=f"{settings.public_url}/api/v1/leads/{result.lead_id}",
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=201 if result.created else 200)


def _summary(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "manager": manager_ref(row)}


@router.get("", response_model=LeadPage, summary="List leads, newest first")
def get_leads(
    app: AppDep,
    status: str | None = None,
    manager: str | None = Query(None, description="manager key, or 'none' for the unassigned queue"),
    channel: str | None = None,
    created_from: datetime | None = None,
    created_to: datetime | None = None,
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0),
) -> LeadPage:
    for name, value in (("created_from", created_from), ("created_to", created_to)):
        if value is not None and value.tzinfo is None:
            raise InvalidInput.one(name, "give a time zone, e.g. 2026-11-23T10:00:00Z or +02:00")
    rows, total = list_leads(app, LeadFilter(status, manager, channel, created_from, created_to), limit, offset)
    return LeadPage(
        items=[LeadSummary.model_validate(_summary(r)) for r in rows], total=total, limit=limit, offset=offset
    )


@router.get("/{lead_id}", response_model=LeadDetail, summary="A lead with its history and assignment reasons")
def get_one(lead_id: int, app: AppDep) -> LeadDetail:
    row = get_lead(app, lead_id)
    return LeadDetail.model_validate(
        {
            **_summary(row),
            "sla": sla_view(row, utcnow()),
            "assignments": [AssignmentOut.model_validate(_summary(a)) for a in row["assignments"]],
            "events": [EventOut.model_validate(e) for e in row["events"]],
        }
    )


@router.get("/{lead_id}/routing", summary="The whole routing decision: rules, candidates, rank inputs, the pick")
def routing(lead_id: int, app: AppDep) -> dict[str, Any]:
    return explain_lead(app, lead_id)


@router.post("/dry-run", summary="What the rules would do with this lead now; nothing is stored")
async def dry_run_lead(request: Request, app: AppDep) -> dict[str, Any]:
    try:
        lead, _, _ = await _read_lead(request)
    except _UnsupportedType as exc:
        message = f"content type '{exc.content_type}' is not accepted: send application/json"
        raise InvalidInput.one("body", message) from None
    return await run_in_threadpool(dry_run, app, lead, utcnow())


@router.post("/{lead_id}/restore", summary="Bring a junk lead back and route it")
def restore(lead_id: int, app: AppDep, actor: str | None = Query(None, max_length=60)) -> dict[str, Any]:
    return restore_lead(app, lead_id, utcnow(), actor)


@router.post("/{lead_id}/status", summary="Move a lead to another funnel status")
def change_status(lead_id: int, change: StatusChange, app: AppDep) -> dict[str, Any]:
    return set_status(app, lead_id, change.status, utcnow(), change.actor, change.reason)
