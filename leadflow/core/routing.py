"""Who takes a lead: a pure function of (lead, team state, rules, clock) that says why.

Every strategy is the same three steps: filter the rule's pool down to who may take the lead (active, present,
on shift, under capacity, serving the lead's region/product/language, above the conversion floor, in the right
tier), rank the eligible by the strategy, pick the first. Ties always go to whoever is next in the rotation, so
equal managers take turns. The decision carries the reason, every candidate's verdict and the inputs of its rank.

A batch takes route()'s decisions through a Router, which remembers from one lead to the next what does not change
between them (each manager's verdict for leads asking the same of the rule), and decides exactly as route() does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from itertools import count
from operator import attrgetter
from typing import Any
from zoneinfo import ZoneInfo

from leadflow.core.lead import CleanLead
from leadflow.core.rules import Rule, RulesFile, Target, TierBand
from leadflow.core.schedule import WorkingHours, is_open, next_open

FALLBACK = "fallback"
_STRATEGY_WORDS = {
    "round_robin": "round robin",
    "weighted_round_robin": "weighted round robin",
    "least_loaded": "least loaded",
    "by_conversion": "by conversion",
    "by_rating": "by rating",
    "best_to_best": "best to best",
}


@dataclass(frozen=True, slots=True)
class ManagerState:
    id: int
    key: str
    name: str
    team: str
    capacity: int
    open_leads: int
    hours: WorkingHours
    active: bool = True
    absent: bool = False
    regions: frozenset[str] = frozenset()
    products: frozenset[str] = frozenset()
    languages: frozenset[str] = frozenset()
    email: str | None = None  # where notifications reach them; routing ignores these
    telegram_chat_id: str | None = None
    vacations: tuple[tuple[date, date], ...] = ()
    on_call: bool = False
    weight: int = 1
    tier: int = 2
    role: str = "manager"
    open_value: Decimal = Decimal(0)
    open_deals: int = 0
    closed_leads: int = 0
    won_leads: int = 0
    first_contacts: int = 0
    fast_contacts: int = 0

    def serves(self, field_name: str, value: str | None) -> bool:
        if value is None:
            return True
        allowed = {"region": self.regions, "product": self.products, "language": self.languages}[field_name]
        return value.casefold() in allowed or value.upper() in allowed

    @property
    def conversion(self) -> float | None:
        """Won share of closed leads; None before the first closed lead."""
        return self.won_leads / self.closed_leads if self.closed_leads else None

    @property
    def smoothed_conversion(self) -> float:
        # (won + 1) / (closed + 2): a newcomer starts at 50% instead of 0% or 100%.
        return (self.won_leads + 1) / (self.closed_leads + 2)

    @property
    def rating(self) -> float:
        """The leaderboard score, 0-100: 70% conversion, 30% share of first contacts within 20 minutes."""
        fast = (self.fast_contacts + 1) / (self.first_contacts + 2)
        return round(100 * (0.7 * self.smoothed_conversion + 0.3 * fast), 1)

    def on_vacation(self, at: datetime) -> date | None:
        """The last day of the vacation `at` falls in, in the manager's own time zone."""
        today = at.astimezone(ZoneInfo(self.hours.timezone)).date()
        return next((end for start, end in self.vacations if start <= today <= end), None)


@dataclass(frozen=True, slots=True)
class TeamState:
    """What routing needs to know about people right now; managers in a stable order."""

    managers: Mapping[str, ManagerState]
    rr_pointers: Mapping[str, str | None] = field(default_factory=dict)
    credits: Mapping[str, Mapping[str, float]] = field(default_factory=dict)  # weighted strategies, per rule


@dataclass(frozen=True, slots=True)
class Candidate:
    key: str
    name: str
    eligible: bool
    why: str  # "" when eligible
    load: int
    capacity: int
    inputs: Mapping[str, float | int | str] = field(default_factory=dict)  # what the strategy ranked on


@dataclass(frozen=True, slots=True)
class RuleCheck:
    key: str
    matched: bool
    condition: str
    outcome: str = ""  # "picked Olena", "no one eligible ...", "not reached"


@dataclass(frozen=True, slots=True)
class Decision:
    manager_key: str | None
    manager_id: int | None
    manager_name: str | None
    rule_key: str | None
    strategy: str | None
    reason: str
    candidates: tuple[Candidate, ...] = ()
    matched_rules: tuple[str, ...] = ()
    pointer: tuple[str, str] | None = None  # (rule key, manager key) for the rotation to persist
    credits: tuple[str, Mapping[str, float]] | None = None  # (rule key, credits) for weighted strategies
    checked: tuple[RuleCheck, ...] = ()
    wait_until: datetime | None = None  # out_of_hours: queue — route again at this instant

    @property
    def assigned(self) -> bool:
        return self.manager_key is not None

    @property
    def moves_rotation(self) -> bool:
        """Whether the rule's round-robin pointer follows this pick (an owner kept or a chain hop leaves it)."""
        return self.pointer is not None and self.strategy not in ("sticky", "chain", "chain_end", None)


_FIELD_NAMES = [f.name for f in fields(ManagerState)]
_ALL_FIELDS = attrgetter(*_FIELD_NAMES)
_OPEN_LEADS, _OPEN_VALUE = _FIELD_NAMES.index("open_leads"), _FIELD_NAMES.index("open_value")
_ZERO = Decimal(0)


class LiveState:
    """A team state carried forward in memory between decisions: a batch, a round of escalations.

    The mappings inside ``view`` are this object's own dicts, changed in place: building a new TeamState with a
    copied manager dict for each decision would cost O(managers) per lead.
    """

    def __init__(self, state: TeamState) -> None:
        self.managers: dict[str, ManagerState] = dict(state.managers)
        self.pointers: dict[str, str | None] = dict(state.rr_pointers)
        self.credits: dict[str, Mapping[str, float]] = dict(state.credits)
        self.view = TeamState(self.managers, self.pointers, self.credits)

    def count(self, manager_key: str, delta: int, value: Decimal | None) -> None:
        """A lead in (+1) or out (-1) of a manager's open work: a new state, the old one left as it was."""
        m = self.managers[manager_key]
        # dataclasses.replace, without its per-call look-up of the fields.
        values = list(_ALL_FIELDS(m))
        values[_OPEN_LEADS] = m.open_leads + delta
        values[_OPEN_VALUE] = m.open_value + (value or _ZERO) * delta
        self.managers[manager_key] = ManagerState(*values)

    def follow(self, decision: Decision) -> None:
        """Move the rule's rotation (and a weighted strategy's credits) as the decision says."""
        if decision.pointer is not None:
            self.pointers[decision.pointer[0]] = decision.pointer[1]
        if decision.credits is not None:
            self.credits[decision.credits[0]] = decision.credits[1]

    def take(self, decision: Decision, value: Decimal | None) -> None:
        """Count a new lead in the picked manager's load, and move the rotation as intake would."""
        if decision.manager_key is None:
            return
        self.count(decision.manager_key, +1, value)
        if decision.moves_rotation:
            self.follow(decision)


def matching_rules(lead: CleanLead, rules: RulesFile) -> list[Rule]:
    return [r for r in rules.ordered_rules if r.when.matches(lead)]


def teams_involved(lead: CleanLead, rules: RulesFile) -> list[str]:
    """Teams whose state a decision may read: the service locks and loads exactly these."""
    teams: set[str] = set()
    targets: list[Target] = list(matching_rules(lead, rules))
    if rules.routing.fallback:
        targets.append(rules.routing.fallback)
    for t in targets:
        teams.add(t.team)
        if t.out_of_hours.startswith("team:"):
            teams.add(t.out_of_hours.removeprefix("team:"))
    return sorted(teams)


def tier_band(lead: CleanLead, bands: tuple[TierBand, ...]) -> TierBand | None:
    """The first band the lead reaches by score or win probability; bands are listed best first."""
    for band in bands:
        by_score = band.min_score is not None and lead.score is not None and lead.score >= band.min_score
        by_probability = (
            band.min_probability is not None
            and lead.win_probability is not None
            and lead.win_probability >= band.min_probability
        )
        if by_score or by_probability:
            return band
    return None


def check_manager(
    m: ManagerState, lead: CleanLead, target: Target, now: datetime, *, ignore_hours: bool = False
) -> str:
    """Why this manager cannot take the lead under this target; "" when they can."""
    return _verdicts([m], lead, target, now, ignore_hours=ignore_hours)[0]


_SERVED = {"region": "regions", "product": "products", "language": "languages"}  # ManagerState.serves' sets


def _verdicts(
    pool: list[ManagerState], lead: CleanLead, target: Target, now: datetime, *, ignore_hours: bool = False,
    on_call_only: bool = False,
) -> list[str]:  # fmt: skip
    """check_manager for every manager of the pool (with `on_call_only`, "is not on call" comes first)."""
    parts = _verdict_parts(pool, lead, target, now, ignore_hours=ignore_hours, on_call_only=on_call_only, full=True)
    return [before or (_at_capacity(m) if m.open_leads >= m.capacity else after)
            for m, (before, after) in zip(pool, parts, strict=True)]  # fmt: skip


def _at_capacity(m: ManagerState) -> str:
    return f"{m.name} at capacity {m.open_leads}/{m.capacity}"


def _verdict_parts(
    pool: list[ManagerState], lead: CleanLead, target: Target, now: datetime, *, ignore_hours: bool = False,
    on_call_only: bool = False, full: bool = False,
) -> list[tuple[str, str]]:  # fmt: skip
    """Each manager's verdict in two parts, around the capacity check, which is the only one that looks at the load.

    The verdict is `before`, or else the capacity's, or else `after`. Neither part depends on the load, so the batch
    keeps them while the manager's load moves (Router). With `full`, `after` is not worked out for whoever is at
    capacity (it would not be said). What depends only on the lead and the target (the lead's required values
    folded, the score band, the hour for each schedule) is worked out once for the pool, not once per manager.
    """
    # (set attribute, field, value, folded, upper) for each required field the lead has a value for: a missing
    # value is served by everyone. A value that is not text goes through ManagerState.serves itself.
    required: list[tuple[str, str, Any, Any, Any]] = []
    for name in target.require:
        value = lead.value_of(name)
        if value is None:
            continue
        if isinstance(value, str):
            required.append((_SERVED[name], name, value, value.casefold(), value.upper()))
        else:
            required.append(("", name, value, None, None))
    floor = target.min_conversion
    warmup = target.warmup_leads
    band = tier_band(lead, target.tiers) if target.strategy == "best_to_best" else None
    band_text = "/".join(map(str, band.tiers)) if band is not None else ""
    check_hours = target.respect_hours and not ignore_hours
    open_now: dict[int, bool] = {}  # id(hours) -> open at `now`; the pool's schedules outlive this call
    parts: list[tuple[str, str]] = []
    for m in pool:
        who = m.name
        if on_call_only and not m.on_call:
            parts.append((f"{who} is not on call", ""))
            continue
        if not m.active:
            parts.append((f"{who} inactive", ""))
            continue
        if m.role != "manager":
            parts.append((f"{who} works the {m.role}", ""))
            continue
        if m.absent:
            parts.append((f"{who} absent", ""))
            continue
        if m.vacations and (until := m.on_vacation(now)):
            parts.append((f"{who} on vacation until {until.isoformat()}", ""))
            continue
        if full and m.open_leads >= m.capacity:
            parts.append(("", ""))
            continue
        why = ""
        for attr, field_name, value, folded, upper in required:
            if attr:
                allowed = getattr(m, attr)
                if folded in allowed or upper in allowed:
                    continue
            elif m.serves(field_name, value):
                continue
            why = f"{who} does not serve {field_name} {value}"
            break
        if not why and floor is not None and m.closed_leads >= warmup:
            conversion = m.conversion or 0.0
            if conversion < floor:
                why = f"{who} converts {conversion:.0%}, under the {floor:.0%} minimum"
        if not why and band is not None and m.tier not in band.tiers:
            why = f"{who} is tier {m.tier}, this lead is for tier {band_text}"
        if not why and check_hours:
            hours = m.hours
            is_on = open_now.get(id(hours))
            if is_on is None:
                is_on = open_now[id(hours)] = is_open(hours, now)
            if not is_on:
                why = f"{who} off-shift"
        parts.append(("", why))
    return parts


def _pool(target: Target, state: TeamState) -> list[ManagerState]:
    if target.managers:
        return [state.managers[k] for k in target.managers if k in state.managers]
    team = target.team
    return [m for m in state.managers.values() if m.team == team]


def _rotate(pool: list[ManagerState], last: str | None) -> list[ManagerState]:
    """The pool starting just after the manager who got the previous lead."""
    if last is None:
        return pool
    for i, m in enumerate(pool):
        if m.key == last:
            start = i + 1
            return pool[start:] + pool[:start]
    return pool


_LOAD_ATTR = {"leads": "open_leads", "value": "open_value", "deals": "open_deals"}


def _smooth_weighted(
    eligible: list[ManagerState], weights: dict[str, float], credits: Mapping[str, float]
) -> tuple[ManagerState, dict[str, float]]:
    """Smooth weighted round robin: each turn everyone gains their weight, the richest is picked and pays the total.

    Over time each manager gets leads in proportion to their weight, interleaved rather than in runs.
    """
    new = dict(credits)
    for m in eligible:
        new[m.key] = new.get(m.key, 0.0) + weights[m.key]
    pick = max(eligible, key=lambda m: new[m.key])  # max() keeps the first on ties: the rotation order
    new[pick.key] -= sum(weights[m.key] for m in eligible)
    return pick, {k: round(v, 6) for k, v in new.items()}


@dataclass(frozen=True, slots=True)
class TargetResult:
    pick: ManagerState | None
    candidates: list[Candidate]
    how: str
    credits: dict[str, float] | None = None


def decide_target(
    lead: CleanLead, target: Target, pointer_key: str, state: TeamState, now: datetime, *, ignore_hours: bool = False
) -> TargetResult:
    """Filter the pool, rank the eligible by the target's strategy, pick one."""
    return _decide_target(lead, target, pointer_key, state, now, ignore_hours, None)


def _candidates(
    pool: list[ManagerState], whys: list[str], target: Target, weights: dict[str, float], credit: Mapping[str, float]
) -> list[Candidate]:
    """Each manager's verdict with what the strategy ranks on (the candidate's rank inputs)."""
    strategy = target.strategy
    if strategy == "least_loaded":
        attr = _LOAD_ATTR[target.load]
        return [Candidate(m.key, m.name, not why, why, m.open_leads, m.capacity, {"load": float(getattr(m, attr))})
                for m, why in zip(pool, whys, strict=True)]  # fmt: skip
    if weights:
        return [Candidate(m.key, m.name, not why, why, m.open_leads, m.capacity,
                          {"weight": round(weights[m.key], 4), "credit": round(credit.get(m.key, 0.0), 4)})
                for m, why in zip(pool, whys, strict=True)]  # fmt: skip
    if strategy == "by_rating":
        return [Candidate(m.key, m.name, not why, why, m.open_leads, m.capacity, {"rating": m.rating})
                for m, why in zip(pool, whys, strict=True)]  # fmt: skip
    if strategy == "best_to_best":
        return [Candidate(m.key, m.name, not why, why, m.open_leads, m.capacity, {"tier": m.tier})
                for m, why in zip(pool, whys, strict=True)]  # fmt: skip
    return [Candidate(m.key, m.name, not why, why, m.open_leads, m.capacity, {})
            for m, why in zip(pool, whys, strict=True)]  # fmt: skip


_LOAD_FIELDS = ("open_leads", "open_value", "open_deals")
_STATIC_FIELDS = attrgetter(*(n for n in _FIELD_NAMES if n not in _LOAD_FIELDS))


class Router:
    """route() for a run of leads decided at one instant on one team state carried forward: the batch.

    Every decision is route()'s, to the character. Between two leads of a batch only the picked manager's load
    changes, so the router keeps what decisions worked out per manager and per what the target asks of the lead
    (the values of the fields it requires, the score band):

    * each manager state's verdict, and its candidate record when the rank inputs depend on the manager alone (all
      strategies but the weighted ones, whose credits move every turn), under the ManagerState object itself;
    * the two parts of a verdict around the capacity check (see _verdict_parts), which do not look at the load,
      under the manager: a new state of the same manager that differs only in its load (as LiveState.take makes)
      reuses them, and any other difference makes a new manager of it.

    Policies that look past the rule (on call, another team) are not remembered. A router holds on to every state
    it has seen until forget_states() (the batch calls it with each chunk's newly read state); the verdict parts,
    a few per manager and lead profile, are kept for the router's life.
    """

    def __init__(self, rules: RulesFile, now: datetime) -> None:
        self.rules = rules
        self.now = now
        # what the target asks of the lead -> id(manager state) -> (that state, verdict, candidate or None)
        self._memo: dict[tuple[Any, ...], dict[int, tuple[ManagerState, str, Candidate | None]]] = {}
        # what the target asks of the lead -> manager number -> the verdict's parts
        self._parts: dict[tuple[Any, ...], dict[int, tuple[str, str]]] = {}
        self._numbers: dict[int, tuple[ManagerState, int]] = {}  # id(manager state) -> (that state, manager number)
        self._latest: dict[str, tuple[ManagerState, int]] = {}  # manager key -> (a state seen, its number)
        self._count = count()
        # (id(state), id(target), verdict) -> candidate (the rank inputs depend on the target's strategy); the
        # state is held by _memo's entries, which are let go together with these
        self._made: dict[tuple[int, int, str], Candidate] = {}

    def route(self, lead: CleanLead, state: TeamState) -> Decision:
        return _route(lead, self.rules, state, self.now, self)

    def forget_states(self) -> None:
        """Let go of what is kept per manager state object; a state read afresh shares the parts with the old."""
        for memo in self._memo.values():
            memo.clear()
        self._numbers.clear()
        self._made.clear()

    def _number(self, m: ManagerState) -> int:
        """The same number for states of one manager that differ only in their load."""
        known = self._numbers.get(id(m))
        if known is not None:  # the entry holds its state: no other object can have that id meanwhile
            return known[1]
        seen = self._latest.get(m.key)
        same = seen is not None and _STATIC_FIELDS(seen[0]) == _STATIC_FIELDS(m)
        number = seen[1] if seen is not None and same else next(self._count)  # a new number: another manager
        self._numbers[id(m)] = self._latest[m.key] = (m, number)  # holding m keeps its id from going to another
        return number

    def _judge(
        self, pool: list[ManagerState], lead: CleanLead, target: Target, weighted: bool
    ) -> tuple[list[str], list[Candidate | None]]:
        """Verdicts and (where they can be kept) candidates for the pool: remembered ones, the rest worked out."""
        band = tier_band(lead, target.tiers) if target.strategy == "best_to_best" else None
        # The target is the rules file's own object (the router holds the file), and so are the bands: ids stay unique.
        wanted = (id(target), id(band), *[lead.value_of(name) for name in target.require])
        memo = self._memo.get(wanted)
        if memo is None:
            memo = self._memo[wanted] = {}
            self._parts[wanted] = {}
        # An entry holds its manager state, so while it is there no other object can have that id.
        hits = [memo.get(id(m)) for m in pool]
        if None not in hits:
            return [h[1] for h in hits], [h[2] for h in hits]  # type: ignore[index]
        whys = [h[1] if h is not None else "" for h in hits]
        kept = [h[2] if h is not None else None for h in hits]
        missing = [i for i, h in enumerate(hits) if h is None]
        parts = self._parts[wanted]
        numbers = [self._number(pool[i]) for i in missing]
        new = [(i, n) for i, n in zip(missing, numbers, strict=True) if n not in parts]
        if new:
            found = _verdict_parts([pool[i] for i, _ in new], lead, target, self.now)
            for (_, n), part in zip(new, found, strict=True):
                parts[n] = part
        made = self._made
        todo: list[tuple[int, str]] = []  # (pool index, verdict) of candidates to make
        for i, n in zip(missing, numbers, strict=True):
            m = pool[i]
            before, after = parts[n]
            why = before or (_at_capacity(m) if m.open_leads >= m.capacity else after)
            whys[i] = why
            if not weighted:
                candidate = made.get((id(m), id(target), why))
                if candidate is None:
                    todo.append((i, why))
                kept[i] = candidate
        if todo:
            fresh = _candidates([pool[i] for i, _ in todo], [why for _, why in todo], target, {}, {})
            for (i, why), candidate in zip(todo, fresh, strict=True):
                kept[i] = made[(id(pool[i]), id(target), why)] = candidate
        for i in missing:
            m = pool[i]
            memo[id(m)] = (m, whys[i], kept[i])  # holding m keeps its id from going to another object
        return whys, kept


def _decide_target(
    lead: CleanLead, target: Target, pointer_key: str, state: TeamState, now: datetime, ignore_hours: bool,
    router: Router | None,
) -> TargetResult:  # fmt: skip
    pool = _rotate(_pool(target, state), state.rr_pointers.get(pointer_key))
    strategy = target.strategy
    weights: dict[str, float] = {}
    if strategy == "weighted_round_robin":
        weights = {m.key: float(m.weight) for m in pool}
    elif strategy == "by_conversion":
        weights = {m.key: m.smoothed_conversion for m in pool}
    credit = state.credits.get(pointer_key, {})
    if router is None:
        whys = _verdicts(pool, lead, target, now, ignore_hours=ignore_hours, on_call_only=ignore_hours)
        candidates = _candidates(pool, whys, target, weights, credit)
    else:
        whys, kept = router._judge(pool, lead, target, bool(weights))
        candidates = _candidates(pool, whys, target, weights, credit) if weights else kept  # type: ignore[assignment]
    # least_loaded and by_rating rank on the inputs the candidates show.
    ranks: list[Any] = []
    if strategy == "least_loaded":
        ranks = [c.inputs["load"] for c in candidates]
    elif strategy == "by_rating":
        ranks = [c.inputs["rating"] for c in candidates]
    eligible = [i for i, why in enumerate(whys) if not why]
    skipped = [why for why in whys if why]
    skipped_text = f"; {len(skipped)} skipped: {', '.join(skipped)}" if skipped else ""
    if not eligible:
        return TargetResult(None, candidates, f"no one eligible among {len(pool)}{skipped_text}")
    words = _STRATEGY_WORDS[strategy]
    credits = None
    if strategy == "least_loaded":
        best = min(eligible, key=ranks.__getitem__)  # min() keeps the first on ties: the rotation order
        pick = pool[best]
        unit = {"leads": "open", "value": "in open value", "deals": "open deals"}[target.load]
        how = f"least loaded among {len(eligible)} eligible ({pick.name} has {ranks[best]:g} {unit})"
    elif weights:
        pick, credits = _smooth_weighted([pool[i] for i in eligible], weights, credit)
        what = "weight" if strategy == "weighted_round_robin" else "conversion"
        how = f"{words} among {len(eligible)} eligible ({pick.name}'s {what} {weights[pick.key]:.2f})"
    elif strategy == "by_rating":
        best = max(eligible, key=ranks.__getitem__)
        pick = pool[best]
        how = f"by rating among {len(eligible)} eligible ({pick.name} rated {ranks[best]:g})"
    elif strategy == "best_to_best":
        pick = pool[eligible[0]]
        band = tier_band(lead, target.tiers)
        band_text = f"score {lead.score} → tier {'/'.join(map(str, band.tiers))}" if band else "no score band"
        how = f"best to best ({band_text}), round robin among {len(eligible)} eligible"
    else:
        pick = pool[eligible[0]]
        how = f"round robin among {len(eligible)} eligible"
    return TargetResult(pick, candidates, how + skipped_text, credits)


def _off_shift(result: TargetResult) -> bool:
    """Nobody can take the lead, and at least one manager could but for the hour."""
    return result.pick is None and any(c.why.endswith("off-shift") for c in result.candidates)


def _next_opening(target: Target, state: TeamState, now: datetime) -> datetime | None:
    openings = [t for m in _pool(target, state) if m.active and (t := next_open(m.hours, now)) is not None]
    return min(openings) if openings else None


@lru_cache(maxsize=1024)
def _not_matched(key: str) -> RuleCheck:
    """The check of a rule that did not match: the same (immutable) value for every lead, made once per rule key."""
    return RuleCheck(key, False, "")


def route(lead: CleanLead, rules: RulesFile, state: TeamState, now: datetime) -> Decision:
    """Try matching rules in priority order, then the fallback; an unassigned decision says why."""
    return _route(lead, rules, state, now, None)


def _route(lead: CleanLead, rules: RulesFile, state: TeamState, now: datetime, router: Router | None) -> Decision:
    matched = matching_rules(lead, rules)
    matched_keys = tuple(r.key for r in matched)
    described = {id(r): r.when.describe(lead) for r in matched}
    targets: list[tuple[str, Target, str]] = [(r.key, r, f"rule '{r.key}' matched {described[id(r)]}") for r in matched]
    if rules.routing.fallback:
        targets.append((FALLBACK, rules.routing.fallback, "fallback"))
    # Only matched rules are described: the others' conditions say nothing about this lead.
    checked = {
        r.key: (
            RuleCheck(r.key, True, described[id(r)] if id(r) in described else r.when.describe(lead))
            if r.key in matched_keys
            else _not_matched(r.key)
        )
        for r in rules.ordered_rules
    }
    notes: list[str] = []
    all_candidates: list[Candidate] = []
    for key, target, intro in targets:
        result = _decide_target(lead, target, key, state, now, False, router)
        how = result.how
        if _off_shift(result):
            policy = target.out_of_hours
            if policy == "on_call":
                on_call = decide_target(lead, target, key, state, now, ignore_hours=True)
                if on_call.pick is not None:
                    result, how = on_call, f"everyone off shift: on call — {on_call.how}"
            elif policy.startswith("team:"):
                other = target.model_copy(update={"team": policy.removeprefix("team:"), "managers": ()})
                elsewhere = decide_target(lead, other, key, state, now)
                if elsewhere.pick is not None:
                    result, how = elsewhere, f"everyone off shift: to team {other.team} — {elsewhere.how}"
            elif policy == "queue":
                opening = _next_opening(target, state, now)
                reason = (
                    f"{intro}; everyone off shift: waits for the opening at {opening.isoformat() if opening else '?'}"
                )
                checked[key] = RuleCheck(key, True, checked.get(key, RuleCheck(key, True, "")).condition, "queued")
                return Decision(None, None, None, key, target.strategy, reason, tuple(result.candidates), matched_keys,
                                checked=tuple(checked.values()), wait_until=opening)  # fmt: skip
        all_candidates += result.candidates
        pick = result.pick
        if pick is not None:
            passed = "; ".join(notes)
            reason = f"{intro}; {how}" + (f" (after: {passed})" if passed else "")
            if key in checked:
                checked[key] = RuleCheck(key, True, checked[key].condition, f"picked {pick.name}")
            return Decision(
                manager_key=pick.key,
                manager_id=pick.id,
                manager_name=pick.name,
                rule_key=key,
                strategy=target.strategy,
                reason=reason,
                candidates=tuple(result.candidates),
                matched_rules=matched_keys,
                pointer=(key, pick.key),
                credits=(key, result.credits) if result.credits is not None else None,
                checked=tuple(checked.values()),
            )
        if key in checked:
            checked[key] = RuleCheck(key, True, checked[key].condition, how)
        notes.append(f"{intro} but {how}")
    reason = "unassigned: " + ("; ".join(notes) if notes else "no routing rule matched and there is no fallback")
    return Decision(None, None, None, None, None, reason, tuple(all_candidates), matched_keys,
                    checked=tuple(checked.values()))  # fmt: skip


def sticky_decision(owner: ManagerState | None, duplicate_reason: str) -> Decision | None:
    """A duplicate goes to the manager who already owns the client, if that manager can still work."""
    if owner is None:
        return None
    if not owner.active or owner.absent:
        return None
    return Decision(
        manager_key=owner.key,
        manager_id=owner.id,
        manager_name=owner.name,
        rule_key="sticky-owner",
        strategy="sticky",
        reason=f"{duplicate_reason}; sent to the owner {owner.name}",
        candidates=(Candidate(owner.key, owner.name, True, "", owner.open_leads, owner.capacity),),
    )
