"""Who takes a lead: a pure function of (lead, team state, rules, clock) that says why.

Every strategy is the same three steps: filter the rule's pool down to who may take the lead (active, present,
on shift, under capacity, serving the lead's region/product/language, above the conversion floor, in the right
tier), rank the eligible by the strategy, pick the first. Ties always go to whoever is next in the rotation, so
equal managers take turns. The decision carries the reason, every candidate's verdict and the inputs of its rank.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
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
    if not m.active:
        return f"{m.name} inactive"
    if m.role != "manager":
        return f"{m.name} works the {m.role}"
    if m.absent:
        return f"{m.name} absent"
    if m.vacations and (until := m.on_vacation(now)):
        return f"{m.name} on vacation until {until.isoformat()}"
    if m.open_leads >= m.capacity:
        return f"{m.name} at capacity {m.open_leads}/{m.capacity}"
    for name in target.require:
        value = lead.value_of(name)
        if not m.serves(name, value):
            return f"{m.name} does not serve {name} {value}"
    if target.min_conversion is not None and m.closed_leads >= target.warmup_leads:
        conversion = m.conversion or 0.0
        if conversion < target.min_conversion:
            return f"{m.name} converts {conversion:.0%}, under the {target.min_conversion:.0%} minimum"
    if target.strategy == "best_to_best":
        band = tier_band(lead, target.tiers)
        if band is not None and m.tier not in band.tiers:
            return f"{m.name} is tier {m.tier}, this lead is for tier {'/'.join(map(str, band.tiers))}"
    if target.respect_hours and not ignore_hours and not is_open(m.hours, now):
        return f"{m.name} off-shift"
    return ""


def _pool(target: Target, state: TeamState) -> list[ManagerState]:
    if target.managers:
        return [state.managers[k] for k in target.managers if k in state.managers]
    return [m for m in state.managers.values() if m.team == target.team]


def _rotate(pool: list[ManagerState], last: str | None) -> list[ManagerState]:
    """The pool starting just after the manager who got the previous lead."""
    keys = [m.key for m in pool]
    if last in keys:
        start = keys.index(last) + 1
        return pool[start:] + pool[:start]
    return pool


def _load(m: ManagerState, target: Target) -> float:
    if target.load == "value":
        return float(m.open_value)
    if target.load == "deals":
        return float(m.open_deals)
    return float(m.open_leads)


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
    pool = _rotate(_pool(target, state), state.rr_pointers.get(pointer_key))
    strategy = target.strategy
    weights: dict[str, float] = {}
    if strategy == "weighted_round_robin":
        weights = {m.key: float(m.weight) for m in pool}
    elif strategy == "by_conversion":
        weights = {m.key: m.smoothed_conversion for m in pool}
    candidates = []
    eligible = []
    for m in pool:
        if ignore_hours and not m.on_call:
            why = f"{m.name} is not on call"
        else:
            why = check_manager(m, lead, target, now, ignore_hours=ignore_hours)
        inputs: dict[str, float | int | str] = {}
        if strategy == "least_loaded":
            inputs["load"] = _load(m, target)
        elif weights:
            inputs["weight"] = round(weights[m.key], 4)
            inputs["credit"] = round(state.credits.get(pointer_key, {}).get(m.key, 0.0), 4)
        elif strategy == "by_rating":
            inputs["rating"] = m.rating
        elif strategy == "best_to_best":
            inputs["tier"] = m.tier
        candidates.append(Candidate(m.key, m.name, not why, why, m.open_leads, m.capacity, inputs))
        if not why:
            eligible.append(m)
    skipped = [c.why for c in candidates if not c.eligible]
    skipped_text = f"; {len(skipped)} skipped: {', '.join(skipped)}" if skipped else ""
    if not eligible:
        return TargetResult(None, candidates, f"no one eligible among {len(pool)}{skipped_text}")
    words = _STRATEGY_WORDS[strategy]
    credits = None
    if strategy == "least_loaded":
        pick = min(eligible, key=lambda m: _load(m, target))
        unit = {"leads": "open", "value": "in open value", "deals": "open deals"}[target.load]
        how = f"least loaded among {len(eligible)} eligible ({pick.name} has {_load(pick, target):g} {unit})"
    elif weights:
        pick, credits = _smooth_weighted(eligible, weights, state.credits.get(pointer_key, {}))
        what = "weight" if strategy == "weighted_round_robin" else "conversion"
        how = f"{words} among {len(eligible)} eligible ({pick.name}'s {what} {weights[pick.key]:.2f})"
    elif strategy == "by_rating":
        pick = max(eligible, key=lambda m: m.rating)
        how = f"by rating among {len(eligible)} eligible ({pick.name} rated {pick.rating:g})"
    elif strategy == "best_to_best":
        pick = eligible[0]
        band = tier_band(lead, target.tiers)
        band_text = f"score {lead.score} → tier {'/'.join(map(str, band.tiers))}" if band else "no score band"
        how = f"best to best ({band_text}), round robin among {len(eligible)} eligible"
    else:
        pick = eligible[0]
        how = f"round robin among {len(eligible)} eligible"
    return TargetResult(pick, candidates, how + skipped_text, credits)


def _off_shift(result: TargetResult) -> bool:
    """Nobody can take the lead, and at least one manager could but for the hour."""
    return result.pick is None and any(c.why.endswith("off-shift") for c in result.candidates)


def _next_opening(target: Target, state: TeamState, now: datetime) -> datetime | None:
    openings = [t for m in _pool(target, state) if m.active and (t := next_open(m.hours, now)) is not None]
    return min(openings) if openings else None


def route(lead: CleanLead, rules: RulesFile, state: TeamState, now: datetime) -> Decision:
    """Try matching rules in priority order, then the fallback; an unassigned decision says why."""
    matched = matching_rules(lead, rules)
    matched_keys = tuple(r.key for r in matched)
    targets: list[tuple[str, Target, str]] = [
        (r.key, r, f"rule '{r.key}' matched {r.when.describe(lead)}") for r in matched
    ]
    if rules.routing.fallback:
        targets.append((FALLBACK, rules.routing.fallback, "fallback"))
    # Only matched rules are described: the others' conditions say nothing about this lead.
    checked = {
        r.key: RuleCheck(r.key, r.key in matched_keys, r.when.describe(lead) if r.key in matched_keys else "")
        for r in rules.ordered_rules
    }
    notes: list[str] = []
    all_candidates: list[Candidate] = []
    for key, target, intro in targets:
        result = decide_target(lead, target, key, state, now)
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
