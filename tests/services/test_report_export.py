"""The exports' own rules, on a report made by hand: values as plain text, no formula injection, sheet names Excel
takes, text stored as text."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from openpyxl import load_workbook

from leadflow.core.errors import InvalidInput
from leadflow.services.reports.export import csv_value, filename, to_csv, to_xlsx
from leadflow.services.reports.shape import Col, Report, Table

WINDOW = {"from": "2026-11-01", "to": "2026-11-30", "timezone": "Europe/Kyiv", "teams": ["kyiv"], "managers": [],
          "channels": [], "sources": [], "campaigns": []}  # fmt: skip
HOSTILE = ['=HYPERLINK("http://x.test","click")', "+380671234567", "-1+1", "@SUM(A1)", "\tTab", "plain"]


def _report() -> Report:
    columns = [Col("name", "Name", "text"), Col("share", "Share", "percent"), Col("wait", "Wait", "seconds"),
               Col("amount", "Amount", "money"), Col("day", "Day", "date"), Col("at", "At", "datetime")]  # fmt: skip
    rows = [{"name": text, "share": 0.0125, "wait": 2.5, "amount": Decimal("-5.00"), "day": date(2026, 11, 2),
             "at": datetime(2026, 11, 2, 22, 30, tzinfo=UTC)} for text in HOSTILE]  # fmt: skip
    long_title = "Leads: by [channel] / source? *and* campaign, per day"
    return Report("sample", "Sample", WINDOW, datetime(2026, 12, 1, tzinfo=UTC), summary={"leads": 6},
                  tables=[Table("a", long_title, columns, rows), Table("b", long_title, [Col("x", "X")]),
                          Table("c", "Summary", [Col("x", "X")])])  # fmt: skip


def test_csv_values_are_plain_and_safe() -> None:
    lines = list(csv.reader(io.StringIO(to_csv(_report(), "a"))))
    assert lines[0] == ["Name", "Share", "Wait", "Amount", "Day", "At"]
    # 0.0125 is 1.25%: rounded half up to 1.3; 2.5 s to 3; money exact, a negative amount stays a number.
    assert lines[1][1:] == ["1.3", "3", "-5.00", "2026-11-02", "2026-11-02T22:30:00+00:00"]
    assert [row[0] for row in lines[1:]] == ["'=HYPERLINK(\"http://x.test\",\"click\")", "'+380671234567", "'-1+1",
                                             "'@SUM(A1)", "'\tTab", "plain"]  # fmt: skip
    assert csv_value(None, "int") == "" and csv_value(2.0, "number") == "2" and csv_value(1 / 3, "number") == "0.333333"
    with pytest.raises(InvalidInput) as refused:
        to_csv(_report(), "nope")
    assert refused.value.problems[0].field == "table" and "a, b, c" in refused.value.problems[0].reason


def test_every_table_is_a_section() -> None:
    lines = list(csv.reader(io.StringIO(to_csv(_report()))))
    title = "Leads: by [channel] / source? *and* campaign, per day"
    assert lines[0] == [title] and lines[8] == [] and lines[9:12] == [[title], ["X"], []]


def test_xlsx_keeps_text_as_text_and_names_sheets_as_excel_takes_them() -> None:
    book = load_workbook(io.BytesIO(to_xlsx(_report())))
    # 31 characters at most, none of []:*?/\, unique (the Summary sheet's name is taken too).
    assert book.sheetnames == ["Summary", "Leads by channel source and cam", "Leads by channel source and (2)",
                               "Summary (2)"]  # fmt: skip
    sheet = book.worksheets[1]
    first = sheet["A2"]
    assert first.value == HOSTILE[0] and first.data_type == "s"  # stored as a string: Excel does not run it
    assert (sheet["B2"].value, sheet["B2"].number_format) == (0.0125, "0.0%")
    assert (sheet["D2"].value, sheet["D2"].number_format) == (-5, "#,##0.00")
    assert str(sheet["F2"].value) == "2026-11-03 00:30:00"  # 22:30 UTC is past midnight in Kyiv
    summary = {row[0].value: row[1].value for row in book["Summary"].iter_rows(min_row=2) if row[0].value}
    assert summary["Teams"] == "kyiv" and summary["leads"] == 6 and summary["Time zone"] == "Europe/Kyiv"


def test_file_names_name_the_report_and_period() -> None:
    assert filename(_report(), "csv") == "sample-2026-11-01-2026-11-30.csv"
    assert filename(_report(), "xlsx", "a") == "sample-a-2026-11-01-2026-11-30.xlsx"
