"""The optimised routing code decides exactly as the plain model in tests/core/routing_reference.py: same pick, same
reason, same candidates with the same verdicts and rank inputs, same rules checked, same pointer and credits."""

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leadflow.core.lead import CleanLead
from leadflow.core.routing import LiveState, ManagerState, Router, TeamState, check_manager, route
from leadflow.core.rules import RulesFile
from leadflow.core.rules_text import parse_rules
from tests.core import routing_reference as reference
from tests.core.test_routing_properties import scenarios, target_of

STRATEGIES = ["round_robin", "weighted_round_robin", "least_loaded", "by_conversion", "by_rating", "best_to_best"]


@settings(max_examples=800, deadline=None)
@given(scenarios())
def test_route_decides_as_the_reference(scenario: tuple[RulesFile, TeamState, CleanLead, datetime]) -> None:
    rules, state, lead, at = scenario
    expected = reference.route(lead, rules, state, at)
    assert route(lead, rules, state, at) == expected
    router = Router(rules, at)
    assert router.route(lead, state) == expected
    assert router.route(lead, state) == expected  # from what the router remembers


@settings(max_examples=300, deadline=None)
@given(scenarios(), st.booleans())
def test_check_manager_judges_as_the_reference(
    scenario: tuple[RulesFile, TeamState, CleanLead, datetime], ignore_hours: bool
) -> None:
    rules, state, lead, at = scenario
    for target in (*rules.routing.rules, target_of(rules, None)):
        for m in state.managers.values():
            expected = reference.check_manager(m, lead, target, at, ignore_hours=ignore_hours)
            assert check_manager(m, lead, target, at, ignore_hours=ignore_hours) == expected


def _many_rules(strategy: str, rng: random.Random) -> str:
    regions, products = ["KY", "LV", "OD", "IF"], ["credit", "leasing", "cards"]
    managers = "\n".join(
        f"  - {{key: m{i}, name: M{i}, team: t{i % 3}, regions: {rng.sample(regions, 2)}, "
        f"products: {rng.sample(products, 2)}, capacity: {rng.randint(5, 40)}, weight: {rng.randint(1, 4)}, "
        f"tier: {rng.randint(1, 3)}}}"
        for i in range(24)
    )
    return f"""
teams: [{{key: t0, hours: always}}, {{key: t1, hours: {{mon-fri: "09:00-18:00"}}}}, {{key: t2, hours: always}}]
managers:
{managers}
routing:
  rules:
    - {{key: big, priority: 9, team: t2, when: {{budget: {{gte: 50000}}}}, strategy: {strategy}, load: value,
        require: [region]}}
    - {{key: utm, priority: 8, team: t0, when: {{utm_source: [Google, fb]}}, strategy: {strategy}, require: [product]}}
    - {{key: west, priority: 5, team: t1, when: {{region: [LV, IF]}}, strategy: {strategy}, require: [product],
        out_of_hours: "team:t0"}}
    - {{key: words, team: t0, when: {{message: {{contains: [urgent]}}, product: credit}}, strategy: {strategy},
        require: [region, product], min_conversion: 0.2, warmup_leads: 0}}
    - {{key: none, team: t2, when: {{language: null}}, strategy: {strategy}, require: [region, language]}}
    - {{key: calls, team: t1, when: {{product: cards}}, strategy: {strategy}, out_of_hours: on_call}}
    - {{key: later, team: t1, when: {{region: OD}}, strategy: {strategy}, out_of_hours: queue}}
  fallback: {{team: t0, strategy: {strategy}, require: [region]}}
"""


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_run_of_decisions_matches_the_reference(strategy: str) -> None:
    """Hundreds of leads with the state carried forward as the batch carries it: loads, rotation and credits."""
    rng = random.Random(7)
    rules = parse_rules(_many_rules(strategy, rng))
    states = {}
    for i, m in enumerate(rules.managers, start=1):
        closed = rng.randint(0, 30)
        states[m.key] = ManagerState(
            id=i, key=m.key, name=m.name, team=m.team, capacity=m.capacity, open_leads=rng.randint(0, 3),
            hours=rules.hours_of(m), regions=frozenset(m.regions), products=frozenset(m.products),
            languages=frozenset(m.languages), weight=m.weight, tier=m.tier, on_call=i % 4 == 0,
            absent=i % 11 == 0, open_value=Decimal(rng.randint(0, 90_000)), closed_leads=closed,
            won_leads=rng.randint(0, closed), first_contacts=10, fast_contacts=rng.randint(0, 10),
        )  # fmt: skip
    fast, slow, batch = (LiveState(TeamState(states)) for _ in range(3))
    at = datetime(2026, 11, 24, 6, 30, tzinfo=UTC)
    routers = {at + timedelta(hours=h): Router(rules, at + timedelta(hours=h)) for h in (0, 5, 12)}
    for i in range(400):
        lead = CleanLead(
            channel="web", phone=f"+38067{i:07d}", region=rng.choice(["KY", "LV", "OD", "IF", None]),
            product=rng.choice(["credit", "leasing", "cards", "Credit", None]),
            budget=rng.choice([None, Decimal(rng.randint(0, 100_000))]), score=rng.choice([None, 3, 10, 17]),
            message=rng.choice([None, "URGENT please", "hello"]), utm={"utm_source": rng.choice(["google", "x"])},
        )  # fmt: skip
        now = at + timedelta(minutes=37 * i)
        decision = route(lead, rules, fast.view, now)
        assert decision == reference.route(lead, rules, slow.view, now)
        fast.take(decision, lead.budget)
        slow.take(decision, lead.budget)
        assert fast.managers == slow.managers
        # The batch's way: one instant per router, leads of every kind in turn, the state carried forward.
        when = list(routers)[i % 3]
        decision = routers[when].route(lead, batch.view)
        assert decision == reference.route(lead, rules, batch.view, when)
        batch.take(decision, lead.budget)
