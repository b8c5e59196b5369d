"""The plan and forecast report: planned against won per local day, and the month-end forecast with its range, on
the shared history and on a small history of its own (win probabilities, budgets, reopened deals, two won
statuses), each figure worked out by hand in the comments."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from leadflow.core.lead import CleanLead, LeadIn
from leadflow.core.policy import SYSTEM, Grant, Principal
from leadflow.core.rules_text import parse_rules
from leadflow.core.stats import Z80
from leadflow.services.context import Leadflow
from leadflow.services.intake import take_lead
from leadflow.services.leads import Sale, set_status
from leadflow.services.reports import run_report
from leadflow.services.reports.plans import set_plan
from leadflow.services.reports.query import ReportQuery
from leadflow.services.reports.shape import Report
from tests.reports.history import RULES, History

PLANS = """
reports:
  plans:
    - {team: kyiv, deals_per_day: 0.5, revenue_per_month: 100000}
    - {team: ny, deals_per_day: 0.2}
    - {manager: ann, deals_per_day: 0.1, revenue_per_month: 3000}
    - {manager: olena, deals_per_day: 0.2}
"""
# After everything in the shared history (its last change is on 03-29 01:30 UTC).
NOW = datetime(2026, 3, 30, 10, 30, tzinfo=UTC)


def with_plans(history: History) -> Leadflow:
    """The shared history's database under its rules with plans added."""
    return Leadflow(engine=history.app.engine, rules=parse_rules(RULES + PLANS, "plans.yaml"))


def month_rows(report: Report) -> dict[str, dict[str, Any]]:
    return {r["_key"]: r for r in report.table("month").rows}


def money(value: float) -> Decimal:
    return Decimal(str(round(value, 2))).quantize(Decimal("0.01"))


def test_kyiv_plan_against_won_and_the_month_end_forecast(history: History) -> None:
    app = with_plans(history)
    # March's own deals a day for Kyiv; its revenue plan stays the rules file's.
    set_plan(app, "team:kyiv", "2026-03", Decimal("0.25"), None, NOW, who=SYSTEM)
    query = ReportQuery(date(2026, 3, 1), date(2026, 3, 10), "Europe/Kyiv", teams=("kyiv",))
    report = run_report(app, "forecast", query, NOW, who=SYSTEM)

    # Deals: k1 converted 03-05 12:00 UTC (14:00 Kyiv), 1000.00; k2 converted 03-09 10:00 UTC (12:00 Kyiv), 500.00
    # (k2 was lost and reopened before: its one win counts).
    daily = {r["day"]: r for r in report.table("daily").rows}
    assert len(daily) == 10 and {r["planned"] for r in daily.values()} == {0.25}
    assert [(d.day, r["actual"], r["revenue"]) for d, r in daily.items() if r["actual"]] == [
        (5, 1, Decimal("1000.00")), (9, 1, Decimal("500.00"))]  # fmt: skip
    assert daily[date(2026, 3, 4)]["planned_total"] == 1.0 and daily[date(2026, 3, 4)]["gap"] == -1.0
    assert daily[date(2026, 3, 5)]["actual_total"] == 1 and daily[date(2026, 3, 5)]["gap"] == 1 - 1.25
    # 10 days x 0.25 = 2.5 planned; 2 won; gap 2 - 2.5.
    assert (report.summary["planned"], report.summary["actual"], report.summary["gap"]) == (2.5, 2, -0.5)
    assert report.summary["revenue"] == Decimal("1500.00")

    # The month: March in Kyiv, 03-01 00:00 EET (02-28 22:00 UTC) to 04-01 00:00 EEST (03-31 21:00 UTC): the clocks
    # go forward on 03-29, so from now (03-30 10:30 UTC) 34.5 hours are left: 1.4375 days.
    s = report.summary
    assert s["month"] == "2026-03" and s["days_left"] == 1.4375
    assert (s["won_so_far"], s["revenue_so_far"]) == (2, Decimal("1500.00"))
    # 90 days back: the wins are k1 and k2: an average check of (1000 + 500) / 2 = 750; Kyiv's arrivals k1..k6 = 6,
    # conversion 2 / 6. The last 28 days (from 03-02 10:30 UTC): k4, k5, k6 arrived: 3/28 a day.
    assert s["average_check"] == Decimal("750.00") and s["conversion"] == pytest.approx(2 / 6)
    assert s["leads_per_day"] == round(3 / 28, 4)
    # Stage probabilities: of the times Kyiv's leads entered the status in the 90 days, the share by leads won now:
    # assigned by k1..k6, k3 twice (routed, then restored): 7, by won k1 k2 -> 2/7; contacted k1 k2 k3 k4 k6: 5,
    # won 2 -> 2/5. The pipeline, open leads that arrived in the 90 days: k5 assigned; k3 k4 k6 contacted; none has
    # a probability or a budget of its own.
    pipeline = {r["_key"]: r for r in report.table("pipeline").rows}
    assert list(pipeline) == ["assigned", "contacted"]
    assert (pipeline["assigned"]["leads"], pipeline["assigned"]["entered"], pipeline["assigned"]["won"]) == (1, 7, 2)
    assert (pipeline["contacted"]["leads"], pipeline["contacted"]["entered"], pipeline["contacted"]["won"]) == (3, 5, 2)
    assert pipeline["contacted"]["stage_probability"] == pytest.approx(0.4)
    assert pipeline["assigned"]["expected_revenue"] == Decimal("214.29")  # 2/7 x 750
    assert pipeline["contacted"]["expected_revenue"] == Decimal("900.00")  # 3 x 0.4 x 750
    open_deals = 2 / 7 + 3 * 0.4
    open_var = (2 / 7) * (5 / 7) + 3 * 0.4 * 0.6
    new_deals = 3 / 28 * 1.4375 * (2 / 6)  # a day x days left x conversion
    deals = 2 + open_deals + new_deals  # = 3.5371
    deals_sd = math.sqrt(open_var + new_deals)  # Poisson: the new deals' variance is their mean
    assert s["forecast_deals"] == round(deals, 2) == 3.54
    assert (s["forecast_deals_low"], s["forecast_deals_high"]) == (round(deals - Z80 * deals_sd, 2),
                                                                   round(deals + Z80 * deals_sd, 2))  # fmt: skip
    revenue = 1500 + 750 * (open_deals + new_deals)  # every open lead is worth the average check
    revenue_sd = 750 * deals_sd  # v^2 = 750^2 for every lead
    assert s["forecast_revenue"] == money(revenue) == Decimal("2652.79")
    assert s["forecast_revenue_low"] == money(revenue - Z80 * revenue_sd)
    assert s["forecast_revenue_high"] == money(revenue + Z80 * revenue_sd)
    # The plan: 0.25 x 31 days; the revenue, the rules file's 100000.
    assert (s["plan_deals"], s["plan_revenue"]) == (7.75, Decimal("100000.00"))
    rows = month_rows(report)
    assert (rows["won"]["deals"], rows["pipeline"]["deals"], rows["new"]["deals"]) == (2, round(open_deals, 2),
                                                                                      round(new_deals, 2))  # fmt: skip
    assert rows["plan"]["deals"] == 7.75
    plans = report.table("plans").rows
    assert [(p["scope"], p["deals_per_day"], p["revenue_per_month"], p["source"]) for p in plans] == [
        ("team:kyiv", 0.25, Decimal("100000"), "set by system:leadflow")]  # fmt: skip
    chart = report.charts[0]
    assert chart.type == "line" and chart.labels[0] == "2026-03-01" and chart.datasets[1]["data"][-1] == 2


def test_a_campaign_filter_reaches_every_part(history: History) -> None:
    app = with_plans(history)
    query = ReportQuery(date(2026, 3, 1), date(2026, 3, 10), "Europe/Kyiv", teams=("kyiv",), campaigns=("spring",))
    report = run_report(app, "forecast", query, NOW, who=SYSTEM)
    s = report.summary
    # The spring leads: k1, k2, k3, k6. Won: k1 and k2 (check 750); arrivals in 90 days 4: conversion 2/4; in the
    # last 28 days k6 alone (k3 arrived at 10:00 on 03-02, before 10:30): 1/28 a day.
    assert (s["actual"], s["conversion"], s["leads_per_day"]) == (2, 0.5, round(1 / 28, 4))
    # Entries: assigned k1 k2 k3 k3 k6 (5, won 2); contacted k1 k2 k3 k6 (4, won 2 -> 1/2). Open: k3 and k6,
    # contacted: 2 x 1/2 = 1 deal, 750.00.
    pipeline = {r["_key"]: r for r in report.table("pipeline").rows}
    assert list(pipeline) == ["contacted"]
    assert (pipeline["contacted"]["leads"], pipeline["contacted"]["entered"], pipeline["contacted"]["won"]) == (2, 4, 2)
    assert pipeline["contacted"]["expected_revenue"] == Decimal("750.00")
    new_deals = 1 / 28 * 1.4375 * 0.5
    assert s["forecast_deals"] == round(2 + 1 + new_deals, 2) == 3.03
    assert s["forecast_revenue"] == money(1500 + 750 + 750 * new_deals)


def test_a_manager_in_new_york_against_their_own_plan(history: History) -> None:
    app = with_plans(history)
    query = ReportQuery(date(2026, 3, 8), date(2026, 3, 10), "America/New_York", managers=("ann",))
    report = run_report(app, "forecast", query, NOW, who=SYSTEM)
    # Ann's own plan (0.1 a day), not New York's. n1 converted 03-10 15:00 UTC (11:00 EDT) while Ann owned it.
    daily = report.table("daily").rows
    assert [(r["day"].day, r["planned"], r["actual"]) for r in daily] == [(8, 0.1, 0), (9, 0.1, 0), (10, 0.1, 1)]
    assert report.summary["gap"] == pytest.approx(1 - 0.3)
    s = report.summary
    # March in New York ends 04-01 00:00 EDT = 04:00 UTC: 41.5 hours after now, 1.7291667 days.
    assert s["days_left"] == round(41.5 / 24, 4)
    # Won so far: n1, 2000.00; the average check is 2000. The leads Ann holds now: n1 alone (n2 went to Mike), in
    # both the 90 and the 28 days: conversion 1 / 1, 1/28 a day. Ann has no open lead: no pipeline.
    assert (s["won_so_far"], s["average_check"], s["conversion"]) == (1, Decimal("2000.00"), 1.0)
    assert report.table("pipeline").rows == []
    new_deals = 1 / 28 * (41.5 / 24) * 1.0
    assert s["forecast_deals"] == round(1 + new_deals, 2) == 1.06
    # The low end would be 1.06 - 1.2816 x sqrt(0.0618) = 0.74, below the one deal already won: it stays at 1.
    assert s["forecast_deals_low"] == 1.0
    assert s["forecast_deals_high"] == round(1 + new_deals + Z80 * math.sqrt(new_deals), 2)
    assert s["forecast_revenue"] == money(2000 + 2000 * new_deals) == Decimal("2123.51")
    assert s["forecast_revenue_low"] == Decimal("2000.00")
    assert s["forecast_revenue_high"] == money(2000 + 2000 * new_deals + Z80 * 2000 * math.sqrt(new_deals))
    assert (s["plan_deals"], s["plan_revenue"]) == (pytest.approx(3.1), Decimal("3000.00"))  # 0.1 x 31
    assert [p["scope"] for p in report.table("plans").rows] == ["manager:ann"]


def test_a_manager_reads_their_own_plan_and_deals(history: History) -> None:
    app = with_plans(history)
    olena = Principal("user", "olena", id=1, grants=(Grant("manager", None),), manager_id=history.managers["olena"])
    report = run_report(app, "forecast", ReportQuery(date(2026, 3, 1), date(2026, 3, 10), "Europe/Kyiv"), NOW,
                        who=olena)  # fmt: skip
    # Her plan, 0.2 a day x 10; her one deal, k1 (k2 was Taras's).
    assert (report.summary["planned"], report.summary["actual"]) == (2.0, 1)
    assert [p["scope"] for p in report.table("plans").rows] == ["manager:olena"]
    # She holds k5 (assigned) open now. The stage probability counts the entries made while she held the lead:
    # assigned k1, k3 (its first stay; Taras had the second), k4, k5: 4, by a lead won now k1: 1/4; her average
    # check, k1's 1000.
    [assigned] = report.table("pipeline").rows
    assert (assigned["_key"], assigned["leads"], assigned["entered"], assigned["won"]) == ("assigned", 1, 4, 1)
    assert (assigned["expected_deals"], assigned["expected_revenue"]) == (0.25, Decimal("250.00"))


SMALL = """
default_timezone: Europe/Kyiv
funnel:
  - {key: new}
  - {key: assigned}
  - {key: contacted}
  - {key: converted, open: false, outcome: won}
  - {key: paid, open: false, outcome: won}
  - {key: junk, open: false}
  - {key: lost, open: false, outcome: lost}
teams:
  - {key: sales, name: Sales, timezone: Europe/Kyiv, hours: always}
managers:
  - {key: anna, name: Anna, team: sales, capacity: 100}
routing:
  rules:
    - {key: all, team: sales, managers: [anna], strategy: round_robin}
reports:
  plans:
    - {team: sales, deals_per_day: 1, revenue_per_month: 3000}
"""
# The model's win probability by product; other leads get none of their own.
PROBABILITY = {"hot": 0.8, "warm": 0.5}


def at(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


@pytest.fixture
def small(make_app: Callable[[str], Leadflow]) -> Leadflow:
    """Seven leads in March 2026 (Kyiv is UTC+2 until 03-29):
    a1 converted 03-02 22:30 UTC (03-03 00:30 Kyiv), 1000, then paid (a second won status: the same deal);
    a2 converted 03-04, reopened 03-05, converted again 03-06 10:00, 1500: one deal, on 03-06;
    a3 converted 03-04, reopened 03-05 and open since: no deal;
    a4 probability 0.8, budget 2000; a5 probability 0.5; a6 budget 400; a7 neither: all four still assigned;
    and a lead assigned since 2025-11-02, stale."""
    app = make_app(SMALL)

    def predict(lead: CleanLead) -> tuple[float, list[dict[str, Any]]] | None:
        p = PROBABILITY.get(lead.product or "")
        return None if p is None else (p, [])

    app.predict = predict
    ids = {}
    for i, (when, product, budget) in enumerate([
        (at(3, 1, 10), None, None), (at(3, 1, 11), None, None), (at(3, 1, 12), None, None),
        (at(3, 2, 9), "hot", Decimal(2000)), (at(3, 2, 10), "warm", None), (at(3, 2, 11), None, Decimal(400)),
        (at(3, 2, 12), None, None),
    ], start=1):  # fmt: skip
        lead = LeadIn(name=f"Client {i}", phone=f"+38067200000{i}", product=product, budget=budget)
        ids[i] = take_lead(app, lead, when).lead_id
    # One more, stale: assigned since November, before the 90 days the stage probabilities look at.
    take_lead(app, LeadIn(name="Old client", phone="+380672000099"), datetime(2025, 11, 2, 9, tzinfo=UTC))
    set_status(app, ids[1], "converted", at(3, 2, 22, 30), who=SYSTEM, sale=Sale(Decimal(1000)))
    set_status(app, ids[1], "paid", at(3, 3, 8), who=SYSTEM)
    for lead, amount in ((2, 1500), (3, 700)):
        set_status(app, ids[lead], "converted", at(3, 4, 8 + lead), who=SYSTEM, sale=Sale(Decimal(amount)))
        set_status(app, ids[lead], "contacted", at(3, 5, 8 + lead), who=SYSTEM)
    set_status(app, ids[2], "converted", at(3, 6, 10), who=SYSTEM, sale=Sale(Decimal(1500)))
    return app


SMALL_NOW = at(3, 10, 10)  # 12:00 in Kyiv


def test_probabilities_budgets_and_reopened_deals(small: Leadflow) -> None:
    report = run_report(small, "forecast", ReportQuery(date(2026, 3, 1), date(2026, 3, 10), "Europe/Kyiv"),
                        SMALL_NOW, who=SYSTEM)  # fmt: skip
    won = [(r["day"].day, r["actual"], r["revenue"]) for r in report.table("daily").rows if r["actual"]]
    # a1 on 03-03 (00:30 Kyiv), once despite `paid`; a2 on 03-06 only; a3 not at all.
    assert won == [(3, 1, Decimal("1000.00")), (6, 1, Decimal("1500.00"))]
    s = report.summary
    assert (s["planned"], s["actual"], s["revenue"]) == (10.0, 2, Decimal("2500.00"))
    # 90 days: 2 deals with amounts 1000 and 1500: check 1250; 7 arrivals: conversion 2/7; 7/28 a day.
    check, conversion, per_day = 1250.0, 2 / 7, 7 / 28
    assert (s["average_check"], s["conversion"], s["leads_per_day"]) == (Decimal("1250.00"),
                                                                         pytest.approx(conversion), 0.25)  # fmt: skip
    # Stage probabilities: assigned was entered by a1..a7 (7), of them won now a1 and a2: 2/7; contacted by a2 and
    # a3, won a2: 1/2. (The stale lead entered assigned in November, before the 90 days.)
    q_assigned, q_contacted = 2 / 7, 1 / 2
    pipeline = {r["_key"]: r for r in report.table("pipeline").rows}
    assert (pipeline["assigned"]["leads"], pipeline["assigned"]["with_probability"]) == (4, 2)
    assert (pipeline["contacted"]["entered"], pipeline["contacted"]["won"]) == (2, 1)
    # assigned: a4 0.8 x 2000; a5 0.5 x the check; a6 2/7 x 400; a7 2/7 x the check.
    assigned_deals = 0.8 + 0.5 + 2 * q_assigned
    assigned_revenue = 0.8 * 2000 + 0.5 * check + q_assigned * 400 + q_assigned * check
    assigned_var = 0.8 * 0.2 * 2000**2 + 0.5 * 0.5 * check**2 + q_assigned * (1 - q_assigned) * (400**2 + check**2)
    assert pipeline["assigned"]["expected_deals"] == round(assigned_deals, 2) == 1.87
    assert pipeline["assigned"]["expected_revenue"] == money(assigned_revenue) == Decimal("2696.43")
    # contacted: a3, neither: 1/2 x the check.
    assert pipeline["contacted"]["expected_revenue"] == money(q_contacted * check) == Decimal("625.00")
    # Days left: to 04-01 00:00 EEST (03-31 21:00 UTC) from 03-10 10:00 UTC: 21 days 11 hours.
    days_left = 21 + 11 / 24
    assert s["days_left"] == round(days_left, 4)
    new_deals = per_day * days_left * conversion
    deals = 2 + assigned_deals + q_contacted + new_deals
    deals_var = (
        (0.8 * 0.2 + 0.5 * 0.5 + 2 * q_assigned * (1 - q_assigned)) + q_contacted * (1 - q_contacted) + new_deals
    )
    revenue = 2500 + assigned_revenue + q_contacted * check + new_deals * check
    revenue_var = assigned_var + q_contacted * (1 - q_contacted) * check**2 + new_deals * check**2
    assert s["forecast_deals"] == round(deals, 2) == 5.9
    assert s["forecast_deals_low"] == round(deals - Z80 * math.sqrt(deals_var), 2)
    assert s["forecast_deals_high"] == round(deals + Z80 * math.sqrt(deals_var), 2)
    assert s["forecast_revenue"] == money(revenue)
    assert s["forecast_revenue_high"] == money(revenue + Z80 * math.sqrt(revenue_var))
    assert s["forecast_revenue_low"] == money(revenue - Z80 * math.sqrt(revenue_var))
    assert (s["plan_deals"], s["plan_revenue"]) == (31.0, Decimal("3000.00"))
    assert s["forecast_against_plan"] == pytest.approx(deals / 31, abs=1e-9)
    assert ("Open leads that arrived before the 90 days the stage probabilities are measured on, left out of the "
            "forecast as stale: 1.") in report.notes  # fmt: skip


def test_local_days_follow_the_time_zone_asked_for(small: Leadflow) -> None:
    """a1's win at 22:30 UTC on 03-02 is 03-03 in Kyiv and 03-02 in UTC."""
    report = run_report(small, "forecast", ReportQuery(date(2026, 3, 1), date(2026, 3, 10), "UTC"), SMALL_NOW,
                        who=SYSTEM)  # fmt: skip
    assert [r["day"].day for r in report.table("daily").rows if r["actual"]] == [2, 6]


def test_a_month_over_and_one_not_begun(small: Leadflow) -> None:
    past = run_report(small, "forecast", ReportQuery(date(2026, 2, 1), date(2026, 2, 28), "Europe/Kyiv"), SMALL_NOW,
                      who=SYSTEM)  # fmt: skip
    # February is over: its forecast is what was won in it (nothing), no pipeline, no new leads.
    assert (past.summary["forecast_deals"], past.summary["days_left"], past.table("pipeline").rows) == (0, 0, [])
    assert "2026-02 is over: its forecast is what was won." in past.notes
    assert past.summary["plan_deals"] == 28.0  # the rules' 1 a day, every month
    coming = run_report(small, "forecast", ReportQuery(date(2026, 4, 1), date(2026, 4, 30), "Europe/Kyiv"),
                        SMALL_NOW, who=SYSTEM)  # fmt: skip
    # April has not begun: 30 whole days of new leads, 7/28 a day at 2/7, and nothing won or open counted.
    assert coming.summary["days_left"] == 30
    assert coming.summary["forecast_deals"] == round(7 / 28 * 30 * 2 / 7, 2) == 2.14
    assert coming.table("pipeline").rows == [] and coming.summary["won_so_far"] == 0
    assert any("has not begun" in n for n in coming.notes)


def test_no_plan_in_force_is_said(history: History) -> None:
    # The shared history's own rules have no plans: planned is 0, and the notes say for whom.
    report = run_report(history.app, "forecast", ReportQuery(date(2026, 3, 1), date(2026, 3, 2), "Europe/Kyiv"),
                        NOW, who=SYSTEM)  # fmt: skip
    assert report.summary["planned"] == 0 and report.summary["plan_deals"] is None
    assert "No plan of deals for team:kyiv, team:ny in 2026-03: planned counts them as 0." in report.notes
