"""`leadflow demo`: the speed-to-lead loop on one screen, run by the real server and the real worker.

The demo opens a database with the demo rules (three managers, a chain to the head of sales, 20-second deadlines),
serves the HTTP API on loopback with uvicorn in a thread, runs the worker in this process, posts leads over HTTP at
a steady pace and plays the managers, who record their contacts through the API as a CRM integration would.
Everything on screen is read back from the API or the database: the demo decides nothing about a lead itself.
"""

from __future__ import annotations

import heapq
import logging
import random
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text
from sqlalchemy import Engine, case, func, select
from sqlalchemy.engine import Connection

from leadflow.api.app import create_api
from leadflow.bootstrap import open_app, read_rules
from leadflow.channels.config import NotifyConfig
from leadflow.channels.senders import LogSender, Sender
from leadflow.core.errors import LeadflowError
from leadflow.core.rules import RulesFile
from leadflow.core.rules_text import RulesError
from leadflow.core.schedule import ScheduleError, format_duration, parse_duration
from leadflow.services.context import utcnow
from leadflow.settings import Settings
from leadflow.store.db import READ_ONLY
from leadflow.store.tables import events, leads, managers, outbox
from leadflow.worker import Worker

__all__ = ["DEMO_NOTE", "DEMO_RULES", "DemoError", "DemoSummary", "demo_rules", "run_demo"]

DEMO_RULES = Path(__file__).parent / "examples" / "demo-rules.yaml"
HOST = "127.0.0.1"
MOVES = ("lead.escalated", "lead.chain_exhausted")
DEMO_NOTE = "simulated by leadflow demo"
MOVES_SHOWN = 8
ACTIVITY_SHOWN = 5
# Countdowns under this many seconds are shown in red.
URGENT_SECONDS = 5.0


class DemoError(LeadflowError):
    """Something the person running the demo can fix: a bad argument, a busy port, a broken rules file."""


@dataclass(frozen=True, slots=True)
class DemoSummary:
    """Counted in the database when the demo ends, over the leads this run posted."""

    received: int  # leads taken in, junk included
    contacted_in_time: int  # first contact by the owner before the owner's deadline (sla_state "met")
    escalations: int  # moves along the chain: lead.escalated and lead.chain_exhausted events
    reached_head: int  # leads whose chain ended with the head of the team
    junk: int  # leads set aside as junk


def demo_rules(deadline: timedelta, path: Path = DEMO_RULES) -> RulesFile:
    """The demo rules with another first-contact deadline (RulesFile is frozen: copied level by level)."""
    rules = read_rules(path)
    policy = rules.sla.default.model_copy(update={"first_contact": deadline})
    return rules.model_copy(update={"sla": rules.sla.model_copy(update={"default": policy})})


# --- the leads ---------------------------------------------------------------------------------------------------

FIRST_NAMES = (
    "Іван", "Олександр", "Марія", "Оксана", "Дмитро", "Наталія", "Андрій", "Юлія", "Сергій", "Ірина", "Богдан",
    "Світлана", "Василь", "Катерина", "Михайло", "Тетяна", "Роман", "Галина", "Петро", "Софія",
)  # fmt: skip
# Surnames that are the same for women and men, so any first name goes with any of them.
SURNAMES = (
    "Петренко", "Коваленко", "Бондаренко", "Шевчук", "Ткачук", "Кравченко", "Олійник", "Мельничук", "Савченко",
    "Руденко", "Гнатюк", "Лисенко", "Мороз", "Левченко", "Поліщук", "Собко", "Марченко", "Гончар",
)  # fmt: skip
MOBILE_CODES = ("050", "063", "066", "067", "068", "073", "093", "095", "096", "097", "098", "099")
CREDIT_ASKS = (
    "Потрібен кредит готівкою на 50 000 грн",
    "Хочу кредит на ремонт квартири",
    "Цікавить кредит на авто, передзвоніть",
    "Яка ставка на кредит до 100 000 грн?",
)
LEASING_ASKS = (
    "Лізинг трактора для господарства",
    "Потрібна вантажівка в лізинг для доставки",
    "Лізинг обладнання для пекарні",
    "Цікавить лізинг легкових авто для таксі",
)
COMPANIES = ("ТОВ «Агросвіт»", "ФОП Коваленко", "ТОВ «Хліб Поділля»", "ТОВ «Карпати Логістик»", "ПП «Дніпро Буд»")
ADS = (("facebook", "credit-autumn"), ("google", "leasing-b2b"), ("instagram", "credit-fast"))


@dataclass(frozen=True, slots=True)
class _Client:
    name: str
    digits: str  # ten digits, 0XXXXXXXXX
    product: str | None


def _spaced(digits: str) -> str:
    return f"{digits[:3]} {digits[3:6]} {digits[6:8]} {digits[8:]}"


class LeadFactory:
    """Leads as a Ukrainian site form, chat bot and ad campaigns send them; the same seed gives the same stream."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.clients: list[_Client] = []

    def next(self) -> dict[str, Any]:
        roll = self.rng.random()
        if roll < 0.07:
            return self._junk()
        if roll < 0.19 and len(self.clients) >= 3:
            return self._again()
        return self._new()

    def _phone(self) -> str:
        return self.rng.choice(MOBILE_CODES) + str(self.rng.randrange(10**6, 10**7))

    def _channel(self, lead: dict[str, Any]) -> dict[str, Any]:
        channel = self.rng.choices(("web", "chat", "ads"), (50, 25, 25))[0]
        lead["channel"] = channel
        if channel == "web":
            lead["source"] = "site-form"
        elif channel == "chat":
            lead["source"] = "telegram-bot"
        else:
            network, campaign = self.rng.choice(ADS)
            lead.update(source=f"{network}-ads", utm_source=network, utm_medium="cpc", utm_campaign=campaign)
        return lead

    def _new(self) -> dict[str, Any]:
        rng = self.rng
        product = rng.choices(("credit", "leasing", None), (60, 35, 5))[0]
        client = _Client(f"{rng.choice(FIRST_NAMES)} {rng.choice(SURNAMES)}", self._phone(), product)
        self.clients.append(client)
        lead: dict[str, Any] = {"name": client.name, "phone": _spaced(client.digits), "language": "uk"}
        if product == "leasing":
            lead.update(product=product, message=rng.choice(LEASING_ASKS), company=rng.choice(COMPANIES),
                        budget=rng.randrange(8, 60) * 100_000)  # fmt: skip
        elif product == "credit":
            lead.update(product=product, message=rng.choice(CREDIT_ASKS))
        else:
            lead["message"] = "Передзвоніть, будь ласка, є питання"
        return self._channel(lead)

    def _again(self) -> dict[str, Any]:
        """An earlier client writing again, the phone typed another way: leadflow should see it is the same person."""
        client = self.rng.choice(self.clients)
        d = client.digits
        phone = self.rng.choice((f"+38{d}", f"({d[:3]}) {d[3:6]}-{d[6:8]}-{d[8:]}", f"+38 {d[:3]} {d[3:6]} {d[6:]}"))
        lead: dict[str, Any] = {"name": client.name, "phone": phone, "message": "Залишав заявку, досі чекаю дзвінка"}
        if client.product:
            lead["product"] = client.product
        return self._channel(lead)

    def _junk(self) -> dict[str, Any]:
        choices: list[dict[str, Any]] = [
            {"name": "test lead", "phone": _spaced(self._phone()), "channel": "web", "source": "site-form"},
            {"name": "Casino Royal", "phone": _spaced(self._phone()), "channel": "ads", "message": "casino bonus 500"},
            {"name": "Марина", "email": "marina@demo-credit.ua", "channel": "web", "message": "перевірка форми"},
            {"name": "Анонім", "channel": "chat", "message": "?"},
        ]
        return self.rng.choice(choices)


# --- the managers ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Profile:
    """How one simulated manager reacts to a lead given to them; times are fractions of the deadline."""

    in_time: float  # chance of a contact before the deadline
    window: tuple[float, float]  # when that contact comes
    late: float  # chance of trying after the deadline instead (the lead has usually moved on: a 409)
    no_answer: float = 0.15  # chance the first call is not picked up and the manager calls again


PROFILES: Mapping[str, Profile] = {
    # Tuned so that about half the leads move at least once and one in thirteen reaches the head: at the default
    # pace a person watching sees the whole chain within a minute or two.
    "olena": Profile(in_time=0.80, window=(0.25, 0.75), late=0.10),  # 5-15 s of a 20 s deadline, most of the time
    "taras": Profile(in_time=0.25, window=(0.55, 0.95), late=0.45),  # often misses
    "andrii": Profile(in_time=0.50, window=(0.35, 0.90), late=0.25),  # sometimes misses
    "iryna": Profile(in_time=0.95, window=(0.30, 0.80), late=0.05, no_answer=0.0),  # the head picks up what is left
}
DEFAULT_PROFILE = Profile(in_time=0.6, window=(0.3, 0.9), late=0.2)


@dataclass(frozen=True, slots=True)
class Step:
    after: float  # seconds after the assignment
    kind: str
    outcome: str


def plan_reaction(profile: Profile, rng: random.Random, deadline_seconds: float, channel: str) -> list[Step]:
    """What a manager will do with a lead just given to them; an empty plan means they never get to it."""
    kind, done = ("message", "sent") if channel == "chat" else ("call", "connected")
    roll = rng.random()
    if roll < profile.in_time:
        at = rng.uniform(*profile.window) * deadline_seconds
    elif roll < profile.in_time + profile.late:
        at = rng.uniform(1.1, 1.5) * deadline_seconds
    else:
        return []
    steps = []
    if kind == "call" and rng.random() < profile.no_answer:
        steps.append(Step(at * 0.5, "call", "no_answer"))  # recorded, but the clock keeps running
    steps.append(Step(at, kind, done))
    return steps


@dataclass(frozen=True, slots=True)
class _Action:
    lead_id: int
    manager: str
    assignment: str  # the lead's assigned_at as the API gave it: one assignment of one lead
    step: Step


# --- reading the board back --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Totals:
    received: int
    contacted_in_time: int
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


def _verb(kind: str, outcome: str) -> str:
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
        counts = select(
            func.count(),
            func.count(case((leads.c.sla_state == "met", 1))),
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
            received, met, head, junk, running = conn.execute(counts.where(leads.c.id > self.baseline)).one()
            moved = conn.execute(moves).scalar_one()
            chatted = conn.execute(chat).scalar_one()
        return Totals(received, met, moved, head, junk, running, chatted)

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
            return f"{_verb(str(data.get('kind')), str(data.get('outcome')))} by {self.name(actor)}"
        if type_ in ("lead.junked", "lead.unassigned", "lead.duplicate"):
            return f"{type_.removeprefix('lead.')}: {data.get('reason', '')}"
        return type_.removeprefix("lead.").replace("_", " ")


# --- the screen --------------------------------------------------------------------------------------------------


def _clock(at: datetime) -> str:
    return at.astimezone().strftime("%H:%M:%S")


def _sla_cells(row: Mapping[str, Any], now: datetime) -> tuple[Text, Text]:
    state = row["sla_state"]
    if state == "running" and row["sla_due_at"] is not None:
        left = max((row["sla_due_at"] - now).total_seconds(), 0.0)
        return Text("running", "yellow"), Text(f"{left:.1f}s", "bold red" if left < URGENT_SECONDS else "")
    if state == "met":
        waited = row["response_seconds"]
        return Text("met", "green"), Text(f"✓ {waited}s" if waited is not None else "✓", "green")
    if state == "exhausted":
        return Text("exhausted", "red"), Text("—", "dim")
    if row["status"] == "junk":
        return Text("junk", "dim"), Text("", "dim")
    return Text(state or "—", "dim"), Text("", "dim")


def _table(board: Board, rows: Sequence[Mapping[str, Any]], now: datetime) -> Table:
    table = Table(title="leads, newest first", title_justify="left", expand=True, header_style="bold")
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("client", no_wrap=True, max_width=24, overflow="ellipsis")
    table.add_column("channel", no_wrap=True)
    table.add_column("owner", no_wrap=True)
    table.add_column("SLA", no_wrap=True)
    table.add_column("left", justify="right", no_wrap=True)
    table.add_column("hops", justify="right", no_wrap=True)
    table.add_column("last event", ratio=1, no_wrap=True, overflow="ellipsis")
    for r in rows:
        state, left = _sla_cells(r, now)
        owner = board.owner(r["owner"])
        table.add_row(
            str(r["id"]), r["name"] or "", r["channel"], owner, state, left, str(r["sla_hops"]), r["last_event"]
        )
    return table


def _lines(title: str, lines: Sequence[Text], height: int) -> Panel:
    grid = Table.grid(expand=True)
    grid.add_column(no_wrap=True, overflow="ellipsis")
    for line in [*lines, *[Text("")] * (height - len(lines))]:  # a fixed height keeps the screen from jumping
        grid.add_row(line)
    return Panel(grid, title=title, title_align="left")


def _move_line(board: Board, move: Move) -> Text:
    line = Text(f"{_clock(move.at)}  #{move.lead_id}  ", "dim")
    line.append(f"{board.name(move.previous)} → {board.name(move.manager)}", "bold")
    line.append(f"  {move.reason}")
    return line


# --- the demo ----------------------------------------------------------------------------------------------------


def _answer(response: httpx.Response) -> dict[str, Any]:
    """The API's JSON answer; anything else (a proxy's page, a crash) becomes a message to show."""
    try:
        body = response.json()
    except ValueError:
        body = None
    return body if isinstance(body, dict) else {"message": response.text[:200]}


class _Demo:
    """The posting, the managers and the screen, all driven from the calling thread."""

    def __init__(
        self, board: Board, rules: RulesFile, url: str, database: str, deadline: timedelta, pace: float, seed: int,
        console: Console, live: bool,
    ) -> None:  # fmt: skip
        self.board = board
        self.rules = rules
        self.url = url
        self.database = database
        self.deadline = deadline
        self.pace = pace
        self.console = console
        self.live = live
        self.factory = LeadFactory(random.Random(seed))
        self.manager_rng = random.Random(seed + 1)  # its own stream, so the leads stay the same for a seed
        self.client = httpx.Client(base_url=url, timeout=10, trust_env=False)  # loopback: never through a proxy
        self.run_id = uuid.uuid4().hex[:8]
        self.posted = 0
        self.seen: set[tuple[int, str]] = set()  # (lead, assigned_at) already planned
        self.dropped: set[tuple[int, str]] = set()  # assignments whose plan ended early (the lead moved)
        self.actions: list[tuple[datetime, int, _Action]] = []
        self.sequence = 0
        self.last_move = 0
        self.moves: deque[Move] = deque(maxlen=MOVES_SHOWN)
        self.activity: deque[Text] = deque(maxlen=ACTIVITY_SHOWN)
        self.started = time.monotonic()

    # talking to the API

    def post_lead(self) -> None:
        self.posted += 1
        lead = self.factory.next()
        headers = {"Idempotency-Key": f"demo-{self.run_id}-{self.posted}"}
        try:
            response = self.client.post("/api/v1/leads", json=lead, headers=headers)
        except httpx.HTTPError as exc:
            self._note(Text(f"POST /api/v1/leads failed: {exc}", "red"))
            return
        body = _answer(response)
        if response.status_code not in (200, 201):
            self._note(Text(f"POST /api/v1/leads answered {response.status_code}: {body.get('message')}", "red"))
            return
        if not self.live:
            who = body["manager"]["name"] if body.get("manager") else body["status"]
            what = ", ".join(str(v) for v in (lead.get("channel"), lead.get("product")) if v)
            self._print(f"lead {body['id']} ({what}) {lead.get('name', '')}: {who} — {body['reason']}")

    def poll_queues(self) -> None:
        """Each manager looks at their own queue through the API, as a CRM screen would."""
        for m in self.rules.managers:
            try:
                response = self.client.get(
                    "/api/v1/leads", params={"manager": m.key, "status": "assigned", "limit": 100}
                )
                response.raise_for_status()
            except httpx.HTTPError as exc:
                self._note(Text(f"GET /api/v1/leads?manager={m.key} failed: {exc}", "red"))
                continue
            for item in response.json()["items"]:
                key = (int(item["id"]), str(item["assigned_at"]))
                if item["id"] <= self.board.baseline or item["assigned_at"] is None or key in self.seen:
                    continue
                self.seen.add(key)
                assigned = datetime.fromisoformat(item["assigned_at"])
                profile = PROFILES.get(m.key, DEFAULT_PROFILE)
                for step in plan_reaction(profile, self.manager_rng, self.deadline.total_seconds(), item["channel"]):
                    self.sequence += 1
                    due = assigned + timedelta(seconds=step.after)
                    heapq.heappush(self.actions, (due, self.sequence, _Action(key[0], m.key, key[1], step)))

    def act_due(self) -> None:
        while self.actions and self.actions[0][0] <= utcnow():
            _, _, action = heapq.heappop(self.actions)
            if (action.lead_id, action.assignment) not in self.dropped:
                self._contact(action)

    def _contact(self, action: _Action) -> None:
        step = action.step
        body = {"manager": action.manager, "kind": step.kind, "outcome": step.outcome, "note": DEMO_NOTE}
        who = self.board.name(action.manager)
        head = Text(f"{_clock(utcnow())}  {who} · lead {action.lead_id} · {_verb(step.kind, step.outcome)}: ")
        try:
            response = self.client.post(f"/api/v1/leads/{action.lead_id}/contact", json=body)
        except httpx.HTTPError as exc:
            self._note(head.append(f"request failed: {exc}", "red"))
            return
        answer = _answer(response)
        if response.status_code == 409:
            # The deadline passed first and the worker gave the lead to someone else: the API refuses, as it should.
            self.dropped.add((action.lead_id, action.assignment))
            self._note(head.append(f"409 {answer.get('message')}", "yellow"))
        elif response.status_code != 200:
            self._note(head.append(f"{response.status_code} {answer.get('message')}", "red"))
        elif answer.get("first_contact"):
            state = answer.get("sla_state")
            style = "green" if state == "met" else "magenta"  # magenta: the head, after the chain ran out
            waited = answer.get("response_seconds")
            self._note(head.append(f"first contact {waited}s after arrival, SLA {state}", style))
        else:
            self._note(head.append("recorded; the clock keeps running", "dim"))

    # the screen

    def read_moves(self) -> None:
        for move in self.board.moves_since(self.last_move):
            self.last_move = move.event_id
            self.moves.append(move)
            if not self.live:
                self.console.print(_move_line(self.board, move), soft_wrap=True, highlight=False)

    def _note(self, line: Text) -> None:
        self.activity.append(line)
        if not self.live:
            self.console.print(line, soft_wrap=True, highlight=False)

    def _print(self, line: str) -> None:
        self.console.print(Text(f"{_clock(utcnow())}  {line}"), soft_wrap=True, highlight=False)

    def header(self) -> str:
        policy = self.rules.sla.default
        heads = ", ".join(self.board.name(h) for h in self.board.heads) or "nobody"
        return (
            f"API {self.url}/api/v1/leads   docs {self.url}/docs   database {self.database}\n"
            f"first contact within {format_duration(policy.first_contact)}, then the next manager "
            f"({policy.chain.max_hops} hops), then the head: {heads}"
        )

    def render(self) -> RenderableType:
        now = utcnow()
        totals = self.board.totals()
        elapsed = int(time.monotonic() - self.started)
        status = Text.assemble(
            ("received ", "dim"), (str(totals.received), "bold"),
            ("   contacted in time ", "dim"), (str(totals.contacted_in_time), "bold green"),
            ("   escalations ", "dim"), (str(totals.escalations), "bold yellow"),
            ("   reached the head ", "dim"), (str(totals.reached_head), "bold magenta"),
            ("   junk ", "dim"), (str(totals.junk), "bold"),
            ("   waiting now ", "dim"), (str(totals.waiting), "bold"),
            ("   team chat messages ", "dim"), (str(totals.chat_messages), "bold"),
        )  # fmt: skip
        header = Panel(
            Group(Text(self.header()), status),
            title=f"leadflow demo · {elapsed // 60}:{elapsed % 60:02d} · Ctrl-C stops",
            title_align="left",
        )
        rows = max(5, self.console.size.height - 30)  # what is left after the header and the two logs
        moves = [_move_line(self.board, m) for m in self.moves]
        return Group(
            header,
            _table(self.board, self.board.leads(rows), now),
            _lines("reassignments: the deadline passed, the lead moved on", moves, MOVES_SHOWN),
            _lines("managers at work: their contacts and what the API answered", list(self.activity), ACTIVITY_SHOWN),
        )

    def run(self, duration: float | None) -> None:
        tick = min(0.25, max(0.05, self.deadline.total_seconds() / 20))  # short deadlines need a closer look
        stop_at = None if duration is None else self.started + duration
        next_post = self.started
        if not self.live:
            self._print("leadflow demo: " + self.header().replace("\n", "; "))
        screen_context = Live(console=self.console, refresh_per_second=4) if self.live else nullcontext()
        with screen_context as screen:
            while stop_at is None or time.monotonic() < stop_at:
                if time.monotonic() >= next_post:
                    self.post_lead()
                    next_post += self.pace
                self.poll_queues()
                self.act_due()
                self.read_moves()
                if screen is not None:
                    screen.update(self.render())
                wait = min(tick, max(next_post - time.monotonic(), 0.0))
                if stop_at is not None:
                    wait = min(wait, max(stop_at - time.monotonic(), 0.0))
                time.sleep(wait)

    def close(self) -> None:
        self.client.close()


# --- the server and the worker -----------------------------------------------------------------------------------


def _check_port(port: int) -> None:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does, so a just-closed port is free
        try:
            s.bind((HOST, port))
        except OSError as exc:
            raise DemoError(f"cannot listen on {HOST}:{port} ({exc.strerror}); choose another port") from None


def _serve(app: FastAPI, port: int) -> tuple[uvicorn.Server, threading.Thread]:
    """The API in a thread; the calling thread keeps Ctrl-C (uvicorn takes signals only in the main thread)."""
    # log_config=None leaves the process's logging as it is; warnings still reach stderr.
    config = uvicorn.Config(
        app, host=HOST, port=port, log_level="warning", access_log=False, lifespan="off", log_config=None
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="leadflow-demo-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise DemoError(f"the API did not start on {HOST}:{port}")
        time.sleep(0.02)
    return server, thread


def _demo_senders() -> dict[str, Sender]:
    """Notifications go nowhere outside this machine: the team chat's Telegram messages are marked sent, not sent.

    The demo's chat id is made up, and a Telegram error on every escalation would only bury the screen.
    """
    chat = logging.getLogger("leadflow.demo.team_chat")
    chat.propagate = False
    if not chat.handlers:
        chat.addHandler(logging.NullHandler())
    return {"log": LogSender(), "telegram": LogSender(chat)}


def _deadline(text: str) -> timedelta:
    try:
        window = parse_duration(text)
    except ScheduleError as exc:
        raise DemoError(f"deadline: {exc}") from None
    if window < timedelta(seconds=1):
        raise DemoError(f"deadline {text!r} is shorter than a second: the worker looks four times a second")
    return window


def run_demo(
    database_url: str,
    *,
    port: int = 8000,
    deadline: str = "20s",
    pace_seconds: float = 4.0,
    duration_seconds: float | None = None,
    seed: int = 7,
    console: Console | None = None,
    live: bool = True,
) -> DemoSummary:
    """Run the demo until Ctrl-C or `duration_seconds`, then print and return the summary.

    `live=False` (or a console that is not a terminal) prints one plain line per happening instead of the live
    table. Raises DemoError for a bad argument, a busy port or broken demo rules.
    """
    console = console or Console(soft_wrap=True)
    window = _deadline(deadline)
    if pace_seconds <= 0:
        raise DemoError("pace_seconds must be more than zero")
    if duration_seconds is not None and duration_seconds <= 0:
        raise DemoError("duration_seconds must be more than zero")
    _check_port(port)
    settings = Settings(  # nothing from the environment's notification settings: the demo must not message anyone
        database_url=database_url, rules=DEMO_RULES, host=HOST, port=port, base_url=None, notify=NotifyConfig()
    )
    try:
        rules = demo_rules(window)
        app = replace(open_app(settings), rules=rules)  # the people come from the file, the deadline from here
    except RulesError as exc:
        raise DemoError(str(exc)) from None
    with app.engine.connect() as conn:
        baseline = conn.execute(select(func.coalesce(func.max(leads.c.id), 0))).scalar_one()
    board = Board(app.engine, rules, baseline)
    url = f"http://{HOST}:{port}"
    demo = _Demo(board, rules, url, app.engine.url.render_as_string(hide_password=True), window, pace_seconds, seed,
                 console, live and console.is_terminal)  # fmt: skip
    server, api_thread = _serve(create_api(app, settings), port)
    worker = Worker(app, poll_seconds=settings.worker_poll_seconds, senders=_demo_senders())
    worker_threads = worker.start()
    try:
        demo.run(duration_seconds)
    except KeyboardInterrupt:
        pass  # Ctrl-C is how a person ends the demo
    finally:
        demo.close()  # first, so the server has no open connection to wait for
        worker.stop.set()
        server.should_exit = True
        for thread in [*worker_threads, api_thread]:
            thread.join(timeout=10)
    totals = board.totals()
    app.engine.dispose()
    summary = DemoSummary(totals.received, totals.contacted_in_time, totals.escalations, totals.reached_head,
                          totals.junk)  # fmt: skip
    _print_summary(console, summary, demo.database)
    return summary


def _print_summary(console: Console, summary: DemoSummary, database: str) -> None:
    table = Table(title="leadflow demo: what the database says", title_justify="left", show_header=False)
    table.add_column()
    table.add_column(justify="right")
    table.add_row("leads received", str(summary.received))
    table.add_row("contacted in time", str(summary.contacted_in_time))
    table.add_row("escalations (moves along the chain)", str(summary.escalations))
    table.add_row("reached the head of sales", str(summary.reached_head))
    table.add_row("junk, set aside", str(summary.junk))
    console.print(table)
    console.print(f"database: {database}", soft_wrap=True, highlight=False)
