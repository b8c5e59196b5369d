"""The texts of notifications, per event type and language (Ukrainian, Russian, English; English by default).

A template is one string: its first line is the subject, the rest is the body. Templates are Jinja2, run in a
sandbox (an operator's override cannot reach Python internals) with StrictUndefined (a misspelt variable is an
error, not a silent blank). Output is plain text: nothing is escaped, and no channel is asked to parse markup, so
a lead named ``<b>*Bob*</b>`` is shown exactly as typed.

The context is a plain dict. Keys the built-in templates use, all optional (missing ones are ``None``):

- ``lead``: ``id``, ``name``, ``phone``, ``email``, ``product``, ``company``, ``channel``
- ``manager_name``: the person the message is for; ``previous_manager_name``: who had the lead before
- ``minutes``: minutes left before the lead moves on; ``hop`` / ``max_hops``: escalation step and chain length
- ``due_at_local``: the first-contact deadline, already formatted in the recipient's time zone
- ``link``: the lead's page; ``reason``: why a lead went unassigned; ``team_name``
- ``message``: what the client wrote in a repeated request; ``contacted_by``: who reached the client
- ``task``: ``title``, ``due_at_local`` of an overdue task; ``text``: an automation's own words (its `notify`),
  the subject
- ``day``: the local day a daily digest is about; ``digest``: its figures (``breaches``, ``breaches_waiting``,
  ``first_contacts``, ``bands`` [``band``, ``count``, ``share``], ``arrived``, ``funnel`` [``status``, ``entered``],
  ``won``, ``turnover``, ``top`` and ``bottom`` [``name``, ``first_contacts``, ``conversion``]), see
  services/reports/digest.py
- ``event_type`` is always set by :func:`render`.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from leadflow.core.errors import LeadflowError

__all__ = [
    "DEFAULT_LANGUAGE",
    "EVENT_TYPES",
    "LANGUAGES",
    "MessageTemplateError",
    "RenderedMessage",
    "check_overrides",
    "normalize_language",
    "render",
]

LANGUAGES = ("uk", "ru", "en")
DEFAULT_LANGUAGE = "en"
MAX_SUBJECT = 200  # the outbox column holds 300; e-mail clients cut far shorter anyway

# People write the country instead of the language, or a region tag after it.
_LANGUAGE_ALIASES = {"ua": "uk", "ukr": "uk", "rus": "ru", "eng": "en"}

LEAD_KEYS = ("id", "name", "phone", "email", "product", "company", "channel")
CONTEXT_KEYS = (
    "manager_name",
    "previous_manager_name",
    "minutes",
    "hop",
    "max_hops",
    "due_at_local",
    "link",
    "reason",
    "team_name",
    "waited",
    "message",
    "contacted_by",
    "task",
    "text",
    "day",
    "digest",
)


class MessageTemplateError(LeadflowError):
    """A template (an operator's override) that cannot be compiled or rendered."""


@dataclass(frozen=True, slots=True)
class RenderedMessage:
    subject: str
    text: str


# The lead's card, shared by every template of a language. Lines with no value are left out.
_DETAILS = {
    "en": """\
{% if lead.name %}Name: {{ lead.name }}
{% endif %}{% if lead.phone %}Phone: {{ lead.phone }}
{% endif %}{% if lead.email %}Email: {{ lead.email }}
{% endif %}{% if lead.company %}Company: {{ lead.company }}
{% endif %}{% if lead.product %}Product: {{ lead.product }}
{% endif %}{% if lead.channel %}Source: {{ lead.channel }}
{% endif %}""",
    "uk": """\
{% if lead.name %}Ім'я: {{ lead.name }}
{% endif %}{% if lead.phone %}Телефон: {{ lead.phone }}
{% endif %}{% if lead.email %}Email: {{ lead.email }}
{% endif %}{% if lead.company %}Компанія: {{ lead.company }}
{% endif %}{% if lead.product %}Продукт: {{ lead.product }}
{% endif %}{% if lead.channel %}Джерело: {{ lead.channel }}
{% endif %}""",
    "ru": """\
{% if lead.name %}Имя: {{ lead.name }}
{% endif %}{% if lead.phone %}Телефон: {{ lead.phone }}
{% endif %}{% if lead.email %}Email: {{ lead.email }}
{% endif %}{% if lead.company %}Компания: {{ lead.company }}
{% endif %}{% if lead.product %}Продукт: {{ lead.product }}
{% endif %}{% if lead.channel %}Источник: {{ lead.channel }}
{% endif %}""",
}

_LINK = "{% if link %}\n{{ link }}{% endif %}"

# Subjects and bodies avoid counted nouns ("5 хвилин" vs "2 хвилини") by using abbreviations and labels, so no
# plural rules are needed in any language.
_BUILTIN: dict[str, dict[str, str]] = {
    "lead.assigned": {
        "en": "New lead #{{ lead.id }}{% if lead.name %}: {{ lead.name }}{% endif %}\n"
        "{% if manager_name %}{{ manager_name }}, you{% else %}You{% endif %} have a new lead. "
        "Get in touch as soon as you can!\n\n" + _DETAILS["en"] + "{% if due_at_local %}\n"
        "Contact the client by {{ due_at_local }}.{% endif %}" + _LINK,
        "uk": "Новий лід #{{ lead.id }}{% if lead.name %}: {{ lead.name }}{% endif %}\n"
        "{% if manager_name %}{{ manager_name }}, у{% else %}У{% endif %} тебе новий лід. "
        "Зв'яжися з клієнтом якнайшвидше!\n\n" + _DETAILS["uk"] + "{% if due_at_local %}\n"
        "Зв'язатися до {{ due_at_local }}.{% endif %}" + _LINK,
        "ru": "Новый лид #{{ lead.id }}{% if lead.name %}: {{ lead.name }}{% endif %}\n"
        "{% if manager_name %}{{ manager_name }}, у{% else %}У{% endif %} тебя новый лид. "
        "Свяжись с клиентом как можно скорее!\n\n" + _DETAILS["ru"] + "{% if due_at_local %}\n"
        "Связаться до {{ due_at_local }}.{% endif %}" + _LINK,
    },
    "lead.escalated": {
        "en": "Lead #{{ lead.id }} is waiting for you{% if lead.name %}: {{ lead.name }}{% endif %}\n"
        "Your colleague{% if previous_manager_name %} {{ previous_manager_name }}{% endif %} did not get to this lead? "
        "{% if minutes %}Pick it up, or in {{ minutes }} min you lose the chance to earn!"
        "{% else %}Pick it up now, before someone else does!{% endif %}\n\n"
        + _DETAILS["en"]
        + "{% if hop and max_hops %}\nEscalation {{ hop }} of {{ max_hops }}.{% endif %}"
        + _LINK,
        "uk": "Лід #{{ lead.id }} чекає на тебе{% if lead.name %}: {{ lead.name }}{% endif %}\n"
        "Колега{% if previous_manager_name %} ({{ previous_manager_name }}){% endif %} не встиг обробити ліда? "
        "{% if minutes %}Забирай, інакше за {{ minutes }} хв втратиш шанс заробити!"
        "{% else %}Забирай зараз, поки не забрали інші!{% endif %}\n\n"
        + _DETAILS["uk"]
        + "{% if hop and max_hops %}\nЕскалація {{ hop }} з {{ max_hops }}.{% endif %}"
        + _LINK,
        "ru": "Лид #{{ lead.id }} ждёт тебя{% if lead.name %}: {{ lead.name }}{% endif %}\n"
        "Коллега{% if previous_manager_name %} ({{ previous_manager_name }}){% endif %} не успел обработать лида? "
        "{% if minutes %}Забирай, иначе через {{ minutes }} мин упустишь шанс заработать!"
        "{% else %}Забирай сейчас, пока не забрали другие!{% endif %}\n\n"
        + _DETAILS["ru"]
        + "{% if hop and max_hops %}\nЭскалация {{ hop }} из {{ max_hops }}.{% endif %}"
        + _LINK,
    },
    "lead.chain_exhausted": {
        "en": "Nobody took lead #{{ lead.id }}{% if lead.name %}: {{ lead.name }}{% endif %}\n"
        "{% if manager_name %}{{ manager_name }}, the{% else %}The{% endif %} lead went through the whole "
        "escalation chain{% if max_hops %} ({{ max_hops }} steps){% endif %} and nobody took it."
        "{% if previous_manager_name %} Last in line: {{ previous_manager_name }}.{% endif %} "
        "Please assign it by hand.\n\n" + _DETAILS["en"] + _LINK,
        "uk": "Ліда #{{ lead.id }} ніхто не взяв{% if lead.name %}: {{ lead.name }}{% endif %}\n"
        "{% if manager_name %}{{ manager_name }}, лід{% else %}Лід{% endif %} пройшов увесь ланцюжок ескалації"
        "{% if max_hops %} (кроків: {{ max_hops }}){% endif %}, але ніхто його не взяв у роботу."
        "{% if previous_manager_name %} Останній у черзі: {{ previous_manager_name }}.{% endif %} "
        "Призначте його вручну.\n\n" + _DETAILS["uk"] + _LINK,
        "ru": "Лида #{{ lead.id }} никто не взял{% if lead.name %}: {{ lead.name }}{% endif %}\n"
        "{% if manager_name %}{{ manager_name }}, лид{% else %}Лид{% endif %} прошёл всю цепочку эскалации"
        "{% if max_hops %} (шагов: {{ max_hops }}){% endif %}, но никто не взял его в работу."
        "{% if previous_manager_name %} Последний в очереди: {{ previous_manager_name }}.{% endif %} "
        "Назначьте его вручную.\n\n" + _DETAILS["ru"] + _LINK,
    },
    "lead.desk_overdue": {
        "en": "Lead #{{ lead.id }} is waiting at the quality desk{% if lead.name %}: {{ lead.name }}{% endif %}\n"
        "{% if waited %}It has waited {{ waited }}.{% else %}It is past the desk's deadline.{% endif %} "
        "Please triage it now.\n\n" + _DETAILS["en"] + _LINK,
        "uk": "Лід #{{ lead.id }} чекає у відділі якості{% if lead.name %}: {{ lead.name }}{% endif %}\n"
        "{% if waited %}Чекає вже {{ waited }}.{% else %}Строк обробки у відділі якості минув.{% endif %} "
        "Розберіть його зараз.\n\n" + _DETAILS["uk"] + _LINK,
        "ru": "Лид #{{ lead.id }} ждёт в отделе качества{% if lead.name %}: {{ lead.name }}{% endif %}\n"
        "{% if waited %}Ждёт уже {{ waited }}.{% else %}Срок обработки в отделе качества истёк.{% endif %} "
        "Разберите его сейчас.\n\n" + _DETAILS["ru"] + _LINK,
    },
    "lead.unassigned": {
        "en": "Lead #{{ lead.id }} has no manager{% if lead.name %}: {{ lead.name }}{% endif %}\n"
        "A new lead{% if team_name %} for {{ team_name }}{% endif %} could not be assigned to anyone."
        "{% if reason %} Reason: {{ reason }}.{% endif %} Who takes it?\n\n" + _DETAILS["en"] + _LINK,
        "uk": "Лід #{{ lead.id }} без менеджера{% if lead.name %}: {{ lead.name }}{% endif %}\n"
        "Новий лід{% if team_name %} ({{ team_name }}){% endif %} не вдалося призначити жодному менеджеру."
        "{% if reason %} Причина: {{ reason }}.{% endif %} Хто візьме?\n\n" + _DETAILS["uk"] + _LINK,
        "ru": "Лид #{{ lead.id }} без менеджера{% if lead.name %}: {{ lead.name }}{% endif %}\n"
        "Новый лид{% if team_name %} ({{ team_name }}){% endif %} не удалось назначить ни одному менеджеру."
        "{% if reason %} Причина: {{ reason }}.{% endif %} Кто возьмёт?\n\n" + _DETAILS["ru"] + _LINK,
    },
}

_BUILTIN["lead.repeat"] = {
    "en": "Client of lead #{{ lead.id }} wrote again{% if lead.name %}: {{ lead.name }}{% endif %}\n"
    "The client sent a new request{% if lead.channel %} via {{ lead.channel }}{% endif %}. They are waiting: "
    'call now!{% if message %}\n\n"{{ message }}"{% endif %}\n\n' + _DETAILS["en"] + _LINK,
    "uk": "Клієнт ліда #{{ lead.id }} написав знову{% if lead.name %}: {{ lead.name }}{% endif %}\n"
    "Клієнт надіслав нову заявку{% if lead.channel %} ({{ lead.channel }}){% endif %}. Він чекає: "
    "дзвони зараз!{% if message %}\n\n«{{ message }}»{% endif %}\n\n" + _DETAILS["uk"] + _LINK,
    "ru": "Клиент лида #{{ lead.id }} написал снова{% if lead.name %}: {{ lead.name }}{% endif %}\n"
    "Клиент отправил новую заявку{% if lead.channel %} ({{ lead.channel }}){% endif %}. Он ждёт: "
    "звони сейчас!{% if message %}\n\n«{{ message }}»{% endif %}\n\n" + _DETAILS["ru"] + _LINK,
}
_BUILTIN["lead.contacted_by_other"] = {
    "en": "{{ contacted_by or 'A colleague' }} reached the client of lead #{{ lead.id }}"
    "{% if lead.name %}: {{ lead.name }}{% endif %}\n"
    "The lead is yours; its first-contact clock has stopped. Agree with {{ contacted_by or 'your colleague' }} "
    "on what comes next.{% if reason %}\n{{ reason }}{% endif %}\n\n" + _DETAILS["en"] + _LINK,
    "uk": "{{ contacted_by or 'Колега' }} зв'язався з клієнтом ліда #{{ lead.id }}"
    "{% if lead.name %}: {{ lead.name }}{% endif %}\n"
    "Лід за тобою, відлік до першого контакту зупинено. Домовся з колегою про наступні кроки."
    "{% if reason %}\n{{ reason }}{% endif %}\n\n" + _DETAILS["uk"] + _LINK,
    "ru": "{{ contacted_by or 'Коллега' }} связался с клиентом лида #{{ lead.id }}"
    "{% if lead.name %}: {{ lead.name }}{% endif %}\n"
    "Лид за тобой, отсчёт до первого контакта остановлен. Договорись с коллегой о дальнейших шагах."
    "{% if reason %}\n{{ reason }}{% endif %}\n\n" + _DETAILS["ru"] + _LINK,
}

_BUILTIN["task.overdue"] = {
    "en": "Overdue task{% if task %}: {{ task.title }}{% endif %}{% if lead.id %} (lead #{{ lead.id }}){% endif %}\n"
    "The task was due{% if task and task.due_at_local %} at {{ task.due_at_local }}{% endif %} and is still open. "
    "Do it now, or mark it done.\n\n" + _DETAILS["en"] + _LINK,
    "uk": "Прострочене завдання{% if task %}: {{ task.title }}{% endif %}{% if lead.id %} (лід #{{ lead.id }}){% endif %}\n"
    "Строк завдання{% if task and task.due_at_local %}: {{ task.due_at_local }}{% endif %}, а воно досі відкрите. "
    "Виконай його зараз або познач виконаним.\n\n" + _DETAILS["uk"] + _LINK,
    "ru": "Просроченная задача{% if task %}: {{ task.title }}{% endif %}{% if lead.id %} (лид #{{ lead.id }}){% endif %}\n"
    "Срок задачи{% if task and task.due_at_local %}: {{ task.due_at_local }}{% endif %}, а она всё ещё открыта. "
    "Выполни её сейчас или отметь выполненной.\n\n" + _DETAILS["ru"] + _LINK,
}
# An automation's `notify`: its own words first, then the lead.
_BUILTIN["automation.notice"] = {
    "en": "{{ text or 'Leadflow' }}{% if lead.id %} (lead #{{ lead.id }}){% endif %}\n" + _DETAILS["en"] + _LINK,
    "uk": "{{ text or 'Leadflow' }}{% if lead.id %} (лід #{{ lead.id }}){% endif %}\n" + _DETAILS["uk"] + _LINK,
    "ru": "{{ text or 'Leadflow' }}{% if lead.id %} (лид #{{ lead.id }}){% endif %}\n" + _DETAILS["ru"] + _LINK,
}

# For event types without a template of their own: say what happened and show the lead.
_GENERIC = {
    "en": "Leadflow: {{ event_type }}{% if lead.id %}, lead #{{ lead.id }}{% endif %}\n"
    "Event: {{ event_type }}\n\n" + _DETAILS["en"] + _LINK,
    "uk": "Leadflow: {{ event_type }}{% if lead.id %}, лід #{{ lead.id }}{% endif %}\n"
    "Подія: {{ event_type }}\n\n" + _DETAILS["uk"] + _LINK,
    "ru": "Leadflow: {{ event_type }}{% if lead.id %}, лид #{{ lead.id }}{% endif %}\n"
    "Событие: {{ event_type }}\n\n" + _DETAILS["ru"] + _LINK,
}

# The notifications about one lead: each shows the lead's card.
EVENT_TYPES = tuple(_BUILTIN)

# Not about one lead, so not among EVENT_TYPES (the texts that show a lead's card): the daily digest for a head of
# sales (services/reports/digest.py), yesterday's figures of their team.
_BUILTIN["report.digest"] = {
    "en": "Daily report{% if team_name %}, {{ team_name }}{% endif %}: {{ day }}\n"
    "{% if manager_name %}{{ manager_name }}, here{% else %}Here{% endif %} is {{ day }}"
    "{% if team_name %} in {{ team_name }}{% endif %}.\n\n{% if digest %}"
    "First-contact deadlines missed: {{ digest.breaches }}"
    "{% if digest.breaches_waiting %} (not contacted yet: {{ digest.breaches_waiting }}){% endif %}\n"
    "First contacts: {{ digest.first_contacts }}"
    "{% for b in digest.bands %}\n  {{ b.band }}: {{ b.count }} ({{ b.share }}){% endfor %}\n\n"
    "New leads: {{ digest.arrived }}; the statuses they reached so far:"
    "{% for s in digest.funnel %}\n  {{ s.status }}: {{ s.entered }}{% endfor %}\n"
    "Won: {{ digest.won }}, turnover {{ digest.turnover }}\n\n"
    "{% if digest.top %}At the top:{% for m in digest.top %}\n  {{ m.name }}: first contacts {{ m.first_contacts }}, "
    "conversion {{ m.conversion }}{% endfor %}\n{% endif %}"
    "{% if digest.bottom %}Need attention:{% for m in digest.bottom %}\n  {{ m.name }}: first contacts "
    "{{ m.first_contacts }}, conversion {{ m.conversion }}{% endfor %}\n{% endif %}{% endif %}" + _LINK,
    "uk": "Щоденний звіт{% if team_name %}, {{ team_name }}{% endif %}: {{ day }}\n"
    "{% if manager_name %}{{ manager_name }}, ось{% else %}Ось{% endif %} підсумки за {{ day }}"
    "{% if team_name %} ({{ team_name }}){% endif %}.\n\n{% if digest %}"
    "Пропущені строки першого контакту: {{ digest.breaches }}"
    "{% if digest.breaches_waiting %} (досі без контакту: {{ digest.breaches_waiting }}){% endif %}\n"
    "Перші контакти: {{ digest.first_contacts }}"
    "{% for b in digest.bands %}\n  {{ b.band }}: {{ b.count }} ({{ b.share }}){% endfor %}\n\n"
    "Нові ліди: {{ digest.arrived }}; статуси, яких вони вже досягли:"
    "{% for s in digest.funnel %}\n  {{ s.status }}: {{ s.entered }}{% endfor %}\n"
    "Виграно: {{ digest.won }}, виручка {{ digest.turnover }}\n\n"
    "{% if digest.top %}Найкращі:{% for m in digest.top %}\n  {{ m.name }}: перші контакти {{ m.first_contacts }}, "
    "конверсія {{ m.conversion }}{% endfor %}\n{% endif %}"
    "{% if digest.bottom %}Потребують уваги:{% for m in digest.bottom %}\n  {{ m.name }}: перші контакти "
    "{{ m.first_contacts }}, конверсія {{ m.conversion }}{% endfor %}\n{% endif %}{% endif %}" + _LINK,
    "ru": "Ежедневный отчёт{% if team_name %}, {{ team_name }}{% endif %}: {{ day }}\n"
    "{% if manager_name %}{{ manager_name }}, вот{% else %}Вот{% endif %} итоги за {{ day }}"
    "{% if team_name %} ({{ team_name }}){% endif %}.\n\n{% if digest %}"
    "Пропущенные сроки первого контакта: {{ digest.breaches }}"
    "{% if digest.breaches_waiting %} (до сих пор без контакта: {{ digest.breaches_waiting }}){% endif %}\n"
    "Первые контакты: {{ digest.first_contacts }}"
    "{% for b in digest.bands %}\n  {{ b.band }}: {{ b.count }} ({{ b.share }}){% endfor %}\n\n"
    "Новые лиды: {{ digest.arrived }}; статусы, которых они уже достигли:"
    "{% for s in digest.funnel %}\n  {{ s.status }}: {{ s.entered }}{% endfor %}\n"
    "Выиграно: {{ digest.won }}, выручка {{ digest.turnover }}\n\n"
    "{% if digest.top %}Лучшие:{% for m in digest.top %}\n  {{ m.name }}: первые контакты {{ m.first_contacts }}, "
    "конверсия {{ m.conversion }}{% endfor %}\n{% endif %}"
    "{% if digest.bottom %}Требуют внимания:{% for m in digest.bottom %}\n  {{ m.name }}: первые контакты "
    "{{ m.first_contacts }}, конверсия {{ m.conversion }}{% endfor %}\n{% endif %}{% endif %}" + _LINK,
}

_ENV = SandboxedEnvironment(
    autoescape=False,
    undefined=StrictUndefined,
    keep_trailing_newline=False,
    auto_reload=False,
)  # no trim_blocks: whitespace is kept as written (use {%- -%} to trim); render() collapses runs of blank lines


@lru_cache(maxsize=256)
def _compile(source: str) -> Template:
    # Overrides come from configuration and rarely change; compile each text once.
    return _ENV.from_string(source)


def normalize_language(language: str | None) -> str | None:
    """'uk-UA', 'UK', 'ua' -> 'uk'; None or blank -> None. Unknown languages pass through (an override may have them)."""
    if not language or not language.strip():
        return None
    code = re.split(r"[-_]", language.strip().lower(), maxsplit=1)[0]
    return _LANGUAGE_ALIASES.get(code, code)


def _full_context(event_type: str, context: Mapping[str, object]) -> dict[str, Any]:
    # Every documented key exists, so `{% if lead.email %}` works on a sparse context under StrictUndefined,
    # while a misspelt name in a template still fails loudly.
    full: dict[str, Any] = dict.fromkeys(CONTEXT_KEYS)
    full.update(context)
    lead = context.get("lead")
    full["lead"] = {**dict.fromkeys(LEAD_KEYS), **(lead if isinstance(lead, Mapping) else {})}
    full["event_type"] = event_type
    return full


def _pick(event_type: str, language: str | None, overrides: Mapping[str, Mapping[str, str]] | None) -> tuple[str, bool]:
    """The template source and whether it is an override.

    Requested language first, then English; an override wins over the built-in text of the same language.
    """
    chain = [language, DEFAULT_LANGUAGE] if language and language != DEFAULT_LANGUAGE else [DEFAULT_LANGUAGE]
    custom = (overrides or {}).get(event_type, {})
    builtin = _BUILTIN.get(event_type, {})
    for code in chain:
        if code in custom:
            return custom[code], True
        if code in builtin:
            return builtin[code], False
    # Only an event type nobody wrote a text for gets the generic one.
    return next((_GENERIC[code] for code in chain if code in _GENERIC), _GENERIC[DEFAULT_LANGUAGE]), False


def _split(rendered: str) -> RenderedMessage:
    lines = [line.rstrip() for line in rendered.strip().splitlines()]
    subject = lines[0] if lines else ""
    if len(subject) > MAX_SUBJECT:
        subject = subject[: MAX_SUBJECT - 1].rstrip() + "…"
    body = "\n".join(lines[1:]).strip("\n")
    body = re.sub(r"\n{3,}", "\n\n", body)  # at most one blank line, whatever the template's `if`s left behind
    return RenderedMessage(subject=subject, text=body)


def _flatten(value: object) -> object:
    # A subject is one line: a lead named "Bob\nBCC: x" must not split it (nor an e-mail header).
    if isinstance(value, str):
        return " ".join(value.split()) if ("\n" in value or "\r" in value) else value
    if isinstance(value, Mapping):
        return {k: _flatten(v) for k, v in value.items()}
    return value


def render(
    event_type: str,
    language: str | None,
    context: Mapping[str, object],
    overrides: Mapping[str, Mapping[str, str]] | None = None,
) -> RenderedMessage:
    """The subject and text of one notification.

    Language falls back to English; an unknown event type gets a generic message. ``overrides`` maps event type
    -> language -> template (first line the subject) and wins over the built-in text for that pair.
    Raises MessageTemplateError only for a broken override; the built-in templates always render.
    """
    code = normalize_language(language)
    source, custom = _pick(event_type, code, overrides)
    values = _flatten(_full_context(event_type, context))
    try:
        rendered = _compile(source).render(values)
    except TemplateError as exc:
        where = f"template for {event_type!r} in {code or DEFAULT_LANGUAGE!r}"
        if custom:
            raise MessageTemplateError(f"the override {where} does not render: {exc}") from exc
        raise MessageTemplateError(f"the built-in {where} does not render (a leadflow bug): {exc}") from exc
    return _split(rendered)


_SAMPLE_CONTEXT: dict[str, object] = {
    "lead": {
        "id": 1,
        "name": "Sample Client",
        "phone": "+380501234567",
        "email": "client@example.com",
        "product": "Sample product",
        "company": "Sample Ltd",
        "channel": "web",
    },
    "manager_name": "Manager",
    "previous_manager_name": "Colleague",
    "minutes": 10,
    "hop": 1,
    "max_hops": 3,
    "due_at_local": "2026-01-01 09:10",
    "link": "https://leadflow.example/leads/1",
    "reason": "nobody on shift",
    "team_name": "Sales",
    "message": "Please call me back",
    "contacted_by": "Colleague",
    "day": "2026-01-01",
    "digest": {
        "day": "2026-01-01",
        "team": "Sales",
        "breaches": 1,
        "breaches_waiting": 0,
        "first_contacts": 2,
        "bands": [{"band": "≤20m", "count": 2, "share": "100%"}],
        "arrived": 3,
        "funnel": [{"status": "Contacted", "entered": 2}],
        "won": 1,
        "turnover": "1000.00",
        "top": [{"name": "Manager", "first_contacts": 2, "conversion": "50%"}],
        "bottom": [{"name": "Colleague", "first_contacts": 0, "conversion": "0%"}],
    },
}


def check_overrides(overrides: Mapping[str, Mapping[str, str]]) -> list[str]:
    """Problems with configured overrides (empty when all render), to report at start-up rather than at 3 a.m."""
    problems: list[str] = []
    for event_type, by_language in overrides.items():
        for language, source in by_language.items():
            if not source.strip():
                problems.append(f"the override for {event_type!r} in {language!r} is empty")
                continue
            try:
                render(event_type, language, _SAMPLE_CONTEXT, {event_type: {language: source}})
            except MessageTemplateError as exc:
                problems.append(str(exc))
    return problems
