"""Explain routing: the stored decision of a lead, and what the rules would do with a lead that is not stored."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from leadflow.core.cleaning import clean_lead
from leadflow.core.errors import FieldProblem
from leadflow.core.junk import check_usable
from leadflow.core.lead import LeadIn
from leadflow.core.policy import Principal
from leadflow.core.scoring import qualify
from leadflow.services.context import Leadflow
from leadflow.services.intake import route_now
from leadflow.services.leads import get_lead
from leadflow.store.db import READ_ONLY

_DECISION_EVENTS = ("lead.assigned", "lead.unassigned", "lead.escalated", "lead.chain_exhausted")


def explain_lead(app: Leadflow, lead_id: int, *, who: Principal) -> dict[str, Any]:
    """Every routing decision of the lead, newest last: rules looked at, candidates with their verdicts and rank
    inputs, the pick and the reason."""
    lead = get_lead(app, lead_id, who=who)
    rules_by_event = [e["data"].get("rules") for e in lead["events"] if e["type"] in _DECISION_EVENTS]
    decisions = []
    for i, a in enumerate(lead["assignments"]):
        rules = rules_by_event[i] if i < len(rules_by_event) else None
        decisions.append(
            {
                "at": a["at"],
                "kind": a["kind"],
                "rule": a["rule_key"],
                "strategy": a["strategy"],
                "picked": a["manager_key"],
                "reason": a["reason"],
                "rules": [{"key": k, "matched": m, "outcome": o} for k, m, o in rules] if rules else [],
                "candidates": a["candidates"],
            }
        )
    return {
        "lead": lead_id,
        "status": lead["status"],
        "manager": lead["manager_key"],
        "qualification": {
            "score": lead["score"],
            "criteria": lead["score_detail"] or [],
            "temperature": lead["temperature"],
            "department": lead["department"],
            "win_probability": lead["win_probability"],
            "factors": lead["win_factors"] or [],
        },
        "decisions": decisions,
    }


def dry_run(app: Leadflow, lead_in: LeadIn, now: datetime, problems: Sequence[FieldProblem] = ()) -> dict[str, Any]:
    """Qualify and route a lead against the current team state without storing anything.

    A lead intake would refuse is refused here too, with the same problems.
    """
    rules = app.rules
    clean = clean_lead(lead_in, rules.default_region, problems)
    check_usable(lead_in, clean, rules)
    prediction = app.predict(clean) if app.predict is not None and rules.scoring.predictive else None
    probability = prediction[0] if prediction else None
    qualification = qualify(clean, rules.scoring, probability)
    clean = qualification.apply(clean, probability)
    with app.engine.connect().execution_options(**READ_ONLY) as conn:
        decision, _ = route_now(conn, clean, rules, now, lock=False)
    return {
        "qualification": {
            "score": qualification.score,
            "criteria": qualification.detail(),
            "temperature": qualification.temperature,
            "department": qualification.department,
            "reason": qualification.reason,
            "win_probability": probability,
            "factors": prediction[1] if prediction else [],
        },
        "problems": [{"field": p.field, "reason": p.reason} for p in clean.problems],
        "picked": decision.manager_key,
        "rule": decision.rule_key,
        "strategy": decision.strategy,
        "reason": decision.reason,
        "rules": [c._asdict() for c in decision.checked],
        "candidates": [{**c._asdict(), "inputs": dict(c.inputs)} for c in decision.candidates],
        "wait_until": decision.wait_until,
    }
