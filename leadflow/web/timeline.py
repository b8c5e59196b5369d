"""A lead's history as people read it: what happened, when, by whom, and why."""

from __future__ import annotations

from typing import Any

from leadflow.web.render import Labels, actor_name
from leadflow.web.viewer import Viewer


def timeline(lead: dict[str, Any], labels: Labels, viewer: Viewer) -> list[dict[str, Any]]:
    """Newest first: a person looking at a lead wants to know what happened last."""
    _ = viewer.gettext
    names = {a["manager_key"]: a["manager_name"] for a in lead.get("assignments", []) if a.get("manager_key")}
    shown = []
    for e in lead["events"]:
        data = e["data"] or {}
        detail = ""
        kind = e["type"]
        if kind in ("lead.contacted", "lead.contact_attempt"):
            detail = f"{labels.kind(data.get('kind'))}: {labels.outcome(data.get('outcome'))}"
            if isinstance(data.get("duration_seconds"), int):
                detail += f" · {viewer.formats.span(data['duration_seconds'])}"
            if data.get("note"):
                detail += f" — {data['note']}"
        elif kind == "lead.status_changed":
            detail = f"{labels.status(data.get('old'))} → {labels.status(data.get('new'))}"
            if data.get("amount") is not None:
                detail += f" · {_('Amount')}: {viewer.formats.number(float(data['amount']), 2)}"
        elif kind == "lead.note":
            detail = data.get("note") or ""
        elif kind in ("lead.assigned", "lead.escalated", "lead.reassigned", "lead.chain_exhausted"):
            to = data.get("manager")
            if to:
                detail = "→ " + names.get(to, to)
        elif kind.startswith("task.") and data.get("title"):
            detail = data["title"]
            to = data.get("manager")
            if kind in ("task.created", "task.reassigned") and to:
                detail += " → " + names.get(to, to)
            if data.get("note"):
                detail += f" — {data['note']}"
        elif kind.startswith("automation.") and data.get("trigger"):
            detail = str(data["trigger"]) + (f": {data['text']}" if data.get("text") else "")
        elif kind == "lead.tagged":
            detail = ", ".join(data.get("tags") or ()) or "—"
        elif kind == "lead.updated":
            detail = ", ".join(f"{k} = {v}" for k, v in (data.get("fields") or {}).items())
        elif kind.startswith("client."):  # what the client did: where, as it was reported
            detail = str(data.get("url") or data.get("page") or "")
        elif kind == "lead.scored" and data.get("score") is not None:
            detail = f"{_('Score')} {data['score']}" + (
                f" · {labels.temperature(data.get('temperature'))}" if data.get("temperature") else "")  # fmt: skip
        shown.append({"type": kind, "at": e["at"], "who": actor_name(e["actor"]), "detail": detail,
                      "reason": data.get("reason") if isinstance(data.get("reason"), str) else None})  # fmt: skip
    return shown[::-1]
