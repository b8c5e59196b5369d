"""Sales plans: deals a day and revenue a month, for a team or for one manager.

The rules file's `reports.plans` stand every month. A plan set for one month (by API or the CLI) stands over the
rules file's for that scope and month, figure by figure: a figure it does not give is the rules file's. The
forecast report reads the plans in force through `plans_in_force`.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from leadflow.core.errors import FieldProblem, Forbidden, InvalidInput
from leadflow.core.policy import Action, Principal, can, needed_for, report_scope
from leadflow.core.rules import RulesFile
from leadflow.services.access import guard_team
from leadflow.services.context import Leadflow
from leadflow.services.reports.shape import CENT
from leadflow.store.db import READ_ONLY
from leadflow.store.events import append_events, new_event
from leadflow.store.tables import managers, sales_plans, teams

Kind = Literal["team", "manager"]
FIGURES = ("deals_per_day", "revenue_per_month")
# The columns' sizes (Numeric(10, 2) and Numeric(18, 2)): a figure past them is refused, not cut.
MAX_FIGURE = {"deals_per_day": Decimal("99999999.99"), "revenue_per_month": Decimal("9999999999999999.99")}
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True, slots=True)
class PlanInForce:
    """One scope's plan for one month, and where each figure comes from."""

    kind: Kind
    key: str
    month: str
    deals_per_day: Decimal | None
    revenue_per_month: Decimal | None
    source: Literal["rules", "set"]
    set_by: str | None = None
    set_at: datetime | None = None
    from_rules: tuple[str, ...] = ()  # figures of a set plan that are the rules file's

    @property
    def scope(self) -> str:
        return f"{self.kind}:{self.key}"

    @property
    def deals_in_month(self) -> Decimal | None:
        """deals_per_day x the days of the calendar month."""
        if self.deals_per_day is None:
            return None
        return self.deals_per_day * days_in_month(self.month)


def month_of(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def days_in_month(month: str) -> int:
    first = parse_month(month)
    return calendar.monthrange(first.year, first.month)[1]


def parse_month(month: str) -> date:
    """The first day of 'YYYY-MM'; InvalidInput naming the field `month` otherwise."""
    found = _MONTH.match(month.strip()) if isinstance(month, str) else None
    if found is None or not 1 <= int(found.group(2)) <= 12 or not 2000 <= int(found.group(1)) <= 2999:
        raise InvalidInput.one("month", f"'{month}' is not a month: write it as YYYY-MM, such as 2026-03")
    return date(int(found.group(1)), int(found.group(2)), 1)


def plans_in_force(conn: Connection, rules: RulesFile, month: str) -> dict[str, PlanInForce]:
    """Every plan in force in `month`, by scope ("team:kyiv"): the rules file's, with the month's own over them."""
    found: dict[str, PlanInForce] = {}
    for plan in rules.reports.plans:  # a later plan for the same scope stands over an earlier one
        kind: Kind = "team" if plan.team is not None else "manager"
        key = plan.team if plan.team is not None else plan.manager
        assert key is not None  # the rules' Plan names one of the two
        found[f"{kind}:{key}"] = PlanInForce(kind, key, month, plan.deals_per_day, plan.revenue_per_month, "rules")
    for row in conn.execute(select(sales_plans).where(sales_plans.c.month == month)):
        kind_, _, key_ = row.scope.partition(":")
        standing = found.get(row.scope)
        own = {"deals_per_day": row.deals_per_day, "revenue_per_month": row.revenue_per_month}
        figures = {name: own[name] if own[name] is not None else getattr(standing, name, None) for name in FIGURES}
        from_rules = tuple(name for name in FIGURES if own[name] is None and figures[name] is not None)
        found[row.scope] = PlanInForce("team" if kind_ == "team" else "manager", key_, month,
                                       figures["deals_per_day"], figures["revenue_per_month"], "set", row.actor,
                                       row.updated_at, from_rules)  # fmt: skip
    return found


def set_plan(
    app: Leadflow, scope: str, month: str, deals_per_day: Decimal | None, revenue_per_month: Decimal | None,
    now: datetime, *, who: Principal,
) -> dict[str, Any]:  # fmt: skip
    """Set the plan of a team ("team:<key>") or a manager ("manager:<key>") for one month (YYYY-MM); a figure left
    out (None) stays as it was set before, else the rules file's. A head sets plans for their own teams and their
    managers only. Returns the plan now in force."""
    if not can(who, Action.REPORTS_PLAN):
        raise Forbidden(f"{who.label} may not set sales plans: it takes {needed_for(Action.REPORTS_PLAN)}")
    problems: list[FieldProblem] = []
    kind, key = _scope(scope, problems)
    first: date | None = None
    try:
        first = parse_month(month)
    except InvalidInput as exc:
        problems += exc.problems
    given = {"deals_per_day": _decimal(deals_per_day), "revenue_per_month": _decimal(revenue_per_month)}
    for name, value in given.items():
        problems += _figure_problems(name, value)
    if deals_per_day is None and revenue_per_month is None:
        problems.append(FieldProblem("deals_per_day", "give deals_per_day, revenue_per_month or both"))
    with app.engine.begin() as conn:
        team_id = _team_of(conn, kind, key, problems) if kind is not None else None
        if problems:
            raise InvalidInput(problems)
        assert kind is not None and key is not None and first is not None
        guard_team(who, Action.REPORTS_PLAN, team_id, f"{kind} '{key}'")
        name = month_of(first)
        insert = (postgresql if conn.dialect.name == "postgresql" else sqlite).insert
        row = {"scope": f"{kind}:{key}", "month": name, **given, "updated_at": now, "actor": who.label}
        stmt = insert(sales_plans).values(**row)
        changes = {k: stmt.excluded[k] for k in ("updated_at", "actor", *(f for f in FIGURES if given[f] is not None))}
        conn.execute(stmt.on_conflict_do_update(index_elements=["scope", "month"], set_=changes))
        append_events(conn, [new_event(None, "plan.set", now, who, scope=f"{kind}:{key}", month=name,
                                       **{f: str(v) for f, v in given.items() if v is not None})])  # fmt: skip
        plan = plans_in_force(conn, app.rules, name)[f"{kind}:{key}"]
        return _shown(plan, _names(conn))


def list_plans(app: Leadflow, month: str, *, who: Principal) -> list[dict[str, Any]]:
    """Every plan in force in `month` that `who` may see (as the reports scope them), teams first, each saying where
    it comes from: the rules file, or set by whom and when."""
    scope = report_scope(who)
    if scope is None:
        raise Forbidden(f"{who.label} may not read sales plans: it takes {needed_for(Action.REPORTS_READ)}")
    name = month_of(parse_month(month))
    with app.engine.connect().execution_options(**READ_ONLY) as conn:
        plans = plans_in_force(conn, app.rules, name)
        names = _names(conn)
    shown = []
    for plan in plans.values():
        team_id = names.team_of.get(plan.scope)
        if scope.manager_id is not None:
            if plan.kind != "manager" or names.manager_ids.get(plan.key) != scope.manager_id:
                continue
        elif scope.team_ids is not None and team_id not in scope.team_ids:
            continue
        shown.append(_shown(plan, names))
    return sorted(shown, key=lambda p: (p["manager"] is not None, p["scope"]))


@dataclass(frozen=True, slots=True)
class _Names:
    shown: dict[str, str]  # scope -> the team's or manager's name
    team_of: dict[str, int]  # scope -> the team it belongs to
    manager_ids: dict[str, int]  # manager key -> id


def _names(conn: Connection) -> _Names:
    shown: dict[str, str] = {}
    team_of: dict[str, int] = {}
    manager_ids: dict[str, int] = {}
    for t in conn.execute(select(teams.c.id, teams.c.key, teams.c.name)):
        shown[f"team:{t.key}"], team_of[f"team:{t.key}"] = t.name, t.id
    for m in conn.execute(select(managers.c.id, managers.c.key, managers.c.name, managers.c.team_id)):
        shown[f"manager:{m.key}"], team_of[f"manager:{m.key}"] = m.name, m.team_id
        manager_ids[m.key] = m.id
    return _Names(shown, team_of, manager_ids)


def _shown(plan: PlanInForce, names: _Names) -> dict[str, Any]:
    return {"scope": plan.scope, "team": plan.key if plan.kind == "team" else None,
            "manager": plan.key if plan.kind == "manager" else None, "name": names.shown.get(plan.scope),
            "month": plan.month, "deals_per_day": plan.deals_per_day, "revenue_per_month": plan.revenue_per_month,
            "deals_in_month": plan.deals_in_month, "source": plan.source, "set_by": plan.set_by,
            "set_at": plan.set_at, "from_rules": list(plan.from_rules)}  # fmt: skip


def _scope(scope: str, problems: list[FieldProblem]) -> tuple[Kind | None, str | None]:
    kind, _, key = scope.partition(":") if isinstance(scope, str) else ("", "", "")
    if kind not in ("team", "manager") or not key.strip():
        problems.append(FieldProblem("scope", f"'{scope}' is not a plan's scope: write team:<key> or manager:<key>"))
        return None, None
    return ("team" if kind == "team" else "manager"), key.strip()


def _decimal(value: object) -> Any:
    """A number as a Decimal (a JSON body may give an int or a float); anything else as it is, to be refused."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return Decimal(str(value))
    return value


def _figure_problems(name: str, value: Decimal | None) -> list[FieldProblem]:
    if value is None:
        return []
    if not isinstance(value, Decimal) or not value.is_finite():
        return [FieldProblem(name, f"{name} must be a number")]
    if value < 0:
        return [FieldProblem(name, f"{name} cannot be negative")]
    if value > MAX_FIGURE[name]:
        return [FieldProblem(name, f"{name} can be at most {MAX_FIGURE[name]}")]
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -2 and value != value.quantize(CENT):
        return [FieldProblem(name, f"{name} has at most two decimal places")]
    return []


def _team_of(conn: Connection, kind: Kind, key: str | None, problems: list[FieldProblem]) -> int | None:
    """The team a plan's scope belongs to; a problem naming `scope` when the team or manager does not exist."""
    table = teams if kind == "team" else managers
    column = teams.c.id if kind == "team" else managers.c.team_id
    team_id: int | None = conn.execute(select(column).where(table.c.key == key)).scalar()
    if team_id is None:
        problems.append(FieldProblem("scope", f"{kind} '{key}' does not exist"))
    return team_id
