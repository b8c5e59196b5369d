"""A small report for the tests of the reports' renderings (API, CLI, exports, the desk's page): it reads real rows
of the real database through the same Window every report uses, and has a column of every kind.

Registered in REPORTS only by the tests that use it (`registered`), under the name "arrivals".
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from leadflow.core.stats import median, share
from leadflow.services.context import Leadflow
from leadflow.services.reports import REPORTS, Spec
from leadflow.services.reports.query import Window
from leadflow.services.reports.shape import Chart, Col, Report, Table
from leadflow.store.tables import leads

NAME = "arrivals"
REAL_REPORTS = [name for name in REPORTS if name != NAME]  # the reports leadflow ships
COLUMNS = [
    Col("channel", "Channel", "text"),
    Col("leads", "Leads", "int"),
    Col("contacted", "Contacted", "int"),
    Col("contact_rate", "Contact rate", "percent"),
    Col("median_response", "Median first response", "seconds"),
    Col("per_day", "Leads per day", "number"),
    Col("revenue", "Revenue", "money"),
    Col("first_day", "First day", "date"),
    Col("last_at", "Last arrival", "datetime"),
]


def build(conn: Connection, app: Leadflow, window: Window, now: datetime) -> Report:
    """Leads that arrived in the period by channel: how many, how many were contacted and how fast, the revenue of
    those won."""
    rows = conn.execute(
        select(leads.c.channel, func.count(), func.count(leads.c.first_contact_at), func.sum(leads.c.won_amount),
               func.min(leads.c.created_at), func.max(leads.c.created_at))
        .where(*window.created_in()).group_by(leads.c.channel).order_by(func.count().desc(), leads.c.channel)
    ).all()  # fmt: skip
    waits: dict[str, list[float]] = {}
    for channel, seconds in conn.execute(select(leads.c.channel, leads.c.response_seconds)
                                         .where(*window.created_in(), leads.c.response_seconds.is_not(None))):  # fmt: skip
        waits.setdefault(channel, []).append(seconds)
    table = Table("by_channel", "Leads by channel", COLUMNS, note="Leads that arrived in the period, by channel.")
    days = len(window.days)
    for channel, count, contacted, revenue, first, last in rows:
        table.rows.append({"channel": channel, "leads": count, "contacted": contacted,
                           "contact_rate": share(contacted, count), "median_response": median(waits.get(channel, [])),
                           "per_day": count / days, "revenue": Decimal(revenue) if revenue is not None else None,
                           "first_day": window.local_day(first), "last_at": last, "_count": count})  # fmt: skip
    total = sum(r["leads"] for r in table.rows)
    notes = ["A channel with no leads in the period is not listed."]
    chart = Chart("leads", "Leads by channel", "bar", [r["channel"] for r in table.rows],
                  [{"label": "Leads", "data": [r["leads"] for r in table.rows]}])  # fmt: skip
    empty = Table("nothing", "An empty table", [Col("what", "What", "text")], note="Nothing is counted here.")
    return Report(NAME, "Arrivals", window.echo(), now, summary={"leads": total, "channels": len(table.rows)},
                  tables=[table, empty], charts=[chart], notes=notes)  # fmt: skip


SPEC = Spec(NAME, "Arrivals", "how many leads came through each channel", build)


@contextmanager
def registered() -> Iterator[Spec]:
    """The sample in REPORTS for the length of a test."""
    REPORTS[NAME] = SPEC
    try:
        yield SPEC
    finally:
        REPORTS.pop(NAME, None)


def section_titles(text: str) -> list[str]:
    """The first line of each section of a CSV of every table: the table's title."""
    rows = list(csv.reader(io.StringIO(text)))
    return [rows[i][0] for i in range(len(rows)) if (i == 0 or not rows[i - 1]) and rows[i]]
