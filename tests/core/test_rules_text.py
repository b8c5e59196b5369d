"""Reading a rules file: an empty file is refused, and one pass lists type errors and broken references together."""

import pytest

from leadflow.core.rules_text import RulesError, parse_rules


def problems(text: str) -> list[str]:
    with pytest.raises(RulesError) as exc:
        parse_rules(text, "rules.yaml")
    return exc.value.problems


@pytest.mark.parametrize("text", ["", "\n\n", "# our rules, to be written\n# teams: ...\n", "---\n"])
def test_an_empty_file_is_refused(text: str) -> None:
    [problem] = problems(text)
    assert problem.startswith("line 1: the rules file is empty: declare at least teams:, managers: and routing:")


def test_an_explicit_empty_mapping_still_means_every_default() -> None:
    assert parse_rules("{}").teams == ()


TYPE_AND_REFERENCE_ERRORS = """\
teams:
  - {key: sales, name: Sales}
managers:
  - {key: anna, name: Anna, team: sales}
  - {key: bohdan, name: Bohdan, team: sales, capacity: lots}
  - {key: chrystia, name: Chrystia, team: marketing}
routing:
  rules:
    - {key: all, team: sales, managers: [anna, zenon], respect_hours: sometimes}
sla:
  overrides:
    - {rule: nope, first_contact: 5x}
"""


def test_type_errors_and_reference_errors_are_listed_together_in_line_order() -> None:
    assert problems(TYPE_AND_REFERENCE_ERRORS) == [
        "line 5: managers.1.capacity: Input should be a valid integer, unable to parse string as an integer",
        "line 6: managers.2.team: manager 'chrystia' is in team 'marketing', which is not declared under teams",
        "line 9: routing.rules.0.respect_hours: Input should be a valid boolean, unable to interpret input",
        "line 9: routing.rules.0.managers: rule 'all' names manager 'zenon', who is not declared",
        "line 12: sla.overrides.0.first_contact: duration '5x' is not understood: write it like 90s, 10m, 2h or 3d",
        "line 12: sla.overrides.0.rule: sla override names rule 'nope', which is not declared",
    ]


def test_a_broken_field_does_not_make_a_reference_to_it_look_wrong() -> None:
    # bohdan's capacity is broken, not bohdan: the rule naming him is fine.
    text = TYPE_AND_REFERENCE_ERRORS.replace("[anna, zenon]", "[anna, bohdan]").replace("marketing", "sales")
    text = text.replace("rule: nope, ", "")
    assert [p.split(":")[1].strip() for p in problems(text)] == [
        "managers.1.capacity",
        "routing.rules.0.respect_hours",
        "sla.overrides.0.first_contact",
    ]


def test_when_a_key_itself_is_broken_only_the_type_errors_are_reported() -> None:
    # Without anna's key, "anna" named by the rule cannot be judged: no guess is reported.
    text = TYPE_AND_REFERENCE_ERRORS.replace("{key: anna,", "{key: 'an na',").replace(", zenon", "")
    found = problems(text)
    assert any(p.startswith("line 4: managers.0.key: String should match pattern") for p in found)
    assert not any("who is not declared" in p for p in found)
    assert "line 5: managers.1.capacity" in " ".join(found)


def test_a_broken_value_inside_a_condition_is_left_out_and_the_rest_is_checked() -> None:
    text = """\
teams: [{key: sales}]
managers: [{key: anna, name: Anna, team: sales}]
routing:
  rules:
    - {key: big, team: sales, managers: [olena], when: {budget: {gte: lots}}}
"""
    # One problem for the budget (not one per type a condition value may have), and the reference beside it.
    assert problems(text) == [
        "line 5: routing.rules.0.when.budget.Range.gte: Input should be a valid decimal",
        "line 5: routing.rules.0.managers: rule 'big' names manager 'olena', who is not declared",
    ]
