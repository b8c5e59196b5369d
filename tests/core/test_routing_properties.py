"""Properties of every routing decision, over random teams, rules, leads and times (Hypothesis)."""

from datetime import UTC, date, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from leadflow.core.lead import CleanLead
from leadflow.core.routing import ManagerState, TeamState, check_manager, route
from leadflow.core.rules import RulesFile, Target
from leadflow.core.rules_text import parse_rules
from leadflow.core.schedule import is_open, parse_working_hours

REGIONS = ["UA", "PL", "DE"]
PRODUCTS = ["credit", "leasing", "insurance"]
STRATEGIES = ["round_robin", "weighted_round_robin", "least_loaded", "by_conversion", "by_rating", "best_to_best"]
SCHEDULES = [
    parse_working_hours("always", "Europe/Kyiv"),
    parse_working_hours({"mon-fri": "09:00-18:00"}, "Europe/Kyiv"),
    parse_working_hours({"mon-sat": "10:00-14:00, 15:00-20:00"}, "America/New_York"),
]
KEYS = [f"m{i}" for i in range(8)]


def make_rules(strategy: str, require: list[str], out_of_hours: str, min_conversion: float | None) -> RulesFile:
    floor = f", min_conversion: {min_conversion}, warmup_leads: 5" if min_conversion is not None else ""
    managers = "\n".join(f"  - {{key: {k}, name: M{k}, team: t{i % 2}}}" for i, k in enumerate(KEYS))
    return parse_rules(f"""
teams: [{{key: t0}}, {{key: t1}}]
managers:
{managers}
routing:
  rules:
    - {{key: r, team: t0, when: {{product: [credit, leasing]}}, strategy: {strategy}, require: {require}, out_of_hours: "{out_of_hours}"{floor}}}
  fallback: {{team: t1, strategy: {strategy}, require: {require}}}
""")


manager_states = st.builds(
    lambda i, capacity, load, active, absent, vacation, on_call, hours, regions, products, tier, weight, closed, won: (
        ManagerState(
            id=i + 1, key=KEYS[i], name=f"M{KEYS[i]}", team=f"t{i % 2}", capacity=capacity, open_leads=min(load, capacity + 1),
            hours=SCHEDULES[hours], active=active, absent=absent, on_call=on_call,
            vacations=((date(2026, 11, 20), date(2026, 11, 30)),) if vacation else (),
            regions=frozenset(regions), products=frozenset(products), tier=tier, weight=weight,
            closed_leads=closed, won_leads=min(won, closed),
        )
    ),
    st.integers(0, 7), st.integers(0, 5), st.integers(0, 6), st.booleans(), st.booleans(), st.booleans(),
    st.booleans(), st.integers(0, 2), st.sets(st.sampled_from(REGIONS)), st.sets(st.sampled_from(PRODUCTS)),
    st.integers(1, 3), st.integers(1, 5), st.integers(0, 40), st.integers(0, 40),
)  # fmt: skip


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[RulesFile, TeamState, CleanLead, datetime]:
    people = draw(st.lists(manager_states, min_size=0, max_size=8, unique_by=lambda m: m.key))
    rules = make_rules(
        draw(st.sampled_from(STRATEGIES)),
        draw(st.lists(st.sampled_from(["region", "product"]), unique=True)),
        draw(st.sampled_from(["next", "queue", "on_call", "team:t1"])),
        draw(st.one_of(st.none(), st.sampled_from([0.1, 0.3]))),
    )
    lead = CleanLead(
        channel="web", phone="+380671234567",
        region=draw(st.one_of(st.none(), st.sampled_from(REGIONS))),
        product=draw(st.one_of(st.none(), st.sampled_from(PRODUCTS))),
        score=draw(st.one_of(st.none(), st.integers(0, 20))),
    )  # fmt: skip
    at = datetime(2026, 11, 16, tzinfo=UTC) + timedelta(minutes=draw(st.integers(0, 60 * 24 * 21)))
    pointers = {"r": draw(st.one_of(st.none(), st.sampled_from(KEYS)))}
    return rules, TeamState({m.key: m for m in sorted(people, key=lambda m: m.id)}, pointers), lead, at


def target_of(rules: RulesFile, rule_key: str | None) -> Target:
    return next((r for r in rules.routing.rules if r.key == rule_key), None) or rules.routing.fallback  # type: ignore[return-value]


@settings(max_examples=600, deadline=None)
@given(scenarios())
def test_a_decision_never_picks_someone_who_cannot_take_the_lead(scenario: tuple[RulesFile, TeamState, CleanLead, datetime]) -> None:  # fmt: skip
    rules, state, lead, at = scenario
    d = route(lead, rules, state, at)
    if not d.assigned:
        assert d.reason.startswith("unassigned: ") or d.wait_until is not None
        assert len(d.reason) > 20  # says why
        return
    m = state.managers[d.manager_key or ""]
    assert m.active and not m.absent and m.role == "manager"
    assert m.on_vacation(at) is None
    assert m.open_leads < m.capacity
    target = target_of(rules, d.rule_key)
    for field in target.require:
        assert m.serves(field, lead.value_of(field)), d.reason
    on_shift = is_open(m.hours, at)
    assert on_shift or (m.on_call and "on call" in d.reason) or "everyone off shift: to team" in d.reason
    # The manager passes the same checks the decision made (ignoring the hour when a policy allowed it).
    assert check_manager(m, lead, target, at, ignore_hours=not on_shift) == "" or "to team" in d.reason


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_a_decision_is_a_pure_function(scenario: tuple[RulesFile, TeamState, CleanLead, datetime]) -> None:
    rules, state, lead, at = scenario
    assert route(lead, rules, state, at) == route(lead, rules, state, at)


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_every_candidate_verdict_is_explained(scenario: tuple[RulesFile, TeamState, CleanLead, datetime]) -> None:
    rules, state, lead, at = scenario
    d = route(lead, rules, state, at)
    for c in d.candidates:
        assert c.eligible == (c.why == "")
        if not c.eligible:
            assert c.why.startswith(c.name)
    if d.assigned:
        assert any(c.key == d.manager_key and c.eligible for c in d.candidates)
