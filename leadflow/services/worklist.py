"""What people work from all day: a manager's queue (most urgent first) and pipeline, search across what one may
see, a client's other leads, and notes on a lead.

Reads only; each answer is limited to what `who` may see (services/access.py), exactly as the API's lists are.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, case, false, func, or_, select

from leadflow.core.cleaning import normalize_email, normalize_phone
from leadflow.core.errors import InvalidInput
from leadflow.core.policy import Action, Principal
from leadflow.services.access import guard_lead, restrict
from leadflow.services.context import Leadflow
from leadflow.store.db import READ_ONLY
from leadflow.store.events import append_events, new_event
from leadflow.store.lead_rows import lock_lead
from leadflow.store.tables import leads, managers

QUEUE_LIMIT = 200
PIPELINE_PER_STATUS = 50
CLOSED_SHOWN_FOR = timedelta(days=30)  # the pipeline's closed columns: what was closed in the last month
SEARCH_LIMIT = 50
FULL_NUMBER_DIGITS = 9  # fewer digits than a national number has are searched as a part of one
NOTE_MAX = 4000

# What a row of a list shows: enough to decide what to do, nothing of the raw request.
_ROW = (
    leads.c.id, leads.c.name, leads.c.phone, leads.c.email, leads.c.company, leads.c.channel, leads.c.source,
    leads.c.product, leads.c.status, leads.c.temperature, leads.c.score, leads.c.score_detail, leads.c.message,
    leads.c.created_at, leads.c.assigned_at, leads.c.first_contact_at, leads.c.sla_state, leads.c.sla_due_at,
    leads.c.manager_id, leads.c.queue, leads.c.budget, leads.c.updated_at,
)  # fmt: skip
_OWNER = (managers.c.key.label("manager_key"), managers.c.name.label("manager_name"))


def _rows(query: Select[Any], app: Leadflow) -> list[dict[str, Any]]:
    with app.engine.connect().execution_options(**READ_ONLY) as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def my_queue(app: Leadflow, *, who: Principal, limit: int = QUEUE_LIMIT) -> list[dict[str, Any]]:
    """The open leads `who` owns: first those still waiting for first contact, the nearest deadline first; then
    the rest, the hottest first."""
    if who.manager_id is None:
        return []
    waiting = case((leads.c.first_contact_at.is_(None), 0), else_=1)
    no_deadline = case((leads.c.sla_due_at.is_(None), 1), else_=0)
    query = (
        select(*_ROW)
        .where(leads.c.manager_id == who.manager_id, leads.c.status.in_(sorted(app.rules.open_statuses)))
        .order_by(waiting, no_deadline, leads.c.sla_due_at, leads.c.score.desc(), leads.c.created_at)
        .limit(limit)
    )
    return _rows(query, app)


def pipeline(app: Leadflow, now: datetime, *, who: Principal) -> dict[str, list[dict[str, Any]]]:
    """`who`'s leads by funnel status: every open one, and those closed in the last month."""
    board: dict[str, list[dict[str, Any]]] = {s.key: [] for s in app.rules.funnel}
    if who.manager_id is None:
        return board
    shown = or_(leads.c.status.in_(sorted(app.rules.open_statuses)), leads.c.updated_at >= now - CLOSED_SHOWN_FOR)
    ranked = (
        select(*_ROW, func.row_number().over(partition_by=leads.c.status, order_by=leads.c.updated_at.desc())
               .label("place"))
        .where(leads.c.manager_id == who.manager_id, shown)
        .subquery()
    )  # fmt: skip
    query = select(ranked).where(ranked.c.place <= PIPELINE_PER_STATUS).order_by(ranked.c.updated_at.desc())
    for row in _rows(query, app):
        board.setdefault(row["status"], []).append(row)
    return board


_DIGITS = re.compile(r"\d")


def search_condition(app: Leadflow, text: str) -> ColumnElement[bool]:
    """Leads matching what a person typed: a phone in any format, an e-mail, or part of a name or company."""
    text = " ".join(text.split())
    digits = "".join(_DIGITS.findall(text))
    parts: list[ColumnElement[bool]] = []
    if len(digits) >= 5 and len(digits) >= len(text.replace(" ", "")) - 6:
        try:
            e164: str | None = normalize_phone(text, app.rules.default_region)[0]
        except InvalidInput:
            e164 = None
        if e164 is not None and len(digits) >= FULL_NUMBER_DIGITS:
            parts.append(leads.c.phone == e164)  # a whole number: the index finds it, whatever the format typed
        else:
            # Part of a number (its last digits, say): a scan of the stored numbers' digits.
            parts.append(leads.c.phone.like(f"%{digits[-9:]}%"))
    if "@" in text:
        try:
            parts.append(leads.c.email == normalize_email(text))
        except InvalidInput:
            parts.append(func.lower(leads.c.email).like(f"%{_escaped(text.lower())}%", escape="\\"))
    if not parts and len(text) >= 2:
        pattern = f"%{_escaped(text.lower())}%"
        parts += [func.lower(leads.c.name).like(pattern, escape="\\"),
                  func.lower(leads.c.company).like(pattern, escape="\\")]  # fmt: skip
    return or_(*parts) if parts else false()


def _escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def search(app: Leadflow, text: str, *, who: Principal, limit: int = SEARCH_LIMIT) -> list[dict[str, Any]]:
    """The newest leads `who` may see that match `text` (see search_condition)."""
    if len(text.strip()) < 2:
        raise InvalidInput.one("q", "type at least two characters: a phone, an e-mail, a name or a company")
    query = (
        select(*_ROW, *_OWNER)
        .outerjoin(managers, managers.c.id == leads.c.manager_id)
        .where(search_condition(app, text))
        .order_by(leads.c.id.desc())
        .limit(limit)
    )
    return _rows(restrict(query, who), app)


def client_leads(app: Leadflow, lead: dict[str, Any], *, who: Principal, limit: int = 20) -> list[dict[str, Any]]:
    """The client's other leads `who` may see: the same phone, e-mail or contact, or linked as a duplicate."""
    same: list[ColumnElement[bool]] = [leads.c.duplicate_of_id == lead["id"]]
    if lead.get("phone"):
        same.append(leads.c.phone == lead["phone"])
    if lead.get("email"):
        same.append(leads.c.email == lead["email"])
    if lead.get("contact_id"):
        same.append(leads.c.contact_id == lead["contact_id"])
    if lead.get("duplicate_of_id"):
        same.append(leads.c.id == lead["duplicate_of_id"])
    query = (
        select(*_ROW, *_OWNER)
        .outerjoin(managers, managers.c.id == leads.c.manager_id)
        .where(or_(*same), leads.c.id != lead["id"])
        .order_by(leads.c.id.desc())
        .limit(limit)
    )
    return _rows(restrict(query, who), app)


def add_note(app: Leadflow, lead_id: int, text: str, now: datetime, *, who: Principal) -> dict[str, Any]:
    """A note on the lead's timeline, by whoever may work the lead."""
    text = text.strip()
    if not text:
        raise InvalidInput.one("note", "the note is empty")
    if len(text) > NOTE_MAX:
        raise InvalidInput.one("note", f"a note is at most {NOTE_MAX} characters")
    with app.engine.begin() as conn:
        guard_lead(conn, who, lead_id, Action.LEAD_WORK)
        lock_lead(conn, lead_id)
        append_events(conn, [new_event(lead_id, "lead.note", now, who, note=text)])
    return {"id": lead_id, "note": text}
