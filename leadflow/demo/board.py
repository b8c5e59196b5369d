"""Reading the demo's board back from the database: totals, the moves along the chain, the newest leads."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rich.text import Text
from sqlalchemy import Engine, case, func, select
from sqlalchemy.engine import Connection

from leadflow.core.rules import RulesFile
from leadflow.store.db import READ_ONLY
from leadflow.store.tables import events, leads, managers, outbox

__all__ = ["MOVES", "Board", "DemoSummary", "Move", "Totals", "verb"]

MOVES = ("lead.escalated", "lead.chain_exhausted")


@dataclass(frozen=True, slots=True)
class DemoSummary:
    """Counted in the database when the demo ends, over the leads this run posted."""

    received: int  # leads taken in, junk included
    contacted_in_time: int  # first contact by the first owner before the lead's first deadline (met, no move)
    contacted_after_escalation: int  # first contact only after the lead moved along the chain (the head included)
    escalations: int  # moves along the chain: lead.escalated and lead.chain_exhausted events
    reached_head: int  # leads whose chain ended with the head of the team
    junk: int  # leads set aside as junk


@dataclass(frozen=True, slots=True)
class Totals:
    received: int
    contacted_in_time: int  # by the first owner, before the lead's first deadline: no move along the chain
    contacted_after_escalation: int  # first contacted only after the lead moved at least once
    escalations: int
    reached_head: int
    junk: int
    waiting: int
    chat_messages: int


@dataclass(frozen=True, slots=True)
class Move:
    event_id: int
    lead_id: int
    type: str
    at: datetime
    previous: str | None
    manager: str | None
    reason: str


def verb(kind: str, outcome: str) -> str:
    return f"{kind} {outcome.replace('_', ' ')}"


class Board:
    """Read-only queries over the leads this run posted (ids above the baseline), on one engine."""

    def __init__(self, engine: Engine, rules: RulesFile, baseline: int) -> None:
        self.engine = engine
        self.baseline = baseline
        self.heads = sorted({t.head for t in rules.teams if t.head})
        self.chats = sorted({t.telegram_chat_id for t in rules.teams if t.telegram_chat_id})
        with self._read() as conn:
            self.names: dict[str, str] = {
                key: name for key, name in conn.execute(select(managers.c.key, managers.c.name))
            }

    def _read(self) -> Connection:
        return self.engine.connect().execution_options(**READ_ONLY)

    def name(self, key: str | None) -> str:
        return self.names.get(key, key) if key else "nobody"

    def owner(self, key: str | None) -> Text:
        if key is None:
            return Text("—", "dim")
        return Text(self.name(key)) + (Text(" (head)", "magenta") if key in self.heads else Text(""))

    def totals(self) -> Totals:
        with_owner = leads.outerjoin(managers, managers.c.id == leads.c.manager_id)
        at_head = (leads.c.sla_state == "exhausted") & managers.c.key.in_(self.heads)
        # "met" alone is not "in time": a lead that moved is met by its next owner, after the first deadline.
        in_time = (leads.c.sla_state == "met") & (leads.c.sla_hops == 0)
        after_moving = leads.c.first_contact_at.is_not(None) & (leads.c.sla_hops > 0)
        counts = select(
            func.count(),
            func.count(case((in_time, 1))),
            func.count(case((after_moving, 1))),
            func.count(case((at_head, 1))),
            func.count(case((leads.c.status == "junk", 1))),
            func.count(case((leads.c.sla_state == "running", 1))),
        ).select_from(with_owner)
        moves = select(func.count()).where(events.c.type.in_(MOVES), events.c.lead_id > self.baseline)
        chat = (
            select(func.count())
            .select_from(outbox.join(events, events.c.id == outbox.c.event_id))
            .where(events.c.lead_id > self.baseline, outbox.c.recipient.in_(self.chats), outbox.c.status == "sent")
        )
        with self._read() as conn:
            received, on_time, late, head, junk, running = conn.execute(counts.where(leads.c.id > self.baseline)).one()
            moved = conn.execute(moves).scalar_one()
            chatted = conn.execute(chat).scalar_one()
        return Totals(received, on_time, late, moved, head, junk, running, chatted)

    def summary(self) -> DemoSummary:
        t = self.totals()
        return DemoSummary(t.received, t.contacted_in_time, t.contacted_after_escalation, t.escalations,
                           t.reached_head, t.junk)  # fmt: skip

    def moves_since(self, event_id: int) -> list[Move]:
        query = (
            select(events.c.id, events.c.lead_id, events.c.type, events.c.at, events.c.data)
            .where(events.c.type.in_(MOVES), events.c.lead_id > self.baseline, events.c.id > event_id)
            .order_by(events.c.id)
        )
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [
            Move(r.id, r.lead_id, r.type, r.at, r.data.get("previous"), r.data.get("manager"), r.data.get("reason", ""))
            for r in rows
        ]

    def leads(self, limit: int) -> list[dict[str, Any]]:
        """The newest leads with their owner and a description of their latest event."""
        query = (
            select(
                leads.c.id, leads.c.name, leads.c.channel, leads.c.status, leads.c.sla_state, leads.c.sla_due_at,
                leads.c.sla_hops, leads.c.response_seconds, managers.c.key.label("owner"),
            )
            .select_from(leads.outerjoin(managers, managers.c.id == leads.c.manager_id))
            .where(leads.c.id > self.baseline)
            .order_by(leads.c.id.desc())
            .limit(limit)
        )  # fmt: skip
        with self._read() as conn:
            rows = [dict(r) for r in conn.execute(query).mappings()]
            history = conn.execute(
                select(events.c.lead_id, events.c.type, events.c.actor, events.c.data)
                .where(events.c.lead_id.in_([r["id"] for r in rows]))
                .order_by(events.c.id)
            ).all()
        latest = {e.lead_id: e for e in history}  # ordered by id: the last one written wins
        for r in rows:
            e = latest.get(r["id"])
            r["last_event"] = self.describe(e.type, e.actor, e.data) if e else ""
        return rows

    def describe(self, type_: str, actor: str | None, data: Mapping[str, Any]) -> str:
        if type_ == "lead.assigned":
            same = " (the client's owner)" if data.get("rule") == "sticky-owner" else ""
            return f"assigned to {self.name(data.get('manager'))}{same}"
        if type_ == "lead.escalated":
            return (
                f"moved {self.name(data.get('previous'))} → {self.name(data.get('manager'))}, "
                f"hop {data.get('hop')}/{data.get('max_hops')}"
            )
        if type_ == "lead.chain_exhausted":
            return f"end of the chain: to {self.name(data.get('manager'))}"
        if type_ in ("lead.contacted", "lead.contact_attempt"):
            return (
                f"{verb(str(data.get('kind')), str(data.get('outcome')))} by {self.name(data.get('manager') or actor)}"
            )
        if type_ in ("lead.junked", "lead.unassigned", "lead.duplicate"):
            return f"{type_.removeprefix('lead.')}: {data.get('reason', '')}"
        return type_.removeprefix("lead.").replace("_", " ")
