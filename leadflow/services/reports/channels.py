"""Channel quality: what each channel, and each source and UTM campaign within it, brought in the period: how many
leads, how many junk or duplicates, how many were reached and won, the revenue, and what they cost where the
advertising spend is known (services/reports/costs.py). docs/reports.md (Channel quality) defines each figure.

Spend is divided among the leads it paid for. A spend line (channel, source, campaign; '' for any) pays for every
lead of the period that matches it, whichever team got it: each such lead carries an equal part. A group's cost is
the sum of the parts its leads carry, so a line that matches several groups is counted once, and a head who sees one
team sees that team's part of a campaign shared with others.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Numeric, case, func, select
from sqlalchemy.engine import Connection

from leadflow.core.stats import share
from leadflow.services.context import Leadflow
from leadflow.services.reports.query import Window
from leadflow.services.reports.shape import CENT, N_, Chart, Col, Note, Report, Table, joined, money, note
from leadflow.store.tables import channel_costs, leads

MAX_GROUPS = 500  # the channel + source + campaign table lists the largest groups; the channel totals hold all
MAX_UNMATCHED = 10  # spend lines that paid for no lead, named in the notes

Group = tuple[str, str | None, str | None]  # channel, source, utm_campaign as the lead has them
Key = tuple[str, str, str]  # a spend line's channel, source, campaign; '' is any


@dataclass
class Figures:
    """The counts of one group of leads, and what they cost (None: no spend line matched them)."""

    leads: int = 0
    junk: int = 0
    duplicates: int = 0
    contacted: int = 0
    won: int = 0
    revenue: Decimal = field(default_factory=Decimal)
    cost: Decimal | None = None

    def add(self, other: Figures) -> None:
        self.leads += other.leads
        self.junk += other.junk
        self.duplicates += other.duplicates
        self.contacted += other.contacted
        self.won += other.won
        self.revenue += other.revenue
        if other.cost is not None:
            self.cost = (self.cost or Decimal(0)) + other.cost

    def row(self) -> dict[str, Any]:
        cost = _cents(self.cost)
        return {
            "leads": self.leads,
            "junk_share": share(self.junk, self.leads),
            "duplicate_share": share(self.duplicates, self.leads),
            "contact_rate": share(self.contacted, self.leads),
            "conversion": share(self.won, self.leads),
            "won": self.won,
            "revenue": _cents(self.revenue),
            "cost": cost,
            "cost_per_lead": _cents(self.cost / self.leads) if self.cost is not None and self.leads else None,
            "cost_per_sale": _cents(self.cost / self.won) if self.cost is not None and self.won else None,
        }


COLUMNS = [
    Col("leads", N_("Leads")),
    Col("junk_share", N_("Junk"), "percent"),
    Col("duplicate_share", N_("Duplicates"), "percent"),
    Col("contact_rate", N_("Contacted"), "percent"),
    Col("conversion", N_("Conversion"), "percent"),
    Col("won", N_("Won")),
    Col("revenue", N_("Revenue"), "money"),
    Col("cost", N_("Cost"), "money"),
    Col("cost_per_lead", N_("Cost per lead"), "money"),
    Col("cost_per_sale", N_("Cost per sale"), "money"),
]


def build(conn: Connection, app: Leadflow, window: Window, now: datetime) -> Report:
    won = sorted(s.key for s in app.rules.funnel if s.outcome == "won")
    groups = _groups(conn, window, won)
    everyone = _volumes(conn, window) if _narrowed(window) else {g: f.leads for g, f in groups.items()}
    spend = _spend(conn, window)
    unmatched = attribute(spend, everyone, groups)
    by_channel: dict[str, Figures] = {}
    total = Figures()
    for (channel, _, _), figures in groups.items():
        by_channel.setdefault(channel, Figures()).add(figures)
        total.add(figures)
    channels = sorted(by_channel.items(), key=lambda kv: (-kv[1].leads, kv[0]))
    details = sorted(groups.items(), key=lambda kv: (-kv[1].leads, kv[0][0], kv[0][1] or "", kv[0][2] or ""))
    notes: list[str] = [note("Leads are counted by when they arrived, in {zone} days; requests merged into an open "
                             "lead are left out. Spend is of the same days, divided equally among every lead it "
                             "matched.", zone=window.zone.key)]  # fmt: skip
    if len(details) > MAX_GROUPS:
        rest = sum(f.leads for _, f in details[MAX_GROUPS:])
        notes.append(note("The source and campaign table lists the {shown} largest of {count} groups; the other "
                          "{rest} leads are in the channel totals.", shown=MAX_GROUPS, count=len(details),
                          rest=rest))  # fmt: skip
    notes += _unmatched_notes(unmatched)
    summary = total.row() | {
        "spend": _cents(sum(spend.values(), Decimal(0))),
        "unmatched_spend": _cents(sum(unmatched.values(), Decimal(0))),
    }
    tables = [
        Table("by_channel", N_("By channel"), [Col("channel", N_("Channel"), "text"), *COLUMNS],
              [{"channel": c} | f.row() for c, f in channels]),
        Table("by_campaign", N_("By channel, source and UTM campaign"),
              [Col("channel", N_("Channel"), "text"), Col("source", N_("Source"), "text"),
               Col("campaign", N_("UTM campaign"), "text"), *COLUMNS],
              [{"channel": c, "source": s, "campaign": k} | f.row() for (c, s, k), f in details[:MAX_GROUPS]]),
    ]  # fmt: skip
    chart = Chart("volume_conversion", N_("Leads and conversion by channel"), "bar", [c for c, _ in channels],
                  [{"label": N_("Leads"), "data": [f.leads for _, f in channels]},
                   {"label": N_("Conversion, %"), "data": [_percent(share(f.won, f.leads)) for _, f in channels]}])  # fmt: skip
    return Report(name="channels", title=N_("Channel quality"), window=window.echo(), generated_at=now,
                  summary=summary, tables=tables, charts=[chart], notes=notes)  # fmt: skip


# -- Reading ------------------------------------------------------------------------------------------------------


def _groups(conn: Connection, window: Window, won: list[str]) -> dict[Group, Figures]:
    """The counts per channel, source and campaign of the period's leads, with the filters, in one GROUP BY."""
    is_won = leads.c.status.in_(won)
    rows = conn.execute(
        select(
            leads.c.channel, leads.c.source, leads.c.utm_campaign, func.count(),
            func.count(case((leads.c.status == "junk", 1))), func.count(leads.c.duplicate_of_id),
            func.count(leads.c.first_contact_at), func.count(case((is_won, 1))),
            func.sum(case((is_won, leads.c.won_amount)), type_=Numeric(18, 2)),
        )
        .where(*window.created_in(), leads.c.status != "merged")
        .group_by(leads.c.channel, leads.c.source, leads.c.utm_campaign)
    ).all()  # fmt: skip
    return {(r[0], r[1], r[2]): Figures(int(r[3]), int(r[4]), int(r[5]), int(r[6]), int(r[7]),
                                        Decimal(r[8] or 0)) for r in rows}  # fmt: skip


def _narrowed(window: Window) -> bool:
    """Whether the report sees fewer than all the period's leads (a filter, or the caller's scope)."""
    q = window.query
    return window.team_ids is not None or window.manager_ids is not None or bool(q.channels or q.sources or q.campaigns)


def _volumes(conn: Connection, window: Window) -> dict[Group, int]:
    """Every lead of the period per group, whoever got it: what a spend line is divided among."""
    rows = conn.execute(
        select(leads.c.channel, leads.c.source, leads.c.utm_campaign, func.count())
        .where(leads.c.created_at >= window.start, leads.c.created_at < window.end, leads.c.status != "merged")
        .group_by(leads.c.channel, leads.c.source, leads.c.utm_campaign)
    ).all()
    return {(r[0], r[1], r[2]): int(r[3]) for r in rows}


def _spend(conn: Connection, window: Window) -> dict[Key, Decimal]:
    c = channel_costs.c
    rows = conn.execute(
        select(c.channel, c.source, c.campaign, func.sum(c.amount, type_=Numeric(18, 2)))
        .where(c.day >= window.first_day, c.day <= window.last_day)
        .group_by(c.channel, c.source, c.campaign)
    ).all()
    return {(r[0], r[1], r[2]): Decimal(r[3] or 0) for r in rows}


# -- Dividing the spend -------------------------------------------------------------------------------------------


def matches(key: Key, group: Group) -> bool:
    """Whether a spend line paid for a group's leads: each of its channel, source and campaign is '' or the same."""
    return all(want == "" or want == have for want, have in zip(key, group, strict=True))


def attribute(
    spend: Mapping[Key, Decimal], everyone: Mapping[Group, int], shown: Mapping[Group, Figures]
) -> dict[Key, Decimal]:
    """Set each shown group's cost: every spend line divided equally among all the leads it matched (`everyone`),
    times the group's own leads. Returns the spend lines that matched no lead at all."""
    unmatched: dict[Key, Decimal] = {}
    for key, amount in spend.items():
        matched = [g for g in everyone if matches(key, g)]
        leads_paid_for = sum(everyone[g] for g in matched)
        if not leads_paid_for:
            unmatched[key] = amount
            continue
        for group in matched:
            figures = shown.get(group)
            if figures is not None and figures.leads:
                part = amount * figures.leads / leads_paid_for
                figures.cost = (figures.cost or Decimal(0)) + part
    return unmatched


# -- Showing ------------------------------------------------------------------------------------------------------


def _cents(value: Decimal | None) -> Decimal | None:
    return None if value is None else value.quantize(CENT)


def _percent(value: float | None) -> float | None:
    return None if value is None else round(value * 100, 1)


def _unmatched_notes(unmatched: Mapping[Key, Decimal]) -> list[str]:
    if not unmatched:
        return []
    named = sorted(unmatched.items(), key=lambda kv: (-kv[1], kv[0]))
    lines: list[str] = [Note("{line}: {amount}", {"line": _line(key), "amount": money(a.quantize(CENT))}, False)
                        for key, a in named[:MAX_UNMATCHED]]  # fmt: skip
    if len(named) > MAX_UNMATCHED:
        lines.append(note("and {count} more", count=len(named) - MAX_UNMATCHED))
    total = money(sum(unmatched.values(), Decimal(0)).quantize(CENT))
    return [note("Spend that matched no lead of the period ({total}): {lines}.", total=total, lines=joined(lines))]


def _line(key: Key) -> Note:
    """A spend line as people name it: "channel web, source any, campaign spring"."""
    channel, source, campaign = key
    return joined([note("channel {name}", name=channel) if channel else N_("channel any"),
                   note("source {name}", name=source) if source else N_("source any"),
                   note("campaign {name}", name=campaign) if campaign else N_("campaign any")], ", ")  # fmt: skip
