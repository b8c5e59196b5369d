"""Interface strings in Ukrainian, Russian and English, and the reader's language, dates and numbers.

The strings are gettext catalogues (leadflow/web/locale/<lang>/LC_MESSAGES/messages.po, kept with Babel:
`scripts/i18n` extracts and merges them). Message ids are the English text, as gettext does, so a missing
translation shows English, never a key; every miss is also remembered (`misses()`), so the tests can walk every
page in every language and fail on one.
"""

from __future__ import annotations

import gettext
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from functools import cache
from io import BytesIO
from pathlib import Path
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_datetime, format_timedelta
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal

LANGUAGES = ("uk", "ru", "en")
DEFAULT = "en"
LOCALE_DIR = Path(__file__).parent / "locale"
# The locale each language's dates and numbers follow: English with the day first and a 24-hour clock, as the
# teams leadflow is made for write it.
_LOCALES = {"uk": "uk_UA", "ru": "ru_RU", "en": "en_GB"}
NAMES = {"uk": "Українська", "ru": "Русский", "en": "English"}

_misses: set[tuple[str, str]] = set()


def N_(text: str) -> str:  # gettext's marker: extracted into the catalogue, translated where it is shown
    return text


class Translations(gettext.NullTranslations):
    """One language's catalogue; a message it lacks is shown in English and remembered as a miss."""

    def __init__(self, language: str, catalog: gettext.GNUTranslations | None) -> None:
        super().__init__()
        self.language = language
        self._found = catalog

    def gettext(self, message: str) -> str:
        if self._found is None:
            return message
        if message not in self._found._catalog:  # type: ignore[attr-defined]
            _misses.add((self.language, message))
            return message
        return self._found.gettext(message)

    def ngettext(self, msgid1: str, msgid2: str, n: int) -> str:
        if self._found is None:
            return msgid1 if n == 1 else msgid2
        if (msgid1, 0) not in self._found._catalog:  # type: ignore[attr-defined]
            _misses.add((self.language, msgid1))
            return msgid1 if n == 1 else msgid2
        return self._found.ngettext(msgid1, msgid2, n)


@cache
def translations(language: str) -> Translations:
    if language == DEFAULT or language not in LANGUAGES:
        return Translations(DEFAULT, None)
    with (LOCALE_DIR / language / "LC_MESSAGES" / "messages.po").open("rb") as po:
        catalog = read_po(po, locale=language)
    compiled = BytesIO()
    write_mo(compiled, catalog)  # gettext's own reader then gives plural forms by the language's formula
    compiled.seek(0)
    return Translations(language, gettext.GNUTranslations(compiled))


def translator(language: str) -> Callable[[str], str]:
    return translations(language).gettext


def misses() -> set[tuple[str, str]]:
    """(language, message) pairs asked for and not in the catalogue since the process started."""
    return set(_misses)


def clear_misses() -> None:
    _misses.clear()


def missing(language: str, texts: list[str]) -> list[str]:
    """The given message ids that have no translation in `language` (English needs none)."""
    found = translations(language)._found
    if found is None:
        return []
    return [t for t in texts if t not in found._catalog]  # type: ignore[attr-defined]


def pick_language(accept_language: str | None, preferred: str | None = None) -> str:
    """An explicit choice (the profile's, the form's own) wins; then the browser's Accept-Language order; else
    English."""
    for candidate in (preferred, *_accepted(accept_language or "")):
        if candidate:
            base = candidate.strip().lower().replace("_", "-").split("-")[0]
            base = {"ua": "uk"}.get(base, base)
            if base in LANGUAGES:
                return base
    return DEFAULT


def _accepted(header: str) -> list[str]:
    weighted: list[tuple[float, int, str]] = []
    for position, part in enumerate(header.split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if tag and quality > 0:
            weighted.append((-quality, position, tag))
    return [tag for _, _, tag in sorted(weighted)]


@cache
def locale_of(language: str) -> Locale:
    return Locale.parse(_LOCALES.get(language, _LOCALES[DEFAULT]))


class Formats:
    """Dates, durations and numbers in one reader's locale and time zone."""

    def __init__(self, language: str, timezone: ZoneInfo) -> None:
        self.locale = locale_of(language)
        self.timezone = timezone

    def when(self, moment: datetime | None, form: str = "short") -> str:
        if moment is None:
            return "—"
        return format_datetime(moment, form, tzinfo=self.timezone, locale=self.locale)

    def time(self, moment: datetime | None) -> str:
        if moment is None:
            return "—"
        return format_datetime(moment, "HH:mm", tzinfo=self.timezone, locale=self.locale)

    def span(self, seconds: float | int | None) -> str:
        if seconds is None:
            return "—"
        return format_timedelta(timedelta(seconds=seconds), threshold=1.2, locale=self.locale)

    def number(self, value: int | float | Decimal | None, digits: int = 0) -> str:
        if value is None:
            return "—"
        pattern = "#,##0" + ("." + "0" * digits if digits else "")
        return format_decimal(value, format=pattern, locale=self.locale)

    def percent(self, share: float | None) -> str:
        if share is None:
            return "—"
        return format_decimal(share * 100, format="0", locale=self.locale) + "%"
