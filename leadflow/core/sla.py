"""First contact: which deadline applies, when it falls, and who gets the lead when it passes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from leadflow.core.lead import CleanLead
from leadflow.core.routing import FALLBACK, Candidate, Decision, TeamState, check_manager, decide_target
from leadflow.core.rules import TEAM_HEAD, RulesFile, SlaPolicy, Target
from leadflow.core.schedule import WorkingHours, add_working_time, format_duration

# Response-time bands and what each does to conversion (seed 001: +30%, +10%, 0%, -30%).
BANDS = ((timedelta(minutes=20), "≤20m"), (timedelta(hours=3), "≤3h"), (timedelta(hours=12), "≤12h"))
LATE_BAND = ">12h"


def policy_for(rules: RulesFile, lead: CleanLead, rule_key: str | None, team_key: str | None) -> SlaPolicy:
    """The default, then the channel's own deadline, then the first override that matches."""
    policy = rules.sla.default
    for channel, window in rules.sla.channels.items():
        if channel.casefold() == lead.channel.casefold():
            policy = policy.model_copy(update={"first_contact": window})
    for o in rules.sla.overrides:
        if (
            (o.rule is None or o.rule == rule_key)
            and (o.team is None or o.team == team_key)
            and (o.channel is None or o.channel.casefold() == lead.channel.casefold())
            and (o.temperature is None or o.temperature == lead.temperature)
        ):
            changes = {
                k: v for k, v in (("first_contact", o.first_contact), ("count", o.count), ("chain", o.chain)) if v
            }
            return policy.model_copy(update=changes)
    return policy


def first_contact_due(policy: SlaPolicy, start: datetime, hours: WorkingHours) -> datetime:
    """When the owner's time is up; in working hours the clock stops while the owner is off shift."""
    if policy.count == "wall_clock" or hours.always_open:
        return start + policy.first_contact
    return add_working_time(hours, start, policy.first_contact)


def response_band(received_at: datetime, first_contact_at: datetime) -> str:
    waited = first_contact_at - received_at
    return next((label for limit, label in BANDS if waited <= limit), LATE_BAND)


@dataclass(frozen=True, slots=True)
class Escalation:
    decision: Decision
    hop: int  # hops made so far, this one included
    final: bool  # the chain is over: the lead went to its final target (or nowhere)


def _final(
    policy: SlaPolicy, state: TeamState, head_key: str | None, intro: str, hop: int, candidates: tuple[Candidate, ...]
) -> Escalation:
    target_key = head_key if policy.chain.final == TEAM_HEAD else policy.chain.final
    who = state.managers.get(target_key) if target_key else None
    if who is None or not who.active:
        why = "the team has no head" if target_key is None else f"{target_key} cannot take it"
        reason = f"{intro}; end of the chain, but {why}: unassigned"
        return Escalation(Decision(None, None, None, None, None, reason, candidates), hop, True)
    reason = f"{intro}; end of the chain: to {who.name}, head of the team"
    decision = Decision(who.key, who.id, who.name, "sla-final", "chain_end", reason, candidates)
    return Escalation(decision, hop, True)


def next_owner(
    lead: CleanLead,
    rules: RulesFile,
    state: TeamState,
    now: datetime,
    *,
    policy: SlaPolicy,
    current_key: str,
    hop: int,
    tried: tuple[str, ...],
    rule_key: str | None,
    team_key: str,
    head_key: str | None,
) -> Escalation:
    """The owner missed the deadline: the next manager in the chain, or the end of the chain."""
    current = state.managers.get(current_key)
    name = current.name if current else current_key
    hop += 1
    chain = policy.chain
    intro = f"no first contact by {name} within {format_duration(policy.first_contact)}"
    if hop > chain.max_hops:
        return _final(policy, state, head_key, f"{intro}; all {chain.max_hops} hops of the chain used", hop, ())
    intro = f"{intro}; hop {hop}/{chain.max_hops}"
    excluded = {*tried, current_key}
    target = _chain_target(rules, rule_key, team_key)
    if chain.managers:
        keys = list(chain.managers)
        start = keys.index(current_key) + 1 if current_key in keys else 0
        order = [k for k in keys[start:] + keys[:start] if k not in excluded and k in state.managers]
        candidates = []
        for key in order:
            why = check_manager(state.managers[key], lead, target, now)
            candidates.append(Candidate(key, state.managers[key].name, not why, why, 0, 0))
            if not why:
                nxt = state.managers[key]
                skipped = [c.why for c in candidates if not c.eligible]
                how = "next in the chain" + (f"; skipped: {', '.join(skipped)}" if skipped else "")
                decision = Decision(nxt.key, nxt.id, nxt.name, "sla-chain", "chain", f"{intro}; next: {nxt.name}, {how}",
                                    tuple(candidates))  # fmt: skip
                return Escalation(decision, hop, False)
        return _final(policy, state, head_key, f"{intro}; no one left in the chain", hop, tuple(candidates))
    pool = target.managers or tuple(m.key for m in state.managers.values() if m.team == target.team)
    # The head is where the chain ends, not a hop along it.
    remaining = tuple(k for k in pool if k not in excluded and k != head_key)
    if not remaining:
        return _final(policy, state, head_key, f"{intro}; everyone in the chain has had it", hop, ())
    narrowed = target.model_copy(update={"managers": remaining})
    result = decide_target(lead, narrowed, rule_key or FALLBACK, state, now)
    pick, found, how = result.pick, result.candidates, result.how
    if pick is None:
        return _final(policy, state, head_key, f"{intro}; {how}", hop, tuple(found))
    reason = f"{intro}; next: {pick.name}, {how}"
    return Escalation(
        Decision(
            pick.key,
            pick.id,
            pick.name,
            rule_key,
            target.strategy,
            reason,
            tuple(found),
            pointer=(rule_key or FALLBACK, pick.key),
            credits=(rule_key or FALLBACK, result.credits) if result.credits is not None else None,
        ),
        hop,
        False,
    )


def _chain_target(rules: RulesFile, rule_key: str | None, team_key: str) -> Target:
    """The rule that first routed the lead decides who is eligible next; otherwise its team, in turns."""
    for rule in rules.routing.rules:
        if rule.key == rule_key:
            return rule
    if rule_key == FALLBACK and rules.routing.fallback:
        return rules.routing.fallback
    return Target(team=team_key)
