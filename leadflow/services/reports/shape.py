"""What every report returns: plain data the API, the CLI, the exports, the pages and the digest render alike."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from leadflow.core.schedule import format_duration

# How a value is shown: a count, a number, a share (0..1, shown as a percentage), seconds (shown as a duration),
# money, a day, an instant, or text.
Kind = Literal["int", "number", "percent", "seconds", "money", "date", "datetime", "text"]
CENT = Decimal("0.01")  # money is reported to the cent


def N_(text: str) -> str:
    """A report's fixed words (titles, labels, names of rows): English here, in the interface's catalogues
    (`scripts/i18n` extracts them), and in the reader's language on the desk's page."""
    return text


@dataclass(frozen=True, slots=True)
class Figure:
    """A number inside a sentence: what it is (a Kind) for a page to show it the reader's way, and its English."""

    value: Any
    kind: Kind | Literal["status"]  # a status: its key, shown by its label (a team's own, else leadflow's)
    text: str

    def __str__(self) -> str:
        return self.text


def percent(value: float, digits: int = 0) -> Figure:
    return Figure(value, "percent", f"{value:.{digits}%}")


def grouped(value: int) -> Figure:
    """A count with its thousands grouped: 12,345."""
    return Figure(value, "int", f"{value:,}")


def number(value: float, digits: int = 1) -> Figure:
    return Figure(value, "number", f"{value:.{digits}f}")


def duration(seconds: float) -> Figure:
    return Figure(seconds, "seconds", format_duration(timedelta(seconds=round(seconds))))


def money(value: Decimal) -> Figure:
    return Figure(value, "money", str(value))


def named_status(key: str, label: str) -> Figure:
    return Figure(key, "status", label)


class Note(str):
    """A sentence with figures or names in it. As a str it is its English text, which JSON, the CLI and the files
    show; it keeps the message it was made from (`template`, a message id with {named} places) and what fills the
    places, so the desk's page can say it in the reader's language. A place holds a number, a Figure, a day, a name,
    or another Note."""

    template: str
    params: dict[str, Any]
    translated: bool  # False: the template is not a message of its own (a list of parts); only its parts are

    def __new__(cls, template: str, params: dict[str, Any], translated: bool = True) -> Note:
        made = super().__new__(cls, template.format(**{k: str(v) for k, v in params.items()}))
        made.template, made.params, made.translated = template, params, translated
        return made

    def __getnewargs__(self) -> tuple[Any, ...]:  # copies and pickles keep the parts
        return self.template, self.params, self.translated


def note(template: str, **params: Any) -> Note:
    """A sentence from a message id and its places: note("{count} leads were left out.", count=n). Marked for the
    catalogues like N_ (the first argument must be the literal message)."""
    return Note(template, params)


def joined(parts: Sequence[str], separator: str = "; ") -> Note:
    """Words or sentences run together, each translated on its own on the page."""
    places = {f"p{i}": part for i, part in enumerate(parts)}
    return Note(separator.join("{" + name + "}" for name in places), places, translated=False)


@dataclass(frozen=True, slots=True)
class Col:
    key: str
    label: str
    kind: Kind = "int"


@dataclass
class Table:
    key: str
    title: str
    columns: list[Col]
    rows: list[dict[str, Any]] = field(default_factory=list)
    note: str | None = None  # what the table counts, in a sentence

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "title": plain(self.title), "note": plain(self.note),
                "columns": [{"key": c.key, "label": plain(c.label), "kind": c.kind} for c in self.columns],
                "rows": [{c.key: plain(row.get(c.key)) for c in self.columns} | _extra(row) for row in self.rows]}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Chart:
    """A chart the web desk draws with Chart.js and the digest as a PNG: labels along x, one series per dataset."""

    key: str
    title: str
    type: Literal["bar", "line"]
    labels: list[str]
    datasets: list[dict[str, Any]]  # {"label": str, "data": [number | None, ...]}

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "title": plain(self.title), "type": self.type, "labels": plain(self.labels),
                "datasets": [{"label": plain(d["label"]), "data": [plain(v) for v in d["data"]]} for d in self.datasets]}  # fmt: skip


@dataclass
class Report:
    name: str
    title: str
    window: dict[str, Any]  # the filters as understood (Window.echo)
    generated_at: datetime
    summary: dict[str, Any] = field(default_factory=dict)  # the headline figures
    tables: list[Table] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what a reader should know: what was left out, and why

    def table(self, key: str) -> Table:
        return next(t for t in self.tables if t.key == key)

    def to_json(self) -> dict[str, Any]:
        return {"report": self.name, "title": plain(self.title), "filters": self.window,
                "generated_at": self.generated_at.isoformat(), "summary": {k: plain(v) for k, v in self.summary.items()},
                "tables": [t.to_json() for t in self.tables], "charts": [c.to_json() for c in self.charts],
                "notes": plain(self.notes)}  # fmt: skip


def plain(value: Any) -> Any:
    """A value as JSON carries it: money as a string of its exact decimal, days and instants in ISO 8601, a
    sentence as its English text."""
    if isinstance(value, Note):
        return str(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def _extra(row: dict[str, Any]) -> dict[str, Any]:
    """Keys a row carries beyond its columns (ids, nested detail), kept in the JSON under their own names."""
    return {k: plain(v) for k, v in row.items() if k.startswith("_")}
