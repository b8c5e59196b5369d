"""Every message the pages use is translated into Ukrainian and Russian (English is the message ids)."""

from __future__ import annotations

import pytest

from leadflow.web.catalogues import extract, untranslated
from leadflow.web.i18n import translations


@pytest.mark.parametrize("language", ["uk", "ru"])
def test_every_interface_message_is_translated(language: str) -> None:
    template = extract()
    assert len(template) > 100  # the extraction finds the templates' and the Python's messages
    assert untranslated(language, template) == []


@pytest.mark.parametrize("language", ["uk", "ru"])
def test_plural_forms_follow_the_language(language: str) -> None:
    plural = translations(language).ngettext
    one, few, many = (plural("%(num)d open lead", "%(num)d open leads", n) % {"num": n} for n in (1, 3, 5))
    assert len({one, few, many}) == 3, (one, few, many)  # one, few and many differ in both languages
