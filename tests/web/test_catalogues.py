"""Every message the pages use is translated into Ukrainian and Russian (English is the message ids)."""

from __future__ import annotations

import re

import pytest

from leadflow.web.catalogues import extract, read_catalogue, untranslated
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


@pytest.mark.parametrize("language", ["uk", "ru"])
def test_a_sentence_keeps_the_places_of_its_figures(language: str) -> None:
    """The reports' sentences (note()) are filled by name: a translation has the same {places} as its message."""
    places = re.compile(r"\{(\w*)\}")
    sentences = [m for m in read_catalogue(language) if isinstance(m.id, str) and places.search(m.id)]
    assert len(sentences) > 20
    wrong = [(m.id, m.string) for m in sentences if sorted(places.findall(m.id)) != sorted(places.findall(m.string))]
    assert wrong == []
