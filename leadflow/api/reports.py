"""The reports over HTTP: the list, one report as JSON, CSV or XLSX, the advertising costs channel quality divides
by, and the sales plans the forecast measures against. The reports are built on a worker thread: a report over a
month of a large history reads for a while, and the event loop keeps answering meanwhile."""

from __future__ import annotations

import re
from datetime import date, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from anyio import to_thread
from fastapi import APIRouter, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Field,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError
from starlette.exceptions import HTTPException

from leadflow.api.auth import permit
from leadflow.api.deps import AppDep
from leadflow.api.errors import JSON_BODY, NOT_FOUND, REFUSALS
from leadflow.api.params import KEY_PATTERN, LeadflowRoute, read_json_body
from leadflow.api.schemas import Body
from leadflow.core.errors import InvalidInput
from leadflow.core.fields import CLEAN_TEXT_PATTERN, CleanText
from leadflow.core.policy import Action, Principal
from leadflow.services.context import Leadflow, utcnow
from leadflow.services.reports import REPORTS, ReportQuery, run_report
from leadflow.services.reports.costs import import_costs, list_costs
from leadflow.services.reports.export import CSV_TYPE, XLSX_TYPE, filename, only_table, to_csv, to_xlsx
from leadflow.services.reports.plans import list_plans, set_plan
from leadflow.services.reports.shape import Report, plain

router = APIRouter(prefix="/api/v1/reports", tags=["reports"], route_class=LeadflowRoute, responses=REFUSALS)

Reader = Annotated[Principal, permit(Action.REPORTS_READ)]
Planner = Annotated[Principal, permit(Action.REPORTS_PLAN)]

# -- The filters, shared with the CLI and the desk's reports page ---------------------------------------------------

FIRST_DAY, LAST_DAY = date(1970, 1, 1), date(2999, 12, 31)  # days a report may name: a period's ends stay in range
_ISO_DAY = re.compile(r"\d{4}-\d\d-\d\d")
FILTERS_MAX = 50  # values of one filter


def _day_text(value: Any) -> Any:
    # Pydantic would also take a unix time or a date-time at midnight; a period is named by its local days.
    if isinstance(value, date) or (isinstance(value, str) and _ISO_DAY.fullmatch(value)):
        return value
    raise PydanticCustomError("iso_date", "give a day as YYYY-MM-DD, like 2026-11-01")


def _in_range(value: date) -> date:
    if not FIRST_DAY <= value <= LAST_DAY:
        raise PydanticCustomError("date_range", f"a day from {FIRST_DAY} to {LAST_DAY}")
    return value


Day = Annotated[date, BeforeValidator(_day_text), AfterValidator(_in_range)]
KeyText = Annotated[str, StringConstraints(min_length=1, max_length=60, pattern=KEY_PATTERN)]
FilterText = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=CLEAN_TEXT_PATTERN)]
ZONE_PATTERN = r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+){0,2}$"

FromDay = Annotated[Day | None, Query(alias="from", description="The first local day (YYYY-MM-DD); default: 30 days "
                                                                "before the last.")]  # fmt: skip
ToDay = Annotated[Day | None, Query(alias="to", description="The last local day, included; default: today.")]
ZoneName = Annotated[str | None, Query(min_length=1, max_length=64, pattern=ZONE_PATTERN,
                                       description="An IANA time zone the days are in; default: the rules file's.")]  # fmt: skip


def _many(what: str) -> Any:
    return Query(max_length=FILTERS_MAX, description=f"Only these {what} (repeatable).")


Teams = Annotated[list[KeyText] | None, _many("teams")]
Managers = Annotated[list[KeyText] | None, _many("managers")]
Channels = Annotated[list[FilterText] | None, _many("channels")]
Sources = Annotated[list[FilterText] | None, _many("sources")]
Campaigns = Annotated[list[FilterText] | None, _many("UTM campaigns")]
ReportName = Annotated[str, Path(min_length=1, max_length=60, pattern=KEY_PATTERN,
                                 description="The report: funnel, managers, speed, load, handoffs, channels, "
                                             "forecast.")]  # fmt: skip
TableKey = Annotated[str | None, Query(min_length=1, max_length=60, pattern=KEY_PATTERN,
                                       description="Only this table of the report.")]  # fmt: skip
Format = Literal["json", "csv", "xlsx"]


def report_query(start: date | None = None, end: date | None = None, tz: str | None = None,
                 team: list[str] | None = None, manager: list[str] | None = None, channel: list[str] | None = None,
                 source: list[str] | None = None, campaign: list[str] | None = None) -> ReportQuery:  # fmt: skip
    return ReportQuery(start=start, end=end, timezone=tz, teams=tuple(team or ()), managers=tuple(manager or ()),
                       channels=tuple(channel or ()), sources=tuple(source or ()),
                       campaigns=tuple(campaign or ()))  # fmt: skip


def rendered(report: Report, form: Format, table: str | None = None, *, for_people: bool = False) -> Response:
    """The report in the form asked for: JSON, or a CSV or XLSX file to save (named after the report and period).

    `for_people`: a file a person downloads from the desk starts its CSV with the UTF-8 byte-order mark, without
    which Excel reads Cyrillic as another code page; a program reading the API gets the plain UTF-8 it expects."""
    if table is not None:
        report = only_table(report, table)
    if form == "csv":
        text = to_csv(report) if table is None else to_csv(report, table)
        return _attachment(text.encode("utf-8-sig" if for_people else "utf-8"), CSV_TYPE,
                           filename(report, "csv", table))  # fmt: skip
    if form == "xlsx":
        return _attachment(to_xlsx(report), XLSX_TYPE, filename(report, "xlsx", table))
    return JSONResponse(report.to_json())


def _attachment(content: bytes, media_type: str, name: str) -> Response:
    return Response(content, media_type=media_type, headers={"Content-Disposition": f'attachment; filename="{name}"'})


# -- The answers ------------------------------------------------------------------------------------------------------


class ReportInfo(BaseModel):
    name: str
    title: str
    about: str = Field(description="What the report answers, in a line.")


class ColumnOut(BaseModel):
    key: str
    label: str
    kind: str = Field(description="int, number, percent (a share 0..1), seconds, money (a decimal string), date, "
                                  "datetime or text.")  # fmt: skip


class TableOut(BaseModel):
    key: str
    title: str
    note: str | None
    columns: list[ColumnOut]
    rows: list[dict[str, Any]] = Field(description="By column key; keys starting with _ are extra detail.")


class ChartOut(BaseModel):
    key: str
    title: str
    type: str
    labels: list[str]
    datasets: list[dict[str, Any]]


class ReportOut(BaseModel):
    report: str
    title: str
    filters: dict[str, Any] = Field(description="The filters as understood: from, to, timezone, teams, ...")
    generated_at: str
    summary: dict[str, Any]
    tables: list[TableOut]
    charts: list[ChartOut]
    notes: list[str]


class CostsIn(Body):
    csv: CleanText = Field(..., min_length=1, description="The CSV: a header row with day, amount and any of "
                                                          "channel, source, campaign; one row per day and line.")  # fmt: skip


# A plan's figures: not negative, two decimals at most, within the columns (Pydantic would document a Decimal as
# any string).
DEALS_MOST, REVENUE_MOST = Decimal("99999999.99"), Decimal("9999999999999999.99")
DealsPerDay = Annotated[Decimal, Field(ge=0, le=DEALS_MOST, decimal_places=2), WithJsonSchema({"anyOf": [
    {"type": "number", "minimum": 0, "maximum": 99999999.99, "multipleOf": 0.01},
    {"type": "string", "pattern": r"^\d{1,8}(\.\d{1,2})?$"}]})]  # fmt: skip
RevenuePerMonth = Annotated[Decimal, Field(ge=0, le=REVENUE_MOST, decimal_places=2), WithJsonSchema({"anyOf": [
    {"type": "number", "minimum": 0, "maximum": 9999999999999999.99, "multipleOf": 0.01},
    {"type": "string", "pattern": r"^\d{1,16}(\.\d{1,2})?$"}]})]  # fmt: skip


class PlanIn(Body):
    deals_per_day: DealsPerDay | None = Field(None, description="Deals (won leads) planned per calendar day; none: "
                                                                "as it was.")  # fmt: skip
    revenue_per_month: RevenuePerMonth | None = Field(None, description="Revenue planned for the month; none: as it "
                                                                        "was.")  # fmt: skip


FILE_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The report: JSON, or with format=csv or xlsx a file to save.",
        "content": {
            "text/csv": {"schema": {"type": "string"}},
            XLSX_TYPE: {"schema": {"type": "string", "format": "binary"}},
        },
    },
    **NOT_FOUND,
}
COSTS_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "text/csv": {"schema": {"type": "string", "pattern": CLEAN_TEXT_PATTERN}},
            "application/json": {"schema": CostsIn.model_json_schema()},
        },
    }
}
Scope = Annotated[str, Path(min_length=1, max_length=80, pattern=r"^(team|manager):" + KEY_PATTERN.lstrip("^"),
                            description="team:<key> or manager:<key>.")]  # fmt: skip
Month = Annotated[str, Path(pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$", description="The month, YYYY-MM.")]
MonthQuery = Annotated[str | None, Query(pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$",
                                         description="The month, YYYY-MM; default: this month.")]  # fmt: skip


# -- The routes (the fixed paths before /{name}, which would take them) ----------------------------------------------


@router.get("", response_model=list[ReportInfo], summary="The reports there are")
def get_reports(who: Reader) -> list[ReportInfo]:
    return [ReportInfo(name=s.name, title=s.title, about=s.about) for s in REPORTS.values()]


@router.post("/costs", summary="Import advertising costs: a CSV of spend per day and campaign",
             responses=JSON_BODY, openapi_extra=COSTS_BODY)  # fmt: skip
async def post_costs(request: Request, app: AppDep, who: Planner) -> Any:
    """The body is the CSV itself (Content-Type: text/csv) or JSON {"csv": "..."}. A line for a day, channel,
    source and campaign that is there already is replaced."""
    text = await _costs_text(request)
    done = await to_thread.run_sync(lambda: import_costs(app, text, utcnow(), who=who))
    return plain(done)


@router.get("/costs", summary="Advertising costs per day and campaign, as imported")
def get_costs(app: AppDep, who: Reader, start: FromDay = None, end: ToDay = None) -> Any:
    first, last = _period(app, start, end)
    return plain(list_costs(app, first, last, who=who))


@router.get("/plans", summary="The sales plans of a month: the rules file's, and those set by API over them")
def get_plans(app: AppDep, who: Reader, month: MonthQuery = None) -> Any:
    return plain(list_plans(app, month or _this_month(app), who=who))


@router.put("/plans/{scope}/{month}", summary="Set a team's or a manager's plan for a month",
            responses={**NOT_FOUND, **JSON_BODY})  # fmt: skip
def put_plan(scope: Scope, month: Month, body: PlanIn, app: AppDep, who: Planner) -> Any:
    return plain(set_plan(app, scope, month, body.deals_per_day, body.revenue_per_month, utcnow(), who=who))


@router.get("/{name}", response_model=ReportOut, responses=FILE_ANSWERS,
            summary="One report, for a period and filters, in the caller's scope: JSON, CSV or XLSX")  # fmt: skip
async def get_report(
    name: ReportName, app: AppDep, who: Reader, start: FromDay = None, end: ToDay = None, tz: ZoneName = None,
    team: Teams = None, manager: Managers = None, channel: Channels = None, source: Sources = None,
    campaign: Campaigns = None, format: Format = "json", table: TableKey = None,
) -> Response:  # fmt: skip
    """A head of sales gets their teams' figures, a manager their own, an admin and API keys everyone's. The
    period is local days in `tz`, both ends included (at most 400 days)."""
    query = report_query(start, end, tz, team, manager, channel, source, campaign)

    def build() -> Response:
        return rendered(run_report(app, name, query, utcnow(), who=who), format, table)

    return await to_thread.run_sync(build)


# -- Helpers ----------------------------------------------------------------------------------------------------------


async def _costs_text(request: Request) -> str:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "text/csv":
        body = await request.body()
        try:
            text = body.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise InvalidInput.one("body", "the CSV is not UTF-8 text: save it as UTF-8") from None
        if not text.strip():
            raise InvalidInput.one("body", "the CSV is empty: send a header row and a row per day")
        return text
    if kind != "application/json" and not (kind.startswith("application/") and kind.endswith("+json")):
        raise HTTPException(415, f"content type '{kind or 'none'}' is not accepted here: send text/csv, or "
                                 'application/json {"csv": "..."}')  # fmt: skip
    await read_json_body(request)
    try:
        value = await request.json()
    except ValueError:  # no body at all: read_json_body left it to us
        raise InvalidInput.one("body", 'send the CSV, or JSON {"csv": "..."}') from None
    try:
        return CostsIn.model_validate(value).csv
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False)) from None


def _period(app: Leadflow, start: date | None, end: date | None) -> tuple[date, date]:
    """The days asked for, or the last 30 up to today in the rules file's time zone."""
    today = utcnow().astimezone(ZoneInfo(app.rules.default_timezone)).date()
    last = end or (min(start + timedelta(days=29), today) if start else today)
    first = start or last - timedelta(days=29)
    if last < first:
        raise InvalidInput.one("to", f"the period ends ({last}) before it starts ({first})")
    return first, last


def _this_month(app: Leadflow) -> str:
    return utcnow().astimezone(ZoneInfo(app.rules.default_timezone)).strftime("%Y-%m")
