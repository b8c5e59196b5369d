import pytest

from leadflow.core.rules_text import RulesError, parse_rules
from leadflow.settings import EXAMPLE_RULES


def test_the_shipped_example_is_valid() -> None:
    rules = parse_rules(EXAMPLE_RULES.read_text(), "example")
    assert {m.key for m in rules.managers} >= {"olena", "taras", "andrii"}
    assert rules.open_statuses == {"new", "assigned", "contacted", "qualified", "thinking"}
    assert {t.key for t in rules.automations.triggers} >= {"review-after-win", "hot-lead-call", "thinking-call-back"}


def problems(text: str) -> list[str]:
    with pytest.raises(RulesError) as exc:
        parse_rules(text, "rules.yaml")
    return exc.value.problems


def test_errors_name_the_line_and_the_field() -> None:
    text = """teams:
  - key: sales
managers:
  - key: anna
    name: Anna
    team: sales
    capacity: lots
"""
    assert problems(text) == [
        "line 7: managers.0.capacity: Input should be a valid integer, unable to parse string as an integer"
    ]


def test_unknown_keys_are_refused() -> None:
    (problem,) = problems("teams:\n  - key: sales\n    colour: red\n")
    assert problem.startswith("line 3: teams.0.colour: Extra inputs are not permitted")


def test_references_must_exist() -> None:
    text = "teams: [{key: sales}]\nmanagers: [{key: anna, name: Anna, team: nowhere}]\n"
    assert "manager 'anna' is in team 'nowhere', which is not declared under teams" in problems(text)[0]
    text = "teams: [{key: sales}]\nrouting: {rules: [{key: r, team: sales, managers: [ghost]}]}\n"
    assert "rule 'r' names manager 'ghost', who is not declared" in problems(text)[0]


def test_conditions_on_unknown_fields_are_refused() -> None:
    text = "teams: [{key: s}]\nrouting:\n  rules:\n    - key: r\n      team: s\n      when: {prodcut: credit}\n"
    (problem,) = problems(text)
    assert problem.startswith("line 6: routing.rules.0.when: unknown lead field 'prodcut'")


def test_bad_working_hours_fail_at_load_time() -> None:
    text = "teams: [{key: s}]\nmanagers: [{key: a, name: A, team: s, hours: {mnday: '09:00-18:00'}}]\n"
    assert "mnday" in problems(text)[0]


def test_yaml_syntax_errors_have_a_line() -> None:
    assert problems("teams:\n  - key: [unclosed\n")[0].startswith("line 3: not valid YAML")


def test_funnel_needs_the_system_statuses() -> None:
    assert (
        "funnel must have the statuses junk" in problems("funnel: [{key: new}, {key: assigned}, {key: contacted}]")[0]
    )


def test_broken_message_templates_fail_at_load_time() -> None:
    text = 'templates:\n  lead.escalated:\n    uk: "Лід {{ lead.id "\n'
    (problem,) = problems(text)
    assert problem.startswith("line 2: templates:") and "lead.escalated" in problem


def test_conditions_read_fields_the_channel_sent_beyond_leadflows_own() -> None:
    from leadflow.core.cleaning import clean_lead
    from leadflow.core.lead import read_lead
    from leadflow.core.routing import matching_rules

    rules = parse_rules(
        """
teams: [{key: kyiv}]
managers: [{key: anna, name: Anna, team: kyiv}]
routing:
  rules:
    - {key: big-flats, team: kyiv, when: {extra.city: [Kyiv, Lviv], extra.rooms: {gte: 3}}}
""",
        "rules.yaml",
    )

    def matched(data: dict[str, object]) -> list[str]:
        lead, _, _ = read_lead(data)
        return [r.key for r in matching_rules(clean_lead(lead, "UA"), rules)]

    assert matched({"phone": "0671234567", "city": "kyiv", "rooms": "4"}) == ["big-flats"]
    assert matched({"phone": "0671234567", "extra": {"city": "Lviv", "rooms": 3}}) == ["big-flats"]
    assert matched({"phone": "0671234567", "city": "Odesa", "rooms": 5}) == []
    assert matched({"phone": "0671234567", "city": "Kyiv", "rooms": "many"}) == []
    assert "or extra.<name>" in problems("routing:\n  rules:\n    - {key: r, team: t, when: {cty: Kyiv}}\n")[0]
