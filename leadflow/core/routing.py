"""Who takes a lead: a pure function of (lead, team state, rules, clock) that says why.

Every strategy is the same three steps: filter the rule's pool down to who may take the lead (active, present,
on shift, under capacity, serving the lead's region/product/language, above the conversion floor, in the right
tier, accepting the lead), rank the eligible by the strategy, pick the first. The filter is here; ranking, the pick
and its sentence are the strategy's, one module each under core/strategies/. Ties always go to whoever is next in
the rotation, so equal managers take turns. The decision carries the reason, every candidate's verdict and the
inputs of its rank.

A repeat lead of a client with an owner is decided by sticky_choice, under the team's (or rule's) sticky policy.

A batch takes route()'s decisions through a Router, which remembers from one lead to the next what does not change
between them (each manager's verdict for leads asking the same of the rule), and decides exactly as route() does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from itertools import count
from operator import attrgetter
from types import MappingProxyType
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from leadflow.core.lead import CleanLead
from leadflow.core.rules import Condition, Rule, RulesFile, Target
from leadflow.core.schedule import WorkingHours, is_open, next_open
from leadflow.core.strategies import STRATEGIES, Strategy, Turn, tier_band

FALLBACK = "fallback"
_STRATEGY_WORDS = {key: s.words for key, s in STRATEGIES.items()}  # how reasons name them


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
    accepts: Condition | None = None  # only leads that match (`accepts:` in the rules file)

    def refuses(self, lead: CleanLead) -> str:
        """Why this manager does not accept the lead ("" when they do, or accept every lead)."""
        if self.accepts is None or self.accepts.matches(lead):
            return ""
        return f"{self.name} does not accept this lead: {self.accepts.miss(lead)}"

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


_NO_INPUTS: Mapping[str, float | int | str] = MappingProxyType({})


# Candidates and rule checks are named tuples: a decision makes dozens of them, and a tuple is made several times
# faster than a frozen dataclass, immutable all the same.
class Candidate(NamedTuple):
    key: str
    name: str
    eligible: bool
    why: str  # "" when eligible
    load: int
    capacity: int
    inputs: Mapping[str, float | int | str] = _NO_INPUTS  # what the strategy ranked on


class RuleCheck(NamedTuple):
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
    whys = [before or (_at_capacity(m) if m.open_leads >= m.capacity else after)
            for m, (before, after) in zip(pool, parts, strict=True)]  # fmt: skip
    _refusals(pool, whys, lead)
    return whys


def _refusals(pool: list[ManagerState], whys: list[str], lead: CleanLead) -> list[int]:
    """A manager who could take the lead but does not accept it (`accepts:`) says so; the indices changed."""
    changed = []
    for i, m in enumerate(pool):
        if m.accepts is not None and not whys[i]:
            refusal = m.refuses(lead)
            if refusal:
                whys[i] = refusal
                changed.append(i)
    return changed


def _wanted_names(target: Target) -> tuple[str, ...]:
    """The lead fields a manager must serve: require and require_strict, each once."""
    if not target.require_strict:
        return target.require
    return tuple(dict.fromkeys((*target.require, *target.require_strict)))


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
    strict: list[tuple[str, str]] = []  # (set attribute, field) the lead lacks, under require_strict
    for name in _wanted_names(target):
        value = lead.value_of(name)
        if value is None:
            if name in target.require_strict:
                strict.append((_SERVED[name], name))
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
        for attr, field_name in strict:
            if not why and getattr(m, attr):
                why = f"{who} serves listed {attr} only and the lead has no {field_name} (require_strict)"
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


@dataclass(slots=True)  # made for every decision: a frozen dataclass's __init__ costs twice as much
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


def _candidates(pool: list[ManagerState], whys: list[str], target: Target) -> list[Candidate]:
    """Each manager's verdict with what the strategy ranks on (the candidate's rank inputs)."""
    inputs = STRATEGIES[target.strategy].inputs
    return [Candidate(m.key, m.name, not why, why, m.open_leads, m.capacity, inputs(m, target))
            for m, why in zip(pool, whys, strict=True)]  # fmt: skip


_LOAD_FIELDS = ("open_leads", "open_value", "open_deals")
_STATIC_FIELDS = attrgetter(*(n for n in _FIELD_NAMES if n not in _LOAD_FIELDS))


class Router:
    """route() for a run of leads decided at one instant on one team state carried forward: the batch.

    Every decision is route()'s, to the character. Between two leads of a batch only the picked manager's load
    changes, so the router keeps what decisions worked out per manager and per what the target asks of the lead
    (the values of the fields it requires, the score band):

    * each manager state's verdict and its candidate record (a strategy's rank inputs depend on the manager alone),
      under the ManagerState object itself;
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
        self._memo: dict[tuple[Any, ...], dict[int, tuple[ManagerState, str, Candidate]]] = {}
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

    def eligible(self, lead: CleanLead, pointer_key: str, target: Target, state: TeamState) -> list[str]:
        """Who may take the lead under this target on this state, in rotation order: the eligible of the target's
        turn in route(), without the pick."""
        pool = _rotate(_pool(target, state), state.rr_pointers.get(pointer_key))
        whys, _ = self._judge(pool, lead, target)
        return [m.key for m, why in zip(pool, whys, strict=True) if not why]

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

    def _judge(self, pool: list[ManagerState], lead: CleanLead, target: Target) -> tuple[list[str], list[Candidate]]:
        """Verdicts and (where they can be kept) candidates for the pool: remembered ones, the rest worked out."""
        band = tier_band(lead, target.tiers) if target.strategy == "best_to_best" else None
        # The target is the rules file's own object (the router holds the file), and so are the bands: ids stay unique.
        wanted = (id(target), id(band), *[lead.value_of(name) for name in _wanted_names(target)])
        memo = self._memo.get(wanted)
        if memo is None:
            memo = self._memo[wanted] = {}
            self._parts[wanted] = {}
        # An entry holds its manager state, so while it is there no other object can have that id.
        hits = [memo.get(id(m)) for m in pool]
        if None not in hits:
            return self._refuse(pool, lead, target, [h[1] for h in hits], [h[2] for h in hits])  # type: ignore[index]
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
            candidate = made.get((id(m), id(target), why))
            if candidate is None:
                todo.append((i, why))
            kept[i] = candidate
        if todo:
            fresh = _candidates([pool[i] for i, _ in todo], [why for _, why in todo], target)
            for (i, why), candidate in zip(todo, fresh, strict=True):
                kept[i] = made[(id(pool[i]), id(target), why)] = candidate
        for i in missing:
            m = pool[i]
            memo[id(m)] = (m, whys[i], kept[i])  # type: ignore[assignment]  # holding m keeps its id
        return self._refuse(pool, lead, target, whys, kept)  # type: ignore[arg-type]

    def _refuse(
        self, pool: list[ManagerState], lead: CleanLead, target: Target, whys: list[str], kept: list[Candidate]
    ) -> tuple[list[str], list[Candidate]]:  # fmt: skip
        """`accepts:` looks at the lead itself, so it is judged afresh for every lead, after what is remembered."""
        changed = _refusals(pool, whys, lead)  # whys is this call's own list
        if changed:
            kept = list(kept)
            fresh = _candidates([pool[i] for i in changed], [whys[i] for i in changed], target)
            for i, candidate in zip(changed, fresh, strict=True):
                kept[i] = candidate
        return whys, kept


def _decide_target(
    lead: CleanLead, target: Target, pointer_key: str, state: TeamState, now: datetime, ignore_hours: bool,
    router: Router | None,
) -> TargetResult:  # fmt: skip
    found = _turn(lead, target, pointer_key, state, now, ignore_hours, router)
    if isinstance(found, TargetResult):
        return found
    strategy, turn, skipped_text = found
    chosen = strategy.pick(turn)
    return TargetResult(turn.pool[chosen.index], turn.candidates, chosen.how + skipped_text, chosen.credits)


def _turn(
    lead: CleanLead, target: Target, pointer_key: str, state: TeamState, now: datetime, ignore_hours: bool,
    router: Router | None,
) -> TargetResult | tuple[Strategy, Turn, str]:  # fmt: skip
    """Filter the pool; a result when no one is eligible, else the strategy and its turn (and who was skipped)."""
    pool = _rotate(_pool(target, state), state.rr_pointers.get(pointer_key))
    strategy = STRATEGIES[target.strategy]
    credit = state.credits.get(pointer_key, {})
    if router is None:
        whys = _verdicts(pool, lead, target, now, ignore_hours=ignore_hours, on_call_only=ignore_hours)
        candidates = _candidates(pool, whys, target)
    else:
        whys, candidates = router._judge(pool, lead, target)
    eligible = [i for i, why in enumerate(whys) if not why]
    skipped = [why for why in whys if why]
    skipped_text = f"; {len(skipped)} skipped: {', '.join(skipped)}" if skipped else ""
    if not eligible:
        return TargetResult(None, candidates, f"no one eligible among {len(pool)}{skipped_text}")
    weights = strategy.weights([pool[i] for i in eligible])  # only the eligible share the lead
    return strategy, Turn(lead, target, pool, candidates, eligible, weights, credit), skipped_text


def preferences(lead: CleanLead, target: Target, pointer_key: str, state: TeamState, now: datetime) -> dict[str, float]:
    """What each eligible manager would cost under the target's strategy (lower is better; empty: no one eligible),
    for an assignment that weighs many leads at once."""
    found = _turn(lead, target, pointer_key, state, now, False, None)
    if isinstance(found, TargetResult):
        return {}
    strategy, turn, _ = found
    return strategy.preference(turn)


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


SKIPPED_IN_FULL = 8  # up to this many skipped candidates are kept one by one; beyond, counted per verdict
_NAMES_PER_VERDICT = 3


def stored_candidates(
    candidates: tuple[Candidate, ...] | list[Candidate], store: CandidateStore | None = None
) -> list[dict[str, Any]]:
    """The candidates as an assignment keeps them: every eligible one in full, and the skipped in full while they
    are few, else one closing entry that counts them per verdict with a few names ("40 skipped: 31 off-shift
    (Olena, Taras, Ivan, ...); 9 at capacity (...)"). What is stored grows with the eligible, not with the team.

    `store` lets many decisions that share candidate records (a batch's router makes each once) share what is
    stored of them too; the entries are read, never changed, by whoever stores them.
    """
    skipped = [c for c in candidates if not c.eligible]
    if len(skipped) <= SKIPPED_IN_FULL:
        return [_candidate_entry(c) for c in candidates] if store is None else store.entries(candidates)
    eligible = [c for c in candidates if c.eligible]
    if store is None:
        return [*map(_candidate_entry, eligible), _skipped_entry(skipped)]
    return [*store.entries(eligible), store.skipped(skipped)]


class CandidateStore:
    """What stored_candidates makes of candidate records, made once per record (and per set of skipped ones)."""

    def __init__(self) -> None:
        self._entries: dict[int, tuple[Candidate, dict[str, Any]]] = {}  # id(candidate) -> (it, its entry)
        self._skipped: dict[tuple[int, ...], tuple[list[Candidate], dict[str, Any]]] = {}

    def entries(self, candidates: tuple[Candidate, ...] | list[Candidate]) -> list[dict[str, Any]]:
        rows = []
        for c in candidates:
            found = self._entries.get(id(c))
            if found is None:
                found = self._entries[id(c)] = (c, _candidate_entry(c))  # holding c keeps its id
            rows.append(found[1])
        return rows

    def skipped(self, skipped: list[Candidate]) -> dict[str, Any]:
        key = tuple(map(id, skipped))
        found = self._skipped.get(key)
        if found is None:
            found = self._skipped[key] = (skipped, _skipped_entry(skipped))  # holding them keeps their ids
        return found[1]


def _skipped_entry(skipped: list[Candidate]) -> dict[str, Any]:
    verdicts: dict[str, dict[str, Any]] = {}
    for c in skipped:
        entry = verdicts.setdefault(verdict_kind(c.name, c.why), {"count": 0, "names": []})
        entry["count"] += 1
        if len(entry["names"]) < _NAMES_PER_VERDICT:
            entry["names"].append(c.name)
    parts = [f"{v['count']} {kind} ({', '.join(v['names'])}{', ...' if v['count'] > len(v['names']) else ''})"
             for kind, v in sorted(verdicts.items(), key=lambda kv: -kv[1]["count"])]  # fmt: skip
    return {"key": None, "name": f"{len(skipped)} skipped", "eligible": False, "why": "; ".join(parts),
            "load": None, "capacity": None, "inputs": {}, "skipped": verdicts}  # fmt: skip


def _candidate_entry(c: Candidate) -> dict[str, Any]:
    return {"key": c.key, "name": c.name, "eligible": c.eligible, "why": c.why, "load": c.load,
            "capacity": c.capacity, "inputs": dict(c.inputs)}  # fmt: skip


@lru_cache(maxsize=4096)
def verdict_kind(name: str, why: str) -> str:
    """The verdict without the name and the figures that make it personal: "at capacity", "off-shift"."""
    why = why.removeprefix(f"{name} ")
    for kind in ("at capacity", "converts", "is tier", "on vacation"):
        if why.startswith(kind):
            return kind
    return why


@dataclass(frozen=True, slots=True)
class StickyChoice:
    """A repeat lead of a client who has an owner: the decision to send it to the owner, or why not."""

    policy: str  # always | available | never
    decision: Decision | None  # to the owner; None: route by the rules
    why_not: str = ""  # "owner Olena is on vacation until 2026-12-05"; "sticky: never"


def sticky_policy(lead: CleanLead, rules: RulesFile, owner_team: str | None) -> tuple[str, timedelta]:
    """The sticky policy and wait for this lead: the first matching rule's `sticky`, else its team's (the team the
    lead is headed for: the first matching rule's, the fallback's, else the owner's)."""
    matched = matching_rules(lead, rules)
    target: Target | None = matched[0] if matched else rules.routing.fallback
    team_key = target.team if target is not None else owner_team
    team = next((t for t in rules.teams if t.key == team_key), None)
    policy = matched[0].sticky if matched and matched[0].sticky else team.sticky if team is not None else "available"
    return policy, team.sticky_wait if team is not None else timedelta(0)


def sticky_choice(
    owner: ManagerState | None, duplicate_reason: str, policy: str, now: datetime, wait: timedelta = timedelta(0)
) -> StickyChoice:
    """Whether a repeat lead goes to the client's owner.

    never: always by the rules. always: to the owner while they work here (active), whatever their day looks like.
    available (the default): to the owner only if they are active, present, not on vacation, under capacity and on
    shift, or their shift opens within `wait`.
    """
    if owner is None:
        return StickyChoice(policy, None, "the client's owner is no longer here")
    who = f"owner {owner.name}"
    if policy == "never":
        return StickyChoice(policy, None, "sticky: never")
    if not owner.active:
        return StickyChoice(policy, None, f"{who} is inactive")
    if policy != "always":
        why = ""
        if owner.role != "manager":
            why = f"{who} works the {owner.role}"
        elif owner.absent:
            why = f"{who} is absent"
        elif owner.vacations and (until := owner.on_vacation(now)):
            why = f"{who} is on vacation until {until.isoformat()}"
        elif owner.open_leads >= owner.capacity:
            why = f"{who} is at capacity {owner.open_leads}/{owner.capacity}"
        elif not is_open(owner.hours, now):
            opening = next_open(owner.hours, now)
            if opening is None or opening - now > wait:
                at = f" until {opening.isoformat()}" if opening is not None else ""
                why = f"{who} is off shift{at}"
        if why:
            return StickyChoice(policy, None, why)
    decision = Decision(
        manager_key=owner.key,
        manager_id=owner.id,
        manager_name=owner.name,
        rule_key="sticky-owner",
        strategy="sticky",
        reason=f"{duplicate_reason}; sent to the owner {owner.name} (sticky: {policy})",
        candidates=(Candidate(owner.key, owner.name, True, "", owner.open_leads, owner.capacity),),
    )
    return StickyChoice(policy, decision)
