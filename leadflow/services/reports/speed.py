"""Speed-to-lead effect: the conversion of the period's leads by how fast they were first contacted, against the
prior of seed 001, and what the slower answers cost. Every figure is defined in docs/reports.md (Speed-to-lead).

One query: the cohort (ix_leads_created_at) grouped in SQL by the response band each lead was given at its first
contact, counting the leads, the won ones and their amounts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

from sqlalchemy import case, func, select
from sqlalchemy.engine import Connection

from leadflow.core.sla import BANDS, LATE_BAND
from leadflow.core.stats import share, wilson
from leadflow.services.context import Leadflow
from leadflow.services.leads import OUTSIDE_FUNNEL
from leadflow.services.reports.query import Window
from leadflow.services.reports.shape import CENT, N_, Chart, Col, Note, Report, Table, joined, money, note, number
from leadflow.store.tables import leads

BAND_ORDER = (*(label for _, label in BANDS), LATE_BAND)  # ≤20m, ≤3h, ≤12h, >12h
# Seed 001: what each band does to conversion against answering within 12 hours (the reference).
PRIOR = dict(zip(BAND_ORDER, (0.30, 0.10, 0.0, -0.30), strict=True))
FASTEST, REFERENCE = BAND_ORDER[0], BAND_ORDER[2]
NOT_CONTACTED = N_("not contacted")
FEW = 30  # below this many leads a band's interval is wide


@dataclass(frozen=True, slots=True)
class Band:
    label: str
    leads: int
    won: int

    @property
    def conversion(self) -> Fraction | None:
        return Fraction(self.won, self.leads) if self.leads else None


def delay_cost(bands: dict[str, Band]) -> Fraction | None:
    """The deals the slower bands would have added converting at the fastest band's rate: the sum over the slower
    bands of leads x max(fastest conversion - band conversion, 0). None when no lead was answered that fast."""
    best = bands[FASTEST].conversion
    if best is None:
        return None
    return sum((b.leads * max(best - (b.conversion or 0), Fraction(0)) for b in (bands[k] for k in BAND_ORDER[1:])),
               Fraction(0))  # fmt: skip


def lift(conversion: Fraction | None, reference: Fraction | None) -> float | None:
    """conversion / reference - 1: +0.3 is 30% better than the reference band. None when either is unknown or 0."""
    if conversion is None or not reference:
        return None
    return float(conversion / reference - 1)


COLUMNS = [
    Col("band", N_("First response"), "text"),
    Col("leads", N_("Leads")),
    Col("share", N_("Of the leads"), "percent"),
    Col("won", N_("Won")),
    Col("conversion", N_("Conversion"), "percent"),
    Col("low", N_("95% from"), "percent"),
    Col("high", N_("95% to"), "percent"),
    Col("lift", N_("Against ≤12h"), "percent"),
    Col("prior", N_("Seed prior"), "percent"),
]


def build(conn: Connection, app: Leadflow, window: Window, now: datetime) -> Report:
    won_statuses = [s.key for s in app.rules.funnel if s.outcome == "won"]
    won = leads.c.status.in_(won_statuses)
    band = case((leads.c.first_contact_at.is_(None), NOT_CONTACTED), else_=leads.c.response_band)
    query = (
        select(band, func.count(), func.sum(case((won, 1), else_=0)),
               func.sum(case((won, leads.c.won_amount), else_=None)),
               func.sum(case(((won & leads.c.won_amount.is_not(None)), 1), else_=0)))
        .where(*window.created_in(), leads.c.status.not_in(OUTSIDE_FUNNEL))
        .group_by(band)
    )  # fmt: skip
    bands = {k: Band(k, 0, 0) for k in (*BAND_ORDER, NOT_CONTACTED)}
    amount, priced, unbanded, won_total = Decimal(0), 0, 0, 0
    for label, n, n_won, total, n_priced in conn.execute(query):
        if label in bands:
            bands[label] = Band(label, n, int(n_won or 0))
        else:
            unbanded += n  # contacted before bands were recorded
        won_total += int(n_won or 0)
        if total is not None:
            amount += Decimal(str(total)).quantize(CENT)  # SQLite sums money as a float
        priced += int(n_priced or 0)

    cohort = sum(b.leads for b in bands.values()) + unbanded
    reference = bands[REFERENCE].conversion
    rows = []
    for b in bands.values():
        interval = wilson(b.won, b.leads)
        conversion = b.conversion
        rows.append({"band": b.label, "leads": b.leads, "share": share(b.leads, cohort), "won": b.won,
                     "conversion": None if conversion is None else float(conversion),
                     "low": interval.low if interval else None, "high": interval.high if interval else None,
                     "lift": lift(conversion, reference), "prior": PRIOR.get(b.label)})  # fmt: skip

    extra = delay_cost(bands)
    average = Fraction(amount) / priced if priced else None
    revenue = None if extra is None or average is None else _money(extra * average)
    fastest = bands[FASTEST].conversion
    summary = {
        "cohort": cohort, "contacted": cohort - bands[NOT_CONTACTED].leads, "won": won_total,
        "conversion": share(won_total, cohort), "fastest_conversion": None if fastest is None else float(fastest),
        "delay_cost_deals": None if extra is None else float(extra),
        "average_check": None if average is None else _money(average), "delay_cost_revenue": revenue,
    }  # fmt: skip
    notes = _notes(bands, extra, average, unbanded)
    about = note("Leads that arrived from {first} to {last} ({zone}), by how long their first contact took; won: the "
                 "lead is in a won status now. The prior is seed 001's effect of each band against answering within "
                 "12 hours.", first=window.first_day, last=window.last_day, zone=window.zone.key)  # fmt: skip
    # The prior as a conversion: the ≤12h band's, moved by each band's effect (at most 100%).
    prior_line = [None if reference is None or b.label not in PRIOR else min(float(reference) * (1 + PRIOR[b.label]),
                                                                             1.0) for b in bands.values()]  # fmt: skip
    prior = {"label": N_("Seed prior: the ≤12h conversion with each band's effect"), "data": prior_line}
    chart = Chart("conversion", N_("Conversion by first response"), "bar", [b.label for b in bands.values()],
                  [{"label": N_("Conversion"), "data": [r["conversion"] for r in rows]}, prior])  # fmt: skip
    return Report("speed", N_("Speed-to-lead effect"), window.echo(), now, summary,
                  [Table("bands", N_("Conversion by first response"), COLUMNS, rows, about)], [chart], notes)  # fmt: skip


def _notes(bands: dict[str, Band], extra: Fraction | None, average: Fraction | None, unbanded: int) -> list[str]:
    notes: list[str] = []
    if extra is None:
        notes.append(note("No lead was first contacted within {fastest}: what slower answers cost is unknown.",
                          fastest=FASTEST[1:]))  # fmt: skip
    elif average is not None:
        notes.append(note("Had every lead answered later converted as the {band} band did: {deals} more deals, "
                          "{revenue} at the average check of {check}.", band=FASTEST, deals=number(float(extra)),
                          revenue=money(_money(extra * average)), check=money(_money(average))))  # fmt: skip
    else:
        notes.append(note("Had every lead answered later converted as the {band} band did: {deals} more deals.",
                          band=FASTEST, deals=number(float(extra))))  # fmt: skip
    few = [Note("{band} ({count})", {"band": b.label, "count": b.leads}, translated=False) for b in bands.values()
           if 0 < b.leads < FEW]  # fmt: skip
    if few:
        notes.append(note("Fewer than {count} leads in {bands}: the interval is wide, read the conversion as a rough "
                          "guide.", count=FEW, bands=joined(few, ", ")))  # fmt: skip
    if unbanded:
        notes.append(note("{count} contacted leads have no recorded band (contacted before bands were kept): they "
                          "count in the cohort only.", count=unbanded))  # fmt: skip
    return notes


def _money(value: Fraction) -> Decimal:
    return (Decimal(value.numerator) / Decimal(value.denominator)).quantize(CENT, rounding=ROUND_HALF_UP)
