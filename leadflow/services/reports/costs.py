"""Advertising spend: imported from a CSV (a day, an amount, and the channel, source and UTM campaign it paid for),
read back by day. Channel quality divides it among the leads it brought (services/reports/channels.py).

A line is one day's spend on one (channel, source, campaign); '' in any of the three stands for "any". Importing a
line that is already there replaces its amount, so a corrected export can be imported again.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from leadflow.core.errors import FieldProblem, Forbidden, InvalidInput
from leadflow.core.policy import Action, Principal, can, needed_for
from leadflow.services.context import Leadflow
from leadflow.services.reports.query import MAX_DAYS
from leadflow.services.reports.shape import CENT
from leadflow.store.db import READ_ONLY
from leadflow.store.tables import channel_costs

MAX_ROWS = 100_000
MAX_BYTES = 5 * 1024 * 1024
MAX_PROBLEMS = 20  # a file with a wrong column would otherwise name every line
REQUIRED = ("day", "amount")
OPTIONAL = ("channel", "source", "campaign")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_CHANNEL = re.compile(r"^[a-z0-9_.-]+$")  # as a lead's channel is written (core/lead.py)
_WIDTH = {"channel": 40, "source": 200, "campaign": 200}
_MOST = Decimal("99999999999999.99")  # what Numeric(16, 2) holds


@dataclass(frozen=True, slots=True)
class Spend:
    """One line of the file: `line` is where it was, to name it in an error."""

    line: int
    day: date
    channel: str
    source: str
    campaign: str
    amount: Decimal

    @property
    def key(self) -> tuple[date, str, str, str]:
        return (self.day, self.channel, self.source, self.campaign)


def import_costs(app: Leadflow, csv_text: str, now: datetime, *, who: Principal) -> dict[str, int]:
    """Add or replace each line's spend, all in one transaction or, when any line is wrong, none (422 naming every
    wrong line: `line N: reason`)."""
    if not can(who, Action.REPORTS_PLAN):
        raise Forbidden(f"{who.label} may not import advertising costs: it takes {needed_for(Action.REPORTS_PLAN)}")
    lines = parse_costs(csv_text)
    with app.engine.begin() as conn:
        there = _existing(conn, lines)
        _upsert(conn, lines, now, who.label)
    replaced = sum(1 for s in lines if s.key in there)
    return {"added": len(lines) - replaced, "replaced": replaced, "rows": len(lines)}


def list_costs(app: Leadflow, start: date, end: date, *, who: Principal) -> list[dict[str, Any]]:
    """The spend of the days from `start` to `end`, both included, by day, channel, source and campaign."""
    if not can(who, Action.REPORTS_READ):
        raise Forbidden(f"{who.label} may not read advertising costs: it takes {needed_for(Action.REPORTS_READ)}")
    if end < start:
        raise InvalidInput.one("to", f"the period ends ({end}) before it starts ({start})")
    if (end - start).days + 1 > MAX_DAYS:
        raise InvalidInput.one("from", f"a list covers at most {MAX_DAYS} days; this asks for {(end - start).days + 1}")
    c = channel_costs.c
    with app.engine.connect().execution_options(**READ_ONLY) as conn:
        rows = conn.execute(
            select(c.day, c.channel, c.source, c.campaign, c.amount, c.updated_at, c.actor)
            .where(c.day >= start, c.day <= end)
            .order_by(c.day, c.channel, c.source, c.campaign)
        ).mappings()
        return [dict(r) | {"amount": Decimal(r["amount"]).quantize(CENT)} for r in rows]


# -- Reading the file -----------------------------------------------------------------------------------------------


def parse_costs(csv_text: str) -> list[Spend]:
    """The lines of a spend CSV: a header naming day and amount (and any of channel, source, campaign, in any
    order), then one line per day and campaign. Comma, semicolon or tab separated; the amount's decimal mark is
    '.' or ','. Every problem is collected and raised together."""
    if len(csv_text.encode("utf-8")) > MAX_BYTES:
        raise InvalidInput.one(
            "file", f"the file is over {MAX_BYTES // (1024 * 1024)} MB: split it and import each part"
        )
    body = csv_text.removeprefix("\ufeff")
    if "\x00" in body:  # not text (and no database keeps it in a text column)
        line = body.count("\n", 0, body.index("\x00")) + 1
        raise InvalidInput.one("file", f"line {line}: a NUL character: the file is not text; export it as CSV")
    first = body.split("\n", 1)[0]
    delimiter = max((",", ";", "\t"), key=first.count)
    reader = csv.reader(io.StringIO(body, newline=""), delimiter=delimiter)
    records = _records(reader)
    header = next(records, None)
    if header is None or not any(h.strip() for h in header):
        raise InvalidInput.one("file", "the file is empty: the first line names the columns (day, amount, and any "
                                       "of channel, source, campaign)")  # fmt: skip
    columns = _columns(header)
    problems: list[FieldProblem] = []
    found: list[Spend] = []
    seen: dict[tuple[date, str, str, str], int] = {}
    count = 0
    for cells in records:
        if not any(c.strip() for c in cells):
            continue  # a blank line
        line = reader.line_num
        count += 1
        if count > MAX_ROWS:
            raise InvalidInput.one("file", f"the file has more than {MAX_ROWS:,} lines: split it and import each part")
        spend = _spend(line, cells, columns, problems)
        if spend is None:
            continue
        if spend.key in seen:
            problems.append(FieldProblem("day", f"line {line}: the same day, channel, source and campaign as line "
                                                f"{seen[spend.key]}"))  # fmt: skip
            continue
        seen[spend.key] = line
        found.append(spend)
    if problems:
        more = len(problems) - MAX_PROBLEMS
        shown = problems[:MAX_PROBLEMS]
        if more > 0:
            shown.append(FieldProblem("file", f"and {more} more line(s) with a problem"))
        raise InvalidInput(shown)
    if not found:
        raise InvalidInput.one("file", "the file has a header but no lines of spend")
    return found


def _records(reader: Any) -> Iterator[list[str]]:
    """The reader's records: a file the csv module cannot read (a NUL byte, a cell over its size limit) is a 422
    naming the line, not a crash."""
    try:
        yield from reader
    except csv.Error as exc:
        raise InvalidInput.one("file", f"line {reader.line_num}: the line cannot be read as CSV ({exc})") from None


def _columns(header: list[str]) -> dict[str, int]:
    names = [h.strip().lower() for h in header]
    problems = [FieldProblem("file", f"line 1: unknown column '{h}': the columns are "
                                     f"{', '.join((*REQUIRED, *OPTIONAL))}") for h in names if h not in (*REQUIRED, *OPTIONAL)]  # fmt: skip
    problems += [FieldProblem("file", f"line 1: the column '{h}' is named twice")
                 for i, h in enumerate(names) if h in names[:i] and h]  # fmt: skip
    problems += [FieldProblem("file", f"line 1: the column '{r}' is missing") for r in REQUIRED if r not in names]
    if problems:
        raise InvalidInput(problems)
    return {h: i for i, h in enumerate(names)}


def _spend(line: int, cells: list[str], columns: dict[str, int], problems: list[FieldProblem]) -> Spend | None:
    def cell(name: str) -> str:
        i = columns.get(name)
        return cells[i].strip() if i is not None and i < len(cells) else ""

    before = len(problems)
    if len(cells) > len(columns):
        problems.append(FieldProblem("file", f"line {line}: {len(cells)} cells under {len(columns)} columns"))
    day = _day(cell("day"), line, problems)
    amount = _amount(cell("amount"), line, problems)
    texts = {name: cell(name) for name in OPTIONAL}
    texts["channel"] = texts["channel"].lower()
    if texts["channel"] and not _CHANNEL.match(texts["channel"]):
        problems.append(FieldProblem("channel", f"line {line}: channel '{texts['channel']}' is not a channel name "
                                                "(lower-case letters, digits, '_', '.', '-')"))  # fmt: skip
    for name, width in _WIDTH.items():
        if len(texts[name]) > width:
            problems.append(FieldProblem(name, f"line {line}: the {name} is longer than {width} characters"))
    if len(problems) > before or day is None or amount is None:
        return None
    return Spend(line, day, texts["channel"], texts["source"], texts["campaign"], amount)


def _day(value: str, line: int, problems: list[FieldProblem]) -> date | None:
    if not value:
        problems.append(FieldProblem("day", f"line {line}: the day is missing"))
        return None
    try:
        if _DAY.match(value):
            return date.fromisoformat(value)
    except ValueError:
        pass
    problems.append(FieldProblem("day", f"line {line}: '{value}' is not a day: write it as 2026-11-03"))
    return None


def _amount(value: str, line: int, problems: list[FieldProblem]) -> Decimal | None:
    text = value.replace(" ", "").replace("\u00a0", "").replace("\u202f", "")  # spaces between thousands
    if not text:
        problems.append(FieldProblem("amount", f"line {line}: the amount is missing"))
        return None
    if "," in text and "." in text:
        problems.append(FieldProblem("amount", f"line {line}: amount '{value}' has both '.' and ',': write one "
                                               "decimal mark and no thousands separator"))  # fmt: skip
        return None
    try:
        amount = Decimal(text.replace(",", "."))
    except InvalidOperation:
        amount = None
    if amount is None or not amount.is_finite() or not re.fullmatch(r"[+-]?\d*\.?\d*", text.replace(",", ".")):
        problems.append(FieldProblem("amount", f"line {line}: amount '{value}' is not a number"))
        return None
    if amount < 0:
        problems.append(FieldProblem("amount", f"line {line}: amount {value} is negative"))
        return None
    if amount != amount.quantize(CENT):
        problems.append(FieldProblem("amount", f"line {line}: amount '{value}' has more than 2 decimals"))
        return None
    if amount > _MOST:
        problems.append(FieldProblem("amount", f"line {line}: amount {value} is too large"))
        return None
    return amount.quantize(CENT)


# -- Writing --------------------------------------------------------------------------------------------------------


def _existing(conn: Connection, lines: list[Spend]) -> set[tuple[date, str, str, str]]:
    """The lines already there, read by day (one statement for a run of days, the unique index's first column)."""
    c = channel_costs.c
    days = sorted({s.day for s in lines})
    found: set[tuple[date, str, str, str]] = set()
    chunk = 500
    for i in range(0, len(days), chunk):
        part = days[i : i + chunk]
        rows = conn.execute(select(c.day, c.channel, c.source, c.campaign).where(c.day.in_(part)))
        found.update((r.day, r.channel, r.source, r.campaign) for r in rows)
    return found


def _upsert(conn: Connection, lines: list[Spend], now: datetime, actor: str) -> None:
    insert = (postgresql if conn.dialect.name == "postgresql" else sqlite).insert
    stmt = insert(channel_costs)
    stmt = stmt.on_conflict_do_update(
        index_elements=["day", "channel", "source", "campaign"],
        set_={"amount": stmt.excluded.amount, "updated_at": stmt.excluded.updated_at, "actor": stmt.excluded.actor},
    )
    rows = [{"day": s.day, "channel": s.channel, "source": s.source, "campaign": s.campaign, "amount": s.amount,
             "updated_at": now, "actor": actor[:60]} for s in lines]  # fmt: skip
    for i in range(0, len(rows), 5000):
        conn.execute(stmt, rows[i : i + 5000])
