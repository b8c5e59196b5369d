"""The web desk's pages under a full database: 100,000 leads, 200 managers in 10 teams, on SQLite and PostgreSQL.

    .venv/bin/python -m bench.web [--leads 100000] [--managers 200] [--requests 200] [--warmup 20]
                                  [--escalations 20] [--database sqlite|postgresql|both] [--statements]
                                  [--only WORDS] [--pg-url URL] [--json PATH]

Per database, on a fresh one (SQLite: a file in a temporary directory, WAL, as `leadflow serve` opens it;
PostgreSQL: a scratch database on the server of --pg-url, dropped at the end):

* setup, not measured: the rules (10 teams of 20 managers, each team's head one of them, a round-robin rule per
  team, a 10-minute first-contact deadline with a chain of the team's managers) applied by the app's own bootstrap
  (`open_app`), then leads written in bulk (executemany in chunks, straight into leads, events, assignments and
  timers): most closed over the last 90 days, a quarter open, and today a few thousand first contacts in every
  response band, escalations along the chain, chains that ended at the head, and deadlines running now;
  managers' load and results kept consistent with the leads. Three accounts, signed in through POST /login: a
  manager (about 500 open leads), the head of one team, an admin. PostgreSQL is VACUUM ANALYZEd after the fill
  (autovacuum would have); SQLite is left as the app leaves it (leadflow runs no ANALYZE);
* the real app (`create_api`) under uvicorn in a thread on loopback, wrapped in a pure ASGI middleware that records
  each request's server time (from the call of the app, once uvicorn has the request's head, to the last byte of
  the answer), with one extra route for the bench only: GET /bench/bare, a small Jinja2 template rendered through
  the desk's own environment, no authentication, no database (the baseline, measured in the same rounds);
* pages, one client per account, keep-alive, requests one at a time: --warmup rounds, then --requests rounds, each
  round asking every page once (so the machine's noise falls on every page alike): the queue (GET /) and its live
  refresh (GET /queue/rows?shown=..., the ids taken from each answer as htmx does), the team board (GET /team) and
  its refresh (GET /team/board) as the head and as the admin, a lead card with ten events, and search by a phone
  typed in national format as the manager and as the admin. The worker runs in the process meanwhile, as in
  `leadflow serve`. A page that answers 404 (not built yet) or an error is reported and left out: rerun later;
* escalation to an open page: the new owner's queue is open as a browser keeps it (a streaming GET of
  /live?watch=queue read in a thread); a lead of the manager before them in the chain is made due (its timer set to
  now) and `escalate_due` runs (one round of the worker); measured from that round's commit to (a) the `event:
  queue` line naming the lead on the new owner's stream and (b) the queue fragment (GET /queue/rows, asked for as
  htmx does on that signal) containing it. --escalations times; the owner the chain chose is checked.

With --statements, a further 30 rounds count each page's SQL statements and the time spent in them (cursor events on
the app's engine; not in the main figures, which run without listeners).

Target (the issue): the queue and the team board under 100 ms p95 server time, an escalation on the new owner's
open page within 2 s. The figures and what they mean: docs/performance.md, "The web desk".
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import queue
import random
import re
import socket
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterator, MutableMapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import httpx
import psycopg
import uvicorn
from argon2 import PasswordHasher
from fastapi.responses import HTMLResponse
from sqlalchemy import Engine, bindparam, event, func, select, text, update

from bench.common import (
    DEFAULT_PG_URL,
    console,
    libpq_url,
    machine_info,
    median,
    percentile,
    postgres_scratch,
    print_table,
)
from bench.intake import FIRST, LAST, OPERATORS, local_format, translit
from leadflow.api.app import create_api
from leadflow.api.auth import public
from leadflow.bootstrap import open_app
from leadflow.core.policy import SYSTEM
from leadflow.core.sla import response_band
from leadflow.services import accounts
from leadflow.services.context import Leadflow, utcnow
from leadflow.services.sla import escalate_due
from leadflow.settings import Settings
from leadflow.store.tables import assignments, events, leads, managers, teams, timers
from leadflow.web.pages import environment
from leadflow.worker import Worker

SEED = 20261201
TEAMS = 10
TIMEZONE = "Europe/Kyiv"
TARGET_P95_MS = 100.0
TARGET_ESCALATION_S = 2.0
FIRST_CONTACT = timedelta(minutes=10)
CHUNK = 10_000  # leads per executemany round (with their events, assignments and timers)
OPEN_SHARE = 0.25
BENCH_MANAGER_OPEN = 500  # the signed-in manager's open leads: their queue shows 200 of them
# Today's leads at 100,000 in all (in proportion to --leads otherwise):
RUNNING_NOW = 600  # open leads whose first-contact deadline runs right now
TODAY_CONTACTS = 3_000  # first contacts made today, every response band
TODAY_ESCALATED = 400  # escalated today along the chain, then reached by the new owner
TODAY_EXHAUSTED = 50  # chains that ended at the team's head today
PASSWORD = "bench-password-1"
CITIES = ("Kyiv", "Lviv", "Odesa", "Kharkiv", "Dnipro", "Zaporizhzhia", "Vinnytsia", "Poltava", "Chernihiv", "Rivne")
PRODUCTS = (("credit", 0.45), ("leasing", 0.25), ("deposit", 0.10), (None, 0.20))
CHANNELS = (("web", 0.55), ("facebook", 0.2), ("telegram", 0.1), ("call", 0.15))
MESSAGES = ("Передзвоніть, будь ласка", "Цікавить лізинг авто", "Хочу кредит на обладнання",
            "Яка ставка по депозиту?", "Потрібна консультація після 14:00")  # fmt: skip
LOST_REASONS = ("price", "no answer", "went to a competitor", "not interested")
# argon2id at its real cost (a quarter of a second a hash) only slows the setup; the sign-in path is the same.
CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


# --- the rules ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Layout:
    """Who is who: team keys, each team's managers in chain order (the head first, then the chain)."""

    per_team: int

    @property
    def teams(self) -> list[str]:
        return [f"t{i:02d}" for i in range(TEAMS)]

    def members(self, team: str) -> list[str]:
        return [f"{team}m{j:02d}" for j in range(self.per_team)]

    def head(self, team: str) -> str:
        return self.members(team)[0]

    def chain(self, team: str) -> list[str]:
        """The team's chain (and its rule's managers): everyone but the head, who is where the chain ends."""
        return self.members(team)[1:]

    def next_in_chain(self, key: str) -> str:
        chain = self.chain(key[:3])
        return chain[(chain.index(key) + 1) % len(chain)]

    @property
    def bench_manager(self) -> str:
        return self.chain("t00")[0]  # the manager account's manager: t00m01

    @property
    def before_bench_manager(self) -> str:
        return self.chain("t00")[-1]  # their chain's next after this one is the bench manager


def manager_name(i: int) -> str:
    return f"{FIRST[i % len(FIRST)]} {LAST[(i * 7 + i // len(FIRST)) % len(LAST)]}"


def rules_text(layout: Layout) -> str:
    team_lines, manager_lines, rule_lines, chain_lines = [], [], [], []
    n = 0
    for i, team in enumerate(layout.teams):
        team_lines.append(f"  - {{key: {team}, name: {json.dumps(CITIES[i % len(CITIES)] + ' sales')}, "
                          f"timezone: {TIMEZONE}, head: {layout.head(team)}, hours: always}}")  # fmt: skip
        for key in layout.members(team):
            capacity = 100 if key == layout.head(team) else 800 if key == layout.bench_manager else 300
            manager_lines.append(f"  - {{key: {key}, name: {json.dumps(manager_name(n))}, team: {team}, "
                                 f"capacity: {capacity}, regions: [UA], products: [credit, leasing]}}")  # fmt: skip
            n += 1
        chain = ", ".join(layout.chain(team))
        rule_lines.append(f"    - {{key: r{team}, team: {team}, when: {{source: [site-{team}]}}, managers: [{chain}], "
                          "strategy: round_robin}")  # fmt: skip
        chain_lines.append(f"    - {{team: {team}, chain: {{managers: [{chain}], max_hops: 3}}}}")
    return "\n".join([
        "version: 1", "default_region: UA", f"default_timezone: {TIMEZONE}", "teams:", *team_lines,
        "managers:", *manager_lines, "routing:", "  rules:", *rule_lines,
        "  fallback: {team: t00, strategy: round_robin}",
        "sla:", "  default: {first_contact: 10m, count: wall_clock, chain: {max_hops: 3}}",
        "  overrides:", *chain_lines,
        f"  # {TEAMS} teams of {layout.per_team}", "",
    ])  # fmt: skip


# --- the fill -------------------------------------------------------------------------------------------------------


@dataclass
class Person:
    id: int
    key: str
    name: str
    team: str
    team_id: int
    open_leads: int = 0
    open_value: Decimal = Decimal(0)
    closed_leads: int = 0
    won_leads: int = 0
    first_contacts: int = 0
    fast_contacts: int = 0


@dataclass
class Seeded:
    card_lead: int = 0
    search_phone: str = ""  # as a person types it: national format
    candidates: list[int] = field(default_factory=list)  # leads of the manager before the bench manager, due later
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def pick(rng: random.Random, weighted: Sequence[tuple[Any, float]]) -> Any:
    r, total = rng.random(), 0.0
    for value, weight in weighted:
        total += weight
        if r < total:
            return value
    return weighted[-1][0]


class Fill:
    """Rows shaped as the product writes them (the event types and data keys of services/intake.py, sla.py and
    leads.py), made one lead at a time into lists and written with one executemany per table every CHUNK leads."""

    def __init__(self, app: Leadflow, layout: Layout, now: datetime) -> None:
        self.app = app
        self.layout = layout
        self.now = now
        self.rng = random.Random(SEED)
        with app.engine.connect() as conn:
            rows = conn.execute(select(managers.c.id, managers.c.key, managers.c.name, teams.c.key, teams.c.id)
                                .join(teams, teams.c.id == managers.c.team_id)).all()  # fmt: skip
        self.people = {key: Person(mid, key, name, team, team_id) for mid, key, name, team, team_id in rows}
        chains = [k for t in layout.teams for k in layout.chain(t)]
        self.regular = [self.people[k] for k in chains]
        self.others = [p for p in self.regular if p.key != layout.bench_manager]
        self.next_id = 1
        self.phones: set[str] = set()
        self.mail_n = 0
        self.batch: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.counts: Counter[str] = Counter()
        midnight = now.astimezone(ZoneInfo(TIMEZONE)).replace(hour=0, minute=0, second=0, microsecond=0)
        # Today, as the board counts it (the team's calendar day), but at most the last 12 hours.
        self.today = max(midnight.astimezone(UTC), now - timedelta(hours=12))

    # -- one lead

    def phone(self) -> str:
        rng = self.rng
        while True:
            e164 = f"+380{rng.choice(OPERATORS)}{rng.randrange(10**7):07d}"
            if e164 not in self.phones:
                self.phones.add(e164)
                return e164

    def lead(self, owner: Person, created: datetime, status: str, **columns: Any) -> dict[str, Any]:
        """The leads row, with its lead.received and lead.assigned events and its assignment."""
        rng = self.rng
        lead_id = self.next_id
        self.next_id += 1
        first, last = rng.choice(FIRST), rng.choice(LAST)
        channel = pick(rng, CHANNELS)
        phone = columns.pop("phone", None) or self.phone()
        email = None
        if rng.random() < 0.4:
            self.mail_n += 1
            email = f"{translit(first)}.{translit(last)}{self.mail_n}@{rng.choice(('gmail.com', 'ukr.net', 'i.ua'))}"
        source = f"site-{owner.team}"
        row: dict[str, Any] = {
            "id": lead_id, "channel": channel, "source": source, "name": f"{first} {last}", "phone": phone,
            "phone_type": "mobile", "email": email, "product": pick(rng, PRODUCTS), "language": "uk",
            "budget": Decimal(rng.randrange(5, 500) * 1000) if rng.random() < 0.2 else None,
            "message": rng.choice(MESSAGES) if rng.random() < 0.3 else None, "utm": {},
            "raw": {"channel": channel, "source": source, "name": f"{first} {last}", "phone": phone},
            "status": status, "manager_id": owner.id, "team_id": owner.team_id, "created_at": created,
            "updated_at": created, "assigned_at": created, "first_contact_at": None, "rule_key": f"r{owner.team}",
            "sla_state": "running", "sla_due_at": created + FIRST_CONTACT, "sla_hops": 0, "response_seconds": None,
            "response_band": None, "junk_reason": None, "lost_reason": None, "won_amount": None,
        }  # fmt: skip
        row.update(columns)
        self.batch["leads"].append(row)
        eligible = len(self.layout.chain(owner.team))
        reason = f"rule 'r{owner.team}' matched source={source}; round robin among {eligible} eligible"
        self.event(lead_id, "lead.received", created, None, channel=channel, source=source)
        self.event(lead_id, "lead.assigned", created, None, manager_id=owner.id, manager=owner.key,
                   rule=f"r{owner.team}", reason=reason)  # fmt: skip
        self.assignment(lead_id, owner, "initial", reason, created)
        return row

    def event(self, lead_id: int, type_: str, at: datetime, actor: str | None, **data: Any) -> None:
        self.batch["events"].append({"lead_id": lead_id, "type": type_, "actor": actor, "data": data, "at": at,
                                     "address": None})  # fmt: skip

    def assignment(self, lead_id: int, owner: Person, kind: str, reason: str, at: datetime) -> None:
        candidates = [{"key": owner.key, "name": owner.name, "eligible": True, "why": "", "load": owner.open_leads,
                       "capacity": 300, "inputs": {}}]  # fmt: skip
        self.batch["assignments"].append({
            "lead_id": lead_id, "manager_id": owner.id, "kind": kind, "rule_key": f"r{owner.team}",
            "strategy": "chain" if kind == "escalation" else "round_robin", "reason": reason,
            "candidates": candidates, "at": at,
        })  # fmt: skip

    def timer(self, row: dict[str, Any], owner: Person, due: datetime, hop: int = 0, tried: Sequence[str] = ()) -> None:
        self.batch["timers"].append({"lead_id": row["id"], "kind": "first_contact", "due_at": due, "created_at":
                                     row["assigned_at"], "data": {"hop": hop, "manager": owner.key, "rule":
                                     f"r{owner.team}", "team": owner.team, "tried": list(tried)}})  # fmt: skip

    def contact(self, row: dict[str, Any], owner: Person, at: datetime, status: str) -> None:
        """The first contact (a connected call): when, how fast, the clock met, the funnel moved on."""
        waited = at - row["created_at"]
        row.update(first_contact_at=at, response_seconds=int(waited.total_seconds()),
                   response_band=response_band(row["created_at"], at), sla_state="met", sla_due_at=None,
                   status=status, updated_at=at)  # fmt: skip
        owner.first_contacts += 1
        owner.fast_contacts += waited <= timedelta(minutes=20)
        if at >= self.today:
            self.counts["first contacts today"] += 1
        if self.rng.random() < 0.3:
            self.event(row["id"], "lead.contact_attempt", row["created_at"] + waited / 2, f"user:{owner.key}",
                       manager=owner.key, kind="call", outcome="no_answer", note=None, owner=owner.key,
                       reason=None)  # fmt: skip
        self.event(row["id"], "lead.contacted", at, f"user:{owner.key}", manager=owner.key, kind="call",
                   outcome="connected", note=None, owner=owner.key, reason=None)  # fmt: skip
        self.counts["first contacts"] += 1

    def close(self, row: dict[str, Any], owner: Person, at: datetime) -> None:
        rng = self.rng
        status = pick(rng, (("converted", 0.25), ("lost", 0.55), ("junk", 0.20)))
        old = row["status"]
        row.update(status=status, updated_at=at)
        extra: dict[str, Any] = {}
        if status == "converted":
            row["won_amount"] = Decimal(rng.randrange(10, 2000) * 100)
            extra["amount"] = str(row["won_amount"])
            owner.won_leads += 1
        elif status == "lost":
            row["lost_reason"] = rng.choice(LOST_REASONS)
        else:
            row["junk_reason"] = "not a real client"
        if status != "junk":
            owner.closed_leads += 1
        if row["sla_state"] == "running":
            row.update(sla_state="stopped", sla_due_at=None)
        reason = row["lost_reason"] or row["junk_reason"]
        self.event(row["id"], "lead.status_changed", at, f"user:{owner.key}", old=old, new=status, reason=reason,
                   **extra)  # fmt: skip
        self.counts[status] += 1

    def opened(self, row: dict[str, Any], owner: Person) -> None:
        owner.open_leads += 1
        owner.open_value += row["budget"] or 0
        self.counts["open"] += 1

    # -- the populations

    def before(self, latest: datetime) -> datetime:
        """A moment today before `latest` (before today only when today has not lasted that long)."""
        earliest = min(self.today, latest - timedelta(minutes=30))
        return earliest + (latest - earliest) * self.rng.random()

    def contact_delay(self) -> timedelta:
        """How long the first contact took: most within 20 minutes, some within 3 or 12 hours, a few later."""
        band = pick(self.rng, ((20 * 60, 0.62), (3 * 3600, 0.23), (12 * 3600, 0.10), (30 * 3600, 0.05)))
        low = {20 * 60: 30, 3 * 3600: 20 * 60 + 1, 12 * 3600: 3 * 3600 + 1, 30 * 3600: 12 * 3600 + 1}[band]
        return timedelta(seconds=self.rng.uniform(low, band))

    def history(self, owner: Person, closed: bool) -> None:
        """A lead from before today: closed (over the last 90 days) or still open (over the last 30)."""
        rng, now = self.rng, self.now
        days = 90 if closed else 30
        created = self.today - timedelta(seconds=rng.uniform(3600, days * 86400))
        row = self.lead(owner, created, "assigned")
        if rng.random() < 0.95:
            contacted = created + self.contact_delay()
            self.contact(row, owner, min(contacted, self.today - timedelta(seconds=1)), "contacted")
        else:
            row.update(sla_state="exhausted", sla_due_at=None, sla_hops=3)
        if closed:
            start = row["first_contact_at"] or created
            self.close(row, owner, min(start + timedelta(seconds=rng.uniform(600, 14 * 86400)), now))
        else:
            if rng.random() < 0.5 and row["first_contact_at"] is not None:
                at = row["first_contact_at"] + timedelta(hours=rng.uniform(1, 48))
                row.update(status="qualified", updated_at=min(at, self.today))
                self.event(row["id"], "lead.status_changed", row["updated_at"], f"user:{owner.key}",
                           old="contacted", new="qualified", reason=None)  # fmt: skip
            self.opened(row, owner)

    def contacted_today(self, owner: Person) -> None:
        """A first contact made today (the lead may have come in yesterday: a slow one)."""
        rng = self.rng
        at = self.today + (self.now - timedelta(minutes=1) - self.today) * rng.random()
        row = self.lead(owner, at - self.contact_delay(), "assigned")
        self.contact(row, owner, at, "contacted")
        if rng.random() < 0.15:
            self.close(row, owner, at + (self.now - at) * rng.random())
        else:
            self.opened(row, owner)

    def escalated_today(self, previous: Person) -> None:
        """Missed by its first owner, moved along the chain, reached by the next one."""
        rng, now = self.rng, self.now
        created = self.before(now - timedelta(minutes=25))
        owner = self.people[self.layout.next_in_chain(previous.key)]
        row = self.lead(previous, created, "assigned")
        moved = created + FIRST_CONTACT + timedelta(milliseconds=rng.randrange(5, 300))
        self.escalation(row, previous, owner, moved, hop=1)
        self.contact(row, owner, moved + timedelta(seconds=rng.uniform(60, 540)), "contacted")
        self.opened(row, owner)

    def escalation(self, row: dict[str, Any], previous: Person, owner: Person, at: datetime, hop: int) -> None:
        due = row["sla_due_at"]
        reason = f"no first contact by {previous.name} within 10m; hop {hop}/3; next: {owner.name}, next in the chain"
        row.update(manager_id=owner.id, assigned_at=at, sla_hops=hop, sla_due_at=at + FIRST_CONTACT, updated_at=at)
        late_ms = int((at - due).total_seconds() * 1000)
        self.event(row["id"], "lead.escalated", at, "sla", reason=reason, hop=hop, max_hops=3, previous=previous.key,
                   manager=owner.key, due_at=due.isoformat(), late_ms=late_ms)  # fmt: skip
        self.assignment(row["id"], owner, "escalation", reason, at)
        self.counts["escalated today"] += 1

    def exhausted_today(self, first: Person) -> None:
        """Three hops and nobody reached the client: the chain ended at the team's head."""
        rng, now = self.rng, self.now
        created = self.before(now - timedelta(minutes=45))
        row = self.lead(first, created, "assigned")
        at, previous = created, first
        for hop in (1, 2, 3):
            at += FIRST_CONTACT + timedelta(milliseconds=rng.randrange(5, 300))
            nxt = self.people[self.layout.next_in_chain(previous.key)]
            self.escalation(row, previous, nxt, at, hop)
            previous = nxt
        at += FIRST_CONTACT
        head = self.people[self.layout.head(first.team)]
        reason = f"no first contact by {previous.name} within 10m; all 3 hops of the chain used; to the team's head"
        row.update(manager_id=head.id, assigned_at=at, sla_hops=4, sla_state="exhausted", sla_due_at=None,
                   updated_at=at)  # fmt: skip
        self.event(row["id"], "lead.chain_exhausted", at, "sla", reason=reason, hop=4, max_hops=3,
                   previous=previous.key, manager=head.key, due_at=at.isoformat(), late_ms=12)  # fmt: skip
        self.assignment(row["id"], head, "escalation", reason, at)
        self.opened(row, head)
        self.counts["chains ended today"] += 1

    def running_now(self, owner: Person, created: datetime | None = None, due: datetime | None = None) -> int:
        """A lead waiting for its first contact, the deadline running."""
        created = created or self.now - timedelta(seconds=self.rng.uniform(30, 570))
        due = due or created + FIRST_CONTACT
        row = self.lead(owner, created, "assigned", sla_due_at=due)
        self.timer(row, owner, due)
        self.opened(row, owner)
        self.counts["running now"] += 1
        return int(row["id"])

    def card_lead(self, owner: Person) -> tuple[int, str]:
        """A lead of the bench manager with ten events, and an older closed lead of the same client."""
        e164 = self.phone()
        old = self.lead(owner, self.today - timedelta(days=40), "assigned", phone=e164)
        self.contact(old, owner, old["created_at"] + timedelta(minutes=7), "contacted")
        self.close(old, owner, old["created_at"] + timedelta(days=3))
        created = self.today - timedelta(days=3)
        row = self.lead(owner, created, "assigned", phone=e164, name="Оксана Гриценко", message=MESSAGES[2])
        actor = f"user:{owner.key}"
        for minutes, outcome in ((4, "no_answer"), (6, "busy")):
            self.event(row["id"], "lead.contact_attempt", created + timedelta(minutes=minutes), actor,
                       manager=owner.key, kind="call", outcome=outcome, note=None, owner=owner.key,
                       reason=None)  # fmt: skip
        self.contact(row, owner, created + timedelta(minutes=9), "contacted")
        for hours, note in ((1, "Просить пропозицію на лізинг двох авто"), (5, "Надіслала умови на пошту"),
                            (26, "Чекає рішення директора до п'ятниці")):  # fmt: skip
            self.event(row["id"], "lead.note", created + timedelta(hours=hours), actor, note=note)
        row.update(status="qualified", updated_at=created + timedelta(hours=27))
        self.event(row["id"], "lead.status_changed", row["updated_at"], actor, old="contacted", new="qualified",
                   reason=None)  # fmt: skip
        self.opened(row, owner)
        return int(row["id"]), local_format(e164, 0)

    # -- writing

    def flush(self, force: bool = False) -> None:
        if not force and len(self.batch["leads"]) < CHUNK:
            return
        with self.app.engine.begin() as conn:
            for table in (leads, events, assignments, timers):
                rows = self.batch.pop(table.name, [])
                if rows:
                    conn.execute(table.insert(), rows)
                    self.counts[f"rows: {table.name}"] += len(rows)

    def finish(self) -> None:
        self.flush(force=True)
        stats = ("open_leads", "open_value", "closed_leads", "won_leads", "first_contacts", "fast_contacts")
        set_stats = (
            update(managers).where(managers.c.id == bindparam("p_id")).values({s: bindparam(f"p_{s}") for s in stats})
        )
        with self.app.engine.begin() as conn:
            conn.execute(set_stats, [{"p_id": p.id, **{f"p_{s}": getattr(p, s) for s in stats}}
                                     for p in self.people.values()])  # fmt: skip
            if self.app.engine.dialect.name == "postgresql":
                # The leads were written with their ids: the sequence goes on after them.
                conn.execute(text("SELECT setval(pg_get_serial_sequence('leads', 'id'), (SELECT max(id) FROM leads))"))


def fill(app: Leadflow, layout: Layout, total: int) -> Seeded:
    started = time.perf_counter()
    now = utcnow()
    f = Fill(app, layout, now)
    rng = f.rng
    seeded = Seeded()
    bench = f.people[layout.bench_manager]
    seeded.card_lead, seeded.search_phone = f.card_lead(bench)
    before = f.people[layout.before_bench_manager]
    # The escalations measured later: their deadlines far enough out that nothing else moves them first.
    seeded.candidates = [f.running_now(before, now - timedelta(minutes=2), now + timedelta(hours=6))
                         for _ in range(40)]  # fmt: skip
    open_total = int(total * OPEN_SHARE)
    bench_share = BENCH_MANAGER_OPEN / max(open_total, 1)

    def open_owner() -> Person:
        return bench if rng.random() < bench_share else rng.choice(f.others)

    def scaled(n: int) -> int:  # today's populations are sized for 100,000 leads
        return max(1, round(n * total / 100_000))

    plan = ([f.running_now] * scaled(RUNNING_NOW) + [f.contacted_today] * scaled(TODAY_CONTACTS)
            + [f.escalated_today] * scaled(TODAY_ESCALATED) + [f.exhausted_today] * scaled(TODAY_EXHAUSTED))  # fmt: skip
    for make in plan:
        make(open_owner())
        f.flush()
    older = max(total - f.next_id + 1, 0)
    older_open = max(open_total - f.counts["open"], 0)
    for i in range(older):
        closed = i >= older_open
        f.history(rng.choice(f.regular) if closed else open_owner(), closed)
        f.flush()
    f.finish()
    seeded.counts = dict(f.counts) | {"leads": f.next_id - 1, f"open of {layout.bench_manager}": bench.open_leads,
                                      "load mismatches": load_mismatches(app)}  # fmt: skip
    seeded.seconds = time.perf_counter() - started
    return seeded


def load_mismatches(app: Leadflow) -> int:
    """Managers whose open_leads (what the board shows against capacity) is not the count of their open leads."""
    counted = (
        select(func.count())
        .where(leads.c.manager_id == managers.c.id, leads.c.status.in_(sorted(app.rules.open_statuses)))
        .scalar_subquery()
    )
    with app.engine.connect() as conn:
        return int(conn.execute(select(func.count()).where(managers.c.open_leads != counted)).scalar_one())


def settle(app: Leadflow) -> None:
    """PostgreSQL: what autovacuum would have done after a bulk load (statistics for the planner)."""
    if app.engine.dialect.name == "postgresql":
        with psycopg.connect(libpq_url(app.engine.url.render_as_string(hide_password=False)), autocommit=True) as c:
            c.execute("VACUUM ANALYZE")


def make_users(app: Leadflow, layout: Layout) -> dict[str, str]:
    """The three accounts; returns role -> username."""
    accounts._hasher = CHEAP_HASHER  # as tests/conftest.py does
    people = {"manager": ("bench-manager", "manager", None, layout.bench_manager),
              "head": ("bench-head", "head", ["t00"], layout.head("t00")),
              "admin": ("bench-admin", "admin", None, None)}  # fmt: skip
    with app.engine.begin() as conn:
        for username, role, team_keys, manager in people.values():
            accounts.create_user(conn, username, PASSWORD, utcnow(), role=role, teams_=team_keys, manager=manager,
                                 actor=SYSTEM)  # fmt: skip
    return {role: spec[0] for role, spec in people.items()}


# --- serving --------------------------------------------------------------------------------------------------------

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Served:
    path: str
    status: int
    seconds: float
    size: int


class ServerTimer:
    """Pure ASGI: each request's time from the app's call to the last byte of its answer, by path."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.served: list[Served] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status, size = 0, 0

        async def timed(message: Message) -> None:
            nonlocal status, size
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)
            if message["type"] == "http.response.body":
                size += len(message.get("body", b""))
                if not message.get("more_body", False):
                    self.served.append(Served(scope["path"], status, time.perf_counter() - started, size))

        await self.app(scope, receive, timed)


def add_bare_page(api: Any) -> None:
    """GET /bench/bare: a small template through the desk's own Jinja2 environment, nothing else."""
    template = environment().from_string("<!doctype html><title>bare</title><p>{{ x }}</p>")

    def bare() -> HTMLResponse:  # a sync route, run in the thread pool as the page routes are
        return HTMLResponse(template.render(x="leadflow"))

    api.add_api_route("/bench/bare", bare, methods=["GET"], include_in_schema=False,
                      dependencies=[public("the web bench's baseline page")])  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(app: Leadflow) -> Iterator[tuple[str, ServerTimer]]:
    """The app as `leadflow serve` builds it (without its worker: the bench runs the escalation rounds itself), on a
    free loopback port in a thread."""
    port = free_port()
    settings = Settings(host="127.0.0.1", port=port)
    api = create_api(app, settings)
    add_bare_page(api)
    timer = ServerTimer(api)
    gc.freeze()  # as serve does: what was built so far is out of the collector's sight
    config = uvicorn.Config(timer, host="127.0.0.1", port=port, log_level="warning", lifespan="off",
                            access_log=False, timeout_keep_alive=5, timeout_graceful_shutdown=2,
                            limit_concurrency=settings.limit_concurrency)  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="bench-web-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}", timer
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        gc.unfreeze()


def signed_in(url: str, username: str) -> httpx.Client:
    client = httpx.Client(base_url=url, timeout=60)
    answer = client.post("/login", data={"username": username, "password": PASSWORD, "next": "/"})
    if answer.status_code != 303:
        raise RuntimeError(f"sign-in of {username} answered {answer.status_code}: {answer.text[:300]}")
    return client


# --- the pages ------------------------------------------------------------------------------------------------------


@dataclass
class Page:
    label: str
    client: httpx.Client
    path: str
    check: Callable[[str], str] = lambda body: ""  # a problem with the answer, "" when it is what it should be
    follow: Callable[[str], str] | None = None  # the next request's path from this answer (as the page updates it)
    server_ms: list[float] = field(default_factory=list)
    client_ms: list[float] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    note: str = ""

    def figures(self, bare_p50: float | None, bare_p95: float | None) -> dict[str, Any]:
        if not self.server_ms:
            return {"label": self.label, "path": self.path, "note": self.note}
        p95 = percentile(self.server_ms, 95)
        return {
            "label": self.label, "path": self.path, "n": len(self.server_ms),
            "p50_ms": round(percentile(self.server_ms, 50), 2), "p95_ms": round(p95, 2),
            "p99_ms": round(percentile(self.server_ms, 99), 2), "max_ms": round(max(self.server_ms), 2),
            "client_p50_ms": round(percentile(self.client_ms, 50), 2), "kb": round(median(self.sizes) / 1024, 1),
            "of_bare": round(p95 / bare_p95, 1) if bare_p95 else None,
            "p50_of_bare": round(percentile(self.server_ms, 50) / bare_p50, 1) if bare_p50 else None,
            "note": self.note,
        }  # fmt: skip


def one(page: Page, timer: ServerTimer) -> tuple[int, float, float, int, str]:
    timer.served.clear()
    t0 = time.perf_counter()
    answer = page.client.get(page.path)
    client_s = time.perf_counter() - t0
    served = [s for s in timer.served if s.path == page.path.split("?")[0]]
    server_s = served[-1].seconds if served else float("nan")
    return answer.status_code, server_s * 1000, client_s * 1000, len(answer.content), answer.text


def measure_pages(pages: Sequence[Page], timer: ServerTimer, warmup: int, rounds: int) -> None:
    """`warmup` rounds untimed, then `rounds` rounds; each round asks every page once, in the same order."""
    live = list(pages)
    for i in range(warmup + rounds):
        for page in list(live):
            status, server_ms, client_ms, size, body = one(page, timer)
            if status != 200:
                title = re.search(r"<title>(.*?)</title>", body, re.S)
                page.note = ("not there (404): rerun when the page exists" if status == 404
                             else f"answered {status}" + (f": {title.group(1).strip()}" if title else ""))  # fmt: skip
                page.server_ms.clear()
                live.remove(page)
                continue
            if i == 0:
                problem = page.check(body)
                if problem:
                    page.note = problem
            if page.follow is not None:
                page.path = page.follow(body)
            if i >= warmup:
                page.server_ms.append(server_ms)
                page.client_ms.append(client_ms)
                page.sizes.append(size)


def count_items(pattern: str, least: int, what: str) -> Callable[[str], str]:
    def check(body: str) -> str:
        found = len(re.findall(pattern, body))
        return "" if found >= least else f"shows {found} {what}, expected at least {least}"

    return check


def refresh(shown: str) -> str:
    """The queue's live refresh, as htmx asks for it: with the ids the page shows now."""
    return "/queue/rows?" + urlencode({"shown": shown})


def shown_ids(body: str) -> str:
    found = re.search(r'id="queue-shown" name="shown" value="([^"]*)"', body)
    return found.group(1) if found else ""


class Statements:
    """SQL statements and the time in them, for the request running now (one at a time). leadflow's `Fast`
    statements (store/fast.py: routing's state loader) go to the driver's cursor and fire only the before-event:
    they are counted, not timed."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.count = 0
        self.seconds = 0.0
        self._started: dict[int, float] = {}
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, _conn: Any, cursor: Any, *_: Any) -> None:
        self.count += 1
        self._started[id(cursor)] = time.perf_counter()

    def _after(self, _conn: Any, cursor: Any, *_: Any) -> None:
        self.seconds += time.perf_counter() - self._started.pop(id(cursor), time.perf_counter())

    def reset(self) -> None:
        self.count, self.seconds = 0, 0.0
        self._started.clear()

    def close(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self._before)
        event.remove(self.engine, "after_cursor_execute", self._after)


def count_statements(app: Leadflow, pages: Sequence[Page], timer: ServerTimer, rounds: int) -> dict[str, Any]:
    stats = Statements(app.engine)
    found: dict[str, Any] = {}
    try:
        for page in pages:
            if not page.server_ms:
                continue
            counts, sql_ms, server_ms = [], [], []
            for _ in range(rounds):
                stats.reset()
                _, ms, _, _, _ = one(page, timer)
                counts.append(stats.count)
                sql_ms.append(stats.seconds * 1000)
                server_ms.append(ms)
            found[page.label] = {"statements": median(counts), "sql_ms_p50": round(median(sql_ms), 2),
                                 "server_ms_p50": round(median(server_ms), 2)}  # fmt: skip
    finally:
        stats.close()
    return found


# --- escalation to an open page -------------------------------------------------------------------------------------


class Stream:
    """An open page's event stream (GET /live), read line by line in a thread: (event, data, when it arrived)."""

    def __init__(self, client: httpx.Client, path: str) -> None:
        self.client = client
        self.path = path
        self.signals: queue.Queue[tuple[str, str, float]] = queue.Queue()
        self.opened = threading.Event()
        self.response: httpx.Response | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._read, name="bench-web-stream", daemon=True)
        self.thread.start()
        if not self.opened.wait(10):
            raise RuntimeError(f"{path} did not open: {self.error!r}")

    def _read(self) -> None:
        name = ""
        try:
            with self.client.stream("GET", self.path, timeout=httpx.Timeout(30, read=None)) as response:
                self.response = response
                self.opened.set()
                for line in response.iter_lines():
                    arrived = time.perf_counter()
                    if line.startswith("event: "):
                        name = line[7:]
                    elif line.startswith("data: ") and name:
                        self.signals.put((name, line[6:], arrived))
                        name = ""
        except Exception as exc:  # closed by close() below, or the server went away
            self.error = exc
        finally:
            self.opened.set()

    def wait_for(self, name: str, lead_id: int, timeout: float) -> float | None:
        """When the signal `name` naming `lead_id` arrived (perf_counter), or None after `timeout` seconds."""
        deadline = time.perf_counter() + timeout
        while (left := deadline - time.perf_counter()) > 0:
            try:
                got, data, arrived = self.signals.get(timeout=left)
            except queue.Empty:
                return None
            if got == name and str(lead_id) in data.split(","):
                return arrived
        return None

    def close(self) -> None:
        """Hang up as a closed tab does. Closing the response alone would not wake the thread blocked reading it (nor
        tell the server); shutting the socket down does both."""
        if self.response is not None:
            stream = self.response.extensions.get("network_stream")
            sock = stream.get_extra_info("socket") if stream is not None else None
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        self.thread.join(timeout=5)
        if self.response is not None:
            self.response.close()


def catch_up(app: Leadflow) -> int:
    """What the worker in `leadflow serve` would have done meanwhile: the deadlines that passed during the run."""
    moved = total = 0
    while (moved := escalate_due(app, utcnow())) > 0:
        total += moved
    return total


def make_due(app: Leadflow, lead_id: int) -> None:
    now = utcnow()
    with app.engine.begin() as conn:
        conn.execute(update(timers).where(timers.c.lead_id == lead_id).values(due_at=now))
        conn.execute(update(leads).where(leads.c.id == lead_id).values(sla_due_at=now))


def escalated_to(app: Leadflow, lead_id: int) -> str | None:
    with app.engine.connect() as conn:
        data = conn.execute(select(events.c.data).where(events.c.lead_id == lead_id, events.c.type == "lead.escalated")
                            .order_by(events.c.id.desc()).limit(1)).scalar()  # fmt: skip
    return data.get("manager") if data else None


def measure_escalations(app: Leadflow, url: str, owner: httpx.Client, layout: Layout, candidates: Sequence[int],
                        count: int) -> dict[str, Any]:  # fmt: skip
    caught_up = catch_up(app)
    shown = shown_ids(owner.get("/").text)
    stream_client = httpx.Client(base_url=url, cookies=owner.cookies, timeout=30)
    stream = Stream(stream_client, "/live?watch=queue")
    rng = random.Random(SEED)
    signal_ms: list[float] = []
    fragment_ms: list[float] = []
    round_ms: list[float] = []
    problems: list[str] = []
    try:
        time.sleep(0.6)  # the hub has read its cursor and the owner's leads
        for lead_id in candidates[:count]:
            time.sleep(rng.uniform(0.3, 0.8))  # anywhere in the hub's poll interval
            make_due(app, lead_id)
            called = time.perf_counter()
            moved = escalate_due(app, utcnow())
            committed = time.perf_counter()
            round_ms.append((committed - called) * 1000)
            to = escalated_to(app, lead_id)
            if moved < 1 or to != layout.bench_manager:
                problems.append(f"lead {lead_id} went to {to}, not {layout.bench_manager} (round moved {moved})")
                continue
            arrived = stream.wait_for("queue", lead_id, timeout=10)
            if arrived is None:
                problems.append(f"lead {lead_id}: no queue signal within 10 s")
                continue
            signal_ms.append((arrived - committed) * 1000)
            fragment = owner.get("/queue/rows", params={"shown": shown})
            answered = time.perf_counter()
            if f'id="lead-{lead_id}"' not in fragment.text:
                problems.append(f"lead {lead_id}: not in the queue fragment ({fragment.status_code})")
                continue
            shown = shown_ids(fragment.text)
            fragment_ms.append((answered - committed) * 1000)
    finally:
        stream.close()
        stream_client.close()

    def dist(values: Sequence[float]) -> dict[str, float]:
        if not values:
            return {"n": 0}
        return {"n": len(values), "p50_ms": round(median(values), 1), "max_ms": round(max(values), 1)}

    return {"caught_up": caught_up, "round": dist(round_ms), "signal": dist(signal_ms), "fragment": dist(fragment_ms),
            "problems": problems}  # fmt: skip


# --- one database ---------------------------------------------------------------------------------------------------


def run_database(kind: str, url: str, workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    layout = Layout(per_team=args.managers // TEAMS)
    rules = workdir / f"rules-{kind}.yaml"
    rules.write_text(rules_text(layout), encoding="utf-8")
    app = open_app(Settings(database_url=url, rules=rules), serving=True)  # migrate, the rules' people, the writer
    try:
        console.print(f"[bold]{kind}[/]: filling {args.leads:,} leads for {args.managers} managers ...")
        seeded = fill(app, layout, args.leads)
        started = time.perf_counter()
        settle(app)
        settled = time.perf_counter() - started
        users = make_users(app, layout)
        counts = seeded.counts
        console.print(f"  filled in {seeded.seconds:.1f} s (+{settled:.1f} s analyze): {counts['leads']:,} leads, "
                      f"{counts['rows: events']:,} events, {counts['open']:,} open "
                      f"({counts[f'open of {layout.bench_manager}']} the manager's; managers whose load is not their "
                      f"open leads: {counts['load mismatches']}); load {os.getloadavg()[0]:.1f}")  # fmt: skip
        with serving(app) as (base, timer):
            manager, head, admin = (signed_in(base, users[r]) for r in ("manager", "head", "admin"))
            try:
                shown = shown_ids(manager.get("/").text)
                search = urlencode({"q": seeded.search_phone})
                lead_item = r'<li id="lead-\d+"'
                pages = [
                    Page("bare Jinja2 page (baseline)", manager, "/bench/bare"),
                    Page("queue, manager", manager, "/", count_items(lead_item, 200, "leads")),
                    Page("queue refresh, manager", manager, refresh(shown), count_items(lead_item, 200, "leads"),
                         follow=lambda body: refresh(shown_ids(body))),
                    Page(f"team board, head ({layout.per_team} managers)", head, "/team"),
                    Page(f"team board, admin ({args.managers} managers)", admin, "/team"),
                    Page("team board refresh, head", head, "/team/board"),
                    Page("team board refresh, admin", admin, "/team/board"),
                    Page("lead card, manager (10 events)", manager, f"/leads/{seeded.card_lead}",
                         count_items(r"Просить пропозицію", 1, "notes")),
                    Page("search by phone, manager", manager, f"/search?{search}",
                         count_items(lead_item, 2, "leads")),
                    Page("search by phone, admin", admin, f"/search?{search}",
                         count_items(lead_item, 2, "leads")),
                ]  # fmt: skip
                if args.only:
                    pages = [pages[0], *(p for p in pages[1:] if any(w and w in p.label for w in args.only.split(",")))]
                console.print(f"  pages: {args.warmup} + {args.requests} rounds of {len(pages)} ...")
                load_before = os.getloadavg()[0]
                # As in `leadflow serve`: the worker runs in the serving process (deadlines of the running leads
                # fall due meanwhile and move along the chain).
                worker = Worker(app, poll_seconds=0.25)
                threads = worker.start()
                try:
                    measure_pages(pages, timer, args.warmup, args.requests)
                    statements = count_statements(app, pages, timer, 30) if args.statements else {}
                finally:
                    worker.stop.set()
                    for thread in threads:
                        thread.join(timeout=10)
                bare = pages[0].server_ms
                figures = [p.figures(percentile(bare, 50), percentile(bare, 95)) if bare else p.figures(None, None)
                           for p in pages]  # fmt: skip
                moved_meanwhile = worker.escalated
                console.print(f"  escalations: {args.escalations} ... (load {os.getloadavg()[0]:.1f})")
                escalations = measure_escalations(app, base, manager, layout, seeded.candidates, args.escalations)
            finally:
                for client in (manager, head, admin):
                    client.close()
        return {"database": kind, "seeded": {"seconds": round(seeded.seconds, 1), "analyze_s": round(settled, 1),
                **counts}, "pages": figures, "statements": statements, "escalation": escalations,
                "load": [load_before, round(os.getloadavg()[0], 2)],
                "escalated_during_pages": moved_meanwhile}  # fmt: skip
    finally:
        if app.writer is not None:
            app.writer.close()
        app.engine.dispose()


# --- output ---------------------------------------------------------------------------------------------------------


def _ms(value: Any) -> str:
    return f"{value:,.1f}" if isinstance(value, int | float) else "-"


def report(result: dict[str, Any], args: argparse.Namespace) -> None:
    kind = result["database"]
    s = result["seeded"]
    rows = []
    for p in result["pages"]:
        if "p95_ms" not in p:
            rows.append([p["label"], "-", "-", "-", "-", "-", "-", "-", p["note"]])
            continue
        of_bare = f"{p['of_bare']:.1f}x" if p.get("of_bare") else ""
        p50_of_bare = f"{p['p50_of_bare']:.1f}x" if p.get("p50_of_bare") else ""
        rows.append([p["label"], _ms(p["p50_ms"]), _ms(p["p95_ms"]), _ms(p["p99_ms"]), of_bare, p50_of_bare,
                     _ms(p["client_p50_ms"]), f"{p['kb']:,.1f}", p["note"]])  # fmt: skip
    target = [p for p in result["pages"] if p["label"].startswith(("queue", "team")) and "p95_ms" in p]
    met = all(p["p95_ms"] < TARGET_P95_MS for p in target)
    missing = [p["label"] for p in result["pages"] if p["label"].startswith(("queue", "team")) and "p95_ms" not in p]
    print_table(
        f"{kind}: {s['leads']:,} leads, {s['rows: events']:,} events, {args.managers} managers; "
        f"server time over {args.requests} rounds (load {result['load'][0]:.1f} -> {result['load'][1]:.1f})",
        ["page", "p50 ms", "p95 ms", "p99 ms", "p95 / bare", "p50 / bare", "client p50 ms", "KB", "note"],
        rows,
        caption=f"Target: the queue and the team board under {TARGET_P95_MS:.0f} ms p95: "
        + ("met" if met and not missing else "NOT met" if not met else "met so far")
        + (f" (not measured: {', '.join(missing)})" if missing else ""),
    )
    if result["statements"]:
        print_table(
            f"{kind}: SQL per request (30 rounds, cursor events on)",
            ["page", "statements", "SQL ms p50", "server ms p50"],
            [[label, f"{v['statements']:.0f}", _ms(v["sql_ms_p50"]), _ms(v["server_ms_p50"])]
             for label, v in result["statements"].items()],
        )  # fmt: skip
    e = result["escalation"]
    print_table(
        f"{kind}: escalation to the new owner's open queue ({e['signal'].get('n', 0)} of {args.escalations})",
        ["from the round's commit to", "p50 ms", "max ms"],
        [["(the escalation round itself)", _ms(e["round"].get("p50_ms")), _ms(e["round"].get("max_ms"))],
         ["event: queue on the open stream", _ms(e["signal"].get("p50_ms")), _ms(e["signal"].get("max_ms"))],
         ["the queue fragment with the lead answered", _ms(e["fragment"].get("p50_ms")),
          _ms(e["fragment"].get("max_ms"))]],
        caption=f"Target: under {TARGET_ESCALATION_S:.0f} s: "
        + ("not measured" if not e["fragment"].get("n")
           else "met" if e["fragment"]["max_ms"] < TARGET_ESCALATION_S * 1000 else "NOT met")
        + (f"; problems: {'; '.join(e['problems'][:3])}" if e["problems"] else "")
        + f"; escalated by the worker during the pages: {result['escalated_during_pages']}, "
        f"deadlines passed before this part: {e['caught_up']}",
    )  # fmt: skip


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.web", description=__doc__.split("\n\n")[0] if __doc__ else "")
    p.add_argument("--leads", type=int, default=100_000)
    p.add_argument("--managers", type=int, default=200, help=f"in {TEAMS} teams (a multiple of {TEAMS})")
    p.add_argument("--requests", type=int, default=200, help="measured rounds (each asks every page once)")
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--escalations", type=int, default=20)
    p.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    p.add_argument("--pg-url", default=DEFAULT_PG_URL, help="a PostgreSQL server and maintenance database")
    p.add_argument("--statements", action="store_true", help="also count each page's SQL statements")
    p.add_argument("--only", help="only the pages whose label has one of these words (comma-separated), to profile")
    p.add_argument("--json", type=Path, help="write every figure to this JSON file")
    args = p.parse_args(argv)
    if args.managers % TEAMS or args.managers < TEAMS * 3:
        p.error(f"--managers: a multiple of {TEAMS}, at least {TEAMS * 3}")
    args.escalations = min(args.escalations, 40)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory(prefix="leadflow-bench-web-") as tmp:
        workdir = Path(tmp)
        info = machine_info(workdir)
        console.print(f"machine: {info.get('cpu', '?')}, {info['nproc']} cores, load {info['loadavg_at_start']}")
        if args.database in ("sqlite", "both"):
            results.append(run_database("sqlite", f"sqlite:///{workdir / 'web.db'}", workdir, args))
            report(results[-1], args)
        if args.database in ("postgresql", "both"):
            with postgres_scratch(args.pg_url) as scratch:
                _, url = scratch.create("web")
                results.append(run_database("postgresql", url, workdir, args))
            report(results[-1], args)
    if args.json:
        payload = {"machine": info, "args": {k: str(v) for k, v in vars(args).items()}, "results": results}
        args.json.write_text(json.dumps(payload, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
