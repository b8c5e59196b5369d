"""The reports over real HTTP, on SQLite and PostgreSQL: the list, a report as JSON, CSV and XLSX on the fixed
history, the filters and their refusals, each caller's scope, and the costs and plans routes.

"arrivals" (tests/report_sample.py) is a small report of real rows with a column of every kind; every report of
REPORTS gets the same smoke test in every form.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from leadflow.services.context import Leadflow
from leadflow.services.reports import REPORTS, Spec
from leadflow.store.tables import channel_costs, sales_plans
from tests.report_sample import REAL_REPORTS, section_titles
from tests.reports.history import History, build_history
from tests.support import admin_headers, bearer, error_body, live_server, new_key, person

MARCH = {"from": "2026-03-01", "to": "2026-03-31"}


@dataclass
class Served:
    url: str
    history: History
    headers: dict[str, dict[str, str]]

    def get(self, path: str, who: str = "admin", **params: Any) -> httpx.Response:
        return httpx.get(self.url + path, params=params, headers=self.headers[who], timeout=60)


@pytest.fixture
def served(make_app: Callable[[str], Leadflow]) -> Iterator[Served]:
    history = build_history(make_app)
    app = history.app
    headers = {
        "admin": admin_headers(app),
        "read": bearer(new_key(app, "read")),
        "iryna": person(app, "iryna", "head", manager="iryna", teams=["kyiv"]),
        "olena": person(app, "olena", "manager", manager="olena"),
    }
    with live_server(app) as url:
        yield Served(url, history, headers)


def _rows(body: dict[str, Any], table: str = "by_channel") -> dict[str, dict[str, Any]]:
    found = next(t for t in body["tables"] if t["key"] == table)
    return {row["channel"]: row for row in found["rows"]}


def test_the_list_names_every_report(served: Served, arrivals: Spec) -> None:
    answer = served.get("/api/v1/reports", "olena")
    assert answer.status_code == 200, answer.text
    listed = {r["name"]: r for r in answer.json()}
    assert list(listed) == list(REPORTS)
    assert listed["arrivals"] == {"name": "arrivals", "title": "Arrivals",
                                  "about": "how many leads came through each channel"}  # fmt: skip
    assert {"funnel", "managers", "speed", "load", "handoffs", "channels", "forecast"} <= set(listed)


def test_a_report_as_json_on_the_fixed_history(served: Served, arrivals: Spec) -> None:
    answer = served.get("/api/v1/reports/arrivals", **MARCH)
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json", answer.text
    body = answer.json()
    assert body["filters"] == {"from": "2026-03-01", "to": "2026-03-31", "timezone": "Europe/Kyiv", "teams": [],
                               "managers": [], "channels": [], "sources": [], "campaigns": []}  # fmt: skip
    # web: k1 k2 k5 n1 n3 k6 = 6, contacted all but k5 = 5; first responses k1 600 s, k2 4 h = 14400, n1 90 min =
    # 5400, n3 300, k6 2 h = 7200: the median of five is 5400. Revenue: k1 1000.00 + k2 500.00 + n1 2000.00.
    # facebook: k3 (70 min = 4200 s) and k4 (30 min = 1800 s), both contacted: median (1800 + 4200) / 2 = 3000.
    # telegram: n2, never contacted.
    rows = _rows(body)
    assert list(rows) == ["web", "facebook", "telegram"]
    assert rows["web"] | {"contact_rate": round(rows["web"]["contact_rate"], 4)} == {
        "channel": "web", "leads": 6, "contacted": 5, "contact_rate": 0.8333, "median_response": 5400.0,
        "per_day": 6 / 31, "revenue": "3500.00", "first_day": "2026-03-02", "last_at": "2026-03-28T23:30:00+00:00",
        "_count": 6,
    }  # fmt: skip
    assert (rows["facebook"]["median_response"], rows["facebook"]["contact_rate"]) == (3000.0, 1.0)
    assert (rows["telegram"]["contacted"], rows["telegram"]["median_response"], rows["telegram"]["revenue"]) == (
        0, None, None)  # fmt: skip
    assert body["summary"] == {"leads": 9, "channels": 3}
    assert body["charts"][0]["labels"] == ["web", "facebook", "telegram"]
    assert body["charts"][0]["datasets"] == [{"label": "Leads", "data": [6, 2, 1]}]


def test_the_filters_narrow_the_report(served: Served, arrivals: Spec) -> None:
    # New York's leads: n1 and n3 (web), n2 (telegram).
    ny = _rows(served.get("/api/v1/reports/arrivals", team="ny", **MARCH).json())
    assert {k: v["leads"] for k, v in ny.items()} == {"web": 2, "telegram": 1}
    # Two channels at once, and a campaign: "spring" is k1, k2, k6 (web) and k3 (facebook).
    both = served.get("/api/v1/reports/arrivals", **MARCH, channel=["web", "telegram"]).json()
    assert {k: v["leads"] for k, v in _rows(both).items()} == {"web": 6, "telegram": 1}
    spring = _rows(served.get("/api/v1/reports/arrivals", campaign="spring", **MARCH).json())
    assert {k: v["leads"] for k, v in spring.items()} == {"web": 3, "facebook": 1}
    # Kyiv moved to summer time on 03-29: k6 arrived 03-28 23:30 UTC, which is 03-29 01:30 in Kyiv and 03-28 19:30
    # in New York. The day 03-29 holds it in Kyiv's time, and not in New York's.
    day = {"from": "2026-03-29", "to": "2026-03-29"}
    assert _rows(served.get("/api/v1/reports/arrivals", **day).json())["web"]["leads"] == 1
    assert _rows(served.get("/api/v1/reports/arrivals", tz="America/New_York", **day).json()) == {}
    assert _rows(served.get("/api/v1/reports/arrivals", tz="America/New_York", **{"from": "2026-03-28",
                                                                                 "to": "2026-03-28"}).json())["web"][
        "leads"] == 1  # fmt: skip


def test_each_caller_sees_their_own_scope(served: Served, arrivals: Spec) -> None:
    # Iryna heads Kyiv: k1..k6, web k1 k2 k5 k6 and facebook k3 k4.
    kyiv = _rows(served.get("/api/v1/reports/arrivals", "iryna", **MARCH).json())
    assert {k: v["leads"] for k, v in kyiv.items()} == {"web": 4, "facebook": 2}
    error_body(served.get("/api/v1/reports/arrivals", "iryna", team="ny", **MARCH), 403)
    # Olena owns k1 and k5 now (k3 was restored to Taras, k4 handed to him): web 2, one of them contacted.
    own = served.get("/api/v1/reports/arrivals", "olena", **MARCH).json()
    assert {k: (v["leads"], v["contacted"]) for k, v in _rows(own).items()} == {"web": (2, 1)}
    error_body(served.get("/api/v1/reports/arrivals", "olena", manager="taras", **MARCH), 403)
    # A read key sees everything.
    assert served.get("/api/v1/reports/arrivals", "read", **MARCH).json()["summary"]["leads"] == 9


def test_csv_of_one_table_and_of_every_table(served: Served, arrivals: Spec) -> None:
    one = served.get("/api/v1/reports/arrivals", format="csv", table="by_channel", **MARCH)
    assert one.status_code == 200, one.text
    assert one.headers["content-type"] == "text/csv; charset=utf-8"
    assert one.headers["content-disposition"] == 'attachment; filename="arrivals-by_channel-2026-03-01-2026-03-31.csv"'
    # 5 of 6 is 83.3%; 6 leads in 31 days is 0.193548 a day.
    assert one.text.splitlines() == [
        "Channel,Leads,Contacted,Contact rate,Median first response,Leads per day,Revenue,First day,Last arrival",
        "web,6,5,83.3,5400,0.193548,3500.00,2026-03-02,2026-03-28T23:30:00+00:00",
        "facebook,2,2,100.0,3000,0.064516,,2026-03-02,2026-03-03T09:00:00+00:00",
        "telegram,1,0,0.0,,0.032258,,2026-03-09,2026-03-09T03:00:00+00:00",
    ]
    every = served.get("/api/v1/reports/arrivals", format="csv", **MARCH)
    assert every.headers["content-disposition"] == 'attachment; filename="arrivals-2026-03-01-2026-03-31.csv"'
    lines = every.text.split("\r\n")
    assert lines[0] == "Leads by channel" and lines[1].startswith("Channel,Leads") and lines[5] == ""
    assert lines[6:9] == ["An empty table", "What", ""]
    error_body(served.get("/api/v1/reports/arrivals", format="csv", table="nope", **MARCH), 422, "table")


def test_xlsx_has_a_summary_and_a_sheet_per_table(served: Served, arrivals: Spec) -> None:
    answer = served.get("/api/v1/reports/arrivals", format="xlsx", **MARCH)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert answer.headers["content-disposition"] == 'attachment; filename="arrivals-2026-03-01-2026-03-31.xlsx"'
    book = load_workbook(io.BytesIO(answer.content))
    assert book.sheetnames == ["Summary", "Leads by channel", "An empty table"]
    sheet = book["Leads by channel"]
    assert [c.value for c in sheet[1]][:3] == ["Channel", "Leads", "Contacted"] and sheet["A1"].font.b
    web = sheet[2]
    assert (web[3].value, web[3].number_format) == (5 / 6, "0.0%")
    assert (web[4].value.total_seconds(), web[4].number_format) == (5400, "[h]:mm:ss")
    assert (web[6].value, web[6].number_format) == (3500, "#,##0.00")
    # The last arrival, 03-28 23:30 UTC, in Kyiv's time (the Summary sheet names the zone): 03-29 01:30.
    assert str(web[8].value) == "2026-03-29 01:30:00"
    summary = {row[0].value: row[1].value for row in book["Summary"].iter_rows(min_row=2) if row[0].value}
    assert summary["Time zone"] == "Europe/Kyiv" and summary["leads"] == 9 and summary["Teams"] == "all"
    one = load_workbook(io.BytesIO(served.get("/api/v1/reports/arrivals", format="xlsx", table="nothing",
                                              **MARCH).content))  # fmt: skip
    assert one.sheetnames == ["Summary", "An empty table"]


def test_refusals_have_the_one_shape(served: Served, arrivals: Spec) -> None:
    body = error_body(served.get("/api/v1/reports/nosuch"), 404)
    assert "arrivals" in body["message"] and "funnel" in body["message"]
    error_body(served.get("/api/v1/reports/arrivals", **{"from": "2026-13-01"}), 422, "from")
    error_body(served.get("/api/v1/reports/arrivals", **{"from": "1700000000"}), 422, "from")
    error_body(served.get("/api/v1/reports/arrivals", **{"from": "0001-01-01"}), 422, "from")
    error_body(served.get("/api/v1/reports/arrivals", **{"from": "2026-03-10", "to": "2026-03-01"}), 422, "to")
    error_body(served.get("/api/v1/reports/arrivals", **{"from": "2024-01-01", "to": "2026-03-01"}), 422, "from")
    error_body(served.get("/api/v1/reports/arrivals", tz="Mars/Olympus"), 422, "tz")
    error_body(served.get("/api/v1/reports/arrivals", tz="../../etc/passwd"), 422, "tz")
    error_body(served.get("/api/v1/reports/arrivals", team="atlantis"), 422, "team")
    error_body(served.get("/api/v1/reports/arrivals", manager="nobody"), 422, "manager")
    error_body(served.get("/api/v1/reports/arrivals", channel="web\x00"), 422, "channel.0")
    error_body(served.get("/api/v1/reports/arrivals", format="pdf"), 422, "format")
    error_body(httpx.get(served.url + "/api/v1/reports/arrivals", timeout=30), 401)


@pytest.mark.parametrize("name", REAL_REPORTS)
def test_every_report_in_every_form(served: Served, name: str) -> None:
    body = served.get(f"/api/v1/reports/{name}", **MARCH).json()
    assert body["report"] == name and body["title"] == REPORTS[name].title, body
    assert body["filters"]["from"] == "2026-03-01" and body["tables"], body
    every = served.get(f"/api/v1/reports/{name}", format="csv", **MARCH)
    assert every.status_code == 200 and every.headers["content-type"] == "text/csv; charset=utf-8"
    assert section_titles(every.text) == [t["title"] for t in body["tables"]]
    first = body["tables"][0]
    one = list(csv.reader(io.StringIO(served.get(f"/api/v1/reports/{name}", format="csv", table=first["key"],
                                                 **MARCH).text)))  # fmt: skip
    assert one[0] == [c["label"] for c in first["columns"]] and len(one) == 1 + len(first["rows"])
    book = load_workbook(io.BytesIO(served.get(f"/api/v1/reports/{name}", format="xlsx", **MARCH).content))
    assert len(book.sheetnames) == 1 + len(body["tables"]) and book.sheetnames[0] == "Summary"
    # A manager gets their own figures of every report, in the same shape.
    own = served.get(f"/api/v1/reports/{name}", "olena", **MARCH)
    assert own.status_code == 200 and own.json()["report"] == name, own.text


# -- Costs and plans -------------------------------------------------------------------------------------------------


def test_costs_come_as_csv_or_as_json(served: Served) -> None:
    url = served.url + "/api/v1/reports/costs"
    admin = served.headers["admin"]
    text = "day,channel,source,campaign,amount\n2026-03-02,web,site,spring,120.50\n2026-03-03,facebook,ads,,80\n"
    posted = httpx.post(url, content=text.encode(), headers={**admin, "Content-Type": "text/csv"}, timeout=30)
    assert posted.status_code == 200, posted.text
    again = httpx.post(url, json={"csv": "day,channel,amount\n2026-03-04,telegram,10.00\n"}, headers=admin, timeout=30)
    assert again.status_code == 200, again.text
    with served.history.app.engine.connect() as conn:
        stored = {(r.day.isoformat(), r.channel, r.campaign): r.amount for r in conn.execute(select(channel_costs))}
    assert stored == {("2026-03-02", "web", "spring"): Decimal("120.50"), ("2026-03-03", "facebook", ""): Decimal("80"),
                      ("2026-03-04", "telegram", ""): Decimal("10.00")}  # fmt: skip
    listed = served.get("/api/v1/reports/costs", **MARCH)
    assert listed.status_code == 200 and "120.50" in listed.text and "10.00" in listed.text, listed.text


def test_costs_refuse_what_is_not_csv(served: Served) -> None:
    url = served.url + "/api/v1/reports/costs"
    admin = served.headers["admin"]

    def post(content: bytes, kind: str, who: dict[str, str] = admin) -> httpx.Response:
        return httpx.post(url, content=content, headers={**who, "Content-Type": kind}, timeout=30)

    assert post(b"day,amount\n", "text/plain").status_code == 415
    error_body(post(b"\xff\xfeday", "text/csv"), 422, "body")
    error_body(post(b"  \n", "text/csv"), 422, "body")
    error_body(post(b'{"csv": "day,amount"', "application/json"), 422, "body")
    error_body(post(b"[" * 5000 + b"]" * 5000, "application/json"), 422, "body")
    error_body(post(b'{"csv": "day,amount", "extra": 1}', "application/json"), 422, "extra")
    error_body(post(b'{"csv": "day\\u0000"}', "application/json"), 422, "csv")
    error_body(post(b"day,amount\n2026-03-01,1\n", "text/csv", served.headers["olena"]), 403)  # a manager sets no costs
    error_body(post(b"day,amount\n2026-03-01,1\n", "text/csv", served.headers["read"]), 403)
    error_body(served.get("/api/v1/reports/costs", **{"from": "2026-03-10", "to": "2026-03-01"}), 422, "to")


def test_plans_are_set_per_month_and_listed(served: Served) -> None:
    url = served.url + "/api/v1/reports/plans"
    admin = served.headers["admin"]
    put = httpx.put(f"{url}/team:kyiv/2026-03", json={"deals_per_day": "1.5", "revenue_per_month": 90000},
                    headers=admin, timeout=30)  # fmt: skip
    assert put.status_code == 200, put.text
    mine = httpx.put(f"{url}/manager:olena/2026-03", json={"deals_per_day": 0.5}, headers=served.headers["iryna"],
                     timeout=30)  # fmt: skip
    assert mine.status_code == 200, mine.text
    with served.history.app.engine.connect() as conn:
        stored = {(r.scope, r.month): (r.deals_per_day, r.revenue_per_month) for r in conn.execute(select(sales_plans))}
    assert stored == {("team:kyiv", "2026-03"): (Decimal("1.50"), Decimal("90000.00")),
                      ("manager:olena", "2026-03"): (Decimal("0.50"), None)}  # fmt: skip
    listed = served.get("/api/v1/reports/plans", month="2026-03")
    assert listed.status_code == 200 and "kyiv" in listed.text and "olena" in listed.text, listed.text
    error_body(httpx.put(f"{url}/team:kyiv/2026-13", json={}, headers=admin, timeout=30), 422, "month")
    error_body(httpx.put(f"{url}/region:kyiv/2026-03", json={}, headers=admin, timeout=30), 422, "scope")
    error_body(httpx.put(f"{url}/team:kyiv/2026-03", json={"deals_per_day": -1}, headers=admin, timeout=30), 422,
           "deals_per_day")  # fmt: skip
    error_body(httpx.put(f"{url}/team:kyiv/2026-03", json={"deals_per_day": "0.125"}, headers=admin, timeout=30), 422,
           "deals_per_day")  # fmt: skip
    error_body(httpx.put(f"{url}/team:kyiv/2026-03", json={"deals": 1}, headers=admin, timeout=30), 422, "deals")
    error_body(httpx.put(f"{url}/team:kyiv/2026-03", json={"deals_per_day": 1}, headers=served.headers["olena"],
                     timeout=30), 403)  # fmt: skip
    error_body(served.get("/api/v1/reports/plans", month="March"), 422, "month")
