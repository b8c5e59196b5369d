"""The routing decision written the plain way, one manager and one rule at a time: the model the optimised code in
leadflow/core/routing.py (one pass per pool, Router's memory between leads) is checked against in
tests/core/test_routing_equivalence.py. Keep it plain: its worth is being obviously right, not fast. A change to what
routing decides is made here too, and the equivalence tests say whether both agree."""

# ruff: noqa
# mypy: ignore-errors
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from leadflow.core.lead import CleanLead
from leadflow.core.routing import (
    _STRATEGY_WORDS,
    FALLBACK,
    Candidate,
    Decision,
    ManagerState,
    RuleCheck,
    TeamState,
)
from leadflow.core.rules import Condition, Rule, RulesFile, Target, TierBand, _match_one
from leadflow.core.schedule import is_open, next_open


def _matches(condition: Condition, lead: CleanLead) -> bool:
    return all(_match_one(lead.value_of(name), want) for name, want in condition._compiled)


def matching_rules(lead: CleanLead, rules: RulesFile) -> list[Rule]:
    return [r for r in rules.ordered_rules if _matches(r.when, lead)]


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
