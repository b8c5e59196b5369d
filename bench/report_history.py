"""A year of leadflow's history for the reports' benchmark (bench/reports.py), written straight into a migrated
database with the bare driver: executemany on SQLite, COPY on PostgreSQL.

The people come from a rules file through `apply_rules_people`, as in a real installation: 200 managers in 10 teams
in six time zones (a head and 19 sellers each, four routing strategies, one team behind the quality desk). The
leads are simulated one by one, in order of arrival, over the 365 days before `NOW`, and every row is what the
services would have written for what happened to the lead:

* the lead arrives (`lead.received`, `lead.scored`) and is routed (an `initial` assignment with the candidates as
  `stored_candidates` keeps them, `lead.assigned`), or waits: in the unassigned queue (a NULL assignment,
  `lead.unassigned`, then a person's `manual` one), or at the quality desk (`lead.queued`, `lead.desk_overdue`
  past 15 minutes, `lead.left_desk`); some are junk on arrival (a few restored later), some fold into an earlier
  lead (`merged`), some are duplicates of one;
* the first-contact clock: unanswered calls (`lead.contact_attempt`), escalations every 15 minutes without a contact
  (`escalation` assignments, `lead.escalated`, the third hop `lead.chain_exhausted` to the head), the first contact
  (`lead.contacted`, now and then by someone other than the owner) with `response_seconds` and its band;
* the funnel: contacted -> qualified -> converted (amount, units, margin) or lost (a reason), junk at any step, a
  few lost leads reopened; people reassigning by hand; conversion is better the faster the first contact;
* what fills the rest of a lead's ten events: notes, tags, tasks, messages, automations;
* activities: every call (talk time of the connected ones), message and meeting;
* `lead_stages`: every status the lead entered, with the owner then, `left_at` the next one's `entered_at`, the
  last one open and equal to `leads.status`, as the triggers (store/stages.py) write them: the triggers are
  dropped for the load and created again after it, and `verify` replays a sample through them;
* `channel_costs` per day and campaign, the managers' counters (open leads, closed, won, first contacts) as the
  services keep them.

Rows are written in the order they happened (events, assignments, activities and stages by their time, leads by
arrival), so ids follow time as in a live database. Only what happened before `NOW` is written: recent leads are
still open. Everything comes from one seed.
"""

from __future__ import annotations

import bisect
import heapq
import math
import random
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
import psycopg
from sqlalchemy import bindparam, func, insert, select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from leadflow.core.routing import Candidate, stored_candidates
from leadflow.core.rules import RulesFile
from leadflow.core.rules_text import parse_rules
from leadflow.core.sla import response_band
from leadflow.store.stages import create_stage_triggers, drop_stage_triggers
from leadflow.store.tables import lead_stages, leads, managers, metadata
from leadflow.store.team_state import apply_rules_people

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)  # a Tuesday, noon in Kyiv: the reports' clock
DAYS = 365
SEED = 20261124
# Written into the database once a load completes; --reuse takes a database only with this mark and the same size.
GENERATOR = "reports-history-1"
MARK = "bench_reports_history"

_EPOCH = datetime(1970, 1, 1)
_NOW_S = NOW.timestamp()
_START_S = _NOW_S - DAYS * 86400
MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0
SLA_S = 15 * MINUTE  # the first-contact deadline, and the desk's
MAX_HOPS = 3

# key, name, zone, UTC offset in hours (for the hours leads arrive at), routing strategy, quality desk, share of leads
TEAMS = (
    ("kyiv-retail", "Kyiv retail", "Europe/Kyiv", 2, "round_robin", False, 18),
    ("kyiv-business", "Kyiv business", "Europe/Kyiv", 2, "least_loaded", False, 12),
    ("lviv", "Lviv", "Europe/Kyiv", 2, "weighted_round_robin", False, 11),
    ("odesa", "Odesa", "Europe/Kyiv", 2, "by_rating", False, 9),
    ("warsaw", "Warsaw", "Europe/Warsaw", 1, "round_robin", False, 10),
    ("london", "London", "Europe/London", 0, "least_loaded", False, 8),
    ("new-york", "New York", "America/New_York", -5, "round_robin", False, 10),
    ("chicago", "Chicago", "America/Chicago", -6, "weighted_round_robin", False, 7),
    ("almaty", "Almaty", "Asia/Almaty", 5, "least_loaded", False, 6),
    ("kyiv-desk", "Kyiv desk", "Europe/Kyiv", 2, "round_robin", True, 9),
)
PER_TEAM = 20  # the first is the head

# channel, share, sources, has UTM campaigns
CHANNELS = (
    ("web", 38, ("site", "landing", "calculator"), True),
    ("facebook", 16, ("lead-ads",), True),
    ("instagram", 8, ("lead-ads", "direct"), True),
    ("call", 14, ("main-line", "ads-line"), False),
    ("telegram", 10, ("bot",), False),
    ("email", 7, ("inbox",), False),
    ("whatsapp", 4, ("business",), False),
    ("partner", 3, ("broker-a", "broker-b", "marketplace"), False),
)
CAMPAIGNS = tuple(f"{kind}-{n:02d}" for kind in ("brand", "credit", "deposit", "leasing", "retarget") for n in range(8))
PRODUCTS = ("credit", "credit", "credit", "deposit", "leasing", "insurance")
REGIONS = ("UA", "UA", "UA", "UA", "PL", "GB", "US", "KZ", "DE")
LANGUAGES = ("uk", "uk", "ru", "en")
JUNK_REASONS = ("blocked source", "spam", "test lead", "no way to reach the client", "own employee")
LOST_REASONS = ("price", "chose a competitor", "no longer needed", "could not reach", "not our product")
NOTES = ("asked to call back after 18:00", "wants the terms by e-mail", "compares with another bank",
         "needs a guarantor", "will decide next week", "sent the documents")  # fmt: skip
TAGS = ("vip", "callback", "documents", "hot", "partner", "repeat")
# How much the first response's band moves the chance to qualify and to win (the seed's prior).
OPEN = ("new", "assigned", "contacted", "qualified")
BAND_LIFT = {"≤20m": 1.3, "≤3h": 1.1, "≤12h": 1.0, ">12h": 0.7}


def rules_text() -> str:
    lines = ["default_region: UA", "default_timezone: Europe/Kyiv", "teams:"]
    for key, name, zone, _, _, desk, _ in TEAMS:
        lines.append(
            f"  - {{key: {key}, name: {name}, timezone: {zone}, head: {key}-00{', desk: true' if desk else ''}}}"
        )
    lines.append("managers:")
    for t, (key, name, *_rest) in enumerate(TEAMS):
        for j in range(PER_TEAM):
            capacity = 40 + (t * 7 + j * 13) % 120
            weight, tier = 1 + (j % 3), 1 + (j % 4 == 0) + (j % 5 == 0)
            lines.append(f"  - {{key: {key}-{j:02d}, name: {name} {j:02d}, team: {key}, capacity: {capacity}, "
                         f"weight: {weight}, tier: {tier}}}")  # fmt: skip
    lines += ["routing:", "  rules:"]
    for key, _, _, _, strategy, _, _ in TEAMS:
        lines.append(f"    - {{key: {key}, team: {key}, strategy: {strategy}, when: {{department: {key}}}}}")
    lines += [
        "sla:",
        "  default: {first_contact: 15m, count: wall_clock, chain: {max_hops: 3}}",
        "reports:",
        "  plans:",
    ]
    for t, (key, *_rest) in enumerate(TEAMS):
        lines.append(f"    - {{team: {key}, deals_per_day: {3 + t % 4}, revenue_per_month: {(90 + 10 * t) * 1000}}}")
    return "\n".join(lines) + "\n"


def bench_rules() -> RulesFile:
    return parse_rules(rules_text(), "bench-reports-rules.yaml")


# --- the people, as the database numbered them ----------------------------------------------------------------------


@dataclass
class Person:
    id: int
    key: str
    name: str


@dataclass
class TeamPeople:
    id: int
    key: str
    strategy: str
    desk: bool
    offset_h: int
    head: Person
    sellers: list[Person]
    # Per seller: a few candidate lists as an assignment that picked them keeps them (JSON text).
    candidates: dict[int, list[str]] = field(default_factory=dict)


def load_people(engine: Engine, rules: RulesFile) -> list[TeamPeople]:
    with engine.begin() as conn:
        apply_rules_people(conn, rules, NOW - timedelta(days=DAYS + 1))
        team_ids: dict[str, int] = {key: id_ for key, id_ in conn.execute(text("SELECT key, id FROM teams"))}
        people = conn.execute(text("SELECT id, key, name, team_id FROM managers ORDER BY key")).all()
    found = []
    for key, _, _, offset, strategy, desk, _ in TEAMS:
        members = [Person(r.id, r.key, r.name) for r in people if r.team_id == team_ids[key]]
        found.append(TeamPeople(team_ids[key], key, strategy, desk, offset, members[0], members[1:]))
    return found


def candidate_lists(rng: random.Random, team: TeamPeople, picked: Person, variants: int = 4) -> list[str]:
    """What routing keeps of a decision that picked `picked`: the others of the team eligible or skipped (off
    shift, at capacity, absent, on vacation), ranked on the strategy's input; stored as `stored_candidates` does."""
    found = []
    for _ in range(variants):
        entries = []
        for p in [picked, *[s for s in team.sellers if s is not picked]]:
            load, capacity = rng.randint(0, 60), 40 + rng.randint(0, 120)
            roll = rng.random() if p is not picked else 0.0
            why = ("" if roll < 0.62 else f"{p.name} off-shift" if roll < 0.8 else
                   f"{p.name} at capacity {capacity}/{capacity}" if roll < 0.9 else
                   f"{p.name} absent" if roll < 0.95 else f"{p.name} on vacation until 2026-12-01")  # fmt: skip
            entries.append(Candidate(p.key, p.name, not why, why, capacity if "capacity" in why else load, capacity,
                                     _inputs(rng, team.strategy, load)))  # fmt: skip
        found.append(orjson.dumps(stored_candidates(entries)).decode())
    return found


def _inputs(rng: random.Random, strategy: str, load: int) -> dict[str, float | int | str]:
    if strategy == "least_loaded":
        return {"load": float(load)}
    if strategy == "weighted_round_robin":
        return {"weight": float(rng.randint(1, 3))}
    if strategy == "by_rating":
        return {"rating": round(rng.uniform(20, 95), 1)}
    return {}


# --- the tables written, and their columns --------------------------------------------------------------------------

LEAD_COLUMNS = (
    "id", "channel", "source", "name", "phone", "phone_type", "email", "region", "product", "language", "budget",
    "message", "utm", "raw", "status", "manager_id", "team_id", "duplicate_of_id", "duplicate_reason", "junk_reason",
    "created_at", "updated_at", "assigned_at", "first_contact_at", "rule_key", "sla_state", "sla_due_at", "sla_hops",
    "response_seconds", "response_band", "score", "temperature", "win_probability", "queue", "merged_into_id",
    "won_amount", "won_units", "won_margin", "lost_reason", "first_contact_by", "utm_campaign", "department",
)  # fmt: skip
COLUMNS = {
    "leads": LEAD_COLUMNS,
    "lead_stages": ("lead_id", "status", "previous", "entered_at", "left_at", "manager_id", "team_id"),
    "events": ("lead_id", "type", "actor", "data", "at", "automate"),
    "assignments": ("lead_id", "manager_id", "kind", "rule_key", "strategy", "reason", "candidates", "at"),
    "activities": ("lead_id", "manager_id", "kind", "outcome", "note", "at", "duration_seconds"),
}
STAGES, EVENTS, ASSIGNMENTS, ACTIVITIES = 0, 1, 2, 3
_TIMED = ("lead_stages", "events", "assignments", "activities")
BIG_TABLES = ("leads", *_TIMED)


_DAY_TEXT: dict[int, str] = {}


def stamp(seconds: float) -> str:
    """A UTC instant as the database keeps it: SQLAlchemy's SQLite text, which PostgreSQL reads in a UTC session.
    (Written out by hand: some 25 million of them make a history of a million leads.)"""
    day, micros = divmod(round(seconds * 1_000_000), 86_400_000_000)
    prefix = _DAY_TEXT.get(day)
    if prefix is None:
        prefix = _DAY_TEXT[day] = (_EPOCH + timedelta(days=day)).date().isoformat()
    whole, fraction = divmod(micros, 1_000_000)
    hour, whole = divmod(whole, 3600)
    minute, second = divmod(whole, 60)
    return f"{prefix} {hour:02d}:{minute:02d}:{second:02d}.{fraction:06d}"


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _log_uniform(rng: random.Random, low: float, high: float) -> float:
    return math.exp(rng.uniform(math.log(low), math.log(high)))


class _Cumulative:
    def __init__(self, weights: Sequence[float]) -> None:
        self.bounds, total = [], 0.0
        for w in weights:
            total += w
            self.bounds.append(total)
        self.total = total

    def pick(self, rng: random.Random) -> int:
        return bisect.bisect_right(self.bounds, rng.random() * self.total)


# --- one lead's life ------------------------------------------------------------------------------------------------


@dataclass
class Life:
    """A lead as the simulation walks it: what it is now, and the rows written so far (time, table, row)."""

    id: int
    created: float
    team: TeamPeople
    rows: list[tuple[float, int, tuple[Any, ...]]] = field(default_factory=list)
    stages: list[tuple[str, float, int | None]] = field(default_factory=list)  # status, entered, owner id
    owner: Person | None = None
    owners: list[tuple[float, Person | None]] = field(default_factory=list)  # (from when, who) in order
    first_owner_at: float | None = None
    contact_at: float | None = None
    contact_by: int | None = None
    hops: int = 0
    exhausted: bool = False
    last_change: float = 0.0
    queue: str | None = None

    @property
    def status(self) -> str:
        return self.stages[-1][0]

    def event(self, at: float, type_: str, actor: str | None, **data: Any) -> None:
        self.rows.append((at, EVENTS, (self.id, type_, actor, _dumps(data), stamp(at), None)))

    def enter(self, status: str, at: float) -> None:
        self.stages.append((status, at, self.owner.id if self.owner else None))
        self.last_change = max(self.last_change, at)

    def owner_at(self, at: float) -> Person | None:
        return next((who for since, who in reversed(self.owners) if since <= at), None)


class History:
    """The leads of a year, one at a time in order of arrival, each with every row that its life wrote."""

    def __init__(self, teams: list[TeamPeople], n: int, seed: int = SEED) -> None:
        self.rng = random.Random(seed)
        self.teams = teams
        self.n = n
        for team in teams:
            for seller in [*team.sellers, team.head]:
                team.candidates[seller.id] = candidate_lists(self.rng, team, seller)
        self._team_pick = _Cumulative([t[6] for t in TEAMS])
        self._channel_pick = _Cumulative([c[1] for c in CHANNELS])

    def arrivals(self) -> list[tuple[float, int]]:
        """(arrival instant, team index) of every lead, in order: weekdays busier than weekends, office hours
        busier than nights in the team's zone, a third more leads at the end of the year than at its start."""
        rng = self.rng
        weights = [(0.85 + 0.3 * d / DAYS) * (0.5 if (date(2025, 1, 1) + timedelta(days=d)).weekday() >= 5 else 1.0)
                   for d in range(DAYS)]  # fmt: skip
        days = _Cumulative(weights)
        found = []
        for _ in range(self.n):
            team = self._team_pick.pick(rng)
            local_hour = rng.triangular(8, 20, 11.5) if rng.random() < 0.82 else rng.uniform(0, 24)
            at = _START_S + days.pick(rng) * DAY + (local_hour - TEAMS[team][3]) * HOUR
            found.append((min(max(at, _START_S), _NOW_S - 1), team))
        found.sort()
        return found

    def life(self, lead_id: int, created: float, team_index: int) -> tuple[tuple[Any, ...], Life]:
        """The lead's row as it stands at NOW, and its life (the rows written)."""
        rng = self.rng
        team = self.teams[team_index]
        life = Life(lead_id, created, team, last_change=created)
        channel, _, sources, has_campaigns = CHANNELS[self._channel_pick.pick(rng)]
        source = rng.choice(sources)
        campaign = rng.choice(CAMPAIGNS) if has_campaigns and rng.random() < 0.85 else None
        product = rng.choice(PRODUCTS)
        budget = round(_log_uniform(rng, 2_000, 400_000), -2) if rng.random() < 0.6 else None
        score = rng.randint(0, 25)
        probability = round(min(0.95, max(0.02, rng.gauss(0.18 + score / 100, 0.08))), 3)
        temperature = "hot" if score >= 15 else "warm" if score >= 8 else "cold"
        life.event(created, "lead.received", "key:site form" if channel == "web" else None, channel=channel,
                   source=source)  # fmt: skip
        life.event(created, "lead.scored", None, reason=f"score {score}: product {product}, budget given",
                   score=score, temperature=temperature, probability=probability)  # fmt: skip
        roll = rng.random()
        duplicate_of = merged_into = None
        junk_reason = duplicate_reason = None
        if lead_id > 100 and roll < 0.015:
            merged_into = duplicate_of = lead_id - rng.randint(1, min(lead_id - 1, 3000))
            duplicate_reason = f"folded into open lead #{merged_into}: the same client wrote again"
            life.stages.append(("merged", created, None))
            life.event(created, "lead.merged", None, reason=duplicate_reason, into=merged_into)
            return self._lead_row(life, channel, source, campaign, product, budget, score, temperature, probability,
                                  duplicate_of, duplicate_reason, None, merged_into), life  # fmt: skip
        if lead_id > 100 and roll < 0.055:
            duplicate_of = lead_id - rng.randint(1, min(lead_id - 1, 20000))
            duplicate_reason = f"the same phone as lead #{duplicate_of}"
            life.event(created, "lead.duplicate", None, reason=duplicate_reason, of=duplicate_of)
        if rng.random() < 0.05:
            junk_reason = rng.choice(JUNK_REASONS)
            life.enter("junk", created)
            life.event(created, "lead.junked", None, reason=junk_reason)
            if rng.random() < 0.1:  # restored by the head later: new, then routed in the same instant
                at = created + _log_uniform(rng, 10 * MINUTE, 3 * DAY)
                if at < _NOW_S:
                    life.event(at, "lead.restored", f"user:{team.head.key}", was=junk_reason)
                    life.enter("new", at)
                    self._route(life, at, "restore")
                    self._work(life, at)
        elif team.desk:
            self._desk(life)
        elif rng.random() < 0.03:
            self._queue(life)
        else:
            self._route(life, created, "initial")
            self._work(life, created)
        self._fill(life)
        return self._lead_row(life, channel, source, campaign, product, budget, score, temperature, probability,
                              duplicate_of, duplicate_reason, junk_reason, None), life  # fmt: skip

    # -- routing --

    def _pick_seller(self, team: TeamPeople, other_than: Person | None = None) -> Person:
        while True:
            seller = self.rng.choice(team.sellers)
            if seller is not other_than:
                return seller

    def _assign(self, life: Life, at: float, kind: str, person: Person | None, reason: str) -> None:
        team = life.team
        candidates = self.rng.choice(team.candidates[person.id]) if person is not None else "[]"
        life.rows.append((at, ASSIGNMENTS, (life.id, person.id if person else None, kind, team.key, team.strategy,
                                            reason, candidates, stamp(at))))  # fmt: skip
        if person is not None and life.first_owner_at is None:
            life.first_owner_at = at
        life.owner = person
        life.owners.append((at, person))
        life.last_change = max(life.last_change, at)

    def _route(self, life: Life, at: float, kind: str) -> None:
        """Routed by the team's rule: the lead enters `assigned` with its owner."""
        team = life.team
        picked = self._pick_seller(team)
        reason = f"rule '{team.key}' matched; {team.strategy.replace('_', ' ')} among {len(team.sellers)} eligible"
        self._assign(life, at, kind, picked, reason)
        life.event(at, "lead.assigned", None, manager_id=picked.id, manager=picked.key, rule=team.key, reason=reason,
                   rules=[[team.key, True, f"picked {picked.name}"]])  # fmt: skip
        life.enter("assigned", at)

    def _by_hand(self, life: Life, at: float, reason: str) -> None:
        """A head gives the lead to a seller (the unassigned queue, the desk, a reassignment)."""
        previous = life.owner
        picked = self._pick_seller(life.team, previous)
        self._assign(life, at, "manual", picked, reason)
        life.event(at, "lead.reassigned", f"user:{life.team.head.key}", reason=reason, manager=picked.key,
                   previous=previous.key if previous else None)  # fmt: skip

    def _queue(self, life: Life) -> None:
        """No one eligible on arrival: the unassigned queue until a person takes it."""
        created, team = life.created, life.team
        reason = "no one eligible: every manager of the rule is off shift"
        self._assign(life, created, "initial", None, reason)
        life.event(created, "lead.unassigned", None, reason=reason, rules=[[team.key, True, "no one eligible"]],
                   wait_until=None)  # fmt: skip
        life.enter("new", created)
        if self.rng.random() < 0.1:  # nobody ever takes it: the head junks it within a week
            self._status(life, created + _log_uniform(self.rng, 1 * DAY, 7 * DAY), "junk", "nobody took it")
            return
        at = created + _log_uniform(self.rng, 2 * MINUTE, 16 * HOUR)
        if at < _NOW_S:
            self._by_hand(life, at, "taken from the unassigned queue")
            life.enter("assigned", at)
            self._work(life, at)

    def _desk(self, life: Life) -> None:
        """The team's quality desk looks at the lead first; one in twenty waits past the desk's 15 minutes."""
        rng, created, team = self.rng, life.created, life.team
        life.event(created, "lead.queued", None, queue="desk", team=team.key,
                   reason=f"team '{team.key}' takes new leads through the quality desk")  # fmt: skip
        life.enter("new", created)
        late = rng.random() < 0.11
        waited = rng.uniform(16 * MINUTE, 3 * HOUR) if late else rng.uniform(1 * MINUTE, 14 * MINUTE)
        if late and created + SLA_S < _NOW_S:
            life.event(created + SLA_S, "lead.desk_overdue", "sla", reason="waiting at the quality desk for 15 min",
                       due_at=datetime.fromtimestamp(created + SLA_S, UTC).isoformat())  # fmt: skip
        at = created + waited
        if at >= _NOW_S:
            life.queue = "desk"
            return
        life.event(at, "lead.left_desk", f"user:{team.head.key}", action="routed", team=team.key,
                   waited=f"{int(waited // 60)} min", waited_seconds=int(waited), within_sla=waited <= SLA_S)  # fmt: skip
        self._route(life, at, "initial")
        self._work(life, at)

    # -- the work on an owned lead --

    def _work(self, life: Life, assigned: float) -> None:
        rng = self.rng
        contacted = rng.random() < 0.88
        contact_at = assigned + self._response(rng) if contacted else math.inf
        self._clock(life, assigned, contact_at)
        attempts = 0 if contact_at - assigned < 5 * MINUTE else rng.randint(0, 3)
        if not contacted:
            attempts = rng.randint(1, 4)
        horizon = min(contact_at, assigned + 3 * DAY)
        for at in sorted(rng.uniform(assigned, horizon) for _ in range(attempts)):
            if at < _NOW_S:
                outcome = rng.choice(("no_answer", "no_answer", "busy"))
                self._activity(life, at, "call", outcome, first=False, by=life.owner_at(at))
        if contact_at >= _NOW_S:
            if not contacted:
                self._close_uncontacted(life, assigned)
            return
        by = life.owner
        former = [who for _, who in life.owners if who is not None and who is not by]
        if former and rng.random() < 0.35:  # a former owner's late call reached the client first
            by = rng.choice(former)
        kind, outcome = rng.choice((("call", "connected"),) * 15 + (("message", "sent"),) * 4 + (("meeting", "set"),))
        self._activity(life, contact_at, kind, outcome, first=True, by=by)
        life.contact_at, life.contact_by = contact_at, by.id if by else None
        life.enter("contacted", contact_at)
        if rng.random() < 0.06:  # the head hands it to someone else, before anything more happens to it
            moved = contact_at + rng.uniform(1 * MINUTE, 9 * MINUTE)
            if moved < _NOW_S:
                self._by_hand(life, moved, "moved by the head: the client asked for another manager")
        self._funnel(life, contact_at, BAND_LIFT[response_band(_utc(life.created), _utc(contact_at))])

    @staticmethod
    def _response(rng: random.Random) -> float:
        """Seconds to the first contact: a bit over half within 20 minutes, a tenth after 12 hours."""
        roll = rng.random()
        if roll < 0.55:
            return 20 * MINUTE * rng.random() ** 1.6 + 20
        if roll < 0.8:
            return _log_uniform(rng, 20 * MINUTE, 3 * HOUR)
        if roll < 0.9:
            return _log_uniform(rng, 3 * HOUR, 12 * HOUR)
        return _log_uniform(rng, 12 * HOUR, 6 * DAY)

    def _clock(self, life: Life, assigned: float, contact_at: float) -> None:
        """Every 15 minutes without a contact the lead may move on to the next manager (the third hop: to the
        head, the chain ends); a team whose managers are off shift lets the clock stand."""
        rng, team = self.rng, life.team
        for hop in range(1, MAX_HOPS + 1):
            due = assigned + hop * SLA_S
            if due >= min(contact_at, _NOW_S) or rng.random() >= 0.22:
                return
            previous = life.owner
            final = hop == MAX_HOPS
            target = team.head if final else self._pick_seller(team, previous)
            reason = (f"no first contact by {previous.name if previous else 'anyone'} within 15 min; hop {hop}/"
                      f"{MAX_HOPS}; {'the chain ends with the head' if final else 'next: ' + target.name}")  # fmt: skip
            self._assign(life, due, "escalation", target, reason)
            life.event(due, "lead.chain_exhausted" if final else "lead.escalated", "sla", reason=reason, hop=hop,
                       max_hops=MAX_HOPS, previous=previous.key if previous else None, manager=target.key,
                       due_at=datetime.fromtimestamp(due, UTC).isoformat(), late_ms=rng.randint(0, 900))  # fmt: skip
            life.hops = hop
            life.exhausted = final

    def _activity(
        self, life: Life, at: float, kind: str, outcome: str, *, first: bool, by: Person | None = None
    ) -> None:
        rng = self.rng
        who = by or life.owner
        duration = None
        if kind == "call":
            duration = int(min(3600, max(8, rng.lognormvariate(math.log(200), 0.8)))) if outcome == "connected" else 0
        life.rows.append((at, ACTIVITIES, (life.id, who.id if who else None, kind, outcome, None, stamp(at),
                                           duration)))  # fmt: skip
        owner = life.owner
        reason = None
        if first and who is not owner and owner is not None:
            reason = f"{who.name if who else 'someone'} reached the client; the lead stays with {owner.name}"
        life.event(at, "lead.contacted" if first else "lead.contact_attempt", f"user:{who.key}" if who else None,
                   manager=who.key if who else None, kind=kind, outcome=outcome, note=None,
                   owner=owner.key if owner else None, reason=reason)  # fmt: skip

    def _status(self, life: Life, at: float, status: str, reason: str | None = None, **sale: Any) -> bool:
        """Move the lead on, if that happened before NOW."""
        if at >= _NOW_S:
            return False
        old = life.status
        life.event(at, "lead.status_changed", f"user:{(life.owner or life.team.head).key}", old=old, new=status,
                   reason=reason, **sale)  # fmt: skip
        life.enter(status, at)
        return True

    def _close_uncontacted(self, life: Life, assigned: float) -> None:
        rng = self.rng
        at = assigned + _log_uniform(rng, 6 * HOUR, 20 * DAY)
        roll = rng.random()
        if roll < 0.6:
            self._status(life, at, "lost", "could not reach")
        elif roll < 0.8:
            self._status(life, at, "junk", rng.choice(JUNK_REASONS))

    def _funnel(self, life: Life, contacted: float, lift: float) -> None:
        rng = self.rng
        roll = rng.random()
        if roll < 0.42 * lift:
            at = contacted + _log_uniform(rng, 2 * HOUR, 8 * DAY)
            if not self._status(life, at, "qualified"):
                return
            self._qualified(life, at, lift)
        elif roll < 0.42 * lift + 0.33:
            self._status(life, contacted + _log_uniform(rng, 1 * HOUR, 12 * DAY), "lost", rng.choice(LOST_REASONS))
        elif roll < 0.42 * lift + 0.38:
            self._status(life, contacted + _log_uniform(rng, 10 * MINUTE, 2 * DAY), "junk", rng.choice(JUNK_REASONS))

    def _qualified(self, life: Life, qualified: float, lift: float, reopened: bool = False) -> None:
        rng = self.rng
        roll = rng.random()
        if roll < 0.38 * lift * (0.7 if reopened else 1.0):
            amount = round(_log_uniform(rng, 300, 60_000), 2)
            units = rng.randint(1, 5)
            margin = round(amount * rng.uniform(0.08, 0.35), 2)
            self._status(life, qualified + _log_uniform(rng, 6 * HOUR, 25 * DAY), "converted", amount=f"{amount:.2f}",
                         units=units, margin=f"{margin:.2f}")  # fmt: skip
        elif roll < 0.38 * lift + 0.4:
            at = qualified + _log_uniform(rng, 6 * HOUR, 20 * DAY)
            if self._status(life, at, "lost", rng.choice(LOST_REASONS)) and not reopened and rng.random() < 0.04:
                again = at + _log_uniform(rng, 1 * DAY, 30 * DAY)  # the client came back: reopened
                if self._status(life, again, "qualified", "the client came back"):
                    self._qualified(life, again, lift, reopened=True)

    # -- the rest of a lead's ten events --

    def _fill(self, life: Life) -> None:
        rng = self.rng
        last = max(life.last_change, life.created + HOUR)
        wanted = rng.randint(7, 13) if life.owner is not None else rng.randint(2, 4)
        have = sum(1 for r in life.rows if r[1] == EVENTS)
        actor = f"user:{life.owner.key}" if life.owner else None
        for _ in range(wanted - have):
            at = rng.uniform(life.created, min(last, _NOW_S - 1))
            kind = rng.random()
            if kind < 0.35:
                life.event(at, "lead.note", actor, note=rng.choice(NOTES))
            elif kind < 0.5:
                life.event(at, "lead.tagged", "automation:tag", tags=[rng.choice(TAGS)], was=[])
            elif kind < 0.7:
                life.event(at, "task.created", "automation:call-new-lead", task_id=life.id * 3, title="Call the client",
                           due_at=datetime.fromtimestamp(at + 2 * HOUR, UTC).isoformat())  # fmt: skip
            elif kind < 0.8:
                life.event(at, "task.done", actor, task_id=life.id * 3)
            elif kind < 0.9:
                life.event(at, "message.sent", actor, channel="telegram", text="Надіслали вам умови")
            else:
                life.event(
                    at, "automation.fired", "automation", trigger="call-new-lead", reason="a new lead with a phone"
                )

    # -- the row --

    def _lead_row(
        self, life: Life, channel: str, source: str, campaign: str | None, product: str, budget: float | None,
        score: int, temperature: str, probability: float, duplicate_of: int | None, duplicate_reason: str | None,
        junk_reason: str | None, merged_into: int | None,
    ) -> tuple[Any, ...]:  # fmt: skip
        rng, i = self.rng, life.id
        status = life.status
        statuses = [s[0] for s in life.stages]
        last_status_event = next((r for r in reversed(sorted(life.rows, key=lambda r: r[0]))
                                  if r[1] == EVENTS and r[2][1] == "lead.status_changed"), None)  # fmt: skip
        sale = orjson.loads(last_status_event[2][3]) if last_status_event and status == "converted" else {}
        lost_reason = (
            orjson.loads(last_status_event[2][3])["reason"] if last_status_event and status == "lost" else None
        )
        if status == "junk" and len(statuses) > 1:  # junked after it arrived: the change says why
            junk_reason = orjson.loads(last_status_event[2][3])["reason"] if last_status_event else junk_reason
        open_ = status in OPEN
        sla_state = sla_due = None
        if life.first_owner_at is not None:
            if life.contact_at is not None:
                sla_state = "met"
            elif life.exhausted:
                sla_state = "exhausted"
            elif open_:
                sla_state, sla_due = "running", stamp(life.first_owner_at + (life.hops + 1) * SLA_S)
            else:
                sla_state = "stopped"
        response = band = None
        if life.contact_at is not None:
            response = int(life.contact_at - life.created)
            band = response_band(_utc(life.created), _utc(life.contact_at))
        phone = f"+38067{i % 10_000_000:07d}"
        utm = {"utm_source": channel, "utm_medium": "cpc", "utm_campaign": campaign} if campaign else {}
        name = f"Client {i}"
        raw = {"channel": channel, "name": name, "phone": phone[3:], "product": product, "source": source,
               "message": "Потрібна консультація щодо умов", **({"utm": utm} if utm else {})}  # fmt: skip
        owner = life.owner
        team_id = life.team.id if status != "merged" else None
        return (
            i, channel, source, name, phone, "mobile", f"client{i}@example.test" if rng.random() < 0.4 else None,
            rng.choice(REGIONS), product, rng.choice(LANGUAGES), f"{budget:.2f}" if budget else None,
            "Потрібна консультація щодо умов", _dumps(utm), _dumps(raw), status, owner.id if owner else None,
            team_id, duplicate_of, duplicate_reason, junk_reason if status == "junk" else None, stamp(life.created),
            stamp(life.last_change), stamp(life.first_owner_at) if life.first_owner_at else None,
            stamp(life.contact_at) if life.contact_at else None, life.team.key if owner else None, sla_state, sla_due,
            life.hops, response, band, *((score, temperature, probability) if status != "merged" else (None,) * 3),
            life.queue, merged_into, sale.get("amount"), sale.get("units"), sale.get("margin"), lost_reason,
            life.contact_by, campaign, life.team.key,
        )  # fmt: skip

    # -- all of it, in the order it happened --

    def rows(self) -> Iterator[tuple[str, tuple[Any, ...]]]:
        """(table, row) for every row, each table's in time order: a lead when it arrives, the rest of its rows
        when they happened (held back until then)."""
        later: list[tuple[float, int, str, tuple[Any, ...]]] = []
        seq = 0
        for lead_id, (created, team) in enumerate(self.arrivals(), start=1):
            while later and later[0][0] <= created:
                _, _, table, row = heapq.heappop(later)
                yield table, row
            lead, life = self.life(lead_id, created, team)
            yield "leads", lead
            for at, table_no, row in life.rows:
                seq += 1
                heapq.heappush(later, (at, seq, _TIMED[table_no], row))
            for k, (status, entered, owner) in enumerate(life.stages):
                left = life.stages[k + 1][1] if k + 1 < len(life.stages) else None
                previous = life.stages[k - 1][0] if k else None
                seq += 1
                heapq.heappush(later, (entered, seq, "lead_stages", (lead_id, status, previous, stamp(entered),
                                        stamp(left) if left is not None else None, owner, lead[16])))  # fmt: skip
        while later:
            _, _, table, row = heapq.heappop(later)
            yield table, row


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def cost_rows() -> list[tuple[Any, ...]]:
    """Advertising spend per day and campaign (and per day for the paid channels without campaigns)."""
    rng = random.Random(SEED + 1)
    first = (NOW - timedelta(days=DAYS)).date()
    found = []
    updated = stamp(_NOW_S - DAY)
    for d in range(DAYS + 1):
        day = first + timedelta(days=d)
        for channel, _, _, has_campaigns in CHANNELS:
            if has_campaigns:
                for campaign in CAMPAIGNS:
                    if rng.random() < 0.7:
                        found.append((day.isoformat(), channel, "", campaign, f"{rng.uniform(20, 600):.2f}", updated,
                                      "key:ads import"))  # fmt: skip
            elif channel in ("call", "partner"):
                found.append(
                    (day.isoformat(), channel, "", "", f"{rng.uniform(100, 900):.2f}", updated, "key:ads import")
                )
    return found


# --- writing: the bare drivers --------------------------------------------------------------------------------------


@dataclass
class Loaded:
    rows: dict[str, int]
    seconds: float
    steps: dict[str, float]


def load(engine: Engine, n: int, *, chunk: int = 20_000, progress: Callable[[int], None] | None = None) -> Loaded:
    """Fill a migrated, empty database: the people through the rules, the rest with the bare driver, the indexes
    of the big tables built once after the rows (as many as before, from their own definitions), the stage
    triggers off for the load and on again after it."""
    rules = bench_rules()
    teams = load_people(engine, rules)
    history = History(teams, n)
    started = time.perf_counter()
    steps: dict[str, float] = {}
    postgres = engine.dialect.name == "postgresql"
    with engine.begin() as conn:
        drop_stage_triggers(conn)
        indexes = _secondary_indexes(conn, postgres)
        for name, _ in indexes:
            conn.exec_driver_sql(f'DROP INDEX "{name}"')
    writer = _PostgresWriter(engine) if postgres else _SqliteWriter(str(engine.url.database))
    counts = dict.fromkeys((*BIG_TABLES, "channel_costs"), 0)
    buffers: dict[str, list[tuple[Any, ...]]] = {t: [] for t in BIG_TABLES}
    try:
        for table, row in history.rows():
            buffers[table].append(row)
            if table == "leads" and len(buffers["leads"]) >= chunk:
                writer.write(buffers)
                for t, rows in buffers.items():
                    counts[t] += len(rows)
                    rows.clear()
                if progress:
                    progress(counts["leads"])
        writer.write(buffers)
        for t, rows in buffers.items():
            counts[t] += len(rows)
        costs = cost_rows()
        writer.write({"channel_costs": costs})
        counts["channel_costs"] = len(costs)
        steps["rows made and written"] = time.perf_counter() - started
        writer.finish([definition for _, definition in indexes])
        steps["indexes built"] = time.perf_counter() - started - sum(steps.values())
    except BaseException:
        writer.close()
        _put_back(engine, indexes)  # a load that failed leaves the schema as it found it
        raise
    writer.close()
    with engine.begin() as conn:
        create_stage_triggers(conn)
        _manager_counters(conn)
    steps["managers' counters"] = time.perf_counter() - started - sum(steps.values())
    if postgres:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
        steps["VACUUM ANALYZE"] = time.perf_counter() - started - sum(steps.values())
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM instance WHERE name = :n"), {"n": MARK})
        conn.execute(text("INSERT INTO instance (name, value) VALUES (:n, :v)"), {"n": MARK, "v": f"{GENERATOR}:{n}"})
    return Loaded(counts, time.perf_counter() - started, steps)


def built_for(engine: Engine) -> str | None:
    """The mark a completed load left ("reports-history-1:1000000"), if any."""
    try:
        with engine.connect() as conn:
            found = conn.execute(text("SELECT value FROM instance WHERE name = :n"), {"n": MARK}).scalar()
    except DBAPIError:  # no schema yet
        return None
    return str(found) if found is not None else None


def align_indexes(engine: Engine) -> list[str]:
    """Give a reused history the big tables' indexes the schema declares now (leadflow.store.tables), as the
    migration would: the ones it no longer has dropped, the new ones built. Returns what was done."""
    postgres = engine.dialect.name == "postgresql"
    done = []
    with engine.begin() as conn:
        there = {name for name, _ in _secondary_indexes(conn, postgres)}
        wanted = {str(index.name): index for table in BIG_TABLES for index in metadata.tables[table].indexes}
        for name in sorted(there - set(wanted)):
            conn.exec_driver_sql(f'DROP INDEX "{name}"')
            done.append(f"dropped {name}")
        for name in sorted(set(wanted) - there):
            started = time.perf_counter()
            wanted[name].create(conn)
            done.append(f"built {name} ({time.perf_counter() - started:.0f} s)")
    if postgres and done:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE")
    return done


def _put_back(engine: Engine, indexes: list[tuple[str, str]]) -> None:
    """The indexes and the stage triggers a failed load had dropped, made again."""
    with engine.begin() as conn:
        there = {name for name, _ in _secondary_indexes(conn, engine.dialect.name == "postgresql")}
        for name, definition in indexes:
            if name not in there:
                conn.exec_driver_sql(definition)
        drop_stage_triggers(conn)
        create_stage_triggers(conn)


def _secondary_indexes(conn: Any, postgres: bool) -> list[tuple[str, str]]:
    """The big tables' indexes that no constraint owns: (name, its CREATE statement)."""
    if postgres:
        query = """SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
                   JOIN pg_class t ON t.oid = x.indrelid
                   WHERE t.relname = ANY(%(tables)s) AND NOT EXISTS (SELECT 1 FROM pg_constraint c
                                                                       WHERE c.conindid = i.oid)
                   ORDER BY i.relname"""  # fmt: skip
        return [tuple(r) for r in conn.exec_driver_sql(query, {"tables": list(BIG_TABLES)})]
    marks = ",".join("?" * len(BIG_TABLES))
    return [tuple(r) for r in conn.exec_driver_sql(f"SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql "
                                                   f"IS NOT NULL AND tbl_name IN ({marks}) ORDER BY name",
                                                   BIG_TABLES)]  # fmt: skip


def _manager_counters(conn: Any) -> None:
    """The load and results the services keep on each manager's row, from the leads written (two passes over the
    leads, grouped, rather than a look per manager)."""
    counters: dict[int, dict[str, Any]] = {}

    def of(manager_id: int) -> dict[str, Any]:
        return counters.setdefault(manager_id, {"manager": manager_id, "open_leads": 0, "open_value": 0, "closed_leads": 0,
                                                "won_leads": 0, "first_contacts": 0, "fast_contacts": 0})  # fmt: skip

    for manager_id, status, count, value in conn.execute(text(
            "SELECT manager_id, status, count(*), sum(budget) FROM leads WHERE manager_id IS NOT NULL "
            "GROUP BY manager_id, status")):  # fmt: skip
        c = of(manager_id)
        if status in OPEN:
            c["open_leads"] += count
            c["open_value"] += value or 0
        elif status in ("converted", "lost"):
            c["closed_leads"] += count
            c["won_leads"] += count if status == "converted" else 0
    for manager_id, count, fast in conn.execute(text(
            "SELECT first_contact_by, count(*), sum(CASE WHEN response_seconds <= 1200 THEN 1 ELSE 0 END) FROM leads "
            "WHERE first_contact_by IS NOT NULL GROUP BY first_contact_by")):  # fmt: skip
        of(manager_id).update(first_contacts=count, fast_contacts=fast)
    if counters:
        conn.execute(update(managers).where(managers.c.id == bindparam("manager")).values(
            {k: bindparam(k) for k in ("open_leads", "open_value", "closed_leads", "won_leads", "first_contacts",
                                       "fast_contacts")}), list(counters.values()))  # fmt: skip


class _SqliteWriter:
    """stdlib sqlite3, executemany, one transaction per chunk; foreign keys unchecked while loading."""

    def __init__(self, path: str) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=OFF")
        self.conn.execute("PRAGMA foreign_keys=OFF")
        self.conn.execute("PRAGMA cache_size=-262144")

    def write(self, tables: dict[str, list[tuple[Any, ...]]]) -> None:
        self.conn.execute("BEGIN")
        for table, rows in tables.items():
            if rows:
                columns = _columns(table)
                marks = ", ".join("?" * len(columns))
                self.conn.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)
        self.conn.execute("COMMIT")

    def finish(self, indexes: list[str]) -> None:
        for definition in indexes:
            self.conn.execute(definition)

    def close(self) -> None:
        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.conn.close()


class _PostgresWriter:
    """psycopg COPY, one transaction per chunk, in a UTC session (the times are UTC text), with the foreign-key
    triggers off while loading (session_replication_role)."""

    def __init__(self, engine: Engine) -> None:
        url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self.conn = psycopg.connect(url)
        self.conn.execute("SET TIME ZONE 'UTC'")
        self.conn.execute("SET session_replication_role = replica")
        self.conn.commit()

    def write(self, tables: dict[str, list[tuple[Any, ...]]]) -> None:
        with self.conn.cursor() as cur:
            for table, rows in tables.items():
                if rows:
                    with cur.copy(f"COPY {table} ({', '.join(_columns(table))}) FROM STDIN") as copy:
                        for row in rows:
                            copy.write_row(row)
        self.conn.commit()

    def finish(self, indexes: list[str]) -> None:
        self.conn.execute("SET maintenance_work_mem = '1GB'")
        self.conn.execute("SELECT setval(pg_get_serial_sequence('leads', 'id'), (SELECT max(id) FROM leads))")
        for definition in indexes:
            self.conn.execute(definition)
        self.conn.commit()

    def close(self) -> None:
        self.conn.close()


def _columns(table: str) -> tuple[str, ...]:
    if table == "channel_costs":
        return ("day", "channel", "source", "campaign", "amount", "updated_at", "actor")
    return COLUMNS[table]


# --- checking what was written --------------------------------------------------------------------------------------

# Each counts the rows that break one promise of the history; every count must be 0. (`+ 0` keeps SQLite, which has
# no statistics here, off an index that would find a manager's every activity rather than the lead's few.)
CHECKS = {
    "a lead whose open stage is not its status": """
        SELECT count(*) FROM leads l WHERE NOT EXISTS (
          SELECT 1 FROM lead_stages s WHERE s.lead_id = l.id AND s.left_at IS NULL AND s.status = l.status)""",
    "a lead with more than one open stage": """
        SELECT count(*) FROM (SELECT lead_id FROM lead_stages WHERE left_at IS NULL GROUP BY lead_id
                              HAVING count(*) > 1) x""",
    "a lead whose first stage is not its arrival": """
        SELECT count(*) FROM leads l WHERE 1 <> (SELECT count(*) FROM lead_stages s WHERE s.lead_id = l.id
                                                   AND s.previous IS NULL AND s.entered_at = l.created_at)""",
    "a stage that does not end when the next begins, or names another previous status": """
        SELECT count(*) FROM (
          SELECT left_at, previous,
                 lead(entered_at) OVER (PARTITION BY lead_id ORDER BY entered_at, id) AS next_entered,
                 lag(status) OVER (PARTITION BY lead_id ORDER BY entered_at, id) AS previous_status
          FROM lead_stages) x
        WHERE left_at IS DISTINCT FROM next_entered OR previous IS DISTINCT FROM previous_status""",
    "a stage whose owner is not the one assigned then": """
        SELECT count(*) FROM lead_stages s WHERE s.status <> 'new' AND s.manager_id IS DISTINCT FROM (
          SELECT a.manager_id FROM assignments a WHERE a.lead_id = s.lead_id AND a.at <= s.entered_at
          ORDER BY a.at DESC, a.id DESC LIMIT 1)""",
    "a stage of another team than its lead's": """
        SELECT count(*) FROM lead_stages s JOIN leads l ON l.id = s.lead_id
        WHERE s.team_id IS DISTINCT FROM l.team_id""",
    "a lead whose owner is not its last assignment's": """
        SELECT count(*) FROM leads l WHERE l.manager_id IS DISTINCT FROM (
          SELECT a.manager_id FROM assignments a WHERE a.lead_id = l.id ORDER BY a.at DESC, a.id DESC LIMIT 1)""",
    "a first contact without who made it, or the other way round": """
        SELECT count(*) FROM leads WHERE (first_contact_at IS NULL) <> (first_contact_by IS NULL)
          OR (first_contact_at IS NULL) <> (response_seconds IS NULL)""",
    "a first contact with no activity by that manager then": """
        SELECT count(*) FROM leads l WHERE l.first_contact_at IS NOT NULL AND NOT EXISTS (
          SELECT 1 FROM activities a WHERE a.lead_id = l.id AND a.at = l.first_contact_at
            AND a.manager_id + 0 = l.first_contact_by)""",
    "a closed lead without its result (amount, lost reason, junk reason)": """
        SELECT count(*) FROM leads WHERE (status = 'converted' AND won_amount IS NULL)
          OR (status = 'lost' AND lost_reason IS NULL) OR (status = 'junk' AND junk_reason IS NULL)
          OR (status <> 'converted' AND won_amount IS NOT NULL)""",
    "an event earlier than the one written before it": """
        SELECT count(*) FROM (SELECT at, lag(at) OVER (ORDER BY id) AS before FROM events) x WHERE at < before""",
    "a row after the clock": "SELECT count(*) FROM events WHERE at > :now",
}

# What the history is made of, per lead (and the shares the brief asks for), to print beside the checks.
FIGURES = {
    "events": "SELECT count(*) FROM events",
    "assignments": "SELECT count(*) FROM assignments",
    "activities": "SELECT count(*) FROM activities",
    "lead_stages": "SELECT count(*) FROM lead_stages",
    "lead.desk_overdue": "SELECT count(*) FROM events WHERE type = 'lead.desk_overdue'",
    "lead.chain_exhausted": "SELECT count(*) FROM events WHERE type = 'lead.chain_exhausted'",
    "lead.escalated": "SELECT count(*) FROM events WHERE type = 'lead.escalated'",
    "escalation assignments": "SELECT count(*) FROM assignments WHERE kind = 'escalation'",
    "manual assignments": "SELECT count(*) FROM assignments WHERE kind = 'manual'",
    "first contact by another than the owner": """
        SELECT count(*) FROM leads WHERE first_contact_by IS NOT NULL AND first_contact_by <> manager_id""",
    "calls with a talk time": "SELECT count(*) FROM activities WHERE duration_seconds > 0",
}


@dataclass
class Verified:
    problems: dict[str, int]
    figures: dict[str, float]
    statuses: dict[str, int]
    bands: dict[str, int]


def verify(engine: Engine, sample: int = 300) -> Verified:
    """Check the promises above, a sample of first contacts against the SLA's own arithmetic, and a sample of leads
    replayed through the stage triggers (in a transaction rolled back) against the stages written."""
    with engine.connect() as conn:
        leads_n = conn.execute(text("SELECT count(*) FROM leads")).scalar_one()
        problems = {name: conn.execute(text(sql), {"now": _now_text(engine)}).scalar_one()
                    for name, sql in CHECKS.items()}  # fmt: skip
        figures = {name: conn.execute(text(sql)).scalar_one() / leads_n for name, sql in FIGURES.items()}
        statuses: dict[str, int] = {s: n for s, n in conn.execute(text("SELECT status, count(*) FROM leads "
                                                                       "GROUP BY status"))}  # fmt: skip
        bands: dict[str, int] = {b: n for b, n in conn.execute(text("SELECT response_band, count(*) FROM leads WHERE "
                                                                    "response_band IS NOT NULL GROUP BY response_band"))}  # fmt: skip
        step = max(1, leads_n // sample)
        contacts = conn.execute(select(leads.c.created_at, leads.c.first_contact_at, leads.c.response_seconds,
                                       leads.c.response_band)
                                .where(leads.c.first_contact_at.is_not(None), leads.c.id % step == 0)).all()  # fmt: skip
    problems["a response time or band the SLA would not compute"] = sum(
        1 for r in contacts if abs(r.response_seconds - (r.first_contact_at - r.created_at).total_seconds()) >= 1
        or r.response_band != response_band(r.created_at, r.first_contact_at))  # fmt: skip
    problems["a sampled lead whose stages the triggers would write otherwise"] = _replay(engine, leads_n, sample)
    return Verified(problems, figures, statuses, bands)


def _now_text(engine: Engine) -> Any:
    return stamp(_NOW_S) if engine.dialect.name == "sqlite" else NOW


def _replay(engine: Engine, leads_n: int, sample: int) -> int:
    """Replay the status changes of sampled leads on copies of them, with the triggers on, and count the copies
    whose stages differ from the originals'. Nothing stays: the transaction is rolled back."""
    step = max(1, leads_n // sample)
    columns = (lead_stages.c.status, lead_stages.c.previous, lead_stages.c.entered_at, lead_stages.c.left_at,
               lead_stages.c.manager_id, lead_stages.c.team_id)  # fmt: skip
    differ = 0
    with engine.connect() as conn, conn.begin() as tx:
        first_copy = conn.execute(select(func.max(leads.c.id))).scalar_one() + 1
        ids = list(range(1, leads_n + 1, step))
        stages_of: dict[int, list[Any]] = {}
        for row in conn.execute(select(lead_stages.c.lead_id, *columns).where(lead_stages.c.lead_id.in_(ids))
                                .order_by(lead_stages.c.lead_id, lead_stages.c.entered_at, lead_stages.c.id)):  # fmt: skip
            stages_of.setdefault(row.lead_id, []).append(tuple(row)[1:])
        for k, stages in enumerate(stages_of.values()):
            copy_id = first_copy + k
            status, _, entered, _, manager_id, team_id = stages[0]
            conn.execute(insert(leads).values(id=copy_id, channel="web", utm={}, raw={}, status=status,
                                              manager_id=manager_id, team_id=team_id, created_at=entered,
                                              updated_at=entered))  # fmt: skip
            for status, _, entered, _, manager_id, _ in stages[1:]:
                conn.execute(update(leads).where(leads.c.id == copy_id)
                             .values(status=status, manager_id=manager_id, updated_at=entered))  # fmt: skip
            replayed = [tuple(r) for r in conn.execute(select(*columns).where(lead_stages.c.lead_id == copy_id)
                                                       .order_by(lead_stages.c.entered_at, lead_stages.c.id))]  # fmt: skip
            differ += replayed != stages
        tx.rollback()
    return differ
