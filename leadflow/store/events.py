"""The append-only event log and the assignment history."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from leadflow.core.policy import Principal
from leadflow.core.routing import CandidateStore, Decision, stored_candidates
from leadflow.store.fast import Fast
from leadflow.store.tables import assignments, events

# Statements built once: a construct made per call pays for its cache key on every lead.
INSERT_EVENT = events.insert()
INSERT_ASSIGNMENT = assignments.insert()
_INSERT_EVENT = Fast(INSERT_EVENT)
_INSERT_EVENT_ID = Fast(INSERT_EVENT.returning(events.c.id))
_INSERT_ASSIGNMENT = Fast(INSERT_ASSIGNMENT)


Actor = str | Principal | None  # who made a change: a principal, or the process's name


def new_event(
    lead_id: int | None, type_: str, at: datetime, actor: Actor = None, *,
    address: str | None = None, **data: Any,
) -> dict[str, Any]:  # fmt: skip
    """An events row. `actor`: who made the change (a principal: "user:olena", "key:site form", with the client
    address of its request; or the process, "sla"). lead_id None: a change that is not a lead's (a manager, a key)."""
    if isinstance(actor, Principal):
        if actor.cause:
            data["automation"] = list(actor.cause)  # the chain of triggers that made this change
        return {"lead_id": lead_id, "type": type_, "actor": actor.label, "data": data, "at": at,
                "address": actor.address}  # fmt: skip
    return {"lead_id": lead_id, "type": type_, "actor": actor, "data": data, "at": at, "address": address}


def append_events(conn: Connection, rows: list[dict[str, Any]]) -> None:
    _INSERT_EVENT.run_many(conn, rows)


def add_event(conn: Connection, row: dict[str, Any]) -> int:
    """Append one event and return its id, which the notifications it causes carry."""
    return int(_INSERT_EVENT_ID.scalar(conn, row))


def assignment_row(
    lead_id: int, decision: Decision, kind: str, at: datetime, store: CandidateStore | None = None
) -> dict[str, Any]:
    """The assignments row of a decision: who, by which rule, why, and the candidates with their verdicts (`store`:
    see stored_candidates)."""
    return {
        "lead_id": lead_id,
        "manager_id": decision.manager_id,
        "kind": kind,
        "rule_key": decision.rule_key,
        "strategy": decision.strategy,
        "reason": decision.reason,
        # Full entries for the eligible, a summary of the skipped when they are many (routing.stored_candidates).
        "candidates": stored_candidates(decision.candidates, store),
        "at": at,
    }


def record_assignment(conn: Connection, lead_id: int, decision: Decision, kind: str, at: datetime) -> None:
    _INSERT_ASSIGNMENT.run(conn, assignment_row(lead_id, decision, kind, at))
