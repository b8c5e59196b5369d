"""Each routing strategy on a realistic team over a few thousand leads: who gets how many, and why."""

from collections import Counter
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal

from leadflow.core.lead import CleanLead
from leadflow.core.routing import Decision, ManagerState, TeamState, route
from leadflow.core.rules import RulesFile
from leadflow.core.rules_text import parse_rules
from leadflow.core.schedule import ALWAYS, parse_working_hours

NOON = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)  # Tuesday, 12:00 in Kyiv


def team(rules: RulesFile, **stats: dict[str, object]) -> dict[str, ManagerState]:
    people = {}
    for i, m in enumerate(rules.managers, start=1):
        base = ManagerState(id=i, key=m.key, name=m.name, team=m.team, capacity=m.capacity, open_leads=0,
                            hours=rules.hours_of(m), weight=m.weight, tier=m.tier, on_call=m.on_call,
                            regions=frozenset(m.regions), products=frozenset(m.products), languages=frozenset(m.languages),
                            vacations=tuple((v.start, v.end) for v in m.vacations))  # fmt: skip
        people[m.key] = replace(base, **stats.get(m.key, {}))  # type: ignore[arg-type]
    return people


def run(rules: RulesFile, people: dict[str, ManagerState], leads: list[CleanLead], now: datetime = NOON) -> tuple[Counter[str], list[Decision]]:  # fmt: skip
    """Route the leads one after another, carrying the state forward as the services do."""
    pointers: dict[str, str | None] = {}
    credits: dict[str, dict[str, float]] = {}
    got: Counter[str] = Counter()
    decisions = []
    for lead in leads:
        d = route(lead, rules, TeamState(people, pointers, credits), now)
        decisions.append(d)
        got[d.manager_key or "-"] += 1
        if d.pointer:
            pointers[d.pointer[0]] = d.pointer[1]
        if d.credits:
            credits[d.credits[0]] = dict(d.credits[1])
        if d.manager_key:
            m = people[d.manager_key]
            people[d.manager_key] = replace(
                m, open_leads=m.open_leads + 1, open_value=m.open_value + (lead.budget or 0)
            )
    return got, decisions


def leads(n: int, **fields: object) -> list[CleanLead]:
    return [CleanLead(channel="web", phone=f"+38067{i:07d}", **fields) for i in range(n)]  # type: ignore[arg-type]


def rules_with(strategy: str, extra: str = "", managers: str = "") -> RulesFile:
    return parse_rules(f"""
default_timezone: Europe/Kyiv
teams: [{{key: sales, hours: always}}]
managers:
{
        managers
        or '''  - {key: olha, name: Olha, team: sales, capacity: 5000}
  - {key: petro, name: Petro, team: sales, capacity: 5000}
  - {key: roman, name: Roman, team: sales, capacity: 5000}'''
    }
routing:
  rules:
    - {{key: all, team: sales, strategy: {strategy}{extra}}}
""")


def test_weighted_round_robin_follows_weights_and_interleaves() -> None:
    rules = rules_with(
        "weighted_round_robin",
        managers="""  - {key: olha, name: Olha, team: sales, capacity: 5000, weight: 3}
  - {key: petro, name: Petro, team: sales, capacity: 5000, weight: 2}
  - {key: roman, name: Roman, team: sales, capacity: 5000, weight: 1}""",
    )
    got, decisions = run(rules, team(rules), leads(3000))
    assert got == {"olha": 1500, "petro": 1000, "roman": 500}
    first_six = [d.manager_key for d in decisions[:6]]
    assert sorted(first_six) == ["olha", "olha", "olha", "petro", "petro", "roman"]
    assert first_six[:2] != ["olha", "olha"] or first_six[2] != "olha"  # interleaved, not a run of three


def test_by_conversion_gives_twice_the_leads_to_twice_the_conversion_until_the_cap() -> None:
    managers = """  - {key: olha, name: Olha, team: sales, capacity: 1500}
  - {key: petro, name: Petro, team: sales, capacity: 5000}"""
    rules = rules_with("by_conversion", managers=managers)
    people = team(rules, olha={"closed_leads": 998, "won_leads": 299}, petro={"closed_leads": 998, "won_leads": 149})
    got, _ = run(rules, people, leads(1500))
    assert abs(got["olha"] / got["petro"] - 2.0) < 0.02  # 30% vs 15% conversion
    got, decisions = run(rules, people, leads(3000))  # now Olha reaches her cap of 1500
    assert people["olha"].open_leads == 1500
    assert "Olha at capacity 1500/1500" in decisions[-1].reason


def test_under_the_conversion_threshold_gets_nothing_after_warm_up() -> None:
    rules = rules_with("round_robin", ", min_conversion: 0.1, warmup_leads: 20")
    people = team(rules, olha={"closed_leads": 50, "won_leads": 3},  # 6%: below the 10% floor
                  petro={"closed_leads": 40, "won_leads": 8}, roman={"closed_leads": 5, "won_leads": 0})  # fmt: skip
    got, decisions = run(rules, people, leads(2000))
    assert "olha" not in got  # under the threshold
    assert got["roman"] == got["petro"] == 1000  # Roman is new: his warm-up lets him in
    assert "Olha converts 6%, under the 10% minimum" in decisions[0].reason


def test_by_rating_sends_leads_to_the_top_of_the_leaderboard_until_full() -> None:
    managers = """  - {key: olha, name: Olha, team: sales, capacity: 100}
  - {key: petro, name: Petro, team: sales, capacity: 100}
  - {key: roman, name: Roman, team: sales, capacity: 100}"""
    rules = rules_with("by_rating", managers=managers)
    people = team(rules, olha={"closed_leads": 100, "won_leads": 40, "first_contacts": 100, "fast_contacts": 90},
                  petro={"closed_leads": 100, "won_leads": 20, "first_contacts": 100, "fast_contacts": 50},
                  roman={"closed_leads": 100, "won_leads": 10})  # fmt: skip
    assert people["olha"].rating > people["petro"].rating > people["roman"].rating
    got, decisions = run(rules, people, leads(250))
    assert got == {"olha": 100, "petro": 100, "roman": 50}
    assert decisions[0].reason.startswith(
        f"rule 'all' matched any lead; by rating among 3 eligible (Olha rated {people['olha'].rating:g})"
    )


def test_best_to_best_sends_the_top_band_only_to_the_top_tier() -> None:
    managers = """  - {key: olha, name: Olha, team: sales, capacity: 5000, tier: 1}
  - {key: petro, name: Petro, team: sales, capacity: 5000, tier: 2}
  - {key: roman, name: Roman, team: sales, capacity: 5000, tier: 3}"""
    rules = rules_with("best_to_best", managers=managers)
    by_score: dict[int, Counter[str]] = {}
    for score in (18, 12, 4):
        got, _ = run(rules, team(rules), leads(600, score=score))
        by_score[score] = got
    assert by_score[18] == {"olha": 600}  # the best leads: only tier 1
    assert by_score[12] == {"olha": 300, "petro": 300}  # the middle band: tiers 1 and 2
    assert by_score[4] == {"petro": 300, "roman": 300}  # the rest: tiers 2 and below


def test_least_loaded_by_value_balances_money_not_count() -> None:
    rules = rules_with("least_loaded", ", load: value")
    big = leads(10, budget=Decimal(100_000))
    small = leads(300, budget=Decimal(1_000))
    people = team(rules)
    run(rules, people, big + small)
    values = sorted(int(m.open_value) for m in people.values())
    assert values[-1] - values[0] <= 100_000  # within one big lead of each other
    counts = sorted(m.open_leads for m in people.values())
    assert counts[-1] - counts[0] > 20  # the one with the big deals took fewer small ones


def test_geography_product_and_language_specialisation() -> None:
    rules = parse_rules("""
teams: [{key: sales, hours: always}]
managers:
  - {key: kyiv, name: Kyiv desk, team: sales, capacity: 5000, regions: [UA], products: [credit], languages: [uk]}
  - {key: warsaw, name: Warsaw desk, team: sales, capacity: 5000, regions: [PL], products: [credit, leasing], languages: [pl, en]}
routing:
  rules: [{key: all, team: sales, require: [region, product, language]}]
""")  # fmt: skip
    got, _ = run(rules, team(rules), leads(500, region="PL", product="leasing", language="en"))
    assert got == {"warsaw": 500}
    got, decisions = run(rules, team(rules), leads(10, region="UA", product="leasing"))
    assert got == {"-": 10} and "Kyiv desk does not serve product leasing" in decisions[0].reason


def test_deal_value_priority_sends_big_clients_to_senior_managers() -> None:
    rules = parse_rules("""
teams: [{key: senior, hours: always}, {key: sales, hours: always}]
managers:
  - {key: anna, name: Anna, team: senior, capacity: 5000}
  - {key: olha, name: Olha, team: sales, capacity: 5000}
  - {key: petro, name: Petro, team: sales, capacity: 5000}
routing:
  rules:
    - {key: corporate, team: senior, priority: 10, when: {budget: {gte: 500000}}}
    - {key: everyone, team: sales}
""")
    got, decisions = run(rules, team(rules), leads(100, budget=Decimal(750_000)) + leads(200, budget=Decimal(5_000)))
    assert got == {"anna": 100, "olha": 100, "petro": 100}
    assert decisions[0].reason.startswith("rule 'corporate' matched budget=750000")
    assert [c.key for c in decisions[0].checked] == ["corporate", "everyone"]
    assert [c.matched for c in decisions[0].checked] == [True, True]
    assert decisions[0].checked[1].outcome == ""  # matched, not reached: the higher priority won


def test_vacation_and_out_of_hours_policies() -> None:
    rules = parse_rules("""
default_timezone: Europe/Kyiv
teams: [{key: kyiv, hours: {mon-fri: "09:00-18:00"}}, {key: nyc, timezone: America/New_York, hours: {mon-fri: "09:00-18:00"}}]
managers:
  - {key: olha, name: Olha, team: kyiv, capacity: 500, vacations: [{from: 2026-11-23, to: 2026-11-27}]}
  - {key: petro, name: Petro, team: kyiv, capacity: 500}
  - {key: ivan, name: Ivan, team: kyiv, capacity: 500, on_call: true}
  - {key: nick, name: Nick, team: nyc, capacity: 500}
routing:
  rules:
    - {key: queue, team: kyiv, when: {product: queue}, out_of_hours: queue}
    - {key: oncall, team: kyiv, when: {product: oncall}, out_of_hours: on_call}
    - {key: follow-the-sun, team: kyiv, when: {product: sun}, out_of_hours: "team:nyc"}
""")
    people = team(rules)
    got, decisions = run(rules, people, leads(4, product="queue"))
    assert got == {"petro": 2, "ivan": 2} and "Olha on vacation until 2026-11-27" in decisions[0].reason
    evening = datetime(2026, 11, 24, 17, 0, tzinfo=UTC)  # 19:00 in Kyiv, 12:00 in New York
    queued = route(leads(1, product="queue")[0], rules, TeamState(people), evening)
    assert not queued.assigned and queued.wait_until == datetime(2026, 11, 25, 7, 0, tzinfo=UTC)
    assert "everyone off shift: waits for the opening" in queued.reason
    assert route(leads(1, product="oncall")[0], rules, TeamState(people), evening).manager_key == "ivan"
    sun = route(leads(1, product="sun")[0], rules, TeamState(people), evening)
    assert sun.manager_key == "nick" and "everyone off shift: to team nyc" in sun.reason
    assert date(2026, 11, 28) > people["olha"].vacations[0][1]
    assert ALWAYS.always_open and parse_working_hours("always").always_open
