"""Triggers as the rules file declares them: what sets them off, the loop check, due times, template variants."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from leadflow.core.automation import LeadState, Occurrence, When, due_at, find_loop, pick_template
from leadflow.core.rules_text import RulesError, parse_rules
from leadflow.core.schedule import parse_working_hours

BASE = """
teams: [{key: t, timezone: Europe/Kyiv, head: h}]
managers: [{key: a, name: A, team: t}, {key: h, name: H, team: t}]
funnel:
  - {key: new}
  - {key: assigned}
  - {key: contacted}
  - {key: qualified}
  - {key: thinking}
  - {key: won, open: false, outcome: won}
  - {key: junk, open: false}
"""


def problems(triggers: str, extra: str = "") -> list[str]:
    with pytest.raises(RulesError) as exc:
        parse_rules(BASE + extra + "automations:\n  triggers:\n" + triggers, "rules.yaml")
    return exc.value.problems


def loads(triggers: str, extra: str = "") -> None:
    parse_rules(BASE + extra + "automations:\n  triggers:\n" + triggers, "rules.yaml")


def test_two_triggers_that_set_each_other_off_are_refused_with_the_loop_named() -> None:
    [problem] = problems("""\
    - key: to-thinking
      when: {status_entered: qualified}
      then: [{status: thinking}]
    - key: back
      when: {status_entered: thinking}
      if: {tags: again}
      then: [{status: qualified}]
""")
    assert problem.startswith("line ")
    assert "set each other off without end: to-thinking" in problem
    assert "back (status → the lead entered a status (qualified)) → to-thinking" in problem


@pytest.mark.parametrize(("trigger", "named"), [
    ("{key: self, when: {status_left: new}, then: [{status: qualified}]}", "self"),
    ("{key: nag, when: task_overdue, then: [{task: {title: again, due: 1h}}]}", "nag"),
    ("{key: mail, when: {client_event: email_opened}, then: [{reply: hi}]}", "mail"),
    ("{key: won, when: deal_won, then: [{status: won}]}", "won"),
])  # fmt: skip
def test_a_trigger_that_sets_itself_off_is_refused(trigger: str, named: str) -> None:
    extra = "reply_templates: [{key: hi, text: hi}]\n"
    found = problems(f"    - {trigger}\n", extra)
    assert any(f"without end: {named} (" in p and p.endswith("change a condition or an action so the chain stops")
               for p in found), found  # fmt: skip


def test_a_chain_that_ends_is_not_a_loop() -> None:
    loads("""\
    - {key: one, when: {status_entered: qualified}, then: [{status: thinking}]}
    - {key: two, when: {status_entered: thinking}, then: [{task: {title: call, due: 2d}}]}
    - {key: three, when: task_overdue, then: [{notify: {to: head, text: "late"}}]}
""")


def test_every_unknown_name_is_refused_with_its_line() -> None:
    found = problems("""\
    - key: bad
      when: {status_entered: pondering}
      if: {mood: happy}
      then:
        - task: {title: "Call {{ lead.nmae }}", assignee: "role:cs"}
        - reply: nope
        - set: {phone: "1"}
        - status: limbo
        - cadence: {start: weekly}
        - notify: {to: "manager:zed", text: hi}
""")
    text = "\n".join(found)
    for expected in ("line 15: automations.triggers.0.when: trigger 'bad' waits for status 'pondering'",
                     "line 16: automations.triggers.0.if: trigger 'bad': if: names 'mood'",
                     "role 'cs' is not declared under roles", "template does not render: 'dict object' has no "
                     "attribute 'nmae'", "reply template 'nope' is not declared", "set: 'phone' cannot be set",
                     "status 'limbo' is not in the funnel", "cadence 'weekly' is not declared",
                     "manager 'zed' is not declared"):  # fmt: skip
        assert expected in text, text


def test_a_broken_reply_template_is_refused_when_the_rules_load() -> None:
    found = problems("", "reply_templates: [{key: hi, text: 'Hello {{ lead.name '}]\n")
    assert any("reply template 'hi': template does not render" in p for p in found), found


@pytest.mark.parametrize(("written", "event", "matches", "misses"), [
    ("lead_created", "lead_created", Occurrence("lead_created"), Occurrence("deal_won")),
    ({"status_entered": "thinking"}, "status_entered", Occurrence("status_entered", status="thinking"),
     Occurrence("status_entered", status="qualified")),
    ({"contact": {"kind": "call", "outcome": ["no_answer", "busy"]}}, "contact",
     Occurrence("contact", kind="call", outcome="busy"), Occurrence("contact", kind="call", outcome="connected")),
    ({"client_event": "offer_viewed"}, "client_event", Occurrence("client_event", client_event="offer_viewed"),
     Occurrence("client_event", client_event="email_opened")),
    ({"temperature_reached": "hot"}, "temperature_reached", Occurrence("temperature_reached", temperature="hot"),
     Occurrence("temperature_reached", temperature="warm")),
])  # fmt: skip
def test_when_is_written_as_people_write_it(
    written: object, event: str, matches: Occurrence, misses: Occurrence
) -> None:
    when = When.model_validate(written)
    assert when.event == event and when.matches(matches) and not when.matches(misses)


def test_idle_needs_its_period() -> None:
    with pytest.raises(ValueError, match="needs how long"):
        When.model_validate({"idle": None})
    assert When.model_validate({"idle": "3d"}).period == timedelta(days=3)


KYIV = ZoneInfo("Europe/Kyiv")
OFFICE = parse_working_hours({"mon-fri": "09:00-18:00"}, "Europe/Kyiv")


@pytest.mark.parametrize(("spec", "now_local", "due_local"), [
    ("2h", datetime(2026, 12, 11, 17, 30), datetime(2026, 12, 11, 19, 30)),
    ("at 10:00", datetime(2026, 12, 11, 17, 30), datetime(2026, 12, 12, 10, 0)),
    ("at 10:00", datetime(2026, 12, 11, 8, 0), datetime(2026, 12, 11, 10, 0)),
    ("next_working_hour", datetime(2026, 12, 11, 17, 30), datetime(2026, 12, 11, 17, 30)),  # on shift: now
    ("next_working_hour", datetime(2026, 12, 11, 19, 0), datetime(2026, 12, 14, 9, 0)),  # Friday evening: Monday
    ("next_working_day", datetime(2026, 12, 10, 12, 0), datetime(2026, 12, 11, 9, 0)),
    ("next_working_day", datetime(2026, 12, 11, 12, 0), datetime(2026, 12, 14, 9, 0)),
])  # fmt: skip
def test_due_times_follow_the_assignees_hours_and_zone(spec: str, now_local: datetime, due_local: datetime) -> None:
    now = now_local.replace(tzinfo=KYIV).astimezone(UTC)
    due, why = due_at(spec, now, OFFICE)
    assert due is not None and due.astimezone(KYIV).replace(tzinfo=None) == due_local and why


def test_the_template_variant_that_fits_the_lead_best_is_picked() -> None:
    rules = parse_rules(
        BASE
        + """
reply_templates:
  - {key: hi, text: any}
  - {key: hi, language: uk, text: uk}
  - {key: hi, channel: telegram, language: uk, text: telegram uk}
  - {key: hi, channel: telegram, temperature: hot, language: ru, text: telegram ru hot}
"""
    )
    templates = rules.reply_templates
    assert pick_template(templates, "hi", "telegram", "uk", "hot").text == "telegram uk"  # type: ignore[union-attr]
    assert pick_template(templates, "hi", "email", "uk", None).text == "uk"  # type: ignore[union-attr]
    assert pick_template(templates, "hi", "telegram", "ru", "hot").text == "telegram ru hot"  # type: ignore[union-attr]
    assert pick_template(templates, "hi", "email", "en", None).text == "any"  # type: ignore[union-attr]
    assert pick_template(templates, "bye", "email", "en", None) is None


def test_the_loop_check_is_pure_and_says_nothing_when_there_is_none() -> None:
    assert find_loop((), {}, {}) is None
    state = LeadState(channel="form", status="new", tags=("vip",))
    rules = parse_rules(BASE + "automations: {triggers: [{key: v, when: lead_created, if: {tags: VIP}, "
                        "then: [{tag: seen}]}]}\n")  # fmt: skip
    assert [t.key for t in rules.automations.fires(Occurrence("lead_created"), state)] == ["v"]
    assert rules.automations.fires(Occurrence("lead_created"), LeadState(channel="form")) == []
