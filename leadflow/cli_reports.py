"""`leadflow report ...`: the reports in the terminal (Rich tables), as JSON, CSV or an XLSX file; advertising
costs imported from a CSV; sales plans set and listed. As leadflow itself: every team's figures."""

from __future__ import annotations

import json
import math
import re
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from leadflow.cli import CLI, DbOption, RulesOption, _Commands, _settings, console
from leadflow.cli_errors import CommandError

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from leadflow.services.reports.shape import Kind, Report

report_app = _Commands(help="Reports: the funnel, managers' KPIs, speed, load, hand-offs, channels, the forecast.",
                       no_args_is_help=True)  # fmt: skip
costs_app = _Commands(help="Advertising costs: what channel quality divides by.", no_args_is_help=True)
plan_app = _Commands(help="Sales plans per team or manager and month: what the forecast measures against.",
                     no_args_is_help=True)  # fmt: skip
report_app.add_typer(costs_app, name="costs")
report_app.add_typer(plan_app, name="plan")

FORMATS = ("table", "json", "csv", "xlsx")
DAY = ["%Y-%m-%d"]
_MONTH = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])")
_SCOPE = re.compile(r"(team|manager):[A-Za-z0-9][A-Za-z0-9_.-]{0,59}")


@report_app.command("list")
def list_reports(rules: RulesOption = None, database: DbOption = None) -> None:
    """The reports there are, each with what it answers."""
    from leadflow.bootstrap import open_app
    from leadflow.services.reports import REPORTS

    open_app(_settings(rules, database))  # the reports read this database: say now if it cannot be reached
    table = Table("name", "title", "what it answers", title=f"{len(REPORTS)} report(s)")
    for spec in REPORTS.values():
        table.add_row(spec.name, escape(spec.title), escape(spec.about))
    console.print(table)


@report_app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="The report: see `leadflow report list`.")],
    start: Annotated[datetime | None, typer.Option("--from", formats=DAY, help="The first local day, YYYY-MM-DD.")] = None,
    end: Annotated[datetime | None, typer.Option("--to", formats=DAY, help="The last local day; default: today.")] = None,
    tz: Annotated[str | None, typer.Option("--tz", help="The time zone of the days; default: the rules file's.")] = None,
    team: Annotated[list[str] | None, typer.Option("--team", help="Only this team (repeatable).")] = None,
    manager: Annotated[list[str] | None, typer.Option("--manager", help="Only this manager (repeatable).")] = None,
    channel: Annotated[list[str] | None, typer.Option("--channel", help="Only this channel (repeatable).")] = None,
    source: Annotated[list[str] | None, typer.Option("--source", help="Only this source (repeatable).")] = None,
    campaign: Annotated[list[str] | None, typer.Option("--campaign", help="Only this UTM campaign (repeatable).")] = None,
    table: Annotated[str | None, typer.Option("--table", help="Only this table of the report.")] = None,
    form: Annotated[str, typer.Option("--format", help="table, json, csv or xlsx (xlsx needs --output).")] = "table",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file, not the terminal.")] = None,
    rules: RulesOption = None,
    database: DbOption = None,
) -> None:  # fmt: skip
    """One report for a period (the last 30 days by default) and filters."""
    from leadflow.api.reports import FIRST_DAY, LAST_DAY, report_query
    from leadflow.bootstrap import open_app
    from leadflow.services.context import utcnow
    from leadflow.services.reports import run_report
    from leadflow.services.reports.export import only_table, to_csv, to_xlsx

    if form not in FORMATS:
        raise CommandError(f"--format is one of {', '.join(FORMATS)}, not '{form}'")
    if form == "xlsx" and output is None:
        raise CommandError("an XLSX file is not for the terminal: give --output FILE.xlsx")
    if form == "table" and output is not None:
        raise CommandError("a table is for the terminal: with --output, use --format csv, json or xlsx")
    days = [d.date() if d is not None else None for d in (start, end)]
    for option, day in zip(("--from", "--to"), days, strict=True):
        if day is not None and not FIRST_DAY <= day <= LAST_DAY:
            raise CommandError(f"{option}: a day from {FIRST_DAY} to {LAST_DAY}")
    query = report_query(days[0], days[1], tz, team, manager, channel, source, campaign)
    report = run_report(open_app(_settings(rules, database)), name, query, utcnow(), who=CLI)
    if table is not None:
        report = only_table(report, table)
    if form == "table":
        print_report(report)
        return
    content: bytes
    if form == "json":
        content = json.dumps(report.to_json(), ensure_ascii=False, indent=2).encode() + b"\n"
    elif form == "csv":
        content = (to_csv(report, table) if table else to_csv(report)).encode()
    else:
        content = to_xlsx(report)
    if output is None:
        typer.echo(content.decode(), nl=False)
        return
    output.write_bytes(content)
    console.print(f"{report.title} ({report.window['from']} to {report.window['to']}) written to {output}",
                  markup=False)  # fmt: skip


@costs_app.command("import")
def import_costs(
    file: Annotated[Path, typer.Argument(help="A CSV: day, amount, and any of channel, source, campaign.")],
    rules: RulesOption = None,
    database: DbOption = None,
) -> None:
    """Import advertising spend per day and campaign; a line already there (same day, channel, source, campaign) is
    replaced."""
    from leadflow.bootstrap import open_app
    from leadflow.services.context import utcnow
    from leadflow.services.reports import costs
    from leadflow.services.reports.shape import plain

    text = file.read_bytes().decode("utf-8-sig")
    done = costs.import_costs(open_app(_settings(rules, database)), text, utcnow(), who=CLI)
    console.print_json(json.dumps(plain(done), ensure_ascii=False))


@plan_app.command("set")
def set_plan(
    scope: Annotated[str, typer.Argument(help="team:<key> or manager:<key>.")],
    month: Annotated[str, typer.Argument(help="The month, YYYY-MM.")],
    deals_per_day: Annotated[str | None, typer.Option("--deals-per-day", help="Deals (won leads) a day.")] = None,
    revenue: Annotated[str | None, typer.Option("--revenue", help="Revenue for the month.")] = None,
    rules: RulesOption = None,
    database: DbOption = None,
) -> None:
    """Set a team's or a manager's plan for a month (over the rules file's plan for that month)."""
    from leadflow.api.reports import PlanIn
    from leadflow.bootstrap import open_app
    from leadflow.services.context import utcnow
    from leadflow.services.reports import plans
    from leadflow.services.reports.shape import plain

    if not _SCOPE.fullmatch(scope):
        raise CommandError(f"the scope '{scope}' is team:<key> or manager:<key>, like team:sales")
    if not _MONTH.fullmatch(month):
        raise CommandError(f"the month '{month}' is YYYY-MM, like 2026-11")
    wanted = PlanIn.model_validate({"deals_per_day": _decimal("--deals-per-day", deals_per_day),
                                    "revenue_per_month": _decimal("--revenue", revenue)})  # fmt: skip
    done = plans.set_plan(open_app(_settings(rules, database)), scope, month, wanted.deals_per_day,
                          wanted.revenue_per_month, utcnow(), who=CLI)  # fmt: skip
    console.print_json(json.dumps(plain(done), ensure_ascii=False))


@plan_app.command("list")
def list_plans(
    month: Annotated[str | None, typer.Option(help="The month, YYYY-MM; default: this month.")] = None,
    rules: RulesOption = None,
    database: DbOption = None,
) -> None:
    """The plans of a month: the rules file's, and those set over them."""
    from zoneinfo import ZoneInfo

    from leadflow.bootstrap import open_app
    from leadflow.services.context import utcnow
    from leadflow.services.reports import plans
    from leadflow.services.reports.shape import plain

    if month is not None and not _MONTH.fullmatch(month):
        raise CommandError(f"the month '{month}' is YYYY-MM, like 2026-11")
    app = open_app(_settings(rules, database))
    chosen = month or utcnow().astimezone(ZoneInfo(app.rules.default_timezone)).strftime("%Y-%m")
    console.print_json(json.dumps(plain(plans.list_plans(app, chosen, who=CLI)), ensure_ascii=False))


def _decimal(option: str, text: str | None) -> Decimal | None:
    if text is None:
        return None
    try:
        return Decimal(text.replace(" ", "").replace(",", "."))
    except InvalidOperation:
        raise CommandError(f"{option}: '{text}' is not a number") from None


# -- A report in the terminal -----------------------------------------------------------------------------------------


def print_report(report: Report) -> None:
    """The title and period, the headline figures, every table (numbers right-aligned), and the notes."""
    from leadflow.services.reports.export import summary_kind

    zone = _zone(report.window.get("timezone"))
    window = report.window
    chosen = [f"{k} {', '.join(window[k])}" for k in ("teams", "managers", "channels", "sources", "campaigns")
              if window.get(k)]  # fmt: skip
    console.print(f"[bold]{escape(report.title)}[/]: {window['from']} to {window['to']} ({window['timezone']})"
                  + (f"; {escape('; '.join(chosen))}" if chosen else ""))  # fmt: skip
    if report.summary:
        figures = Table("figure", "value", title="Summary", title_justify="left")
        figures.columns[1].justify = "right"
        for key, value in report.summary.items():
            figures.add_row(escape(key.replace("_", " ")), shown(value, summary_kind(report, key, value), zone))
        console.print(figures)
    for each in report.tables:
        grid = Table(title=escape(each.title), title_justify="left", caption=escape(each.note or "") or None)
        for column in each.columns:
            grid.add_column(escape(column.label), justify="left" if column.kind == "text" else "right")
        for row in each.rows:
            grid.add_row(*(shown(row.get(c.key), c.kind, zone) for c in each.columns))
        if not each.rows:
            grid.add_row(*(["—"] * len(each.columns)))
        console.print(grid)
    for note in report.notes:
        console.print(f"[dim]{escape(note)}[/]")


def shown(value: Any, kind: Kind, zone: ZoneInfo | None = None) -> str:
    """A value as a person reads it: 12.5%, 1h 02m, 3,500.00, 2026-03-29 01:30 (in the report's zone)."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return escape(value)
    if kind == "percent" and isinstance(value, int | float | Decimal):
        return f"{float(value) * 100:.1f}%"
    if kind == "seconds" and isinstance(value, int | float | Decimal):
        return duration(float(value))
    if kind == "money" and isinstance(value, int | float | Decimal):
        return f"{Decimal(str(value)):,.2f}"
    if isinstance(value, datetime):
        return (value.astimezone(zone) if zone is not None and value.tzinfo else value).strftime("%Y-%m-%d %H:%M")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float | Decimal):
        return f"{value:,.2f}".rstrip("0").rstrip(".")
    if isinstance(value, list | tuple):
        return escape(", ".join(str(v) for v in value))
    return escape(str(value))


def duration(seconds: float) -> str:
    """45s, 12m 05s, 1h 02m, 3d 04h."""
    whole = math.floor(seconds + 0.5)  # half a second up, as people round
    sign, whole = ("-", -whole) if whole < 0 else ("", whole)
    if whole < 60:
        return f"{sign}{whole}s"
    if whole < 3600:
        return f"{sign}{whole // 60}m {whole % 60:02d}s"
    if whole < 86400:
        return f"{sign}{whole // 3600}h {whole % 3600 // 60:02d}m"
    return f"{sign}{whole // 86400}d {whole % 86400 // 3600:02d}h"


def _zone(name: Any) -> ZoneInfo | None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name) if isinstance(name, str) and name else None
    except (ZoneInfoNotFoundError, ValueError):
        return None
