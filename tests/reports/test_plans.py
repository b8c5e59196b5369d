"""Sales plans: the rules file's stand every month, one set for a month stands over them figure by figure, and who
may set and see which."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from leadflow.core.errors import Forbidden, InvalidInput
from leadflow.core.policy import SYSTEM, Grant, Principal
from leadflow.services.context import Leadflow
from leadflow.services.reports.plans import list_plans, set_plan
from leadflow.store.tables import events, managers, sales_plans, teams

RULES = """
default_timezone: Europe/Kyiv
teams:
  - {key: kyiv, name: Kyiv, timezone: Europe/Kyiv, head: iryna}
  - {key: ny, name: New York, timezone: America/New_York, head: mike}
managers:
  - {key: olena, name: Olena, team: kyiv}
  - {key: taras, name: Taras, team: kyiv}
  - {key: iryna, name: Iryna, team: kyiv}
  - {key: ann, name: Ann, team: ny}
  - {key: mike, name: Mike, team: ny}
reports:
  plans:
    - {team: kyiv, deals_per_day: 4, revenue_per_month: 400000}
    - {manager: olena, deals_per_day: 1}
    - {team: ny, deals_per_day: 2.5}
"""
NOW = datetime(2026, 3, 5, 12, tzinfo=UTC)


@pytest.fixture
def app(make_app: Callable[[str], Leadflow]) -> Leadflow:
    return make_app(RULES)


def ids(app: Leadflow) -> dict[str, int]:
    with app.engine.connect() as conn:
        found = {f"team:{k}": i for k, i in conn.execute(select(teams.c.key, teams.c.id))}
        found |= {f"manager:{k}": i for k, i in conn.execute(select(managers.c.key, managers.c.id))}
    return found


def head_of(app: Leadflow, team: str) -> Principal:
    return Principal("user", f"head of {team}", id=90, grants=(Grant("head", ids(app)[f"team:{team}"], team),))


def manager(app: Leadflow, key: str, team: str = "kyiv") -> Principal:
    return Principal("user", key, id=91, grants=(Grant("manager", ids(app)[f"team:{team}"], team),),
                     manager_id=ids(app)[f"manager:{key}"])  # fmt: skip


def by_scope(plans: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {p["scope"]: p for p in plans}


def test_the_rules_plans_stand_every_month(app: Leadflow) -> None:
    plans = list_plans(app, "2026-02", who=SYSTEM)
    assert [p["scope"] for p in plans] == ["team:kyiv", "team:ny", "manager:olena"]  # teams first
    kyiv, ny, olena = plans
    assert (kyiv["name"], kyiv["deals_per_day"], kyiv["revenue_per_month"]) == ("Kyiv", 4, 400000)
    assert kyiv["deals_in_month"] == 4 * 28  # February 2026 has 28 days
    assert ny["deals_in_month"] == Decimal("2.5") * 28 == 70
    assert (olena["manager"], olena["deals_per_day"], olena["revenue_per_month"]) == ("olena", 1, None)
    assert {p["source"] for p in plans} == {"rules"} and all(p["set_by"] is None for p in plans)


def test_a_plan_set_for_a_month_stands_over_the_rules_figure_by_figure(app: Leadflow) -> None:
    shown = set_plan(app, "team:kyiv", "2026-03", Decimal("5"), None, NOW, who=SYSTEM)
    # Deals are March's own; the revenue is still the rules file's.
    assert (shown["deals_per_day"], shown["revenue_per_month"]) == (5, 400000)
    assert (shown["source"], shown["set_by"], shown["from_rules"]) == ("set", "system:leadflow", ["revenue_per_month"])
    assert shown["deals_in_month"] == 5 * 31

    later = datetime(2026, 3, 6, tzinfo=UTC)
    again = set_plan(app, "team:kyiv", "2026-03", None, Decimal("450000.50"), later, who=SYSTEM)
    assert (again["deals_per_day"], again["revenue_per_month"]) == (5, Decimal("450000.50"))  # deals kept
    assert again["from_rules"] == [] and again["set_at"] == later
    # A JSON body's numbers are taken as they are written.
    ny = set_plan(app, "team:ny", "2026-05", 1.5, 20000, NOW, who=SYSTEM)  # type: ignore[arg-type]
    assert (ny["deals_per_day"], ny["revenue_per_month"]) == (Decimal("1.5"), Decimal("20000"))
    taras = set_plan(app, "manager:taras", "2026-03", None, Decimal("50000"), NOW, who=SYSTEM)
    assert (taras["deals_per_day"], taras["revenue_per_month"], taras["name"]) == (None, 50000, "Taras")

    march, february = by_scope(list_plans(app, "2026-03", who=SYSTEM)), by_scope(list_plans(app, "2026-02", who=SYSTEM))
    assert set(march) == {"team:kyiv", "team:ny", "manager:olena", "manager:taras"}
    assert march["team:kyiv"]["deals_per_day"] == 5 and march["team:ny"]["source"] == "rules"
    assert february["team:kyiv"]["deals_per_day"] == 4 and "manager:taras" not in february
    with app.engine.connect() as conn:
        rows = conn.execute(select(sales_plans.c.scope, sales_plans.c.deals_per_day).order_by(sales_plans.c.scope))
        assert [tuple(r) for r in rows] == [("manager:taras", None), ("team:kyiv", 5), ("team:ny", Decimal("1.5"))]
        logged = conn.execute(select(events.c.data, events.c.actor).where(events.c.type == "plan.set")
                              .order_by(events.c.id)).all()  # fmt: skip
    assert [d for d, _ in logged] == [
        {"scope": "team:kyiv", "month": "2026-03", "deals_per_day": "5"},
        {"scope": "team:kyiv", "month": "2026-03", "revenue_per_month": "450000.50"},
        {"scope": "team:ny", "month": "2026-05", "deals_per_day": "1.5", "revenue_per_month": "20000"},
        {"scope": "manager:taras", "month": "2026-03", "revenue_per_month": "50000"},
    ]
    assert {a for _, a in logged} == {"system:leadflow"}


@pytest.mark.parametrize(
    ("scope", "month", "deals", "revenue", "fields"),
    [
        ("kyiv", "2026-03", Decimal(1), None, ["scope"]),
        ("team:lviv", "2026-03", Decimal(1), None, ["scope"]),
        ("manager:nobody", "2026-03", Decimal(1), None, ["scope"]),
        ("team:kyiv", "2026-13", Decimal(1), None, ["month"]),
        ("team:kyiv", "March", Decimal(1), None, ["month"]),
        ("team:kyiv", "2026-03", Decimal(-1), None, ["deals_per_day"]),
        ("team:kyiv", "2026-03", Decimal("1.005"), None, ["deals_per_day"]),
        ("team:kyiv", "2026-03", None, Decimal("1e17"), ["revenue_per_month"]),
        ("team:kyiv", "2026-03", Decimal("NaN"), None, ["deals_per_day"]),
        ("team:kyiv", "2026-03", None, None, ["deals_per_day"]),
        ("team:kyiv", "2026-03", "lots", None, ["deals_per_day"]),
        ("nope", "2026-3", Decimal(-2), Decimal(-3), ["scope", "month", "deals_per_day", "revenue_per_month"]),
    ],
)
def test_bad_input_names_each_field(
    app: Leadflow, scope: str, month: str, deals: Decimal | None, revenue: Decimal | None, fields: list[str]
) -> None:
    with pytest.raises(InvalidInput) as refused:
        set_plan(app, scope, month, deals, revenue, NOW, who=SYSTEM)
    assert [p.field for p in refused.value.problems] == fields
    with app.engine.connect() as conn:
        assert conn.execute(select(sales_plans)).first() is None


def test_a_head_sets_plans_for_their_own_team_and_its_managers_only(app: Leadflow) -> None:
    head = head_of(app, "kyiv")
    assert set_plan(app, "team:kyiv", "2026-04", Decimal(3), None, NOW, who=head)["set_by"] == "user:head of kyiv"
    assert set_plan(app, "manager:olena", "2026-04", Decimal(2), None, NOW, who=head)["deals_per_day"] == 2
    for scope in ("team:ny", "manager:ann"):
        with pytest.raises(Forbidden, match="not in a team of yours"):
            set_plan(app, scope, "2026-04", Decimal(1), None, NOW, who=head)
    for who in (manager(app, "olena"), Principal("key", "dashboard", scope="read")):
        with pytest.raises(Forbidden, match="may not set sales plans"):
            set_plan(app, "manager:olena", "2026-04", Decimal(9), None, NOW, who=who)
    assert set_plan(app, "team:ny", "2026-04", Decimal(1), None, NOW, who=Principal("key", "crm", scope="write"))[
        "set_by"] == "key:crm"  # fmt: skip
    assert by_scope(list_plans(app, "2026-04", who=SYSTEM))["manager:olena"]["deals_per_day"] == 2


def test_plans_are_seen_as_the_reports_are(app: Leadflow) -> None:
    set_plan(app, "manager:ann", "2026-03", Decimal(1), None, NOW, who=SYSTEM)
    assert [p["scope"] for p in list_plans(app, "2026-03", who=head_of(app, "kyiv"))] == ["team:kyiv",
                                                                                          "manager:olena"]  # fmt: skip
    assert [p["scope"] for p in list_plans(app, "2026-03", who=head_of(app, "ny"))] == ["team:ny", "manager:ann"]
    assert [p["scope"] for p in list_plans(app, "2026-03", who=manager(app, "olena"))] == ["manager:olena"]
    assert list_plans(app, "2026-03", who=manager(app, "taras")) == []
    assert len(list_plans(app, "2026-03", who=Principal("key", "dashboard", scope="read"))) == 4
    with pytest.raises(Forbidden):
        list_plans(app, "2026-03", who=Principal("user", "desk", grants=(Grant("desk"),)))
    with pytest.raises(InvalidInput) as refused:
        list_plans(app, "03/2026", who=SYSTEM)
    assert refused.value.problems[0].field == "month"
