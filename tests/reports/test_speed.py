"""The speed-to-lead report on the fixed history (tests/reports/history.py), on SQLite and PostgreSQL, against
answers worked out by hand: leads and wins per first-response band, the Wilson interval, the lift against the ≤12h
band beside the seed's prior, and what the slower answers cost; the filters; local days across a change of clocks;
each caller's scope, directly and over HTTP; merged repeats left out; a band big enough for a narrow interval."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from leadflow.core.errors import Forbidden
from leadflow.core.lead import LeadIn
from leadflow.core.policy import SYSTEM, Grant, Principal
from leadflow.services.context import Leadflow
from leadflow.services.intake import take_lead
from leadflow.services.leads import Sale, set_status
from leadflow.services.reports import ReportQuery, run_report
from leadflow.services.reports.shape import Report
from leadflow.services.sla import record_contact
from leadflow.store.tables import leads
from tests.reports.history import RULES, History
from tests.support import live_server, person

NOW = datetime(2026, 4, 1, 12, tzinfo=UTC)
MARCH = ReportQuery(start=date(2026, 3, 1), end=date(2026, 3, 31))
BANDS = ["≤20m", "≤3h", "≤12h", ">12h", "not contacted"]
Z = 1.959964


def speed(app: Leadflow, query: ReportQuery = MARCH, who: Principal = SYSTEM) -> Report:
    return run_report(app, "speed", query, NOW, who=who)


def column(report: Report, key: str) -> list[Any]:
    found = {row["band"]: row for row in report.table("bands").rows}
    assert list(found) == BANDS
    return [found[b][key] for b in BANDS]


def march(**filters: Any) -> ReportQuery:
    return ReportQuery(start=date(2026, 3, 1), end=date(2026, 3, 31), **filters)


def test_bands_conversion_interval_and_lift_on_the_history(history: History) -> None:
    report = speed(history.app)
    # First response of March's nine leads: k1 10 min and n3 5 min (≤20m); k3 70 min, k4 30 min, n1 90 min, k6 2 h
    # (≤3h); k2 4 h (≤12h); k5 and n2 never contacted. Won now: k1, n1, k2 (n3 lost; k2's earlier loss undone).
    assert column(report, "leads") == [2, 4, 1, 0, 2]
    assert column(report, "won") == [1, 1, 1, 0, 0]
    assert column(report, "conversion") == [0.5, 0.25, 1.0, None, 0.0]
    assert column(report, "share") == pytest.approx([2 / 9, 4 / 9, 1 / 9, 0.0, 2 / 9])
    # Wilson at 95% (z = 1.959964, z² = 3.841459): centre (p + z²/2n) / (1 + z²/n), half
    # z * sqrt(p(1-p)/n + z²/4n²) / (1 + z²/n). 1 of 2: centre (0.5 + 0.960365) / 2.920730 = 0.5, half 1.959964 *
    # sqrt(0.125 + 0.240091) / 2.920730 = 1.959964 * 0.604228 / 2.920730 = 0.405469: 0.094531 to 0.905469.
    # 1 of 4: centre (0.25 + 0.480182) / 1.960365 = 0.372472, half 1.959964 * sqrt(0.046875 + 0.060023) /
    # 1.960365 = 1.959964 * 0.326952 / 1.960365 = 0.326886: 0.045587 to 0.699358.
    # 1 of 1: centre (1 + 1.920730) / 4.841459 = 0.603272, half 1.959964 * sqrt(0.960365) / 4.841459 =
    # 1.920729 / 4.841459 = 0.396725: 0.206547 to 1 (capped). 0 of 2: centre 0.960365 / 2.920730 = 0.328810, half
    # 1.959964 * sqrt(0.240091) / 2.920730 = 0.328810: 0 to 0.657620.
    assert column(report, "low") == pytest.approx([0.094531, 0.045587, 0.206547, None, 0.0], abs=1e-5)
    assert column(report, "high") == pytest.approx([0.905469, 0.699358, 1.0, None, 0.657620], abs=1e-5)
    # Against ≤12h (1/1): 0.5/1 - 1, 0.25/1 - 1, 0, unknown, 0/1 - 1. The seed's prior beside it.
    assert column(report, "lift") == pytest.approx([-0.5, -0.75, 0.0, None, -1.0])
    assert column(report, "prior") == [0.3, 0.1, 0.0, -0.3, None]
    assert report.summary | {"conversion": None} == {
        "cohort": 9, "contacted": 7, "won": 3, "conversion": None, "fastest_conversion": 0.5,
        # Slower bands at the ≤20m rate (1/2): ≤3h 4 * (0.5 - 0.25) = 1; ≤12h 1 * max(0.5 - 1, 0) = 0; >12h none.
        "delay_cost_deals": 1.0,
        # The average check: k1 1000.00 + k2 500.00 + n1 2000.00 = 3500.00 over 3 = 1166.67; cost 1 * 3500 / 3.
        "average_check": Decimal("1166.67"), "delay_cost_revenue": Decimal("1166.67"),
    }  # fmt: skip
    assert report.summary["conversion"] == pytest.approx(3 / 9)
    assert report.notes == [
        "Had every lead answered later converted as the ≤20m band did: 1.0 more deals, 1166.67 at the average "
        "check of 1166.67.",
        "Fewer than 30 leads in ≤20m (2), ≤3h (4), ≤12h (1), not contacted (2): the interval is wide, read the "
        "conversion as a rough guide.",
    ]
    chart = report.charts[0].to_json()
    assert chart["labels"] == BANDS
    assert chart["datasets"][0]["data"] == [0.5, 0.25, 1.0, None, 0.0]
    # The prior as a conversion: the ≤12h band's 1.0 moved by +30%, +10%, 0, -30%, at most 100%.
    assert chart["datasets"][1]["data"] == pytest.approx([1.0, 1.0, 1.0, 0.7, None])


def test_filters_by_team_manager_channel_and_campaign(history: History) -> None:
    app = history.app
    # Kyiv: k1 (≤20m, won 1000.00), k3 k4 k6 (≤3h, open), k2 (≤12h, won 500.00), k5 (not contacted). At the ≤20m
    # rate (1/1) the ≤3h band would have won 3 * (1 - 0) = 3 more, ≤12h 1 * max(1 - 1, 0) = 0; at the average
    # check 1500.00 / 2 = 750.00: 2250.00.
    kyiv = speed(app, march(teams=("kyiv",)))
    assert column(kyiv, "leads") == [1, 3, 1, 0, 1]
    assert (kyiv.summary["delay_cost_deals"], kyiv.summary["average_check"], kyiv.summary["delay_cost_revenue"]) == (
        3.0, Decimal("750.00"), Decimal("2250.00"))  # fmt: skip
    # New York: n3 (≤20m, lost), n1 (≤3h, won 2000.00), n2 (not contacted). The fastest band won nothing: no slower
    # band did worse, nothing lost to delays.
    ny = speed(app, march(teams=("ny",)))
    assert (column(ny, "leads"), column(ny, "won")) == ([1, 1, 0, 0, 1], [0, 1, 0, 0, 0])
    assert (ny.summary["delay_cost_deals"], ny.summary["delay_cost_revenue"]) == (0.0, Decimal("0.00"))
    # Taras owns k2 (≤12h, won), k3 k4 k6 (≤3h): none answered within 20 minutes, so the cost is unknown.
    taras = speed(app, march(managers=("taras",)))
    assert column(taras, "leads") == [0, 3, 1, 0, 0]
    assert (taras.summary["delay_cost_deals"], taras.summary["delay_cost_revenue"]) == (None, None)
    assert taras.summary["average_check"] == Decimal("500.00")
    assert taras.notes[0] == "No lead was first contacted within 20m: what slower answers cost is unknown."
    # Facebook: k3 and k4, both ≤3h. Campaign spring: k1 (≤20m), k3 k6 (≤3h), k2 (≤12h).
    assert column(speed(app, march(channels=("facebook",))), "leads") == [0, 2, 0, 0, 0]
    spring = speed(app, march(campaigns=("spring",)))
    assert (column(spring, "leads"), column(spring, "won")) == ([1, 2, 1, 0, 0], [1, 0, 1, 0, 0])
    # The lift of ≤3h against ≤12h for spring: 0 / 1 - 1.
    assert column(spring, "lift")[1] == -1.0


def test_local_days_decide_the_cohort_across_the_change_of_clocks(history: History) -> None:
    # New York's 03-08 (the day it moves to summer time) holds n1 (≤3h, won) and n2 (23:00 there; not contacted);
    # Kyiv's 03-08 holds n1 alone.
    ny_day = speed(history.app, ReportQuery(start=date(2026, 3, 8), end=date(2026, 3, 8), timezone="America/New_York"))
    kyiv_day = speed(history.app, ReportQuery(start=date(2026, 3, 8), end=date(2026, 3, 8)))
    assert column(ny_day, "leads") == [0, 1, 0, 0, 1]
    assert column(kyiv_day, "leads") == [0, 1, 0, 0, 0]


def test_each_caller_sees_their_scope(history: History) -> None:
    olena = Principal("user", "olena", grants=(Grant("manager"),), manager_id=history.managers["olena"])
    own = speed(history.app, who=olena)
    # Olena owns k1 (≤20m, won) and k5 (not contacted).
    assert (column(own, "leads"), own.summary["won"]) == ([1, 0, 0, 0, 1], 1)
    with pytest.raises(Forbidden):
        speed(history.app, march(managers=("taras",)), who=olena)


def test_over_http_as_json(history: History) -> None:
    app = history.app
    headers = {"mike": person(app, "mike", "head", manager="mike", teams=["ny"])}
    with live_server(app) as url:

        def get(**params: Any) -> httpx.Response:
            return httpx.get(f"{url}/api/v1/reports/speed", headers=headers["mike"], timeout=60,
                             params={"from": "2026-03-01", "to": "2026-03-31", **params})  # fmt: skip

        body = get().json()
        assert body["summary"]["cohort"] == 3  # his team's: n1, n2, n3
        assert [(r["band"], r["leads"], r["won"]) for r in body["tables"][0]["rows"]] == [
            ("≤20m", 1, 0), ("≤3h", 1, 1), ("≤12h", 0, 0), (">12h", 0, 0), ("not contacted", 1, 0)]  # fmt: skip
        assert body["summary"]["average_check"] == "2000.00"
        assert get(team="kyiv").status_code == 403


def test_merged_repeats_and_unrecorded_bands(make_app: Callable[[str], Leadflow]) -> None:
    app = make_app(RULES)
    t = datetime(2026, 3, 10, 9, tzinfo=UTC)
    first = take_lead(app, LeadIn(phone="+380671000101", product="credit"), t)
    assert take_lead(app, LeadIn(phone="+380671000101", product="credit"), t + timedelta(minutes=5)).merged
    late = take_lead(app, LeadIn(phone="+380671000102", product="credit"), t)
    record_contact(app, first.lead_id, first.manager_key, "call", "connected", t + timedelta(minutes=15), who=SYSTEM)
    record_contact(app, late.lead_id, late.manager_key, "call", "connected", t + timedelta(hours=13), who=SYSTEM)
    set_status(app, first.lead_id, "converted", t + timedelta(days=1), who=SYSTEM, sale=Sale(Decimal("99.99")))
    set_status(app, late.lead_id, "converted", t + timedelta(days=1), who=SYSTEM)  # no amount recorded
    report = speed(app)
    # The merged request is no lead: two leads, ≤20m and >12h, both won.
    assert column(report, "leads") == [1, 0, 0, 1, 0]
    assert column(report, "won") == [1, 0, 0, 1, 0]
    # ≤12h has no lead: no lift can be said. Nothing lost to delays (both converted). The average check counts
    # the won leads with an amount only: 99.99.
    assert column(report, "lift") == [None] * 5
    assert (report.summary["delay_cost_deals"], report.summary["average_check"]) == (0.0, Decimal("99.99"))
    # A lead contacted before bands were recorded (its band empty) counts in the cohort, in no band.
    with app.engine.begin() as conn:
        conn.execute(update(leads).where(leads.c.id == late.lead_id).values(response_band=None))
    report = speed(app)
    assert (report.summary["cohort"], column(report, "leads")) == (2, [1, 0, 0, 0, 0])
    assert (report.summary["won"], report.summary["conversion"]) == (2, 1.0)  # both won, banded or not
    assert report.notes[-1] == ("1 contacted leads have no recorded band (contacted before bands were kept): they "
                                "count in the cohort only.")  # fmt: skip


def test_a_band_of_thirty_leads_has_a_narrow_interval_and_no_warning(make_app: Callable[[str], Leadflow]) -> None:
    app = make_app(RULES)
    t = datetime(2026, 3, 10, 9, tzinfo=UTC)
    for i in range(30):
        lead = take_lead(app, LeadIn(phone=f"+3806710002{i:02d}", product="credit"), t + timedelta(minutes=i))
        record_contact(app, lead.lead_id, lead.manager_key, "call", "connected", t + timedelta(minutes=i + 10),
                       who=SYSTEM)  # fmt: skip
        if i % 3 == 0:
            set_status(app, lead.lead_id, "converted", t + timedelta(days=1), who=SYSTEM, sale=Sale(Decimal("10.00")))
    report = speed(app)
    # 30 leads answered in 10 minutes, 10 won: 1/3. Wilson: centre (1/3 + z²/60) / (1 + z²/30), half
    # z * sqrt((1/3)(2/3)/30 + z²/3600) / (1 + z²/30).
    n, p, z2 = 30, 1 / 3, Z * Z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)  # 0.1561: about 0.19 to 0.51
    assert column(report, "leads")[0] == 30 and column(report, "conversion")[0] == pytest.approx(1 / 3)
    low, high = column(report, "low")[0], column(report, "high")[0]
    assert (low, high) == (pytest.approx(centre - half), pytest.approx(centre + half))
    assert (low, high) == (pytest.approx(0.1923, abs=1e-4), pytest.approx(0.5122, abs=1e-4))
    assert not any("Fewer than 30" in note for note in report.notes)
    assert report.summary["average_check"] == Decimal("10.00")
