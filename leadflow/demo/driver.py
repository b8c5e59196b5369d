"""The demo's loop: post leads over HTTP, play the managers through the API, read the board back and show it."""

from __future__ import annotations

import heapq
import random
import time
import uuid
from collections import deque
from contextlib import nullcontext
from datetime import datetime, timedelta
from typing import Any

import httpx
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.text import Text

from leadflow.core.rules import RulesFile
from leadflow.core.schedule import format_duration
from leadflow.demo.board import Board, Move, verb
from leadflow.demo.leads import LeadFactory
from leadflow.demo.managers import DEFAULT_PROFILE, PROFILES, Action, plan_reaction
from leadflow.demo.screen import clock, leads_table, log_panel, move_line
from leadflow.services.context import utcnow

__all__ = ["DEMO_NOTE", "DemoDriver"]

DEMO_NOTE = "simulated by leadflow demo"
MOVES_SHOWN = 8
ACTIVITY_SHOWN = 5


def _answer(response: httpx.Response) -> dict[str, Any]:
    """The API's JSON answer; anything else (a proxy's page, a crash) becomes a message to show."""
    try:
        body = response.json()
    except ValueError:
        body = None
    return body if isinstance(body, dict) else {"message": response.text[:200]}


class DemoDriver:
    """The posting, the managers and the screen, all driven from the calling thread."""

    def __init__(
        self, board: Board, rules: RulesFile, url: str, database: str, deadline: timedelta, pace: float, seed: int,
        console: Console, live: bool, key: str,
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
        # Loopback: never through a proxy.
        self.client = httpx.Client(
            base_url=url, timeout=10, trust_env=False, headers={"Authorization": f"Bearer {key}"}
        )
        self.run_id = uuid.uuid4().hex[:8]
        self.posted = 0
        self.seen: set[tuple[int, str]] = set()  # (lead, assigned_at) already planned
        self.dropped: set[tuple[int, str]] = set()  # assignments whose plan ended early (the lead moved)
        self.actions: list[tuple[datetime, int, Action]] = []
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
                    heapq.heappush(self.actions, (due, self.sequence, Action(key[0], m.key, key[1], step)))

    def act_due(self) -> None:
        while self.actions and self.actions[0][0] <= utcnow():
            _, _, action = heapq.heappop(self.actions)
            if (action.lead_id, action.assignment) not in self.dropped:
                self._contact(action)

    def _contact(self, action: Action) -> None:
        step = action.step
        body = {"manager": action.manager, "kind": step.kind, "outcome": step.outcome, "note": DEMO_NOTE}
        who = self.board.name(action.manager)
        head = Text(f"{clock(utcnow())}  {who} · lead {action.lead_id} · {verb(step.kind, step.outcome)}: ")
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
                self.console.print(move_line(self.board, move), soft_wrap=True, highlight=False)

    def _note(self, line: Text) -> None:
        self.activity.append(line)
        if not self.live:
            self.console.print(line, soft_wrap=True, highlight=False)

    def _print(self, line: str) -> None:
        self.console.print(Text(f"{clock(utcnow())}  {line}"), soft_wrap=True, highlight=False)

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
            ("   contacted after a move ", "dim"), (str(totals.contacted_after_escalation), "bold"),
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
        moves = [move_line(self.board, m) for m in self.moves]
        return Group(
            header,
            leads_table(self.board, self.board.leads(rows), now),
            log_panel("reassignments: the deadline passed, the lead moved on", moves, MOVES_SHOWN),
            log_panel(
                "managers at work: their contacts and what the API answered", list(self.activity), ACTIVITY_SHOWN
            ),
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
