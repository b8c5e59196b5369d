"""The reports on the desk: a tab per report, the filters (period, team, manager, channel, time zone: the reader's
by default), the headline figures, the charts (Chart.js, through desk.js), the tables, and the same CSV and XLSX
files the API gives. Each reader sees their own scope: a head of sales their teams, a manager their own figures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from anyio import to_thread
from babel.dates import format_date
from babel.numbers import format_decimal
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import TypeAdapter, ValidationError

from leadflow.api.reports import Day, FilterText, KeyText, ReportName, TableKey, rendered
from leadflow.core.errors import FieldProblem, Forbidden, InvalidInput
from leadflow.core.policy import Action
from leadflow.services.context import utcnow
from leadflow.services.reports import REPORTS, ReportQuery, run_report
from leadflow.services.reports.export import summary_kind
from leadflow.services.reports.query import Window, resolve
from leadflow.services.reports.shape import Chart, Figure, Kind, Note, Report, Table
from leadflow.store.db import READ_ONLY
from leadflow.web.i18n import N_, Formats, missing
from leadflow.web.render import Labels, app_of, render_page
from leadflow.web.viewer import Viewer, WebRoute, page

router = APIRouter(route_class=WebRoute, include_in_schema=False)
Reader = Annotated[Viewer, page(Action.REPORTS_READ)]

# Each report's name and what it answers, in the reader's language (the registry's own words are English).
REPORT_NAMES = {
    "funnel": (N_("Funnel"), N_("How leads move through the statuses, where they drop and where they stall.")),
    "managers": (N_("Manager KPIs"), N_("Each manager's speed, conversion, sales and losses, and the leaderboard.")),
    "speed": (N_("Speed to lead"), N_("Conversion by how fast the first contact came, against the seed's prior.")),
    "load": (N_("Load"), N_("Leads per manager per day against capacity, how even it is, and who was skipped.")),
    "handoffs": (N_("Hand-offs"), N_("Leads lost between hands: the desk, escalations, no owner, another caller.")),
    "channels": (N_("Channels"), N_("Volume, junk, duplicates, contact, conversion, revenue and cost per lead.")),
    "forecast": (N_("Forecast"), N_("Deals planned against won per day, and the month-end forecast.")),
}  # fmt: skip
# The headline figures, named for people (a figure not named here shows its key).
SUMMARY_LABELS = {
    "cohort": N_("Leads in the period"), "leads": N_("Leads"), "won": N_("Won"), "conversion": N_("Conversion"),
    "dropped_on_arrival": N_("Dropped on arrival"), "bottleneck_loss": N_("Bottleneck by loss"),
    "bottleneck_time": N_("Bottleneck by time"), "managers": N_("Managers"), "received": N_("Received"),
    "first_contacts": N_("First contacts"), "response_median": N_("Median first response"),
    "within_20_min": N_("Within 20 minutes"), "turnover": N_("Turnover"), "average_check": N_("Average check"),
    "talk_minutes": N_("Talk minutes"), "lost": N_("Lost"), "escalations": N_("Escalations"),
    "contacted": N_("Contacted"), "fastest_conversion": N_("Conversion of the fastest"),
    "delay_cost_deals": N_("Deals lost to delay"), "delay_cost_revenue": N_("Revenue lost to delay"),
    "leads_assigned": N_("Leads assigned"), "mean_per_manager_day": N_("Leads per manager a day"),
    "decisions": N_("Routing decisions"), "decisions_read": N_("Decisions read"),
    "skipped_absent": N_("Skipped: absent"), "skipped_off_shift": N_("Skipped: off shift"),
    "skipped_at_capacity": N_("Skipped: at capacity"), "skipped_other": N_("Skipped: other"),
    "with_a_loss": N_("Leads with a loss"), "with_a_loss_share": N_("Share with a loss"),
    "desk_overdue": N_("Overdue at the desk"), "desk_overdue_share": N_("Share overdue at the desk"),
    "escalated": N_("Escalated"), "escalated_share": N_("Share escalated"),
    "chain_uncontacted": N_("Chain ended uncontacted"), "chain_uncontacted_share": N_("Share of chains ended"),
    "unowned": N_("Without an owner too long"), "unowned_share": N_("Share without an owner"),
    "other_first_contact": N_("First contact by another"), "other_first_contact_share": N_("Share by another"),
    "unowned_minutes": N_("Minutes without an owner that count"), "junk_share": N_("Junk"),
    "duplicate_share": N_("Duplicates"), "contact_rate": N_("Contact rate"), "revenue": N_("Revenue"),
    "cost": N_("Cost"), "cost_per_lead": N_("Cost per lead"), "cost_per_sale": N_("Cost per sale"),
    "spend": N_("Spend"), "unmatched_spend": N_("Spend matching no lead"), "planned": N_("Planned deals"),
    "actual": N_("Deals won"), "gap": N_("Gap"), "month": N_("Month"), "won_so_far": N_("Won so far"),
    "revenue_so_far": N_("Revenue so far"), "forecast_deals": N_("Forecast deals"),
    "forecast_deals_low": N_("Forecast deals, low"), "forecast_deals_high": N_("Forecast deals, high"),
    "forecast_revenue": N_("Forecast revenue"), "forecast_revenue_low": N_("Forecast revenue, low"),
    "forecast_revenue_high": N_("Forecast revenue, high"), "plan_deals": N_("Plan: deals"),
    "plan_revenue": N_("Plan: revenue"), "forecast_against_plan": N_("Forecast against plan"),
    "days_left": N_("Days left"), "leads_per_day": N_("Leads a day"),
    "previous_from": N_("Previous period from"), "previous_to": N_("Previous period to"),
}  # fmt: skip
# Headline figures that name a status by its key: shown as the status's label.
STATUS_FIGURES = frozenset({"bottleneck_loss", "bottleneck_time"})
_DAY: TypeAdapter[date] = TypeAdapter(Day)
_KEY: TypeAdapter[str] = TypeAdapter(KeyText)
_TEXT: TypeAdapter[str] = TypeAdapter(FilterText)


@dataclass(frozen=True, slots=True)
class Cell:
    text: str
    num: bool = False
    href: str | None = None


@dataclass
class Filters:
    """The filters as the form shows them, and the choices in the reader's scope."""

    values: dict[str, str]
    teams: list[tuple[str, str]] = field(default_factory=list)  # (key, name)
    managers: list[tuple[str, str]] = field(default_factory=list)
    zones: list[str] = field(default_factory=list)
    own: bool = False


# -- The routes ---------------------------------------------------------------------------------------------------


@router.get("/reports")
async def reports_home(request: Request, viewer: Reader) -> Response:
    return await _report_page(request, viewer, next(iter(REPORTS)))


@router.get("/reports/{name}")
async def report_page(request: Request, name: ReportName, viewer: Reader) -> Response:
    return await _report_page(request, viewer, name)


@router.get("/reports/{name}/export")
async def report_file(request: Request, name: ReportName, viewer: Reader, format: Literal["csv", "xlsx"] = "csv",
                      table: TableKey = None) -> Response:  # fmt: skip
    """The report as the API's CSV or XLSX file, for the signed-in reader, with the page's filters."""
    query = _query(request, viewer)
    app = app_of(request)
    return await to_thread.run_sync(
        lambda: rendered(run_report(app, name, query, utcnow(), who=viewer.who), format, table, for_people=True)
    )


async def _report_page(request: Request, viewer: Viewer, name: str) -> Response:
    app = app_of(request)
    refused: InvalidInput | Forbidden | None = None
    try:
        query = _query(request, viewer)
    except InvalidInput as exc:  # shown above the form, which keeps what was asked
        query, refused = _query(request, viewer, check=False), exc

    def build() -> tuple[Report | None, InvalidInput | Forbidden | None]:
        if refused is not None and name in REPORTS:
            return None, refused
        try:  # an unknown report's name is not found (404), as in the API
            return run_report(app, name, query, utcnow(), who=viewer.who), None
        except (InvalidInput, Forbidden) as exc:
            return None, exc

    report, refused = await to_thread.run_sync(build)
    filters = await to_thread.run_sync(lambda: _filters(request, viewer, query))
    status = 200 if refused is None else 422 if isinstance(refused, InvalidInput) else 403
    problems = [p.reason for p in refused.problems] if isinstance(refused, InvalidInput) else []
    title, about = _names(viewer, name)
    return render_page(
        request, viewer, "app/reports.html", status=status, section="reports", name=name, title=title, about=about,
        tabs=[(key, _names(viewer, key)[0]) for key in REPORTS], filters=filters,
        refused=str(refused) if refused is not None else None, problems=problems,
        view=_view(viewer, app.rules, report) if report is not None else None,
        downloads=_downloads(name, request),
    )  # fmt: skip


# -- The filters --------------------------------------------------------------------------------------------------


def _query(request: Request, viewer: Viewer, *, check: bool = True) -> ReportQuery:
    """The page's filters: a form sends empty fields for "any", which are left out; each bad value is named."""
    params = request.query_params
    problems: list[FieldProblem] = []

    def one(name: str, adapter: TypeAdapter[Any]) -> Any:
        text = (params.get(name) or "").strip()
        return _checked(adapter, name, text, problems) if text else None

    def many(name: str, adapter: TypeAdapter[str]) -> tuple[str, ...]:
        found = [_checked(adapter, name, v.strip(), problems) for v in params.getlist(name)[:50] if v.strip()]
        return tuple(v for v in found if v is not None)

    zone = (params.get("tz") or "").strip() or viewer.timezone.key
    query = ReportQuery(start=one("from", _DAY), end=one("to", _DAY), timezone=zone, teams=many("team", _KEY),
                        managers=many("manager", _KEY), channels=many("channel", _TEXT),
                        sources=many("source", _TEXT), campaigns=many("campaign", _TEXT))  # fmt: skip
    if problems and check:
        raise InvalidInput(problems)
    return query


def _checked(adapter: TypeAdapter[Any], name: str, text: str, problems: list[FieldProblem]) -> Any:
    try:
        return adapter.validate_python(text)
    except ValidationError as exc:
        problems.append(FieldProblem(name, f"{name}: {exc.errors()[0]['msg']}"))
        return None


def _filters(request: Request, viewer: Viewer, query: ReportQuery) -> Filters:
    """The form's values and choices: the teams and managers the reader may see, and the time zones of the teams."""
    app = app_of(request)
    with app.engine.connect().execution_options(**READ_ONLY) as conn:
        window: Window = resolve(conn, ReportQuery(timezone="UTC"), viewer.who, app.rules.default_timezone, utcnow())
    params = request.query_params
    values = {name: (params.get(name) or "").strip() for name in ("from", "to", "team", "manager", "channel")}
    values["tz"] = query.timezone or viewer.timezone.key
    zones = sorted({viewer.timezone.key, app.rules.default_timezone, "UTC", values["tz"],
                    *(t.timezone for t in window.team_info.values() if t.timezone)})  # fmt: skip
    return Filters(values=values, own=window.own, zones=zones,
                   teams=sorted(((t.key, t.name) for t in window.team_info.values()), key=lambda t: t[1].lower()),
                   managers=[(p.key, p.name) for p in window.people_of()])  # fmt: skip


def _downloads(name: str, request: Request) -> dict[str, str]:
    """The files of the report as filtered, and the filters as an address's query (kept from tab to tab)."""
    kept = [(k, v) for k, v in request.query_params.multi_items() if v.strip() and k not in ("format", "table")]
    links = {form: f"/reports/{name}/export?" + urlencode([("format", form), *kept]) for form in ("csv", "xlsx")}
    return links | {"query": urlencode(kept)}


# -- The report, as the page shows it -----------------------------------------------------------------------------


def _names(viewer: Viewer, name: str) -> tuple[str, str]:
    if name in REPORT_NAMES:
        title, about = REPORT_NAMES[name]
        return viewer.gettext(title), viewer.gettext(about)
    spec = REPORTS.get(name)
    return (spec.title, spec.about) if spec is not None else (name, "")


def _soft(viewer: Viewer, text: str) -> str:
    """Words of a report (titles, column labels, names of rows) in the reader's language where the catalogue has
    them; else as the report wrote them (leadflow's English, a team's own names, or a report the catalogue does not
    know)."""
    return viewer.gettext(text) if not missing(viewer.language, [text]) else text


def _view(viewer: Viewer, rules: Any, report: Report) -> dict[str, Any]:
    zone = ZoneInfo(report.window.get("timezone") or "UTC")
    show = _Shown(viewer, Formats(viewer.language, zone), Labels(viewer, rules))
    summary = [(viewer.gettext(SUMMARY_LABELS[k]) if k in SUMMARY_LABELS else k.replace("_", " "),
                show.labels.status(v) if k in STATUS_FIGURES and isinstance(v, str) else
                show.value(v, summary_kind(report, k, v)))
               for k, v in report.summary.items() if not isinstance(v, dict | list)]  # fmt: skip
    period = {end: show.value(date.fromisoformat(report.window[end]), "text") for end in ("from", "to")}
    return {"summary": summary, "charts": [show.chart(c) for c in report.charts],
            "tables": [show.table(t) for t in report.tables], "notes": [show.words(n) for n in report.notes],
            "window": report.window, "period": period}  # fmt: skip


def _number(value: Any) -> Any:
    return float(value) if isinstance(value, Decimal) else value


@dataclass
class _Shown:
    viewer: Viewer
    formats: Formats
    labels: Labels

    def chart(self, chart: Chart) -> dict[str, Any]:
        labels = [self.words(x if isinstance(x, str) else str(x)) for x in chart.labels]
        datasets = [{"label": self.words(d["label"]), "data": [_number(v) for v in d["data"]]} for d in chart.datasets]
        return {"key": chart.key, "title": self.words(chart.title),
                "spec": {"type": chart.type, "labels": labels, "datasets": datasets}}  # fmt: skip

    def table(self, table: Table) -> dict[str, Any]:
        columns = [{"label": self.words(c.label), "num": c.kind != "text"} for c in table.columns]
        rows = [[self.cell(row, c.key, c.kind) for c in table.columns] for row in table.rows]
        return {"key": table.key, "title": self.words(table.title), "columns": columns, "rows": rows,
                "note": self.words(table.note) if table.note else None}  # fmt: skip

    def words(self, text: str) -> str:
        """A report's words in the reader's language: a sentence made with note() from its message, its figures
        shown the reader's way; fixed words (marked N_) from the catalogue."""
        if not isinstance(text, Note):
            return _soft(self.viewer, text)
        places = {name: self.place(value) for name, value in text.params.items()}
        template = self.viewer.gettext(text.template) if text.translated else text.template
        try:
            return template.format(**places)
        except (KeyError, IndexError, ValueError):  # a translation with a place of the wrong name: the English
            return text.template.format(**places)

    def place(self, value: Any) -> str:
        """What fills a place of a sentence: words, a figure of a kind, or a bare number, day or instant."""
        if isinstance(value, Figure):
            if value.kind == "status":
                return self.labels.status(value.value)
            return self.value(value.value, value.kind)
        if isinstance(value, str):
            return self.words(value)
        return self.value(value, "int" if isinstance(value, int) else "number")

    def cell(self, row: dict[str, Any], key: str, kind: Kind) -> Cell:
        value = row.get(key)
        if key == "status" and isinstance(value, str):  # by its key where the row keeps it
            return Cell(self.labels.status(row.get("_status") or row.get("_key") or value))
        if key == "channel" and isinstance(value, str):
            return Cell(self.labels.channel(value))
        if key == "id" and isinstance(value, int):  # a lead: its card
            return Cell(f"#{value}", True, f"/leads/{value}")
        return Cell(self.value(value, kind), kind != "text")

    def value(self, value: Any, kind: Kind) -> str:
        if value is None:
            return "—"
        locale = self.formats.locale
        if isinstance(value, str):
            return self.words(value)
        if isinstance(value, bool):
            return self.viewer.gettext("yes") if value else self.viewer.gettext("no")
        if kind == "percent" and isinstance(value, int | float | Decimal):
            return format_decimal(float(value) * 100, format="#,##0.0", locale=locale) + "%"
        if kind == "seconds" and isinstance(value, int | float | Decimal):
            return self.duration(float(value))
        if kind == "money" and isinstance(value, int | float | Decimal):
            return format_decimal(value, format="#,##0.00", locale=locale)
        if isinstance(value, datetime):
            return self.formats.when(value)
        if isinstance(value, date):
            return format_date(value, "short", locale=locale)
        if isinstance(value, int):
            return format_decimal(value, format="#,##0", locale=locale)
        if isinstance(value, float | Decimal):
            return format_decimal(value, format="#,##0.##", locale=locale)
        return str(value)

    def duration(self, seconds: float) -> str:
        _ = self.viewer.gettext
        whole = int(seconds + 0.5) if seconds >= 0 else -int(-seconds + 0.5)
        sign, whole = ("−", -whole) if whole < 0 else ("", whole)
        if whole < 60:
            return sign + _("%(s)d s") % {"s": whole}
        if whole < 3600:
            return sign + _("%(m)d min %(s)02d s") % {"m": whole // 60, "s": whole % 60}
        if whole < 86400:
            return sign + _("%(h)d h %(m)02d min") % {"h": whole // 3600, "m": whole % 3600 // 60}
        return sign + _("%(d)d d %(h)d h") % {"d": whole // 86400, "h": whole % 86400 // 3600}
