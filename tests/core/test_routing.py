"""Routing as a pure function: teams built in the test, a fixed clock, no database."""

from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime

from leadflow.core.lead import CleanLead
from leadflow.core.routing import ManagerState, TeamState, route, sticky_choice
from leadflow.core.rules_text import parse_rules
from leadflow.core.schedule import parse_working_hours

RULES = parse_rules(
    """
default_timezone: Europe/Kyiv
teams: [{key: kyiv, timezone: Europe/Kyiv}, {key: night, timezone: America/New_York}]
managers:
  - {key: olena, name: Olena, team: kyiv, products: [credit], regions: [UA]}
  - {key: taras, name: Taras, team: kyiv, products: [credit, leasing], regions: [UA]}
  - {key: andrii, name: Andrii, team: kyiv, products: [leasing], regions: [PL]}
  - {key: nick, name: Nick, team: night}
routing:
  rules:
    - {key: kyiv-b2b, team: kyiv, priority: 10, when: {region: UA, product: credit}, require: [product, region]}
    - {key: leasing, team: kyiv, when: {product: leasing}, require: [product], strategy: least_loaded}
  fallback: {team: night}
"""
)
MONDAY_NOON = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)  # 12:00 in Kyiv
OFFICE = parse_working_hours({"mon-fri": "09:00-18:00"}, "Europe/Kyiv")
NEW_YORK_OFFICE = parse_working_hours({"mon-fri": "09:00-18:00"}, "America/New_York")


def people(**overrides: dict[str, object]) -> dict[str, ManagerState]:
    result = {}
    for i, m in enumerate(RULES.managers, start=1):
        state = ManagerState(
            id=i, key=m.key, name=m.name, team=m.team, capacity=30, open_leads=0,
            hours=NEW_YORK_OFFICE if m.team == "night" else OFFICE,
            regions=frozenset(m.regions), products=frozenset(m.products), languages=frozenset(m.languages),
        )  # fmt: skip
        result[m.key] = replace(state, **overrides.get(m.key, {}))  # type: ignore[arg-type]
    return result


def lead(**fields: object) -> CleanLead:
    return CleanLead(channel="web", phone="+380671234567", **fields)  # type: ignore[arg-type]


def test_round_robin_takes_turns_and_explains() -> None:
    state = TeamState(people(), {})
    first = route(lead(region="UA", product="credit"), RULES, state, MONDAY_NOON)
    assert first.manager_key == "olena"
    assert first.reason == "rule 'kyiv-b2b' matched region=UA and product=credit; round robin among 2 eligible; " \
        "1 skipped: Andrii does not serve product credit"  # fmt: skip
    second = route(lead(region="UA", product="credit"), RULES, TeamState(people(), {"kyiv-b2b": "olena"}), MONDAY_NOON)
    assert second.manager_key == "taras"


def test_round_robin_is_even_over_300_leads() -> None:
    managers = people(andrii={"products": frozenset({"credit"}), "regions": frozenset({"UA"})})
    pointers: dict[str, str | None] = {}
    got: Counter[str] = Counter()
    for _ in range(300):
        d = route(lead(region="UA", product="credit"), RULES, TeamState(managers, pointers), MONDAY_NOON)
        assert d.pointer is not None
        pointers[d.pointer[0]] = d.pointer[1]
        got[d.manager_key or ""] += 1
    assert got == {"olena": 100, "taras": 100, "andrii": 100}


def test_capacity_and_shift_are_respected_and_named() -> None:
    state = TeamState(people(olena={"open_leads": 30}), {})
    d = route(lead(region="UA", product="credit"), RULES, state, MONDAY_NOON)
    assert d.manager_key == "taras"
    assert "Olena at capacity 30/30" in d.reason
    evening = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)  # 19:00 in Kyiv: everyone in kyiv is off-shift
    d = route(lead(region="UA", product="credit"), RULES, TeamState(people(), {}), evening)
    assert d.manager_key == "nick"  # the fallback team in New York is at work
    assert "Olena off-shift" in d.reason and d.rule_key == "fallback"


def test_nobody_eligible_goes_to_the_unassigned_queue_with_the_reason() -> None:
    state = TeamState(people(nick={"active": False}), {})
    d = route(lead(region="UA", product="credit"), RULES, state, datetime(2026, 11, 22, 10, tzinfo=UTC))  # Sunday
    assert not d.assigned
    assert d.reason.startswith("unassigned: rule 'kyiv-b2b' matched")
    assert "Nick inactive" in d.reason


def test_least_loaded_picks_the_freest_and_ties_rotate() -> None:
    state = TeamState(people(taras={"open_leads": 5}, andrii={"open_leads": 2, "regions": frozenset()}), {})
    d = route(lead(product="leasing"), RULES, state, MONDAY_NOON)
    assert d.manager_key == "andrii" and "least loaded among 2 eligible (Andrii has 2 open)" in d.reason
    tie = TeamState(people(taras={"open_leads": 2}, andrii={"open_leads": 2}), {"leasing": "taras"})
    assert route(lead(product="leasing"), RULES, tie, MONDAY_NOON).manager_key == "andrii"


def test_sticky_owner_unless_absent() -> None:
    owner = people()["taras"]
    assert sticky_choice(owner, "duplicate of contact #1", "available", MONDAY_NOON).decision is not None
    assert (
        sticky_choice(replace(owner, absent=True), "duplicate of contact #1", "available", MONDAY_NOON).decision is None
    )
