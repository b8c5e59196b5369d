"""The Load evenness report on the fixed history (tests/reports/history.py) and on small scenarios of their own, on
SQLite and PostgreSQL, against answers worked out by hand: leads per manager per local day (across the spring
change of clocks), the spread per rule and team, who was skipped and why (named and summarised candidates, and a
sample when there are many decisions), the filters and a manager's own view."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from leadflow.core.lead import LeadIn
from leadflow.core.policy import SYSTEM, Grant, Principal
from leadflow.services.context import Leadflow
from leadflow.services.intake import take_lead
from leadflow.services.reports import ReportQuery, load, run_report
from leadflow.services.reports.shape import Report
from leadflow.store.tables import managers
from tests.reports.history import History
from tests.support import live_server, person

NOW = datetime(2026, 4, 1, 12, tzinfo=UTC)
MARCH = ReportQuery(start=date(2026, 3, 1), end=date(2026, 3, 31))


def load_report(app: Leadflow, query: ReportQuery = MARCH, who: Principal = SYSTEM) -> Report:
    return run_report(app, "load", query, NOW, who=who)


def rows_of(report: Report, table: str, key: str = "manager") -> dict[Any, dict[str, Any]]:
    return {row[key]: row for row in report.table(table).rows}


def test_leads_per_manager_and_day_on_the_history(history: History) -> None:
    report = load_report(history.app)
    # Assignments in March, on Kyiv's days: 03-02 Olena k1, k3 and Taras k2, k3 (restored); 03-03 Olena k4 and Taras
    # k4 (by hand); 03-04 Olena k5 (the duplicate, to its owner); 03-08 Ann n1 (08:30); 03-09 Bob n2 (05:00) and n3,
    # Ann and Mike n2 (the escalations at 05:16 and 05:32); 03-29 Taras k6 (01:30, 03-28 23:30 UTC).
    daily = [(r["day"], r["manager"], r["leads"]) for r in report.table("daily").rows]
    assert daily == [
        (date(2026, 3, 2), "Olena", 2), (date(2026, 3, 2), "Taras", 2), (date(2026, 3, 3), "Olena", 1),
        (date(2026, 3, 3), "Taras", 1), (date(2026, 3, 4), "Olena", 1), (date(2026, 3, 8), "Ann", 1),
        (date(2026, 3, 9), "Ann", 1), (date(2026, 3, 9), "Bob", 2), (date(2026, 3, 9), "Mike", 1),
        (date(2026, 3, 29), "Taras", 1),
    ]  # fmt: skip
    managers = rows_of(report, "managers")
    assert {m: (r["leads"], r["busiest_day"], r["busiest"]) for m, r in managers.items()} == {
        "Ann": (2, date(2026, 3, 8), 1), "Bob": (2, date(2026, 3, 9), 2), "Iryna": (0, None, 0),
        "Mike": (1, date(2026, 3, 9), 1), "Olena": (4, date(2026, 3, 2), 2), "Taras": (4, date(2026, 3, 2), 2),
    }  # fmt: skip
    assert managers["Olena"]["per_day"] == 0.13  # 4 leads / 31 days
    # Shares of the team's leads against weight shares, among those routing weighed (Iryna never was): Kyiv 4 + 4,
    # weights 1 and 1; New York 2 + 2 + 1 (Mike as the chain's end), weights 1, 1, 1.
    assert {m: (r["share"], r["weight_share"]) for m, r in managers.items()} == {
        "Olena": (0.5, 0.5), "Taras": (0.5, 0.5), "Iryna": (0.0, None),
        "Ann": (0.4, pytest.approx(1 / 3)), "Bob": (0.4, pytest.approx(1 / 3)), "Mike": (0.2, pytest.approx(1 / 3)),
    }  # fmt: skip
    assert report.summary["leads_assigned"] == 13 and report.summary["decisions"] == 13
    lines = next(c for c in report.charts if c.key == "per_day")
    assert len(lines.labels) == 31 and [d["label"] for d in lines.datasets][:2] == ["Olena", "Taras"]
    assert sum(next(d for d in lines.datasets if d["label"] == "Bob")["data"]) == 2
    bars = next(c for c in report.charts if c.key == "totals")
    assert bars.datasets == [{"label": "Leads", "data": [2, 2, 0, 1, 4, 4]},
                             {"label": "Capacity", "data": [10, 10, 10, 10, 10, 10]}]  # fmt: skip


def test_spread_per_rule_and_team_on_the_history(history: History) -> None:
    spread = {(r["scope"], r["rule"], r["strategy"]): r for r in load_report(history.app).table("spread").rows}
    # Rule credit weighed Olena and Taras (their candidates) and gave each 3 (Olena k1, k3, k4; Taras k2, k3 restored,
    # k6): even. Rule travel, Ann and Bob: Ann n1 and n2 (the first escalation keeps the rule), Bob n2 and n3.
    credit = spread[("rule", "credit", "round_robin")]
    assert (credit["team"], credit["managers"], credit["leads"], credit["spread"], credit["cv"], credit["gini"]) == (
        "Kyiv", 2, 6, 0, 0.0, 0.0)  # fmt: skip
    travel = spread[("rule", "travel", "round_robin")]
    assert (travel["managers"], travel["leads"], travel["max"], travel["min"]) == (2, 4, 2, 2)
    assert {k[1:] for k in spread if k[0] == "rule"} == {("credit", "round_robin"), ("travel", "round_robin"),
                                                         ("—", "manual"), ("sticky-owner", "sticky"),
                                                         ("sla-final", "chain_end")}  # fmt: skip
    # New York overall: Ann 2, Bob 2, Mike 1. Max - min 1; mean 5/3, variance ((1/3)^2 * 2 + (2/3)^2) / 3 = 2/9,
    # CV = sqrt(2/9) / (5/3) = 0.283; Gini of 1, 2, 2: 2 (1*1 + 2*2 + 3*2) / (3 * 5) - 4/3 = 2/15 = 0.133.
    ny = next(r for r in spread.values() if r["scope"] == "team" and r["team"] == "New York")
    assert (ny["managers"], ny["leads"], ny["spread"], ny["cv"], ny["gini"]) == (3, 5, 1, 0.283, 0.133)


def test_days_are_local_and_follow_the_time_zone_asked(history: History) -> None:
    # In New York (EDT from 03-08 07:00 UTC): n1 03-08 01:30; n2 03-08 23:00 and its escalations 23:16, 23:32; n3
    # 03-09 10:00; k6 03-28 19:30.
    report = load_report(history.app, ReportQuery(start=date(2026, 3, 1), end=date(2026, 3, 31),
                                                  timezone="America/New_York"))  # fmt: skip
    daily = {(r["day"], r["manager"]): r["leads"] for r in report.table("daily").rows}
    assert {k: v for k, v in daily.items() if k[1] in ("Ann", "Bob", "Mike")} == {
        (date(2026, 3, 8), "Ann"): 2, (date(2026, 3, 8), "Bob"): 1, (date(2026, 3, 9), "Bob"): 1,
        (date(2026, 3, 8), "Mike"): 1,
    }  # fmt: skip
    assert daily[(date(2026, 3, 28), "Taras")] == 1


def test_filters_and_a_managers_own_view(history: History) -> None:
    app = history.app
    # Facebook: k3 (Olena, then Taras on restoring it) and k4 (Olena, then Taras by hand).
    facebook = load_report(app, ReportQuery(start=date(2026, 3, 1), end=date(2026, 3, 31), channels=("facebook",)))
    assert {m: r["leads"] for m, r in rows_of(facebook, "managers").items() if r["leads"]} == {"Olena": 2, "Taras": 2}
    assert facebook.summary["decisions"] == 4
    ny = load_report(app, ReportQuery(start=date(2026, 3, 1), end=date(2026, 3, 31), teams=("ny",)))
    assert list(rows_of(ny, "managers")) == ["Ann", "Bob", "Mike"]
    assert {r["team"] for r in ny.table("spread").rows} == {"New York"}
    taras = Principal("user", "taras", grants=(Grant("manager"),), manager_id=history.managers["taras"])
    own = load_report(app, who=taras)
    assert [(r["manager"], r["leads"], r["share"], r["weight_share"]) for r in own.table("managers").rows] == [
        ("Taras", 4, None, None)]  # fmt: skip
    assert {r["manager"] for r in own.table("daily").rows} == {"Taras"}
    assert own.table("spread").rows == []
    assert any("own figures" in n for n in own.notes)


def test_several_managers_asked_for_keep_their_own_counts(history: History) -> None:
    # More than a few managers are filtered by another form of the condition: the counts are the same as on everyone.
    def counts(report: Report) -> dict[str, tuple[Any, ...]]:
        return {m: (r["leads"], r["busiest_day"], r["busiest"]) for m, r in rows_of(report, "managers").items()}

    everyone = counts(load_report(history.app))
    four = load_report(history.app, ReportQuery(start=date(2026, 3, 1), end=date(2026, 3, 31),
                                                managers=("olena", "taras", "ann", "bob")))  # fmt: skip
    assert counts(four) == {m: everyone[m] for m in ("Ann", "Bob", "Olena", "Taras")}
    # Shares among the managers shown: New York's 4 leads are Ann's 2 and Bob's 2 here.
    assert rows_of(four, "managers")["Ann"]["share"] == 0.5


SKIPS = """
default_timezone: Europe/Kyiv
teams:
  - {key: sales, name: Sales, timezone: Europe/Kyiv, hours: always}
  - {key: big, name: Big, timezone: Europe/Kyiv, hours: always}
managers:
  - {key: anna, name: Anna, team: sales, capacity: 100}
  - {key: bohdan, name: Bohdan, team: sales, capacity: 1}
  - {key: chrystia, name: Chrystia, team: sales, absent: true}
  - {key: dmytro, name: Dmytro, team: sales, vacations: [{from: 2026-03-01, to: 2026-03-10}]}
  - {key: evhen, name: Evhen, team: sales, hours: {sat-sun: '09:00-18:00'}}
  - {key: fedir, name: Fedir, team: sales, active: false}
  - {key: kira, name: Kira, team: big}
  - {key: lev, name: Lev, team: big}
__BIG__
routing:
  rules:
    - {key: sales, team: sales, strategy: round_robin, when: {product: credit}}
    - {key: big, team: big, strategy: round_robin, when: {product: big}}
"""
ABSENT_NINE = "\n".join(f"  - {{key: m{i}, name: M{i}, team: big, absent: true}}" for i in range(1, 10))
MONDAY = datetime(2026, 3, 2, 10, tzinfo=UTC)  # 12:00 in Kyiv: Evhen works weekends only


@pytest.fixture
def skips_app(make_app: Callable[[str], Leadflow]) -> Leadflow:
    app = make_app(SKIPS.replace("__BIG__", ABSENT_NINE))
    for i, product in enumerate(("credit", "credit", "credit", "big")):
        take_lead(app, LeadIn(name="Client", phone=f"+38067100010{i}", product=product), MONDAY.replace(minute=i))
    return app


def test_who_was_skipped_and_why(skips_app: Leadflow) -> None:
    report = load_report(skips_app)
    # Lead 1 to Anna, lead 2 to Bohdan (round robin), lead 3 to Anna (Bohdan at his capacity of 1). Each passed over
    # Chrystia (absent), Dmytro (on vacation), Evhen (off shift) and Fedir (inactive); lead 3 Bohdan too. Lead 4 (team
    # Big) passed over nine absent managers: more than routing keeps one by one, so they are counted per verdict.
    # absent: 2 * 3 + 9 = 15; off shift: 3; at capacity: 1; other: 3.
    skipped = rows_of(report, "skipped", "verdict")
    assert {v: r["skips"] for v, r in skipped.items()} == {"absent": 15, "off shift": 3, "at capacity": 1, "other": 3}
    assert skipped["absent"]["_kinds"] == {"absent": 12, "on vacation": 3}
    assert skipped["absent"]["share"] == pytest.approx(15 / 22)
    assert report.table("skipped").note == "Of 4 decisions read, 4 passed someone over."
    per = {r["manager"]: (r["absent"], r["off_shift"], r["at_capacity"], r["other"])
           for r in report.table("skipped_by_manager").rows}  # fmt: skip
    assert per == {"Bohdan": (0, 0, 1, 0), "Chrystia": (3, 0, 0, 0), "Dmytro": (3, 0, 0, 0), "Evhen": (0, 3, 0, 0),
                   "Fedir": (0, 0, 0, 3)}  # fmt: skip
    assert any("1 of the decisions passed over so many managers" in n and "(9 skips)" in n for n in report.notes)
    assert report.summary["skipped_absent"] == 15 and report.summary["decisions_read"] == 4
    spread = {r["rule"]: r for r in report.table("spread").rows if r["scope"] == "rule"}
    # Rule sales weighed all six; Fedir is inactive, so five count: 2, 1, 0, 0, 0. Mean 0.6, variance (1.4^2 + 0.4^2
    # + 3 * 0.6^2) / 5 = 0.64, CV 0.8 / 0.6 = 1.333; Gini: 2 (4 * 1 + 5 * 2) / (5 * 3) - 6/5 = 2/3.
    sales = spread["sales"]
    assert (sales["managers"], sales["max"], sales["min"], sales["spread"], sales["cv"], sales["gini"]) == (
        5, 2, 0, 2, 1.333, 0.667)  # fmt: skip
    # Rule big named only its two eligible; its summary names no keys, so the team's eleven active managers count:
    # one lead among 11, CV sqrt(10) = 3.162, Gini 2 * 11 / 11 - 12/11 = 10/11.
    assert (spread["big"]["managers"], spread["big"]["cv"], spread["big"]["gini"]) == (11, 3.162, 0.909)


def test_a_sample_of_decisions_when_there_are_many(skips_app: Leadflow, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(load, "SKIPS_READ_LIMIT", 2)
    monkeypatch.setattr(load, "SAMPLE_BLOCK", 1)
    report = load_report(skips_app)
    # 4 decisions (ids 1-4), at most 2 read: blocks of one id, one in 2 from the first, so decisions 1 and 3. Lead 1
    # passed over Chrystia and Dmytro (absent), Evhen (off shift), Fedir (other); lead 3 the same and Bohdan (at
    # capacity): absent 4, off shift 2, at capacity 1, other 2.
    assert {r["verdict"]: r["skips"] for r in report.table("skipped").rows} == {"absent": 4, "off shift": 2,
                                                                              "at capacity": 1, "other": 2}  # fmt: skip
    assert report.summary["decisions"] == 4 and report.summary["decisions_read"] == 2
    assert any("one block of 1 decisions (by id) in 2, 2 of 4" in n for n in report.notes)


def test_a_manager_sees_only_the_skips_that_name_them(skips_app: Leadflow) -> None:
    with skips_app.engine.connect() as conn:
        bohdan_id = conn.execute(select(managers.c.id).where(managers.c.key == "bohdan")).scalar_one()
    bohdan = Principal("user", "bohdan", grants=(Grant("manager"),), manager_id=bohdan_id)
    report = load_report(skips_app, who=bohdan)
    assert {r["verdict"]: r["skips"] for r in report.table("skipped").rows} == {"absent": 0, "off shift": 0,
                                                                              "at capacity": 1, "other": 0}  # fmt: skip
    assert [r["manager"] for r in report.table("skipped_by_manager").rows] == ["Bohdan"]
    assert [(r["manager"], r["leads"]) for r in report.table("managers").rows] == [("Bohdan", 1)]


DST = """
default_timezone: Europe/Kyiv
teams:
  - {key: sales, name: Sales, timezone: Europe/Kyiv, hours: always}
managers:
  - {key: olena, name: Olena, team: sales, capacity: 100}
routing:
  rules:
    - {key: all, team: sales, strategy: round_robin}
"""


def test_assignments_near_midnight_land_on_their_local_day_across_the_change(
    make_app: Callable[[str], Leadflow],
) -> None:
    # Kyiv's 2026-03-29 has 23 hours: from 03-28 22:00 UTC (+2) to 03-29 21:00 UTC (+3).
    app = make_app(DST)
    for i, when in enumerate((datetime(2026, 3, 28, 21, 59, tzinfo=UTC),  # 23:59 on 03-28
                              datetime(2026, 3, 28, 22, 0, tzinfo=UTC),  # 00:00 on 03-29
                              datetime(2026, 3, 29, 20, 59, tzinfo=UTC),  # 23:59 on 03-29, summer time
                              datetime(2026, 3, 29, 21, 0, tzinfo=UTC))):  # 00:00 on 03-30  # fmt: skip
        take_lead(app, LeadIn(name="Client", phone=f"+38067100020{i}"), when)
    report = load_report(app, ReportQuery(start=date(2026, 3, 28), end=date(2026, 3, 30)))
    # A fixed +2 offset would put the last one on the 29th as well.
    assert [(r["day"], r["leads"]) for r in report.table("daily").rows] == [
        (date(2026, 3, 28), 1), (date(2026, 3, 29), 2), (date(2026, 3, 30), 1)]  # fmt: skip
    assert rows_of(report, "managers")["Olena"]["busiest_day"] == date(2026, 3, 29)
    only = load_report(app, ReportQuery(start=date(2026, 3, 29), end=date(2026, 3, 29)))
    assert only.summary["leads_assigned"] == 2


def test_load_over_http_in_each_callers_scope(history: History) -> None:
    app = history.app
    headers = {"ann": person(app, "ann", "manager", manager="ann"),
               "iryna": person(app, "iryna", "head", manager="iryna", teams=["kyiv"])}  # fmt: skip
    with live_server(app) as url:

        def get(who: str, **params: Any) -> dict[str, Any]:
            answer = httpx.get(f"{url}/api/v1/reports/load", headers=headers[who], timeout=60,
                               params={"from": "2026-03-01", "to": "2026-03-31", **params})  # fmt: skip
            assert answer.status_code == 200, answer.text
            return dict(answer.json())

        ann = next(t for t in get("ann")["tables"] if t["key"] == "managers")
        assert [(r["manager"], r["leads"]) for r in ann["rows"]] == [("Ann", 2)]
        head = next(t for t in get("iryna")["tables"] if t["key"] == "managers")
        assert [(r["manager"], r["leads"], r["share"]) for r in head["rows"]] == [("Iryna", 0, 0.0), ("Olena", 4, 0.5),
                                                                                  ("Taras", 4, 0.5)]  # fmt: skip
