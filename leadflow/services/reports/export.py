"""A report as files: CSV (one table, or every table as sections) and XLSX (a sheet per table and a Summary sheet).

The CSV holds plain values a spreadsheet or a script reads back as they are: a share as a percentage number
(12.5), a duration in whole seconds, money exact, days and instants in ISO 8601. A text cell that a spreadsheet
would run as a formula (it starts with = + - @, a tab or a carriage return) gets a leading apostrophe. The XLSX holds
the same values as numbers with number formats, and stores every text as text, so nothing in it is a formula.
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import replace
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from leadflow.core.errors import InvalidInput
from leadflow.services.reports.shape import Col, Kind, Report, Table

CSV_TYPE = "text/csv; charset=utf-8"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # what Excel, LibreOffice and Google Sheets read as a formula
SUMMARY_SHEET = "Summary"
# Number formats by kind: a share shows as a percentage, a duration as hours past 24 (Excel keeps it in days).
XLSX_FORMATS: dict[Kind, str] = {
    "int": "#,##0",
    "number": "#,##0.##",
    "percent": "0.0%",
    "seconds": "[h]:mm:ss",
    "money": "#,##0.00",
    "date": "yyyy-mm-dd",
    "datetime": "yyyy-mm-dd hh:mm",
    "text": "@",
}
_MAX_WIDTH = 60  # characters: a column of long texts stays readable and the text wraps in the cell
_SHEET_FORBIDDEN = re.compile(r"[\[\]:*?/\\]")
# Characters XML 1.0 cannot carry: openpyxl refuses a cell holding one.
_NOT_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def only_table(report: Report, key: str) -> Report:
    """The report with one of its tables; 422 naming the tables it has when it has no such one."""
    found = [t for t in report.tables if t.key == key]
    if not found:
        keys = ", ".join(t.key for t in report.tables) or "none"
        raise InvalidInput.one("table", f"report '{report.name}' has no table '{key}': its tables are {keys}")
    return replace(report, tables=found)


def filename(report: Report, extension: str, table: str | None = None) -> str:
    """funnel-2026-11-01-2026-11-30.csv; with one table, its key after the report's name."""
    parts = [report.name, table, str(report.window.get("from", "")), str(report.window.get("to", ""))]
    stem = "-".join(p for p in parts if p)
    return re.sub(r"[^A-Za-z0-9._-]", "_", stem) + "." + extension


# -- CSV ------------------------------------------------------------------------------------------------------------


def csv_value(value: Any, kind: Kind) -> str:
    """One cell as plain text: numbers in a form every spreadsheet reads back, texts safe from formula injection."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "'" + value if value.startswith(FORMULA_STARTS) else value
    if kind == "percent" and isinstance(value, int | float | Decimal):
        return str(_half_up(Decimal(str(value)) * 100, "0.1"))
    if kind == "seconds" and isinstance(value, int | float | Decimal):
        return str(_half_up(Decimal(str(value)), "1"))
    if isinstance(value, Decimal):
        return _decimal_text(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, float):
        return _float_text(value)
    if isinstance(value, list | tuple):
        return csv_value("; ".join(csv_value(v, "text") for v in value), "text")
    return csv_value(str(value), "text") if not isinstance(value, int) else str(value)


def _half_up(value: Decimal, step: str) -> Decimal:
    """Rounded as people round (2.5 -> 3), not to even."""
    return value.quantize(Decimal(step), rounding=ROUND_HALF_UP)


def _decimal_text(value: Decimal) -> str:
    """An exact decimal as written by people: 1250.50, never 1.2505E+3."""
    return format(value, "f")


def _float_text(value: float) -> str:
    """A measured number to six places, without trailing zeros: 2.5, 3, 0.333333."""
    if not math.isfinite(value):
        return ""
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def to_csv(report: Report, table: str | None = None) -> str:
    """One table (its header, then its rows), or every table as sections: a title line, the header, the rows, and a
    blank line."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    if table is not None:
        _write_rows(writer, only_table(report, table).tables[0])
        return out.getvalue()
    for each in report.tables:
        writer.writerow([csv_value(each.title, "text")])
        _write_rows(writer, each)
        writer.writerow([])
    return out.getvalue()


def _write_rows(writer: Any, table: Table) -> None:
    writer.writerow([csv_value(c.label, "text") for c in table.columns])
    for row in table.rows:
        writer.writerow([csv_value(row.get(c.key), c.kind) for c in table.columns])


# -- XLSX -----------------------------------------------------------------------------------------------------------


def to_xlsx(report: Report) -> bytes:
    """A workbook: the Summary sheet (the report, its filters and its headline figures), then one sheet per table
    with a bold header row, number formats by kind, and widths to fit."""
    from openpyxl import Workbook  # imported when a workbook is asked for: the reports' other forms do not need it

    book = Workbook()
    zone = _zone(report.window.get("timezone"))
    summary = book.active
    assert summary is not None
    summary.title = SUMMARY_SHEET
    _summary_sheet(summary, report, zone)
    used = {SUMMARY_SHEET.lower()}
    for table in report.tables:
        sheet = book.create_sheet(_sheet_name(table.title or table.key, used))
        _table_sheet(sheet, table, zone)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _summary_sheet(sheet: Any, report: Report, zone: ZoneInfo) -> None:
    from openpyxl.styles import Font

    bold = Font(bold=True)
    sheet.append([_text(report.title)])
    sheet["A1"].font = Font(bold=True, size=14)
    window = report.window
    lines: list[tuple[str, Any, Kind]] = [
        ("Report", report.name, "text"),
        ("From", _day(window.get("from")), "date"),
        ("To", _day(window.get("to")), "date"),
        ("Time zone", window.get("timezone"), "text"),
    ]
    for key in ("teams", "managers", "channels", "sources", "campaigns"):
        chosen = window.get(key) or []
        lines.append((key.capitalize(), ", ".join(str(v) for v in chosen) if chosen else "all", "text"))
    lines.append(("Generated at", report.generated_at, "datetime"))
    sheet.append([])
    for label, value, kind in lines:
        _append(sheet, [label, value], [Col("label", label, "text"), Col("value", label, kind)], zone)
        sheet.cell(row=sheet.max_row, column=1).font = bold
    if report.summary:
        sheet.append([])
        sheet.append(["Figure", "Value"])
        for cell in sheet[sheet.max_row]:
            cell.font = bold
        for key, value in report.summary.items():
            kind = summary_kind(report, key, value)
            _append(sheet, [key, value], [Col("key", key, "text"), Col("value", key, kind)], zone)
    _fit(sheet)  # before the notes: a sentence under the figures does not widen their column
    if report.notes:
        sheet.append([])
        for note in report.notes:
            sheet.append([_text(note)])


def _table_sheet(sheet: Any, table: Table, zone: ZoneInfo) -> None:
    from openpyxl.styles import Font

    sheet.append([_text(c.label) for c in table.columns])
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    sheet.freeze_panes = "A2"
    for row in table.rows:
        _append(sheet, [row.get(c.key) for c in table.columns], table.columns, zone)
    _fit(sheet)
    if table.note:
        sheet.append([])
        sheet.append([_text(table.note)])


def _append(sheet: Any, values: list[Any], columns: list[Col], zone: ZoneInfo) -> None:
    sheet.append([_xlsx_value(v, c.kind, zone) for v, c in zip(values, columns, strict=True)])
    for cell, column, value in zip(sheet[sheet.max_row], columns, values, strict=True):
        if isinstance(cell.value, str):
            cell.data_type = "s"  # text stays text, whatever it starts with: never a formula
        elif value is not None:
            cell.number_format = XLSX_FORMATS[column.kind]


def _xlsx_value(value: Any, kind: Kind, zone: ZoneInfo) -> Any:
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return _text(value)
    if kind == "seconds" and isinstance(value, int | float | Decimal):
        return timedelta(seconds=float(value))
    if isinstance(value, datetime):
        # Excel has no time zones: the instant as the report's local time, which the Summary sheet names.
        moment = value.astimezone(zone) if value.tzinfo is not None else value
        return moment.replace(tzinfo=None)
    if isinstance(value, date | int | float | Decimal):
        return value
    if isinstance(value, list | tuple):
        return _text("; ".join(str(v) for v in value))
    return _text(str(value))


def _text(value: str) -> str:
    return _NOT_XML.sub("", value)


def _day(value: Any) -> Any:
    try:
        return date.fromisoformat(value) if isinstance(value, str) else value
    except ValueError:
        return value


def _zone(name: Any) -> ZoneInfo:
    try:
        return ZoneInfo(name) if isinstance(name, str) and name else ZoneInfo("UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _sheet_name(title: str, used: set[str]) -> str:
    """A sheet name Excel takes: at most 31 characters, none of []:*?/\\, unique in the workbook."""
    base = " ".join(_SHEET_FORBIDDEN.sub(" ", _text(title)).split()).strip("'")[:31].strip() or "Table"
    name, n = base, 2
    while name.lower() in used:
        suffix = f" ({n})"
        name, n = base[: 31 - len(suffix)].strip() + suffix, n + 1
    used.add(name.lower())
    return name


def _fit(sheet: Any) -> None:
    """Columns as wide as their longest value so far, within bounds."""
    from openpyxl.utils import get_column_letter

    widths: dict[int, int] = {}
    for row in sheet.iter_rows():
        for cell in row:
            if cell.value is None:
                continue
            shown = len(str(cell.value)) if not isinstance(cell.value, datetime | date | timedelta) else 16
            widths[cell.column] = max(widths.get(cell.column, 0), shown)
    for column, width in widths.items():
        sheet.column_dimensions[get_column_letter(column)].width = min(max(width + 2, 8), _MAX_WIDTH)


# -- The summary's figures ------------------------------------------------------------------------------------------

# The summary's figures carry no kind: a figure named like a table's column takes that column's kind; otherwise
# its name says it (a share, a rate, seconds), and an exact decimal is money.
_SHARE_WORDS = ("share", "rate", "conversion", "ratio", "percent", "within")
_SECONDS_WORDS = ("seconds", "_time", "median", "p90", "cycle")


def summary_kind(report: Report, key: str, value: Any) -> Kind:
    for table in report.tables:
        for column in table.columns:
            if column.key == key:
                return column.kind
    if isinstance(value, bool) or value is None:
        return "text"
    if isinstance(value, datetime):
        return "datetime"
    if isinstance(value, date):
        return "date"
    if isinstance(value, str):
        return "text"
    if isinstance(value, Decimal):
        return "money"
    lowered = key.lower()
    if isinstance(value, float) and any(w in lowered for w in _SHARE_WORDS):
        return "percent"
    if any(w in lowered for w in _SECONDS_WORDS):
        return "seconds"
    return "int" if isinstance(value, int) else "number"
