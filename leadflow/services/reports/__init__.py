"""The reports: each a function of (connection, rules, window, clock) returning plain data (shape.py); the API,
the CLI, the exports, the web desk and the daily digest render the same `Report`. Every figure is defined in
docs/reports.md. Reports read recorded rows only (leads, lead_stages, assignments, activities, events): nothing is
recomputed from the rules as they are now."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Connection

from leadflow.core.errors import NotFound
from leadflow.core.policy import Principal
from leadflow.services.context import Leadflow
from leadflow.services.reports import channels, forecast, funnel, handoffs, kpis, load, speed
from leadflow.services.reports.query import ReportQuery, Window, resolve
from leadflow.services.reports.shape import Report
from leadflow.store.db import READ_ONLY

Build = Callable[[Connection, Leadflow, Window, datetime], Report]


@dataclass(frozen=True, slots=True)
class Spec:
    name: str
    title: str
    about: str  # one line: what it answers
    build: Build


REPORTS: dict[str, Spec] = {
    s.name: s
    for s in (
        Spec("funnel", "Funnel", "how leads move through the statuses, where they drop and stall", funnel.build),
        Spec("managers", "Manager KPIs", "each manager's speed, conversion, sales and losses; the leaderboard",
             kpis.build),
        Spec("speed", "Speed-to-lead effect", "conversion by first-response band against the seed's prior",
             speed.build),
        Spec("load", "Load evenness", "leads per manager per day against capacity; spread; who was skipped",
             load.build),
        Spec("handoffs", "Hand-off losses", "leads lost between hands: desk, escalations, no owner, other caller",
             handoffs.build),
        Spec("channels", "Channel quality", "volume, junk, duplicates, contact, conversion, revenue, cost per lead",
             channels.build),
        Spec("forecast", "Plan and forecast", "planned against actual per day; the month-end forecast",
             forecast.build),
    )
}  # fmt: skip


def run_report(app: Leadflow, name: str, query: ReportQuery, now: datetime, *, who: Principal) -> Report:
    """Report `name` for `who` (scoped by their role): 404 for an unknown name, 422 for bad filters, 403 outside
    their scope."""
    spec = REPORTS.get(name)
    if spec is None:
        raise NotFound(f"there is no report '{name}': the reports are {', '.join(REPORTS)}")
    # A read-only transaction: on SQLite it takes no write lock, so a long report never holds up intake.
    with app.engine.connect().execution_options(**READ_ONLY) as conn:
        if conn.dialect.name == "postgresql":
            # A report's few big aggregates would first be compiled to machine code (JIT), which takes longer than
            # running them (seconds on a year of leads). For this transaction only.
            conn.exec_driver_sql("SET LOCAL jit = off")
        window = resolve(conn, query, who, app.rules.default_timezone, now)
        return spec.build(conn, app, window, now)
