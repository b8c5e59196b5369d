"""The head of sales' read service (services/board.py) on a small fixed history, on SQLite and PostgreSQL: today's
first contacts by response band in the team's time zone, today's breaches, who can take leads now, and the scope."""

from collections.abc import Callable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event

from leadflow.core.lead import LeadIn
from leadflow.core.policy import SYSTEM, Grant, Principal
from leadflow.services import board
from leadflow.services.context import Leadflow
from leadflow.services.intake import take_lead
from leadflow.services.people import ManagerIn, ManagerPatch, create_manager, update_manager
from leadflow.services.sla import escalate_due, record_contact

RULES = """
default_region: UA
default_timezone: Europe/Kyiv
teams:
  - {key: sales, name: Sales, timezone: Europe/Kyiv, head: halyna, hours: always}
  - {key: vip, name: VIP, timezone: Europe/Kyiv, head: oleh, hours: always}
managers:
  - {key: anna, name: Anna, team: sales, capacity: 10}
  - {key: bohdan, name: Bohdan, team: sales, capacity: 10}
  - {key: vira, name: Vira, team: sales, vacations: [{from: 2026-11-20, to: 2026-11-30}]}
  - {key: olha, name: Olha, team: sales, hours: "mon-fri 09:00-10:00"}
  - {key: halyna, name: Halyna, team: sales}
  - {key: oleh, name: Oleh, team: vip}
routing:
  rules:
    - {key: vip, team: vip, managers: [oleh], when: {product: yacht}}
    - {key: all, team: sales, managers: [anna, bohdan], strategy: round_robin}
sla:
  default: {first_contact: 20m, count: wall_clock, chain: {max_hops: 1}}
"""
KYIV = ZoneInfo("Europe/Kyiv")
# Tuesday 24 November 2026, 12:00 in Kyiv (UTC+2): Kyiv's today began at 22:00 UTC on the 23rd.
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def utc(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


def head_of(app: Leadflow, team: str) -> Principal:
    with app.engine.connect() as conn:
        team_id = app.team_id(conn, team)
    return Principal("user", f"head-of-{team}", 99, grants=(Grant("head", team_id, team),))


@pytest.fixture
def history(make_app: Callable[[str], Leadflow]) -> Leadflow:
    """Seven leads of team sales, round robin Anna, Bohdan, Anna ...; contacts and escalations at chosen times."""
    app = make_app(RULES)
    created = [utc(23, 22, 10), utc(23, 12), utc(23, 21), utc(24, 8), utc(24, 9), utc(23, 20), utc(24, 5)]
    owners = []
    for n, at in enumerate(created, start=1):
        taken = take_lead(app, LeadIn(name=f"Client {n}", phone=f"06712300{n:02d}"), at)
        owners.append(taken.manager_key)
    assert owners == ["anna", "bohdan", "anna", "bohdan", "anna", "bohdan", "anna"]

    def contact(lead_id: int, manager: str, at: datetime) -> None:
        record_contact(app, lead_id, manager, "call", "connected", at, who=SYSTEM)

    contact(1, "anna", utc(23, 22, 20))  # 00:20 in Kyiv today, 10 minutes: ≤20m (the 23rd in UTC)
    contact(2, "bohdan", utc(24, 9))  # 21 hours: >12h
    contact(3, "anna", utc(23, 21, 30))  # 23:30 in Kyiv yesterday: not today's
    contact(4, "bohdan", utc(24, 9))  # an hour: ≤3h
    contact(7, "anna", utc(24, 7))  # two hours: ≤3h
    assert escalate_due(app, utc(23, 20, 30)) == 1  # lead 6 from Bohdan to Anna, yesterday evening in Kyiv
    contact(6, "anna", utc(23, 20, 40))  # yesterday
    assert escalate_due(app, utc(24, 9, 30)) == 1  # lead 5 from Anna to Bohdan, today
    update_manager(app, "halyna", ManagerPatch(absent=True), utc(24, 9, 45), who=SYSTEM)
    return app


def rows_of(found: dict, team: str) -> dict[str, dict]:
    shown = next(t for t in found["teams"] if t["key"] == team)
    return {m["key"]: m for m in shown["managers"]}


def test_todays_first_contacts_bands_and_breaches_in_the_teams_time_zone(history: Leadflow) -> None:
    found = board.team_board(history, NOW, KYIV, who=head_of(history, "sales"))
    assert found["since"] == utc(23, 22) and found["until"] == utc(24, 22)
    assert found["bands"] == ["≤20m", "≤3h", "≤12h", ">12h"]
    assert [t["key"] for t in found["teams"]] == ["sales"]  # the head's own team only
    people = rows_of(found, "sales")
    anna, bohdan = people["anna"], people["bohdan"]
    # Anna: lead 1 (10 min) and lead 7 (2 h) today; lead 3 and lead 6 were contacted yesterday in Kyiv.
    assert anna["bands"] == {"≤20m": 1, "≤3h": 1, "≤12h": 0, ">12h": 0}
    assert (anna["first_contacts"], anna["fast_contacts"], anna["fast_share"]) == (2, 1, 0.5)
    assert anna["breaches"] == 1  # lead 5 went on to Bohdan this morning
    assert (anna["open_leads"], anna["capacity"]) == (4, 10)  # leads 1, 3, 6, 7
    assert bohdan["bands"] == {"≤20m": 0, "≤3h": 1, "≤12h": 0, ">12h": 1}
    assert (bohdan["first_contacts"], bohdan["fast_share"], bohdan["breaches"]) == (2, 0.0, 0)  # lead 6: yesterday
    assert bohdan["open_leads"] == 3  # leads 2, 4 and 5
    sales = next(t for t in found["teams"] if t["key"] == "sales")
    assert sales["bands"] == {"≤20m": 1, "≤3h": 2, "≤12h": 0, ">12h": 1}
    assert (sales["first_contacts"], sales["fast_share"], sales["breaches"]) == (4, 0.25, 1)


def test_who_can_take_leads_now_is_what_routing_checks(history: Leadflow) -> None:
    people = rows_of(board.team_board(history, NOW, KYIV, who=SYSTEM), "sales")
    states = {key: m["state"] for key, m in people.items()}
    assert states == {"anna": "on_shift", "bohdan": "on_shift", "vira": "vacation", "olha": "off_shift",
                      "halyna": "absent"}  # fmt: skip
    assert people["vira"]["vacation_until"].isoformat() == "2026-11-30"
    assert people["halyna"]["absent"] is True and people["halyna"]["on_shift"] is True  # the team is always open
    at_nine = rows_of(board.team_board(history, utc(24, 7, 30), KYIV, who=SYSTEM), "sales")  # 09:30 in Kyiv
    assert at_nine["olha"]["state"] == "on_shift"


def test_the_day_is_the_one_of_the_time_zone_given(history: Leadflow) -> None:
    in_utc = rows_of(board.team_board(history, NOW, ZoneInfo("UTC"), who=SYSTEM), "sales")
    # The 24th in UTC: lead 1's contact (22:20 UTC on the 23rd) is yesterday's there.
    assert in_utc["anna"]["bands"] == {"≤20m": 0, "≤3h": 1, "≤12h": 0, ">12h": 0}
    tomorrow = rows_of(board.team_board(history, utc(24, 22, 1), KYIV, who=SYSTEM), "sales")  # 00:01 on the 25th
    assert tomorrow["anna"]["first_contacts"] == 0 and tomorrow["anna"]["breaches"] == 0


def test_an_admin_sees_every_team_and_another_head_only_theirs(history: Leadflow) -> None:
    admin = Principal("user", "root", 1, grants=(Grant("admin"),))
    assert [t["key"] for t in board.team_board(history, NOW, KYIV, who=admin)["teams"]] == ["sales", "vip"]
    vip = board.team_board(history, NOW, KYIV, who=head_of(history, "vip"))
    assert [t["key"] for t in vip["teams"]] == ["vip"]
    assert list(rows_of(vip, "vip")) == ["oleh"]
    assert rows_of(vip, "vip")["oleh"]["first_contacts"] == 0


def test_the_board_is_a_fixed_number_of_queries_whatever_the_team(history: Leadflow) -> None:
    for n in range(30):
        create_manager(history, ManagerIn(key=f"extra{n}", name=f"Extra {n}", team="sales"), NOW, who=SYSTEM)
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        statements.append(statement)

    board.team_board(history, NOW, KYIV, who=SYSTEM)  # warm routing's cache of who the managers are
    event.listen(history.engine, "before_cursor_execute", count)
    try:
        found = board.team_board(history, NOW, KYIV, who=SYSTEM)
    finally:
        event.remove(history.engine, "before_cursor_execute", count)
    assert len(rows_of(found, "sales")) == 35
    assert len(statements) <= 5, statements


def test_feed_unassigned_and_junk_read_what_happened(history: Leadflow) -> None:
    feed = board.live_feed(history, who=head_of(history, "sales"))
    escalations = [e for e in feed if e["type"] == "lead.escalated"]
    assert [(e["lead_id"], e["from_name"], e["to_name"]) for e in escalations] == [(5, "Anna", "Bohdan"),
                                                                                   (6, "Bohdan", "Anna")]  # fmt: skip
    assert escalations[0]["reason"].startswith("no first contact by Anna within 20m")
    assert [e["event_id"] for e in feed] == sorted((e["event_id"] for e in feed), reverse=True)
    assert board.live_feed(history, who=head_of(history, "vip")) == []
    assert board.unassigned_leads(history, who=SYSTEM) == {"items": [], "total": 0}
    assert board.junk_leads(history, who=SYSTEM)["total"] == 0
