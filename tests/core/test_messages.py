"""Notification texts: every event type in every language, fallbacks, overrides and the sandbox."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leadflow.core.messages import (
    EVENT_TYPES,
    LANGUAGES,
    MessageTemplateError,
    RenderedMessage,
    check_overrides,
    normalize_language,
    render,
)

FULL: dict[str, Any] = {
    "lead": {
        "id": 31,
        "name": "Олена Коваленко",
        "phone": "+380501234567",
        "email": "olena@example.test",
        "product": "Кухні",
        "company": "ТОВ Світанок",
        "channel": "web",
    },
    "manager_name": "Тарас",
    "previous_manager_name": "Ігор",
    "minutes": 10,
    "hop": 2,
    "max_hops": 3,
    "due_at_local": "02.03 11:10",
    "link": "https://crm.example.test/leads/31",
    "reason": "no manager on shift",
    "team_name": "Kyiv",
}


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_every_builtin_renders_with_the_lead_and_no_template_syntax_left(event_type: str, language: str) -> None:
    message = render(event_type, language, FULL)
    assert isinstance(message, RenderedMessage)
    assert "31" in message.subject and "\n" not in message.subject
    for value in ("+380501234567", "Кухні", "https://crm.example.test/leads/31"):
        assert value in message.text
    for leftover in ("{{", "}}", "{%", "%}", "None"):
        assert leftover not in message.subject + message.text
    assert "\n\n\n" not in message.text and message.text == message.text.strip()


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_every_builtin_renders_with_only_a_lead_id(event_type: str, language: str) -> None:
    message = render(event_type, language, {"lead": {"id": 5}})
    assert "5" in message.subject
    assert "None" not in message.subject + message.text


def test_assigned_tells_the_manager_everything_needed_to_call() -> None:
    message = render("lead.assigned", "en", FULL)
    assert message.subject == "New lead #31: Олена Коваленко"
    assert message.text.startswith("Тарас, you have a new lead.")
    for line in ("Phone: +380501234567", "Product: Кухні", "Contact the client by 02.03 11:10."):
        assert line in message.text


def test_escalation_in_each_language() -> None:
    context = {**FULL, "previous_manager_name": None}
    uk = render("lead.escalated", "uk", context)
    assert "Колега не встиг обробити ліда? Забирай, інакше за 10 хв втратиш шанс заробити!" in uk.text
    ru = render("lead.escalated", "ru", context)
    assert "Коллега не успел обработать лида? Забирай, иначе через 10 мин упустишь шанс заработать!" in ru.text
    en = render("lead.escalated", "en", context)
    assert "Your colleague did not get to this lead? Pick it up, or in 10 min you lose the chance to earn!" in en.text
    assert "Ескалація 2 з 3." in uk.text and "Эскалация 2 из 3." in ru.text and "Escalation 2 of 3." in en.text


def test_escalation_names_the_colleague_and_copes_without_minutes() -> None:
    message = render("lead.escalated", "uk", {**FULL, "minutes": None})
    assert "Колега (Ігор) не встиг" in message.text
    assert "Забирай зараз" in message.text and "хв" not in message.text


def test_chain_exhausted_asks_the_head_to_assign_by_hand() -> None:
    message = render("lead.chain_exhausted", "uk", FULL)
    assert message.subject == "Ліда #31 ніхто не взяв: Олена Коваленко"
    assert "Призначте його вручну" in message.text and "Ігор" in message.text


def test_unassigned_asks_the_team() -> None:
    message = render("lead.unassigned", "ru", FULL)
    assert message.subject == "Лид #31 без менеджера: Олена Коваленко"
    assert "Кто возьмёт?" in message.text and "no manager on shift" in message.text


@pytest.mark.parametrize(
    ("language", "expected"),
    [(None, "en"), ("", "en"), ("de", "en"), ("uk-UA", "uk"), ("UK", "uk"), ("ua", "uk"), ("ru_RU", "ru")],
)
def test_language_fallback_and_normalisation(language: str | None, expected: str) -> None:
    assert render("lead.assigned", language, FULL) == render("lead.assigned", expected, FULL)


def test_normalize_language() -> None:
    assert normalize_language(" uk-UA ") == "uk"
    assert normalize_language(None) is None
    assert normalize_language("pl") == "pl"


def test_unknown_event_type_gets_a_generic_message_not_an_error() -> None:
    message = render("lead.reopened", "uk", FULL)
    assert message.subject == "Leadflow: lead.reopened, лід #31"
    assert "Подія: lead.reopened" in message.text and "+380501234567" in message.text
    assert render("something.else", None, {}).subject == "Leadflow: something.else"


def test_overrides_win_for_their_event_and_language_and_first_line_is_the_subject() -> None:
    overrides = {
        "lead.assigned": {"uk": "Лід {{ lead.id }} — {{ lead.name }}\n\nДзвони: {{ lead.phone }}"},
        "lead.won": {"en": "Won {{ lead.id }}\nCongrats, {{ manager_name }}!"},
    }
    uk = render("lead.assigned", "uk", FULL, overrides)
    assert uk == RenderedMessage("Лід 31 — Олена Коваленко", "Дзвони: +380501234567")
    assert render("lead.assigned", "ru", FULL, overrides) == render("lead.assigned", "ru", FULL)  # built-in ru
    assert render("lead.won", "uk", FULL, overrides) == RenderedMessage("Won 31", "Congrats, Тарас!")


def test_an_override_may_add_a_language() -> None:
    overrides = {"lead.assigned": {"pl": "Nowy lead {{ lead.id }}\nZadzwoń!"}}
    assert render("lead.assigned", "pl-PL", FULL, overrides).subject == "Nowy lead 31"


def test_values_are_not_escaped_and_cannot_break_the_subject_line() -> None:
    context = {**FULL, "lead": {**FULL["lead"], "name": "<b>Bob</b> & *Co*\r\nBcc: x@example.test"}}
    message = render("lead.assigned", "en", context)
    assert message.subject == "New lead #31: <b>Bob</b> & *Co* Bcc: x@example.test"


def test_a_long_subject_is_cut() -> None:
    message = render("lead.assigned", "en", {**FULL, "lead": {"id": 1, "name": "x" * 500}})
    assert len(message.subject) == 200 and message.subject.endswith("…")


@pytest.mark.parametrize(
    "source",
    [
        "Hi {{ lead.nmae }}\nbody",  # misspelt: StrictUndefined refuses to render a blank
        "{{ lead.__class__.__mro__ }}\nbody",  # the sandbox keeps templates away from Python internals
        "{{ ''.__class__.__subclasses__() }}\n",
        "{% for x in %}\n",  # does not compile
    ],
)
def test_broken_or_unsafe_overrides_raise_a_clear_error(source: str) -> None:
    with pytest.raises(MessageTemplateError, match=re.escape("the override template for 'lead.assigned' in 'en'")):
        render("lead.assigned", "en", FULL, {"lead.assigned": {"en": source}})


def test_check_overrides_reports_every_problem() -> None:
    problems = check_overrides(
        {
            "lead.assigned": {"uk": "Ok {{ lead.id }}\nfine", "en": "{{ lead.nmae }}\n", "ru": "  "},
            "lead.escalated": {"en": "{% if %}"},
        }
    )
    assert len(problems) == 3
    assert any("'lead.assigned' in 'en'" in p and "nmae" in p for p in problems)
    assert any("'lead.assigned' in 'ru' is empty" in p for p in problems)
    assert check_overrides({"lead.assigned": {"uk": "Ok {{ lead.id }}\nfine"}}) == []


_text = st.text(max_size=60) | st.none()


@given(
    event_type=st.sampled_from([*EVENT_TYPES, "x.y"]),
    language=st.sampled_from([None, "uk", "ru", "en", "zz"]),
    name=_text,
    phone=_text,
    manager=_text,
    minutes=st.none() | st.integers(0, 600),
)
def test_builtins_never_fail_and_subject_is_one_line(
    event_type: str, language: str | None, name: str | None, phone: str | None, manager: str | None, minutes: int | None
) -> None:
    context = {"lead": {"id": 1, "name": name, "phone": phone}, "manager_name": manager, "minutes": minutes}
    message = render(event_type, language, context)
    assert "\n" not in message.subject and "\r" not in message.subject
    assert len(message.subject) <= 200
