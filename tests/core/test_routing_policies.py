"""Strategies as modules, per-manager `accepts`, `require_strict`, the sticky policy and the stored candidate list:
pure decisions on teams built in the test, a fixed clock."""

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from leadflow.core import strategies
from leadflow.core.lead import CleanLead
from leadflow.core.routing import (
    SKIPPED_IN_FULL,
    Candidate,
    ManagerState,
    Router,
    TeamState,
    preferences,
    route,
    sticky_choice,
    sticky_policy,
    stored_candidates,
)
from leadflow.core.rules import RulesFile
from leadflow.core.rules_text import RulesError, parse_rules
from leadflow.core.schedule import ALWAYS, parse_working_hours

MONDAY_NOON = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)  # 12:00 in Kyiv
OFFICE = parse_working_hours({"mon-fri": "09:00-18:00"}, "Europe/Kyiv")
STRATEGIES = ["round_robin", "weighted_round_robin", "least_loaded", "by_conversion", "by_rating", "best_to_best"]


def people(rules: RulesFile, **changes: dict[str, Any]) -> dict[str, ManagerState]:
    found = {}
    for i, m in enumerate(rules.managers, start=1):
        state = ManagerState(id=i, key=m.key, name=m.name, team=m.team, capacity=m.capacity, open_leads=0,
                             hours=rules.hours_of(m), regions=frozenset(m.regions), products=frozenset(m.products),
                             tier=m.tier, weight=m.weight, accepts=m.accepts,
                             vacations=tuple((v.start, v.end) for v in m.vacations))  # fmt: skip
        found[m.key] = replace(state, **changes.get(m.key, {}))
    return found


def rules_for(strategy: str, managers: str, rule: str = "") -> RulesFile:
    return parse_rules(f"""
default_timezone: Europe/Kyiv
teams: [{{key: sales, hours: always}}]
managers:
{managers}
routing:
  rules:
    - {{key: all, team: sales, strategy: {strategy}{rule}}}
""")


def test_every_strategy_is_a_module_in_the_registry() -> None:
    assert sorted(strategies.STRATEGIES) == sorted(STRATEGIES)
    for key, found in strategies.STRATEGIES.items():
        assert type(found).__module__ == f"leadflow.core.strategies.{key}"
    with pytest.raises(RulesError, match="strategy 'fastest' is not known"):
        rules_for("fastest", "  - {key: a, name: A, team: sales}")


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_the_pick_costs_least_in_the_strategys_preference(strategy: str) -> None:
    rules = rules_for(strategy, """  - {key: a, name: A, team: sales, weight: 1, tier: 1}
  - {key: b, name: B, team: sales, weight: 3, tier: 1}
  - {key: c, name: C, team: sales, weight: 2, tier: 2}""")  # fmt: skip
    team = people(rules, a={"open_leads": 4, "closed_leads": 10, "won_leads": 1},
                  b={"open_leads": 1, "closed_leads": 10, "won_leads": 6}, c={"open_leads": 7})  # fmt: skip
    lead = CleanLead(channel="web", phone="+380671234567", score=3)
    state = TeamState(team, {"all": "a"})
    decision = route(lead, rules, state, MONDAY_NOON)
    costs = preferences(lead, rules.routing.rules[0], "all", state, MONDAY_NOON)
    eligible = {c.key for c in decision.candidates if c.eligible}
    assert set(costs) == eligible
    assert decision.manager_key == min(costs, key=lambda k: (costs[k], list(costs).index(k)))


ACCEPTING = """  - {key: olena, name: Olena, team: sales, tier: 1, accepts: {score: {gte: 20}}}
  - {key: taras, name: Taras, team: sales, tier: 1, accepts: {product: [credit, leasing], extra.city: Kyiv}}"""


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_manager_takes_only_leads_they_accept_in_every_strategy(strategy: str) -> None:
    rules = rules_for(strategy, ACCEPTING)
    state = TeamState(people(rules))
    low = CleanLead(channel="web", phone="+380671234567", score=12, product="cards")
    decision = route(low, rules, state, MONDAY_NOON)
    assert decision.manager_key is None
    whys = [c.why for c in decision.candidates]
    assert whys == ["Olena does not accept this lead: score 12, accepts score ≥ 20",
                    "Taras does not accept this lead: product cards, accepts product one of credit, leasing"]  # fmt: skip
    router = Router(rules, MONDAY_NOON)
    for _ in range(2):  # the second from what the router remembers
        assert router.route(low, state) == decision
    city = CleanLead(channel="web", phone="+380671234567", score=12, product="credit", extra={"city": "kyiv"})
    assert route(city, rules, state, MONDAY_NOON).manager_key == "taras"
    assert router.route(city, state).manager_key == "taras"
    high = CleanLead(channel="web", phone="+380671234567", score=25)
    assert route(high, rules, state, MONDAY_NOON).manager_key == "olena"
    assert router.route(high, state).manager_key == "olena"


def test_accepts_is_checked_like_a_rule_condition() -> None:
    with pytest.raises(RulesError, match="unknown lead field 'scor'"):
        rules_for("round_robin", "  - {key: a, name: A, team: sales, accepts: {scor: {gte: 1}}}")
    rules = rules_for("round_robin", ACCEPTING)
    olena = rules.managers[0].accepts
    assert olena is not None
    assert olena.as_json() == {"score": {"gte": 20}}


STRICT = """  - {key: olena, name: Olena, team: sales, regions: [UA]}
  - {key: marek, name: Marek, team: sales, regions: [PL]}
  - {key: iryna, name: Iryna, team: sales}"""


def test_require_strict_keeps_leads_without_the_field_from_regional_managers() -> None:
    loose = rules_for("round_robin", STRICT, ", require: [region]")
    strict = rules_for("round_robin", STRICT, ", require_strict: [region]")
    state = TeamState(people(strict))
    nowhere = CleanLead(channel="web", phone="+380671234567")
    assert sum(c.eligible for c in route(nowhere, loose, state, MONDAY_NOON).candidates) == 3
    decision = route(nowhere, strict, state, MONDAY_NOON)
    assert decision.manager_key == "iryna"
    assert "Marek serves listed regions only and the lead has no region (require_strict)" in decision.reason
    polish = CleanLead(channel="web", phone="+380671234567", region="PL")
    assert {c.key for c in route(polish, strict, state, MONDAY_NOON).candidates if c.eligible} == {"marek"}
    router = Router(strict, MONDAY_NOON)
    assert router.route(nowhere, state) == decision
    assert router.route(polish, state).manager_key == "marek"


OWNER = ManagerState(id=1, key="olena", name="Olena", team="kyiv", capacity=2, open_leads=0, hours=OFFICE)


@pytest.mark.parametrize(
    ("changes", "at", "wait", "why"),
    [
        ({}, MONDAY_NOON, timedelta(0), ""),
        ({"absent": True}, MONDAY_NOON, timedelta(0), "owner Olena is absent"),
        ({"vacations": ((date(2026, 11, 20), date(2026, 12, 5)),)}, MONDAY_NOON, timedelta(0),
         "owner Olena is on vacation until 2026-12-05"),
        ({"open_leads": 2}, MONDAY_NOON, timedelta(0), "owner Olena is at capacity 2/2"),
        ({}, MONDAY_NOON.replace(hour=6, minute=40), timedelta(0),
         "owner Olena is off shift until 2026-11-23T07:00:00+00:00"),
        ({}, MONDAY_NOON.replace(hour=6, minute=40), timedelta(minutes=30), ""),  # opens within sticky_wait
        ({"active": False}, MONDAY_NOON, timedelta(0), "owner Olena is inactive"),
    ],
)  # fmt: skip
def test_sticky_available_sends_to_an_owner_who_can_work(
    changes: dict[str, Any], at: datetime, wait: timedelta, why: str
) -> None:
    choice = sticky_choice(replace(OWNER, **changes), "duplicate of lead #1", "available", at, wait)
    assert choice.why_not == why
    assert (choice.decision is not None) == (not why)
    if choice.decision is not None:
        assert choice.decision.manager_key == "olena"
        assert choice.decision.reason == "duplicate of lead #1; sent to the owner Olena (sticky: available)"


def test_sticky_always_ignores_vacation_and_hours_and_never_routes_by_rules() -> None:
    away = replace(OWNER, vacations=((date(2026, 11, 20), date(2026, 12, 5)),), open_leads=2, hours=OFFICE)
    night = MONDAY_NOON.replace(hour=22)
    assert sticky_choice(away, "dup", "always", night).decision is not None
    assert sticky_choice(replace(away, active=False), "dup", "always", night).decision is None
    never = sticky_choice(replace(OWNER, hours=ALWAYS), "dup", "never", MONDAY_NOON)
    assert (never.decision, never.why_not) == (None, "sticky: never")


def test_sticky_policy_is_the_teams_unless_the_rule_says_otherwise() -> None:
    rules = parse_rules("""
teams:
  - {key: kyiv, sticky: always, sticky_wait: 30m}
  - {key: vip}
managers: [{key: olena, name: Olena, team: kyiv}, {key: iryna, name: Iryna, team: vip}]
routing:
  rules:
    - {key: tender, priority: 5, team: kyiv, when: {extra.kind: tender}, sticky: never}
    - {key: vip, team: vip, when: {score: {gte: 17}}}
  fallback: {team: kyiv}
""")
    lead = CleanLead(channel="web", phone="+380671234567")
    assert sticky_policy(lead, rules, "vip") == ("always", timedelta(minutes=30))
    assert sticky_policy(replace(lead, score=18), rules, "kyiv") == ("available", timedelta(0))
    assert sticky_policy(replace(lead, extra={"kind": "tender"}), rules, "kyiv")[0] == "never"


def test_the_stored_candidates_grow_with_the_eligible_not_the_team() -> None:
    lines = "\n".join(f"  - {{key: m{i}, name: M{i}, team: sales, regions: [{'UA' if i < 3 else 'PL'}]}}"
                      for i in range(500))  # fmt: skip
    rules = rules_for("round_robin", lines, ", require: [region]")
    team = people(rules, **{f"m{i}": {"open_leads": 50} for i in range(3, 40)})
    decision = route(CleanLead(channel="web", phone="+380671234567", region="UA"), rules, TeamState(team), MONDAY_NOON)
    stored = stored_candidates(decision.candidates)
    assert len(decision.candidates) == 500 and len(stored) == 4
    assert [c["key"] for c in stored[:3]] == ["m0", "m1", "m2"]
    summary = stored[3]
    assert summary["name"] == "497 skipped"
    assert summary["skipped"]["does not serve region UA"] == {"count": 460, "names": ["M40", "M41", "M42"]}
    assert summary["skipped"]["at capacity"]["count"] == 37
    assert summary["why"].startswith("460 does not serve region UA (M40, M41, M42, ...); 37 at capacity (M3, ")
    few = [Candidate(f"m{i}", f"M{i}", i == 0, "" if i == 0 else f"M{i} absent", 0, 5) for i in range(3)]
    assert [c["why"] for c in stored_candidates(few)] == ["", "M1 absent", "M2 absent"]  # few: kept one by one
    assert SKIPPED_IN_FULL >= 2


def _complete_examples() -> list[str]:
    text = (Path(__file__).parents[2] / "docs" / "rules.md").read_text(encoding="utf-8")
    blocks = [b.split("```", 1)[0] for b in text.split("```yaml\n")[1:]]
    return [b for b in blocks if b.startswith("# a complete rules file")]


def test_the_documented_policy_examples_pass_check_rules() -> None:
    examples = _complete_examples()
    words = ("sticky:", "sticky_wait:", "accepts:", "require_strict:")
    assert all(any(w in b for b in examples) for w in words)
    for block in examples:
        parse_rules(block, "docs/rules.md")  # what `leadflow check-rules` runs; raises RulesError on any problem
