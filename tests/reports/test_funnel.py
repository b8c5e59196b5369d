"""The funnel report on the fixed history (tests/reports/history.py), on SQLite and PostgreSQL, against answers
worked out by hand from the history's table: entries and re-entries, reached, conversion, drops, stalls, time in
each stage, both bottlenecks; the filters; local days across the changes of clocks; each caller's scope, directly
and over HTTP; repeats merged into another lead and junk on arrival."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest

from leadflow.core.errors import Forbidden
from leadflow.core.lead import LeadIn
from leadflow.core.policy import SYSTEM, Grant, Principal
from leadflow.services.context import Leadflow
from leadflow.services.intake import take_lead
from leadflow.services.leads import set_status
from leadflow.services.reports import ReportQuery, run_report
from leadflow.services.reports.shape import Report
from leadflow.services.sla import record_contact
from tests.reports.history import RULES, History
from tests.support import live_server, person

NOW = datetime(2026, 4, 1, 12, tzinfo=UTC)
MARCH = ReportQuery(start=date(2026, 3, 1), end=date(2026, 3, 31))
PROGRESS = ["new", "assigned", "contacted", "qualified", "converted"]


def funnel(app: Leadflow, query: ReportQuery = MARCH, who: Principal = SYSTEM) -> Report:
    return run_report(app, "funnel", query, NOW, who=who)


def rows(report: Report) -> dict[str, dict[str, Any]]:
    return {row["_key"]: row for row in report.table("stages").rows}


def column(report: Report, key: str, statuses: list[str] | None = None) -> list[Any]:
    found = rows(report)
    return [found[s][key] for s in statuses or list(found)]


def march(**filters: Any) -> ReportQuery:
    return ReportQuery(start=date(2026, 3, 1), end=date(2026, 3, 31), **filters)


def test_entries_reach_conversion_drops_and_stalls_on_the_history(history: History) -> None:
    report = funnel(history.app)
    # The cohort: the nine leads that arrived in March (Kyiv days), k1..k6 and n1..n3; none merged.
    assert report.summary["cohort"] == 9
    # Entered, distinct leads: nobody stays "new" (routing assigns in the same statement); assigned all 9 (k3
    # twice: before junk and after its restore, one re-entry); contacted k1 k2 k3 k4 n1 n3 k6 = 7; qualified k1, k2
    # (after its reopening) = 2; converted k1 k2 n1 = 3; junk k3 = 1; lost k2 (later reopened) and n3 = 2.
    assert column(report, "entered") == [0, 9, 7, 2, 3, 1, 2]
    assert column(report, "re_entries") == [0, 1, 0, 0, 0, 0, 0]
    # Reached: entered the stage or a later progress stage. Furthest: k1 k2 n1 converted, k3 k4 n3 k6 contacted,
    # k5 n2 assigned. new 9, assigned 9, contacted 7, qualified 3 (n1 skipped it on its way to converted), 3.
    assert column(report, "reached", PROGRESS) == [9, 9, 7, 3, 3]
    # To the next stage: 9/9, 7/9, 3/7, 3/3; the last has no next.
    assert column(report, "conversion", PROGRESS) == pytest.approx([1.0, 7 / 9, 3 / 7, 1.0, None])
    assert column(report, "loss", PROGRESS) == pytest.approx([0.0, 2 / 9, 4 / 7, 0.0, None])
    # Dropped: now in a closing status, by the furthest stage reached: n3 (lost after contacted). k2 was lost too
    # but is converted now. Stalled: in an open status now: assigned k5 n2, contacted k3 k4 k6.
    assert column(report, "dropped", PROGRESS) == [0, 0, 1, 0, 0]
    assert column(report, "stalled", ["new", "assigned", "contacted", "qualified"]) == [0, 2, 3, 0]
    assert column(report, "stalled", ["converted", "junk", "lost"]) == [None, None, None]
    assert column(report, "stage") == ["progress"] * 5 + ["closing"] * 2
    # Overall: reached converted 3 of 9.
    assert (report.summary["won"], report.summary["conversion"]) == (3, pytest.approx(3 / 9))
    assert report.summary["dropped_on_arrival"] == 0
    # The largest loss: after contacted, 4 of 7 (57%) against 2 of 9 after assigned.
    assert report.summary["bottleneck_loss"] == "contacted"
    assert rows(report)["contacted"]["bottleneck"] == "largest loss"
    assert "the largest loss is after contacted: 4 of the 7 leads that reached it (57%) never reached qualified" in (
        report.notes[0])  # fmt: skip
    chart = report.charts[0].to_json()
    assert (chart["type"], chart["labels"], chart["datasets"][0]["data"]) == ("bar", PROGRESS, [9, 9, 7, 3, 3])


def test_time_in_each_stage_on_the_history(history: History) -> None:
    report = funnel(history.app)
    # Finished stays (left_at set), in UTC seconds. assigned: k1 08:00-08:10 600, k2 09:00-13:00 14400, k3
    # 10:00-10:05 300 and 11:00-11:10 600, k4 09:00-09:30 1800, n1 06:30-08:00 5400, n3 14:00-14:05 300, k6 03-28
    # 23:30 - 03-29 01:30 7200 (two real hours across Kyiv's change); k5 and n2 are still there. Sorted: 300 300
    # 600 600 1800 5400 7200 14400: median (600 + 1800) / 2 = 1200; p90 the ceil(0.9 * 8) = 8th = 14400.
    assigned = rows(report)["assigned"]
    assert (assigned["stays"], assigned["median_seconds"], assigned["p90_seconds"]) == (8, 1200, 14400)
    # contacted: k1 03-02 08:10 - 03-03 09:00 = 89400, k2 03-02 13:00 - 03-04 10:00 = 162000, n1 03-08 08:00 -
    # 03-10 15:00 = 198000, n3 03-09 14:05 - 03-11 09:00 = 154500. Median (154500 + 162000) / 2 = 158250; p90 the
    # ceil(3.6) = 4th = 198000.
    contacted = rows(report)["contacted"]
    assert (contacted["stays"], contacted["median_seconds"], contacted["p90_seconds"]) == (4, 158250, 198000)
    # qualified: k1 03-03 09:00 - 03-05 12:00 = 183600, k2 03-06 10:00 - 03-09 10:00 = 259200: median 221400, p90
    # the 2nd. junk: k3 10:05-11:00 = 3300. lost: k2 03-04 10:00 - 03-06 10:00 = 172800 (n3 is still lost).
    assert column(report, "median_seconds", ["qualified", "junk", "lost"]) == [221400, 3300, 172800]
    assert column(report, "p90_seconds", ["qualified", "junk", "lost"]) == [259200, 3300, 172800]
    assert column(report, "median_seconds", ["new", "converted"]) == [None, None]  # no finished stay
    # The previous period (31 days: 01-29..02-28) has no leads: nothing to compare the time with.
    assert report.summary["bottleneck_time"] is None
    assert (report.summary["previous_from"], report.summary["previous_to"]) == (date(2026, 1, 29), date(2026, 2, 28))
    assert set(column(report, "previous_median_seconds")) == {None}
    assert report.notes[1] == ("Bottleneck by time: none, as no stage has finished stays both now and in the "
                               "previous period (2026-01-29 to 2026-02-28).")  # fmt: skip


def test_bottleneck_by_time_against_the_previous_period(history: History) -> None:
    # 03-08..03-31 (24 days) against 02-12..03-07. Now: n1 n2 n3 k6; before: k1..k5.
    report = funnel(history.app, ReportQuery(start=date(2026, 3, 8), end=date(2026, 3, 31)))
    assert report.summary["cohort"] == 4
    assert (report.summary["previous_from"], report.summary["previous_to"]) == (date(2026, 2, 12), date(2026, 3, 7))
    # assigned now: n1 5400, n3 300, k6 7200: median 5400. Before: k1 600, k2 14400, k3 300 and 600, k4 1800:
    # median 600. 5400 / 600 = 9.0.
    # contacted now: n1 198000, n3 154500: median 176250. Before: k1 89400, k2 162000: median 125700; 1.40.
    # qualified: stays before only (k1, k2), none now: not compared.
    found = rows(report)
    assert (found["assigned"]["median_seconds"], found["assigned"]["previous_median_seconds"]) == (5400, 600)
    assert found["assigned"]["time_ratio"] == pytest.approx(9.0)
    assert (found["contacted"]["median_seconds"], found["contacted"]["previous_median_seconds"]) == (176250, 125700)
    assert found["contacted"]["time_ratio"] == pytest.approx(176250 / 125700)
    assert (found["qualified"]["previous_median_seconds"], found["qualified"]["time_ratio"]) == (221400, None)
    assert report.summary["bottleneck_time"] == "assigned"
    assert found["assigned"]["bottleneck"] == "slower than before"
    assert report.notes[1] == ("Bottleneck by time: the time in assigned rose most: a median of 1h30m against 10m "
                               "in the previous period (2026-02-12 to 2026-03-07) (9.0 times as long).")  # fmt: skip
    # Loss now: reached 4, 4, 3 (n1 n3 k6), 1 (n1), 1: after assigned 1/4, after contacted 2/3: contacted.
    assert column(report, "reached", PROGRESS) == [4, 4, 3, 1, 1]
    assert report.summary["bottleneck_loss"] == "contacted"
    assert found["contacted"]["bottleneck"] == "largest loss"
    # The previous period keeps the same filters: for New York alone, nothing came before 03-08.
    ny = funnel(history.app, ReportQuery(start=date(2026, 3, 8), end=date(2026, 3, 31), teams=("ny",)))
    assert ny.summary["cohort"] == 3 and ny.summary["bottleneck_time"] is None


def test_filters_by_team_manager_channel_and_campaign(history: History) -> None:
    app = history.app
    # New York: n1 (converted), n2 (assigned), n3 (lost after contacted).
    ny = funnel(app, march(teams=("ny",)))
    assert (ny.summary["cohort"], ny.summary["won"]) == (3, 1)
    assert column(ny, "reached", PROGRESS) == [3, 3, 2, 1, 1]
    assert column(ny, "dropped", PROGRESS) == [0, 0, 1, 0, 0]
    # Taras owns k2, k3, k4, k6 now. k3 entered assigned twice; k2 was lost and reopened.
    taras = funnel(app, march(managers=("taras",)))
    assert taras.summary["cohort"] == 4
    assert column(taras, "entered") == [0, 4, 4, 1, 1, 1, 1]
    assert column(taras, "re_entries") == [0, 1, 0, 0, 0, 0, 0]
    # Facebook: k3 and k4, both contacted and open.
    facebook = funnel(app, march(channels=("facebook",)))
    assert column(facebook, "reached", PROGRESS) == [2, 2, 2, 0, 0]
    assert column(facebook, "stalled", ["contacted"]) == [2]
    # Campaign spring: k1, k2, k3, k6; won k1 and k2. Telegram's bot source: n2 alone.
    spring = funnel(app, march(campaigns=("spring",)))
    assert (spring.summary["cohort"], spring.summary["won"]) == (4, 2)
    assert funnel(app, march(sources=("bot",))).summary["cohort"] == 1


def test_local_days_decide_the_cohort_across_the_changes_of_clocks(history: History) -> None:
    app = history.app
    # n2 arrived 03-09 03:00 UTC: 23:00 on 03-08 in New York (EDT since 03-08 07:00 UTC), 05:00 on 03-09 in Kyiv.
    # New York's 03-08 (23 hours: 05:00 UTC to 04:00 UTC next day) holds n1 and n2; Kyiv's 03-08 holds n1 only.
    ny_day = funnel(app, ReportQuery(start=date(2026, 3, 8), end=date(2026, 3, 8), timezone="America/New_York"))
    kyiv_day = funnel(app, ReportQuery(start=date(2026, 3, 8), end=date(2026, 3, 8), timezone="Europe/Kyiv"))
    assert (ny_day.summary["cohort"], kyiv_day.summary["cohort"]) == (2, 1)
    assert column(ny_day, "stalled", ["assigned"]) == [1]  # n2
    # k6 arrived 03-28 23:30 UTC: 01:30 on 03-29 in Kyiv (the day the clocks go forward), still 03-28 in UTC.
    kyiv = funnel(app, ReportQuery(start=date(2026, 3, 29), end=date(2026, 3, 29)))
    utc = funnel(app, ReportQuery(start=date(2026, 3, 29), end=date(2026, 3, 29), timezone="UTC"))
    assert (kyiv.summary["cohort"], utc.summary["cohort"]) == (1, 0)
    assert rows(kyiv)["assigned"]["median_seconds"] == 7200  # two real hours, three on the wall clock
    assert kyiv.window["timezone"] == "Europe/Kyiv" and utc.window["timezone"] == "UTC"


def test_each_caller_sees_their_scope(history: History) -> None:
    taras = Principal("user", "taras", grants=(Grant("manager"),), manager_id=history.managers["taras"])
    own = funnel(history.app, who=taras)
    assert own.summary["cohort"] == 4  # k2 k3 k4 k6, his leads now
    assert column(own, "reached", PROGRESS) == [4, 4, 4, 1, 1]
    with pytest.raises(Forbidden):
        funnel(history.app, march(managers=("olena",)), who=taras)
    with history.app.engine.connect() as conn:
        ny_id = history.app.team_id(conn, "ny")
    mike = Principal("user", "mike", grants=(Grant("head", ny_id, "ny"),), manager_id=history.managers["mike"])
    assert funnel(history.app, who=mike).summary["cohort"] == 3
    with pytest.raises(Forbidden):
        funnel(history.app, march(teams=("kyiv",)), who=mike)


def test_over_http_as_json_and_csv(history: History) -> None:
    app = history.app
    headers = {"olena": person(app, "olena", "manager", manager="olena"), "admin": person(app, "boss", "admin")}
    with live_server(app) as url:

        def get(who: str, **params: Any) -> httpx.Response:
            return httpx.get(f"{url}/api/v1/reports/funnel", headers=headers[who], timeout=60,
                             params={"from": "2026-03-01", "to": "2026-03-31", **params})  # fmt: skip

        # Olena owns k1 (converted) and k5 (assigned, never contacted).
        own = get("olena").json()
        assert (own["summary"]["cohort"], own["summary"]["won"]) == (2, 1)
        table = own["tables"][0]
        assert [(r["_key"], r["reached"]) for r in table["rows"] if r["stage"] == "progress"] == [
            ("new", 2), ("assigned", 2), ("contacted", 1), ("qualified", 1), ("converted", 1)]  # fmt: skip
        assert get("olena", manager="taras").status_code == 403
        everyone = get("admin", team="kyiv")
        assert everyone.json()["summary"]["cohort"] == 6
        csv = get("admin", format="csv")
        assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
        assert "Reached" in csv.text and "contacted" in csv.text


def test_merged_repeats_are_left_out_and_junk_on_arrival_drops_before_any_stage(
    make_app: Callable[[str], Leadflow],
) -> None:
    app = make_app(RULES + "junk:\n  keywords: [casino]\n")
    t = datetime(2026, 3, 10, 9, tzinfo=UTC)
    first = take_lead(app, LeadIn(phone="+380671000101", product="credit"), t)
    again = take_lead(app, LeadIn(phone="+380671000101", product="credit", message="me again"), t + timedelta(hours=1))
    assert again.merged  # folded into the first lead: a row with status merged
    junk = take_lead(app, LeadIn(phone="+380671000102", product="credit", message="casino bonus"), t)
    assert junk.status == "junk"
    record_contact(app, first.lead_id, first.manager_key, "call", "connected", t + timedelta(minutes=30), who=SYSTEM)
    set_status(app, first.lead_id, "lost", t + timedelta(days=1), who=SYSTEM, reason="price")
    report = funnel(app)
    # Two leads: the first (assigned, contacted, lost) and the junk one; the merged request is no lead of its own.
    assert report.summary["cohort"] == 2
    assert column(report, "entered") == [0, 1, 1, 0, 0, 1, 1]
    # The junk lead reached no stage: it is in the cohort, in no stage's reached, dropped on arrival.
    assert column(report, "reached", PROGRESS) == [1, 1, 1, 0, 0]
    assert column(report, "dropped", PROGRESS) == [0, 0, 1, 0, 0]
    assert report.summary["dropped_on_arrival"] == 1
    assert any(n.startswith("1 leads were closed on arrival (junk)") for n in report.notes)
    # 30 minutes assigned, then 23 h 30 min contacted.
    assert column(report, "median_seconds", ["assigned", "contacted"]) == [1800, 84600]


def test_an_empty_period_has_no_figures_and_no_bottleneck(history: History) -> None:
    report = funnel(history.app, ReportQuery(start=date(2026, 1, 1), end=date(2026, 1, 31)))
    assert report.summary["cohort"] == 0 and report.summary["conversion"] is None
    assert (report.summary["bottleneck_loss"], report.summary["bottleneck_time"]) == (None, None)
    assert set(column(report, "conversion")) == {None}
    assert report.notes[0] == "Bottleneck by loss: no stage was reached."
