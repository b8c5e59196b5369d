"""The hand-off losses report on SQLite and PostgreSQL, against answers worked out by hand: on the fixed history
(tests/reports/history.py), on a quality desk where leads wait, and on a chain of escalations; the filters, local
days, each caller's scope, and the report over HTTP."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest

from leadflow.core.errors import Forbidden
from leadflow.core.lead import LeadIn
from leadflow.core.policy import SYSTEM, Grant, Principal
from leadflow.services.context import Leadflow
from leadflow.services.desk import assign_by_hand, junk_at_desk
from leadflow.services.intake import take_lead
from leadflow.services.leads import get_lead, set_status
from leadflow.services.reports import ReportQuery, handoffs, run_report
from leadflow.services.reports.shape import Report
from leadflow.services.sla import escalate_due, record_contact
from tests.reports.history import History
from tests.support import live_server, person

NOW = datetime(2026, 4, 1, 12, tzinfo=UTC)
LOSSES = ["desk_overdue", "escalated", "chain_uncontacted", "unowned", "other_first_contact"]


def report(app: Leadflow, query: ReportQuery, now: datetime = NOW, who: Principal = SYSTEM) -> Report:
    return run_report(app, "handoffs", query, now, who=who)


def march(**filters: Any) -> ReportQuery:
    return ReportQuery(start=date(2026, 3, 1), end=date(2026, 3, 31), **filters)


def counts(r: Report) -> list[int]:
    return [r.summary[k] for k in LOSSES]


def listed(r: Report) -> list[tuple[int, list[str], str | None, str]]:
    return [(row["id"], row["_problems"], row["owner"], row["_status"]) for row in r.table("to_act").rows]


# -- The fixed history ----------------------------------------------------------------------------------------------


def test_losses_on_the_history(history: History) -> None:
    ids = history.ids
    r = report(history.app, march())
    # Nine leads arrived in March (Kyiv days): k1..k6, n1..n3. No team has a desk, and routing gave every lead to
    # a manager as it arrived: nothing waited at a desk, nothing went without an owner.
    # Escalated: n2 only (bob -> ann at 03:16, -> mike at 03:32: two escalation rows), and its chain ended with
    # nobody having called. First contact by someone other than the first owner: k3 (olena, junk, restored to
    # taras, who called) and k4 (olena, by hand to taras, who called). Leads with a loss: n2, k3, k4 = 3 of 9.
    assert r.summary["leads"] == 9
    assert counts(r) == [0, 1, 1, 0, 2]
    assert (r.summary["with_a_loss"], r.summary["with_a_loss_share"]) == (3, pytest.approx(3 / 9))
    assert r.summary["escalated_share"] == pytest.approx(1 / 9)
    assert r.summary["other_first_contact_share"] == pytest.approx(2 / 9)
    assert r.summary["desk_overdue_share"] == 0.0
    assert [(row["_key"], row["leads"]) for row in r.table("losses").rows] == list(zip(LOSSES, counts(r), strict=True))
    # n2 has two hops: 0 leads with one, 1 with two (100% of the escalated), 0 with three or more.
    hops = r.table("escalation_hops").rows
    assert [(h["hops"], h["leads"], h["share"]) for h in hops] == [("1", 0, 0.0), ("2", 1, 1.0), ("3+", 0, 0.0)]
    # Escalations by who received them: ann once (hop 1), mike once (the end of the chain).
    assert [(e["manager"], e["escalations"], e["leads"]) for e in r.table("escalated_to").rows] == [
        ("Ann", 1, 1), ("Mike", 1, 1)]  # fmt: skip
    # To act on: all three are open (n2 assigned, k3 and k4 contacted); newest first: n2 (03-09), k4 (03-03), k3.
    assert listed(r) == [
        (ids["n2"], ["escalated", "chain_uncontacted"], "Mike", "assigned"),
        (ids["k4"], ["other_first_contact"], "Taras", "contacted"),
        (ids["k3"], ["other_first_contact"], "Taras", "contacted"),
    ]
    assert r.table("to_act").rows[0]["problems"] == "Escalated to another manager; Chain ended with no contact"
    chart = r.charts[0].to_json()
    # The shares in percent, one decimal: 0, 1/9, 1/9, 0, 2/9.
    assert chart["datasets"][0]["data"] == [0.0, 11.1, 11.1, 0.0, 22.2]
    assert r.to_json()["summary"]["unowned_minutes"] == 15


def test_filters_on_the_history(history: History) -> None:
    app, ids = history.app, history.ids
    # New York: n1, n2, n3. n2 escalated with its chain ended; nobody else reached another's lead.
    ny = report(app, march(teams=("ny",)))
    assert (ny.summary["leads"], counts(ny)) == (3, [0, 1, 1, 0, 0])
    # Kyiv: k1..k6; k3 and k4 first reached by taras, not olena.
    kyiv = report(app, march(teams=("kyiv",)))
    assert (kyiv.summary["leads"], counts(kyiv)) == (6, [0, 0, 0, 0, 2])
    assert kyiv.table("escalated_to").rows == []
    # telegram: n2 only; the campaign "summer": k4 only.
    telegram = report(app, march(channels=("telegram",)))
    assert (telegram.summary["leads"], [row[0] for row in listed(telegram)]) == (1, [ids["n2"]])
    summer = report(app, march(campaigns=("summer",)))
    assert (summer.summary["leads"], counts(summer)) == (1, [0, 0, 0, 0, 1])
    # By manager (their leads now): taras holds k2, k3, k4, k6, two of which he reached first from olena.
    taras = report(app, march(managers=("taras",)))
    assert (taras.summary["leads"], counts(taras)) == (4, [0, 0, 0, 0, 2])


def test_local_days_in_each_zone(history: History) -> None:
    app, ids = history.app, history.ids
    # 2026-03-08 in New York (23 hours: summer time starts at 02:00) runs from 05:00 UTC to 04:00 UTC on 03-09: n1
    # (06:30 UTC) and n2 (03:00 UTC on 03-09, 23:00 in New York on the 8th).
    ny_day = report(app, ReportQuery(start=date(2026, 3, 8), end=date(2026, 3, 8), timezone="America/New_York"))
    assert (ny_day.summary["leads"], counts(ny_day)) == (2, [0, 1, 1, 0, 0])
    # The same date in Kyiv (from 22:00 UTC on 03-07): n1 only (08:30 there); n2 arrived at 05:00 on the 9th.
    kyiv_day = report(app, ReportQuery(start=date(2026, 3, 8), end=date(2026, 3, 8), timezone="Europe/Kyiv"))
    assert (kyiv_day.summary["leads"], counts(kyiv_day)) == (1, [0, 0, 0, 0, 0])
    assert kyiv_day.table("to_act").rows == []
    assert [row[0] for row in listed(ny_day)] == [ids["n2"]]


def test_each_caller_sees_their_scope(history: History) -> None:
    app, ids = history.app, history.ids
    # Mike, as a manager, sees the leads he holds: n2, which came to him at the end of its chain.
    mike = Principal("user", "mike", grants=(Grant("manager"),), manager_id=history.managers["mike"])
    own = report(app, march(), who=mike)
    assert (own.summary["leads"], counts(own), [row[0] for row in listed(own)]) == (1, [0, 1, 1, 0, 0], [ids["n2"]])
    # Bob holds n3 only (n2 left him): no loss.
    bob = Principal("user", "bob", grants=(Grant("manager"),), manager_id=history.managers["bob"])
    bobs = report(app, march(), who=bob)
    assert (bobs.summary["leads"], bobs.summary["with_a_loss"]) == (1, 0)
    # The head of Kyiv sees Kyiv's six leads, and may not ask for New York.
    kyiv_id = _team_id(app, "kyiv")
    iryna = Principal("user", "iryna", grants=(Grant("head", kyiv_id, "kyiv"),), manager_id=history.managers["iryna"])
    assert report(app, march(), who=iryna).summary["leads"] == 6
    with pytest.raises(Forbidden):
        report(app, march(teams=("ny",)), who=iryna)


def _team_id(app: Leadflow, key: str) -> int:
    with app.engine.connect() as conn:
        found = app.team_id(conn, key)
    assert found is not None
    return found


def test_over_http(history: History) -> None:
    app = history.app
    headers = {"admin": person(app, "boss", "admin"), "ann": person(app, "ann", "manager", manager="ann")}
    query = {"from": "2026-03-01", "to": "2026-03-31"}
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        answer = client.get("/api/v1/reports/handoffs", params=query, headers=headers["admin"])
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert (body["summary"]["leads"], body["summary"]["with_a_loss"], body["summary"]["escalated"]) == (9, 3, 1)
        assert [row["id"] for row in body["tables"][3]["rows"]] == [history.ids[k] for k in ("n2", "k4", "k3")]
        # Ann holds n1 only: one lead, nothing lost.
        own = client.get("/api/v1/reports/handoffs", params=query, headers=headers["ann"]).json()
        assert (own["summary"]["leads"], own["summary"]["with_a_loss"]) == (1, 0)
        csv = client.get("/api/v1/reports/handoffs", params=query | {"format": "csv", "table": "losses"},
                         headers=headers["admin"])  # fmt: skip
        assert csv.status_code == 200 and "Chain ended with no contact" in csv.text


# -- A quality desk and its waiting leads -------------------------------------------------------------------------

RULES = """
default_timezone: Europe/Kyiv
teams:
  - {key: sales, name: Sales, timezone: Europe/Kyiv, head: halyna, hours: always}
  - {key: front, name: Front desk, timezone: Europe/Kyiv, desk: true, desk_sla: 15m, hours: always}
managers:
  - {key: anna, name: Anna, team: sales}
  - {key: bohdan, name: Bohdan, team: sales}
  - {key: chrystia, name: Chrystia, team: sales}
  - {key: halyna, name: Halyna, team: sales}
  - {key: dana, name: Dana, team: front, role: desk}
routing:
  rules:
    - {key: vip, team: front, priority: 10, when: {product: vip}}
    - {key: all, team: sales, managers: [anna, bohdan, chrystia], strategy: round_robin}
sla:
  default: {first_contact: 10m, count: wall_clock, chain: {max_hops: 3}}
"""
T0 = datetime(2026, 11, 10, 8, tzinfo=UTC)  # 10:00 in Kyiv
NOV_10 = ReportQuery(start=date(2026, 11, 10), end=date(2026, 11, 10))


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


@dataclass
class Desk:
    app: Leadflow
    ids: dict[str, int]


def desk_day(make_app: Callable[[str], Leadflow], rules: str = RULES) -> Desk:
    """VIP leads wait at the front desk (deadline 15 min) until someone hands them on.

    d1 00:00  waits; the desk's deadline passes (event at 00:16); by hand to anna at 00:40; anna calls at 00:45
    d2 00:05  by hand to bohdan at 00:20, exactly 15 min after it came (not over); bohdan calls at 00:21
    d3 00:10  junk at the desk at 00:12: closed, never owned
    d5 01:00  waits (deadline event at 01:16); never handed on. Its client writes again at 01:30: merged into d5
    d4 02:50  waits; 10 minutes old when the report is read at 03:00
    """
    app = make_app(rules)
    ids: dict[str, int] = {}

    def vip(name: str, phone: str, at: float) -> None:
        taken = take_lead(app, LeadIn(phone=phone, product="vip"), minutes(at))
        assert (taken.status, taken.manager_key) == ("new", None)  # at the desk
        ids[name] = taken.lead_id

    vip("d1", "0672000001", 0)
    vip("d2", "0672000002", 5)
    vip("d3", "0672000003", 10)
    junk_at_desk(app, ids["d3"], minutes(12), reason="an offer of advertising", who=SYSTEM)
    assert escalate_due(app, minutes(16)) == 1  # d1's deadline (d2's is at 00:20)
    assign_by_hand(app, ids["d2"], minutes(20), manager="bohdan", reason="a big client", who=SYSTEM)
    record_contact(app, ids["d2"], "bohdan", "call", "connected", minutes(21), who=SYSTEM)
    assign_by_hand(app, ids["d1"], minutes(40), manager="anna", reason="a big client", who=SYSTEM)
    record_contact(app, ids["d1"], "anna", "call", "connected", minutes(45), who=SYSTEM)
    vip("d5", "0672000005", 60)
    assert escalate_due(app, minutes(76)) == 1  # d5's deadline
    again = take_lead(app, LeadIn(phone="0672000005", product="vip"), minutes(90))
    assert again.merged and again.lead_id == ids["d5"]
    vip("d4", "0672000004", 170)
    return Desk(app, ids)


def test_the_desk_and_leads_without_an_owner(make_app: Callable[[str], Leadflow]) -> None:
    desk = desk_day(make_app)
    r = report(desk.app, NOV_10, now=minutes(180))
    # Five leads (the merged repeat is not one). Past the desk's deadline: d1 and d5 (the events at 00:16 and
    # 01:16). No owner for over 15 min: d1 (owned at 00:40, 40 min after it came) and d5 (open, never owned, 2 h
    # old at 03:00). Not: d2 (owned after exactly 15 min), d3 (closed at the desk, never owned), d4 (10 min old).
    assert r.summary["leads"] == 5
    assert counts(r) == [2, 0, 0, 2, 0]
    assert (r.summary["with_a_loss"], r.summary["unowned_share"]) == (2, pytest.approx(2 / 5))
    # Open first, newest first: d5 (new, at the desk), then d1 (contacted, with anna).
    both = ["desk_overdue", "unowned"]
    assert listed(r) == [(desk.ids["d5"], both, None, "new"), (desk.ids["d1"], both, "Anna", "contacted")]
    # Read at 03:20, d4 has waited 30 minutes: it has no owner for too long too.
    assert report(desk.app, NOV_10, now=minutes(200)).summary["unowned"] == 3


def test_how_long_without_an_owner_is_too_long_is_the_rules(make_app: Callable[[str], Leadflow]) -> None:
    desk = desk_day(make_app, RULES + "reports: {unowned_minutes: 60}\n")
    r = report(desk.app, NOV_10, now=minutes(180))
    # Over 60 minutes: d5 only (2 h); d1 was owned after 40 min.
    assert (r.summary["unowned"], r.summary["unowned_minutes"]) == (1, 60)
    assert r.table("losses").rows[3]["loss"] == "No owner for over 60 min"


def test_the_list_is_cut_at_its_size(make_app: Callable[[str], Leadflow], monkeypatch: pytest.MonkeyPatch) -> None:
    desk = desk_day(make_app)
    monkeypatch.setattr(handoffs, "LIST_SIZE", 1)
    r = report(desk.app, NOV_10, now=minutes(180))
    assert [row[0] for row in listed(r)] == [desk.ids["d5"]]
    assert r.summary["with_a_loss"] == 2  # counted over every lead, not the list
    assert "The list shows 1 of the 2 leads with a loss: open ones first, newest first." in r.notes


# -- A chain of escalations ---------------------------------------------------------------------------------------


def escalations_day(make_app: Callable[[str], Leadflow]) -> tuple[Leadflow, dict[str, int]]:
    """Sales leads with a 10-minute first-contact deadline, three hops, then the head (halyna); times from T0.

    s1 00:00  anna (round robin); anna calls at 00:05
    s2 01:00  bohdan; escalated at 01:10 to anna, who calls at 01:12
    s3 02:00  bohdan; escalated at 02:10 to anna, 02:20 to chrystia, 02:30 the chain ends with halyna; she
              calls at 02:40
    s4 04:00  anna; escalated at 04:10 to bohdan; anna (its first owner) calls at 04:11; lost at 05:00
    x1 24:00  (the next day) chrystia; escalated at 24:10 to anna, who calls at 24:11
    """
    app = make_app(RULES)
    ids: dict[str, int] = {}

    def lead(name: str, phone: str, at: float, first_owner: str) -> None:
        taken = take_lead(app, LeadIn(phone=phone), minutes(at))
        assert taken.manager_key == first_owner
        ids[name] = taken.lead_id

    def escalate(at: float, name: str, to: str) -> None:
        assert escalate_due(app, minutes(at)) == 1
        assert get_lead(app, ids[name], who=SYSTEM)["manager_key"] == to

    def call(name: str, who: str, at: float) -> None:
        record_contact(app, ids[name], who, "call", "connected", minutes(at), who=SYSTEM)

    lead("s1", "0671000001", 0, "anna")
    call("s1", "anna", 5)
    lead("s2", "0671000002", 60, "bohdan")
    escalate(70, "s2", "anna")
    call("s2", "anna", 72)
    lead("s3", "0671000003", 120, "bohdan")
    escalate(130, "s3", "anna")
    escalate(140, "s3", "chrystia")
    escalate(150, "s3", "halyna")
    assert get_lead(app, ids["s3"], who=SYSTEM)["sla_state"] == "exhausted"
    call("s3", "halyna", 160)
    lead("s4", "0671000004", 240, "anna")
    escalate(250, "s4", "bohdan")
    call("s4", "anna", 251)
    set_status(app, ids["s4"], "lost", minutes(300), who=SYSTEM, reason="no budget")
    lead("x1", "0671000005", 24 * 60, "chrystia")
    escalate(24 * 60 + 10, "x1", "anna")
    call("x1", "anna", 24 * 60 + 11)
    return app, ids


def test_escalations_the_end_of_a_chain_and_another_caller(make_app: Callable[[str], Leadflow]) -> None:
    app, ids = escalations_day(make_app)
    r = report(app, NOV_10, now=minutes(26 * 60))
    # November 10th in Kyiv: s1..s4 (x1 came the next day). Escalated: s2 (1 hop), s3 (3: anna, chrystia, halyna),
    # s4 (1). The chain ended for s3 before anyone called (halyna's call came after). First reached by another than
    # the first owner: s2 (bohdan's, anna called) and s3 (bohdan's, halyna called); s4 was called by anna, its
    # first owner, after it had moved on: not a loss of that kind.
    assert r.summary["leads"] == 4
    assert counts(r) == [0, 3, 1, 0, 2]
    assert r.summary["with_a_loss"] == 3
    # Hops: one for s2 and s4 (2 of 3 escalated), three for s3 (1 of 3).
    hops = [(h["hops"], h["leads"], h["share"]) for h in r.table("escalation_hops").rows]
    assert hops == [("1", 2, pytest.approx(2 / 3)), ("2", 0, 0.0), ("3+", 1, pytest.approx(1 / 3))]
    # To whom: anna twice (s2, s3), then bohdan (s4), chrystia and halyna (s3) once each, by name.
    assert [(e["_manager"], e["escalations"], e["leads"]) for e in r.table("escalated_to").rows] == [
        ("anna", 2, 2), ("bohdan", 1, 1), ("chrystia", 1, 1), ("halyna", 1, 1)]  # fmt: skip
    # Open first (s3 and s2 are contacted, newest first), then the closed s4 though it is the newest.
    assert [(row[0], row[3]) for row in listed(r)] == [(ids["s3"], "contacted"), (ids["s2"], "contacted"),
                                                       (ids["s4"], "lost")]  # fmt: skip
    assert [row["_open"] for row in r.table("to_act").rows] == [True, True, False]
    # Both days: x1's escalation to anna joins the count (4 of 5) and anna's row (3 escalations).
    both = report(app, ReportQuery(start=date(2026, 11, 10), end=date(2026, 11, 11)), now=minutes(26 * 60))
    assert (both.summary["leads"], both.summary["escalated"]) == (5, 4)
    assert {e["_manager"]: e["escalations"] for e in both.table("escalated_to").rows}["anna"] == 3


def test_no_leads_no_shares(make_app: Callable[[str], Leadflow]) -> None:
    app = make_app(RULES)
    r = report(app, NOV_10, now=minutes(60))
    assert r.summary["leads"] == 0 and r.summary["with_a_loss"] == 0
    assert r.summary["escalated_share"] is None  # a share of no leads is unknown, not 0%
    assert r.table("to_act").rows == [] and r.table("escalated_to").rows == []
    assert r.charts[0].datasets[0]["data"] == [None] * 5


NO_HEAD = """
default_timezone: Europe/Kyiv
teams:
  - {key: sales, name: Sales, timezone: Europe/Kyiv, hours: always}
managers:
  - {key: anna, name: Anna, team: sales}
  - {key: bohdan, name: Bohdan, team: sales}
routing:
  rules:
    - {key: all, team: sales, managers: [anna, bohdan], strategy: round_robin}
sla:
  default: {first_contact: 10m, count: wall_clock, chain: {max_hops: 1, final: team_head}}
"""


def test_a_chain_that_finds_nobody_leaves_the_lead_without_an_owner(make_app: Callable[[str], Leadflow]) -> None:
    # The team has no head: after bohdan's hop the chain's end (the head) is nobody, and the lead waits unowned.
    app = make_app(NO_HEAD)
    lead = take_lead(app, LeadIn(phone="0671000009"), minutes(0)).lead_id
    assert get_lead(app, lead, who=SYSTEM)["manager_key"] == "anna"
    assert escalate_due(app, minutes(10)) == 1 and get_lead(app, lead, who=SYSTEM)["manager_key"] == "bohdan"
    assert escalate_due(app, minutes(20)) == 1
    left = get_lead(app, lead, who=SYSTEM)
    assert (left["manager_key"], left["status"], left["sla_state"]) == (None, "new", "exhausted")
    r = report(app, NOV_10, now=minutes(120))
    # Escalated twice (a lead with hops), the chain ended with nobody having called; "no owner" is the wait for
    # the first owner (anna had it at once), so it is not counted again here.
    assert counts(r) == [0, 1, 1, 0, 0]
    assert [(e["_manager"], e["manager"], e["escalations"]) for e in r.table("escalated_to").rows] == [
        ("bohdan", "Bohdan", 1), (None, "No one (left unassigned)", 1)]  # fmt: skip
    assert [(row["id"], row["_owner"], row["_status"], row["_open"]) for row in r.table("to_act").rows] == [
        (lead, None, "new", True)]  # fmt: skip
