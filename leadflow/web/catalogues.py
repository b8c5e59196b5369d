"""Keeping the interface's gettext catalogues: extract every message the pages and their Python use, and merge it
into each language's catalogue (what `scripts/i18n` runs; the tests use `untranslated` to fail on a miss)."""

from __future__ import annotations

from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po

from leadflow.web.i18n import DEFAULT, LANGUAGES, LOCALE_DIR

PACKAGE = Path(__file__).parents[1]
# Where interface strings are: the desk's templates and Python, the error pages the API renders for browsers, and
# the reports' words, which the desk's report pages show (marked there with N_, and note() for sentences).
METHODS = [
    ("web/templates/**.html", "jinja2.ext:babel_extract"),
    ("web/**.py", "python"),
    ("api/errors.py", "python"),
    ("services/reports/**.py", "python"),
]
OPTIONS = {"web/templates/**.html": {"trim_blocks": "true", "lstrip_blocks": "true"}}
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None, "note": None}


def extract() -> Catalog:
    catalog = Catalog(project="leadflow", charset="utf-8")
    found = extract_from_dir(PACKAGE, METHODS, options_map=OPTIONS, keywords=KEYWORDS, strip_comment_tags=True)
    for filename, line, message, comments, context in found:
        catalog.add(message, None, [(filename, line)], auto_comments=comments, context=context)
    return catalog


def po_path(language: str) -> Path:
    return LOCALE_DIR / language / "LC_MESSAGES" / "messages.po"


def read_catalogue(language: str) -> Catalog:
    with po_path(language).open("rb") as po:
        return read_po(po, locale=language)


def untranslated(language: str, template: Catalog | None = None) -> list[str]:
    """Messages the code uses that `language`'s catalogue does not translate."""
    template = template or extract()
    have = read_catalogue(language)
    missing = []
    for message in template:
        if not message.id:
            continue
        found = have.get(message.id)
        strings = found.string if found is not None else None
        if found is None or found.fuzzy or not strings or (isinstance(strings, tuple) and not all(strings)):
            missing.append(message.id if isinstance(message.id, str) else message.id[0])
    return missing


def update_all() -> dict[str, list[str]]:
    """Merge the extracted messages into every catalogue (new ones empty, gone ones dropped); what is missing."""
    template = extract()
    report = {}
    for language in LANGUAGES:
        if language == DEFAULT:
            continue
        catalog = read_catalogue(language)
        catalog.update(template, no_fuzzy_matching=True)
        catalog.obsolete.clear()
        with po_path(language).open("wb") as po:
            write_po(po, catalog, width=120, omit_header=False, sort_output=True, include_lineno=False)
        report[language] = untranslated(language, template)
    return report
