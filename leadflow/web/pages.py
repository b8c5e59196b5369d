"""Small server-rendered pages a visitor's browser gets: thanks after a form, the form again with its problems,
and error pages. Jinja2 with autoescaping; no script and no inline style (the style sheet is a file under /static),
so the strictest Content-Security-Policy holds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from leadflow.web.i18n import N_, translator

STATIC = Path(__file__).parent / "static"
STATIC_URL = "/static"

_env = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(default=True),
    trim_blocks=True,
    lstrip_blocks=True,
    auto_reload=False,  # the templates ship with the package: no file-time check on every include
)
_env.globals["static"] = STATIC_URL


def environment() -> Environment:
    return _env


def render(template: str, language: str, **context: Any) -> str:
    return _env.get_template(template).render(_=translator(language), lang=language, **context)


def thanks_page(language: str, *, repeated: bool = False) -> str:
    return render("thanks.html", language, repeated=repeated)


# What a visitor is asked to fix, per field, in their language; other fields show leadflow's own sentence.
_ASK = {
    "phone": N_("Please check the phone number."),
    "email": N_("Please check the e-mail address."),
    "contact": N_("Leave a phone number or an e-mail so we can reach you."),
    "body": N_("The form is empty."),
}


def form_page(language: str, action: str, problems: Sequence[Mapping[str, str]], values: Mapping[str, str]) -> str:
    """The form again, with what the visitor typed and what is wrong, so they can fix it and send it again."""
    _ = translator(language)
    asks = list(dict.fromkeys(_(_ASK[p["field"]]) if p["field"] in _ASK else p["reason"] for p in problems))
    shown = ("name", "phone", "email", "message")
    hidden = {k: v for k, v in values.items() if k not in shown}
    return render("form.html", language, action=action, asks=asks, values=values, hidden=hidden)


def error_page(
    language: str, status: int, message: str, problems: Sequence[Mapping[str, str]] = (), reference: str | None = None
) -> str:
    return render("error.html", language, status=status, message=message, problems=problems, reference=reference)
