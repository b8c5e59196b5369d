"""The channel quality report on SQLite and PostgreSQL, against answers worked out by hand on the fixed history
(tests/reports/history.py) with a junk lead, a merged repeat and advertising spend added: volume, junk, duplicates,
contact, conversion, revenue, and the spend divided among the leads it paid for; the filters and scopes, which see
their part of shared spend; local days for leads and spend alike; the report over HTTP."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from leadflow.core.lead import LeadIn
from leadflow.core.policy import SYSTEM, Grant, Principal
from leadflow.services.intake import take_lead
from leadflow.services.leads import set_status
from leadflow.services.reports import ReportQuery, run_report
from leadflow.services.reports.channels import Figures, attribute, matches
from leadflow.services.reports.costs import import_costs
from leadflow.services.reports.shape import Report
from tests.reports.history import History, at
from tests.support import live_server, person

NOW = datetime(2026, 4, 1, 12, tzinfo=UTC)
D = Decimal

# Spend lines ('' is any):
#   A 03-02 web/site/spring 90 and B 03-03 the same 60: 150 for web/site/spring's 3 leads (k1 k2 k6), 50.00 each
#   C 03-05 facebook/any/any 40: facebook's 2 leads (k3 spring, k4 summer), 20.00 each
#   D 03-10 any/any/spring 30: spring's 4 leads (k1 k2 k6 on web, k3 on facebook), 7.50 each
#   E 03-08 web/site/any 60: web/site's 6 leads (k1 k2 k6 spring; k5 n1 n3 no campaign), 10.00 each
#   F 03-12 viber 25: no viber lead: spend that matched nothing
#   G 04-02 and H 02-28 (H for everything): outside March, not counted
SPEND = """day,channel,source,campaign,amount
2026-03-02,web,site,spring,90.00
2026-03-03,web,site,spring,60.00
2026-03-05,facebook,,,40.00
2026-03-10,,,spring,30.00
2026-03-08,web,site,,60.00
2026-03-12,viber,,,25.00
2026-04-02,web,site,spring,999.00
2026-02-28,,,,500.00
"""


@pytest.fixture
def shop(history: History) -> History:
    """The history, with two e-mail leads to New York (j1 junk, j2 open), a repeat of j2's client folded into it
    (merged: not counted), and the spend above."""
    app = history.app
    j1 = take_lead(app, LeadIn(phone="+12125550111", product="travel", channel="email", source="newsletter"),
                   at(3, 20, 10)).lead_id  # fmt: skip
    set_status(app, j1, "junk", at(3, 20, 10, 5), who=SYSTEM, reason="a reply to a newsletter, not a request")
    j2 = take_lead(app, LeadIn(phone="+12125550112", product="travel", channel="email", source="newsletter"),
                   at(3, 21, 10)).lead_id  # fmt: skip
    repeat = take_lead(app, LeadIn(phone="+12125550112", product="travel", channel="email", source="newsletter"),
                       at(3, 21, 11))  # fmt: skip
    assert repeat.merged and repeat.lead_id == j2
    history.ids.update(j1=j1, j2=j2)
    assert import_costs(app, SPEND, at(4, 1, 9), who=SYSTEM) == {"added": 8, "replaced": 0, "rows": 8}
    return history


def report(history: History, query: ReportQuery, who: Principal = SYSTEM) -> Report:
    return run_report(history.app, "channels", query, NOW, who=who)


def march(**filters: Any) -> ReportQuery:
    return ReportQuery(start=date(2026, 3, 1), end=date(2026, 3, 31), **filters)


def by(r: Report, table: str, *columns: str) -> dict[Any, tuple[Any, ...]]:
    """Rows of a table by their group (channel, or channel/source/campaign), each as the columns asked for."""
    found = {}
    for row in r.table(table).rows:
        key = row["channel"] if table == "by_channel" else (row["channel"], row["source"], row["campaign"])
        found[key] = tuple(row[c] for c in columns)
    return found


FIGURES = ("leads", "junk_share", "duplicate_share", "contact_rate", "conversion", "won", "revenue")
MONEY = ("cost", "cost_per_lead", "cost_per_sale")


def test_quality_and_cost_by_channel_and_campaign(shop: History) -> None:
    r = report(shop, march())
    # Eleven leads arrived in March (Kyiv days): k1..k6, n1..n3, j1, j2; j2's repeat is merged into it.
    # web: k1 k2 k6 (spring), k5 n1 n3 (no campaign) = 6; k5 duplicates k1; contacted all but k5 = 5; won k1 k2
    # n1 = 3 (k2 after its reopening), revenue 1000 + 500 + 2000. email: j1 (junk) and j2, neither reached.
    # facebook: k3 (junk, then restored: not junk now) and k4, both reached. telegram: n2, never reached.
    # Equal counts go by name: email before facebook.
    assert list(by(r, "by_channel")) == ["web", "email", "facebook", "telegram"]
    assert by(r, "by_channel", *FIGURES) == {
        "web": (6, 0.0, pytest.approx(1 / 6), pytest.approx(5 / 6), 0.5, 3, D("3500.00")),
        "email": (2, 0.5, 0.0, 0.0, 0.0, 0, D("0.00")),
        "facebook": (2, 0.0, 0.0, 1.0, 0.0, 0, D("0.00")),
        "telegram": (1, 0.0, 0.0, 0.0, 0.0, 0, D("0.00")),
    }
    # web/site/spring: A+B 150 + D 3 x 7.50 + E 3 x 10 = 202.50; per lead /3 = 67.50; per sale (k1 k2) /2 = 101.25.
    # web/site/none: E 3 x 10 = 30.00; per lead 10.00; per sale (n1) 30.00.
    # facebook/ads/spring: C 20 + D 7.50 = 27.50, no sale. facebook/ads/summer: C 20. email, telegram: no spend.
    assert by(r, "by_campaign", *MONEY) == {
        ("web", "site", None): (D("30.00"), D("10.00"), D("30.00")),
        ("web", "site", "spring"): (D("202.50"), D("67.50"), D("101.25")),
        ("email", "newsletter", None): (None, None, None),
        ("facebook", "ads", "spring"): (D("27.50"), D("27.50"), None),
        ("facebook", "ads", "summer"): (D("20.00"), D("20.00"), None),
        ("telegram", "bot", None): (None, None, None),
    }
    # The order: 3 leads (no campaign before spring), 2, then 1 each by channel, source and campaign.
    assert list(by(r, "by_campaign")) == [("web", "site", None), ("web", "site", "spring"),
                                          ("email", "newsletter", None), ("facebook", "ads", "spring"),
                                          ("facebook", "ads", "summer"), ("telegram", "bot", None)]  # fmt: skip
    assert by(r, "by_campaign", *FIGURES)[("web", "site", "spring")] == (3, 0.0, 0.0, 1.0, pytest.approx(2 / 3), 2,
                                                                        D("1500.00"))  # fmt: skip
    # Channels: web 30 + 202.50 = 232.50, per lead /6 = 38.75, per sale /3 = 77.50; facebook 47.50, /2 = 23.75.
    assert by(r, "by_channel", *MONEY) == {
        "web": (D("232.50"), D("38.75"), D("77.50")),
        "email": (None, None, None),
        "facebook": (D("47.50"), D("23.75"), None),
        "telegram": (None, None, None),
    }
    # All of it: 280.00 over 11 leads = 25.4545... -> 25.45, over 3 sales = 93.33. Spend of March's days: A..F =
    # 90 + 60 + 40 + 30 + 60 + 25 = 305.00, of which F (25.00) paid for no lead.
    s = r.summary
    assert (s["leads"], s["junk_share"], s["duplicate_share"]) == (11, pytest.approx(1 / 11), pytest.approx(1 / 11))
    assert (s["contact_rate"], s["conversion"], s["won"]) == (pytest.approx(7 / 11), pytest.approx(3 / 11), 3)
    assert (s["revenue"], s["cost"], s["cost_per_lead"], s["cost_per_sale"]) == (D("3500.00"), D("280.00"),
                                                                                  D("25.45"), D("93.33"))  # fmt: skip
    assert (s["spend"], s["unmatched_spend"]) == (D("305.00"), D("25.00"))
    assert "Spend that matched no lead of the period (25.00): channel viber, source any, campaign any: 25.00." in (
        r.notes)  # fmt: skip
    chart = r.charts[0].to_json()
    assert chart["labels"] == ["web", "email", "facebook", "telegram"]
    assert [d["data"] for d in chart["datasets"]] == [[6, 2, 2, 1], [50.0, 0.0, 0.0, 0.0]]
    assert r.to_json()["summary"]["cost"] == "280.00"


def test_a_filter_or_a_scope_sees_its_part_of_shared_spend(shop: History) -> None:
    # New York: n1 n3 (web/site), n2 (telegram), j1 j2 (email). E paid for 6 web/site leads, 2 of them New York's:
    # 2 x 10 = 20.00; per lead 10.00; per sale (n1) 20.00.
    ny = report(shop, march(teams=("ny",)))
    assert by(ny, "by_campaign", "leads", *MONEY) == {
        ("web", "site", None): (2, D("20.00"), D("10.00"), D("20.00")),
        ("email", "newsletter", None): (2, None, None, None),
        ("telegram", "bot", None): (1, None, None, None),
    }
    assert (ny.summary["leads"], ny.summary["cost"], ny.summary["junk_share"]) == (5, D("20.00"), 0.2)
    # Taras holds k2 k6 (web/site/spring), k3 (facebook spring), k4 (facebook summer). His 2 web leads carry
    # 2 x (50 + 7.50 + 10) = 135.00; per sale (k2) 135.00; facebook's as above. Total 135 + 27.50 + 20 = 182.50.
    taras = Principal("user", "taras", grants=(Grant("manager"),), manager_id=shop.managers["taras"])
    own = report(shop, march(), who=taras)
    assert by(own, "by_campaign", "leads", "won", *MONEY) == {
        ("web", "site", "spring"): (2, 1, D("135.00"), D("67.50"), D("135.00")),
        ("facebook", "ads", "spring"): (1, 0, D("27.50"), D("27.50"), None),
        ("facebook", "ads", "summer"): (1, 0, D("20.00"), D("20.00"), None),
    }
    assert (own.summary["leads"], own.summary["cost"]) == (4, D("182.50"))
    # The campaign "spring": web/site/spring keeps E's 10.00 a lead though web/site/none is not shown: 202.50;
    # facebook/ads/spring 27.50. Only the channel facebook: the same as without the filter.
    spring = report(shop, march(campaigns=("spring",)))
    assert by(spring, "by_campaign", *MONEY) == {("web", "site", "spring"): (D("202.50"), D("67.50"), D("101.25")),
                                                 ("facebook", "ads", "spring"): (D("27.50"), D("27.50"), None)}  # fmt: skip
    assert spring.summary["cost"] == D("230.00")
    facebook = report(shop, march(channels=("facebook",)))
    assert by(facebook, "by_channel", "leads", *MONEY) == {"facebook": (2, D("47.50"), D("23.75"), None)}
    # Sources: "bot" is telegram's n2 alone.
    assert list(by(report(shop, march(sources=("bot",))), "by_campaign")) == [("telegram", "bot", None)]


def test_local_days_cut_leads_and_spend_alike(shop: History) -> None:
    import_costs(shop.app, "day,channel,source,campaign,amount\n2026-03-28,web,site,spring,8\n"
                           "2026-03-29,web,site,spring,12\n", at(4, 1, 10), who=SYSTEM)  # fmt: skip
    # k6 arrived at 23:30 UTC on 03-28: 01:30 on 03-29 in Kyiv. Its Kyiv day has the 29th's spend (12.00).
    kyiv = report(shop, ReportQuery(start=date(2026, 3, 29), end=date(2026, 3, 29), timezone="Europe/Kyiv"))
    assert by(kyiv, "by_campaign", "leads", "cost") == {("web", "site", "spring"): (1, D("12.00"))}
    # In UTC it came on the 28th, with the 28th's spend (8.00).
    utc = report(shop, ReportQuery(start=date(2026, 3, 28), end=date(2026, 3, 28), timezone="UTC"))
    assert by(utc, "by_campaign", "leads", "cost") == {("web", "site", "spring"): (1, D("8.00"))}
    # The 29th in UTC has no lead: its 12.00 paid for nothing, and nothing is a share of no leads.
    empty = report(shop, ReportQuery(start=date(2026, 3, 29), end=date(2026, 3, 29), timezone="UTC"))
    assert (empty.summary["leads"], empty.summary["cost"], empty.summary["conversion"]) == (0, None, None)
    assert (empty.summary["spend"], empty.summary["unmatched_spend"]) == (D("12.00"), D("12.00"))
    assert empty.table("by_channel").rows == [] and empty.charts[0].labels == []


def test_over_http(shop: History) -> None:
    app = shop.app
    admin, olena = person(app, "boss", "admin"), person(app, "olena", "manager", manager="olena")
    query = {"from": "2026-03-01", "to": "2026-03-31"}
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        body = client.get("/api/v1/reports/channels", params=query, headers=admin).json()
        assert (body["summary"]["leads"], body["summary"]["cost"]) == (11, "280.00")
        assert [(row["channel"], row["cost"]) for row in body["tables"][0]["rows"]] == [
            ("web", "232.50"), ("email", None), ("facebook", "47.50"), ("telegram", None)]  # fmt: skip
        # Olena holds k1 and k5 (web/site: spring and none): k1 carries 50 + 7.50 + 10, k5 10.
        own = client.get("/api/v1/reports/channels", params=query, headers=olena).json()
        assert (own["summary"]["leads"], own["summary"]["cost"]) == (2, "77.50")
        sheet = client.get("/api/v1/reports/channels", params=query | {"format": "xlsx"}, headers=admin)
        assert sheet.status_code == 200 and sheet.content[:2] == b"PK"


# -- Dividing spend, without a database ---------------------------------------------------------------------------


def test_matching_a_spend_line_to_a_group() -> None:
    assert matches(("web", "", ""), ("web", None, None))
    assert matches(("", "", "spring"), ("facebook", "ads", "spring"))
    assert not matches(("web", "site", ""), ("web", None, "spring"))  # a lead with no source is not "site"'s
    assert not matches(("", "", "spring"), ("web", "site", None))


def test_spend_is_divided_equally_among_the_leads_it_matched() -> None:
    everyone = {("web", "a", "x"): 1, ("web", "b", "x"): 2, ("telegram", "a", None): 3}
    shown = {g: Figures(leads=n) for g, n in everyone.items()}
    # 100 for web/any/x: 3 leads, 33.33... each: 1 lead -> 33.33, 2 leads -> 66.67 (the exact thirds, rounded only
    # when shown). 9 for everything: 1.50 a lead. 5 for email: no lead.
    unmatched = attribute({("web", "", "x"): D(100), ("", "", ""): D(9), ("email", "", ""): D(5)}, everyone, shown)
    assert unmatched == {("email", "", ""): D(5)}
    assert {g: f.row()["cost"] for g, f in shown.items()} == {
        ("web", "a", "x"): D("34.83"), ("web", "b", "x"): D("69.67"), ("telegram", "a", None): D("4.50")}  # fmt: skip
    assert sum((f.cost for f in shown.values() if f.cost is not None), D(0)) == D(109)
    # Shown fewer leads than paid for (a filter): the part of those shown.
    part = {("web", "b", "x"): Figures(leads=1)}
    attribute({("web", "", "x"): D(90)}, everyone, part)
    assert part[("web", "b", "x")].cost == D(30)
