"""`leadflow report list | show | costs import | plan set | plan list` on the fixed history, on SQLite and PostgreSQL:
Rich tables with each kind of value formatted, JSON, CSV and XLSX files, and mistakes answered in a line."""

from __future__ import annotations

import csv
import io
import json
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import Result
from openpyxl import load_workbook
from sqlalchemy import select
from typer.testing import CliRunner

from leadflow.cli import app
from leadflow.services.context import Leadflow
from leadflow.services.reports import REPORTS, Spec
from leadflow.settings import get_settings
from leadflow.store.tables import channel_costs, sales_plans
from tests.report_sample import REAL_REPORTS, section_titles
from tests.reports.history import RULES, History, build_history
from tests.test_cli import LEADFLOW

MARCH = ["--from", "2026-03-01", "--to", "2026-03-31"]


@dataclass
class Place:
    history: History
    rules: Path
    url: str
    tmp: Path

    def __call__(self, *args: str) -> Result:
        return CliRunner().invoke(app, [*args, "--rules", str(self.rules), "--database", self.url])


@pytest.fixture
def place(make_app: Callable[[str], Leadflow], database_url: str, tmp_path: Path,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[Place]:  # fmt: skip
    monkeypatch.setenv("COLUMNS", "250")  # a table row on one line
    for key in ("LEADFLOW_RULES", "LEADFLOW_DATABASE_URL"):
        monkeypatch.delenv(key, raising=False)
    get_settings.cache_clear()
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    yield Place(build_history(make_app), rules, database_url, tmp_path)
    get_settings.cache_clear()


def _ok(result: Result) -> str:
    assert result.exit_code == 0, result.output
    return result.output


def _refused(result: Result) -> str:
    assert result.exit_code == 1 and (result.exception is None or isinstance(result.exception, SystemExit))
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def test_the_list_names_every_report(place: Place, arrivals: Spec) -> None:
    shown = _ok(place("report", "list"))
    assert f"{len(REPORTS)} report(s)" in shown
    for spec in REPORTS.values():
        assert spec.name in shown and spec.about in shown


def test_a_report_as_rich_tables(place: Place, arrivals: Spec) -> None:
    shown = _ok(place("report", "show", "arrivals", *MARCH))
    assert "Arrivals: 2026-03-01 to 2026-03-31 (Europe/Kyiv)" in shown
    web = next(line for line in shown.splitlines() if "│ web " in line)
    cells = [c.strip() for c in web.strip("│ ").split("│")]
    # web: 6 leads, 5 contacted (83.3%); the median first response of 300, 600, 5400, 7200 and 14400 s is 5400 s
    # (1 h 30 min); 1000.00 + 500.00 + 2000.00 won; 6 leads in 31 days; k6 arrived 03-28 23:30 UTC, 01:30 in Kyiv.
    assert cells == ["web", "6", "5", "83.3%", "1h 30m", "0.19", "3,500.00", "2026-03-02", "2026-03-29 01:30"]
    facebook = next(line for line in shown.splitlines() if "│ facebook " in line)
    assert "50m 00s" in facebook  # (1800 + 4200) / 2 = 3000 s
    assert "Leads that arrived in the period, by channel." in shown  # the table's note
    assert "A channel with no leads in the period is not listed." in shown  # the report's


def test_a_report_as_json_csv_and_xlsx(place: Place, arrivals: Spec) -> None:
    body = json.loads(_ok(place("report", "show", "arrivals", *MARCH, "--format", "json")))
    assert body["summary"] == {"leads": 9, "channels": 3} and body["filters"]["to"] == "2026-03-31"
    one = _ok(place("report", "show", "arrivals", *MARCH, "--format", "csv", "--table", "by_channel"))
    assert one.splitlines()[:2] == [
        "Channel,Leads,Contacted,Contact rate,Median first response,Leads per day,Revenue,First day,Last arrival",
        "web,6,5,83.3,5400,0.193548,3500.00,2026-03-02,2026-03-28T23:30:00+00:00",
    ]
    ny = _ok(place("report", "show", "arrivals", *MARCH, "--format", "csv", "--team", "ny"))
    assert [row[:2] for row in csv.reader(io.StringIO(ny))][2:4] == [["web", "2"], ["telegram", "1"]]
    target = place.tmp / "arrivals.xlsx"
    written = _ok(place("report", "show", "arrivals", *MARCH, "--format", "xlsx", "--output", str(target)))
    assert f"written to {target}" in " ".join(written.split())
    book = load_workbook(target)
    assert book.sheetnames == ["Summary", "Leads by channel", "An empty table"]
    assert book["Leads by channel"]["D2"].value == 5 / 6 and book["Leads by channel"]["D2"].number_format == "0.0%"


def test_mistakes_are_answered_in_a_line(place: Place, arrivals: Spec) -> None:
    assert "there is no report 'nosuch'" in _refused(place("report", "show", "nosuch"))
    assert "team 'atlantis' does not exist" in _refused(place("report", "show", "arrivals", "--team", "atlantis"))
    assert "XLSX" in _refused(place("report", "show", "arrivals", "--format", "xlsx"))
    assert "--format" in _refused(place("report", "show", "arrivals", "--format", "pdf"))
    assert "has no table 'nope'" in _refused(place("report", "show", "arrivals", "--table", "nope"))
    assert "ends" in _refused(place("report", "show", "arrivals", "--from", "2026-03-10", "--to", "2026-03-01"))
    assert "YYYY-MM" in _refused(place("report", "plan", "set", "team:kyiv", "2026-13", "--deals-per-day", "1"))
    assert "team:<key>" in _refused(place("report", "plan", "set", "kyiv", "2026-03", "--deals-per-day", "1"))
    assert "not a number" in _refused(place("report", "plan", "set", "team:kyiv", "2026-03", "--revenue", "lots"))


def test_costs_are_imported_from_a_file(place: Place) -> None:
    spend = place.tmp / "spend.csv"
    spend.write_text("day,channel,source,campaign,amount\n2026-03-02,web,site,spring,120.50\n"
                     "2026-03-03,facebook,ads,,80\n")  # fmt: skip
    done = json.loads(_ok(place("report", "costs", "import", str(spend))))
    assert done["rows"] == 2
    with place.history.app.engine.connect() as conn:
        stored = {(r.day.isoformat(), r.channel, r.amount) for r in conn.execute(select(channel_costs))}
    assert stored == {("2026-03-02", "web", Decimal("120.50")), ("2026-03-03", "facebook", Decimal("80"))}
    broken = place.tmp / "broken.csv"
    broken.write_text("day,amount\nyesterday,12\n")
    assert "line 2" in _refused(place("report", "costs", "import", str(broken)))


def test_plans_are_set_and_listed(place: Place) -> None:
    _ok(place("report", "plan", "set", "team:kyiv", "2026-03", "--deals-per-day", "1,5", "--revenue", "90 000"))
    with place.history.app.engine.connect() as conn:
        stored = [(r.scope, r.month, r.deals_per_day, r.revenue_per_month) for r in conn.execute(select(sales_plans))]
    assert stored == [("team:kyiv", "2026-03", Decimal("1.50"), Decimal("90000.00"))]
    listed = json.loads(_ok(place("report", "plan", "list", "--month", "2026-03")))
    assert [(p["scope"], p["deals_per_day"]) for p in listed] == [("team:kyiv", "1.50")]


@pytest.mark.parametrize("name", REAL_REPORTS)
def test_every_report_in_the_terminal(place: Place, name: str) -> None:
    shown = _ok(place("report", "show", name, *MARCH))
    body = json.loads(_ok(place("report", "show", name, *MARCH, "--format", "json")))
    assert shown.startswith(f"{body['title']}: 2026-03-01 to 2026-03-31")
    for table in body["tables"]:
        assert table["title"] in shown
    sections = _ok(place("report", "show", name, *MARCH, "--format", "csv"))
    assert section_titles(sections) == [t["title"] for t in body["tables"]]


def test_the_installed_command_writes_a_report(place: Place) -> None:
    target = place.tmp / "funnel.csv"
    done = subprocess.run([LEADFLOW, "report", "show", "funnel", *MARCH, "--format", "csv", "--output", str(target),
                           "--rules", str(place.rules), "--database", place.url],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = list(csv.reader(target.open(newline="")))
    assert rows[0] and rows[1] and rows[1][0] == "Status", rows[:3]
