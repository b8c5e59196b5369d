"""The daily digest: each head of sales gets yesterday's figures of their team (the team's local day) through their
own channels, once the team's clock passes the rules' `reports.digest.at`. A head of several teams gets one digest
covering them all, in the zone of their own team.

Exactly once, however many workers look: the `digests` row (recipient, day) is written in the transaction that
queues the notifications, and its primary key refuses a second one. The figures are the reports' own (funnel and
managers, run for the one day with the team filter), so the digest and the reports never disagree; the missed
deadlines are read here. E-mail and Telegram carry a PNG of two charts (kept base64 in the outbox payload); the
webhook receivers get the text and the figures. The team's Slack is its chat, where every manager reads: the
digest, which names the weakest, goes to the head alone.
"""

from __future__ import annotations

import base64
import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import func, select, union
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from leadflow.core.messages import LANGUAGES
from leadflow.core.policy import SYSTEM
from leadflow.services.context import Leadflow
from leadflow.services.delivery import enqueue_notification
from leadflow.services.reports import run_report
from leadflow.services.reports.kpis import BAND_LABELS
from leadflow.services.reports.query import ReportQuery
from leadflow.services.reports.shape import CENT, Chart, Report
from leadflow.store.db import READ_ONLY
from leadflow.store.tables import assignments, digests, leads, managers, teams

log = logging.getLogger("leadflow.digest")

EVENT = "report.digest"
SHOWN = 3  # the top and the bottom managers named
IMAGE_CHANNELS = ("email", "telegram")  # the channels that carry the charts; the rest get the text alone

# The charts' titles, in the head's language (the reports' own are English).
_TITLES = {
    "en": {"bands": "First contacts by response time", "funnel": "Yesterday's leads: reached each stage"},
    "uk": {"bands": "Перші контакти за швидкістю відповіді", "funnel": "Вчорашні ліди: дійшли до етапу"},
    "ru": {"bands": "Первые контакты по скорости ответа", "funnel": "Вчерашние лиды: дошли до этапа"},
}


@dataclass(frozen=True, slots=True)
class Head:
    """A head of sales, the teams they head (one digest covers them all), and where the head is reached."""

    team_ids: tuple[int, ...]
    team_keys: tuple[str, ...]
    team_name: str  # the teams' names, joined
    zone: ZoneInfo  # their own team's, when they head it; else the first team's
    key: str
    name: str
    email: str | None
    telegram_chat_id: str | None
    language: str

    @property
    def recipient(self) -> str:
        return f"manager:{self.key}"


def send_due_digests(app: Leadflow, now: datetime) -> int:
    """Queue the digest of every head whose team's local time is past `reports.digest.at` today and who has not had
    today's yet; returns how many were queued (0 when the digest is off)."""
    settings = app.rules.reports.digest
    if not settings.enabled:
        return 0
    at = time.fromisoformat(settings.at)
    with app.engine.connect().execution_options(**READ_ONLY) as conn:
        heads = _heads(conn, app)
        due = [(h, now.astimezone(h.zone).date()) for h in heads if now.astimezone(h.zone).time() >= at]
        days = sorted({day for _, day in due})
        sent = {(r.recipient, r.day) for r in conn.execute(
            select(digests.c.recipient, digests.c.day).where(digests.c.day.in_(days)))} if days else set()  # fmt: skip
    queued = 0
    for head, today in due:
        if (head.recipient, today) in sent or not _targets(app, head):
            continue
        try:
            queued += _send(app, head, today, now)
        except Exception:  # one head's failure must not keep the others from theirs
            log.exception("the daily digest for %s (team %s) failed; it is tried again in a minute",
                          head.key, ", ".join(head.team_keys))  # fmt: skip
    return queued


@dataclass(frozen=True, slots=True)
class Digest:
    figures: dict[str, Any]  # plain data: the templates' `digest`, and the webhook receivers'
    charts: list[Chart]


def digest_of(app: Leadflow, head: Head, day: date, now: datetime) -> Digest:
    """The figures of `day` (a local day in the head's zone) for the teams they head, and their charts."""
    query = ReportQuery(start=day, end=day, timezone=head.zone.key, teams=head.team_keys)
    funnel = run_report(app, "funnel", query, now, who=SYSTEM)
    people = run_report(app, "managers", query, now, who=SYSTEM)
    start = datetime.combine(day, time(0), head.zone)
    end = datetime.combine(day + timedelta(days=1), time(0), head.zone)
    with app.engine.connect().execution_options(**READ_ONLY) as conn:
        missed, still_waiting = _missed_deadlines(conn, head.team_ids, start, min(end, now))
    bands = _bands(people)
    contacts = sum(n for _, n in bands)
    figures = {
        "day": day.isoformat(),
        "team": head.team_name,
        "breaches": missed,
        "breaches_waiting": still_waiting,
        "first_contacts": contacts,
        "bands": [{"band": band, "count": n, "share": _percent(n, contacts)} for band, n in bands],
        "arrived": funnel.summary.get("cohort", 0),
        "funnel": [{"status": r["status"], "entered": r["entered"]} for r in funnel.table("stages").rows
                   if r.get("entered")],
        "won": people.summary.get("won", 0),
        "turnover": str(Decimal(str(people.summary.get("turnover") or 0)).quantize(CENT)),
        **_ranked(people),
    }  # fmt: skip
    titles = _TITLES.get(head.language, _TITLES["en"])
    charts = [Chart("bands", titles["bands"], "bar", [band for band, _ in bands],
                    [{"label": titles["bands"], "data": [n for _, n in bands]}])]  # fmt: skip
    charts += [Chart("funnel", titles["funnel"], "bar", c.labels, c.datasets) for c in funnel.charts[:1]]
    return Digest(figures, charts)


def charts_png(charts: Sequence[Chart]) -> bytes:
    """The charts side by side in one PNG (matplotlib, drawn without a display)."""
    from matplotlib.figure import Figure  # imported when first drawn: the process does not pay for it at start

    figure = Figure(figsize=(4.4 * max(len(charts), 1), 3.4), dpi=100, layout="constrained")
    axes = figure.subplots(1, max(len(charts), 1), squeeze=False)[0]
    for ax, chart in zip(axes, charts, strict=False):
        xs = list(range(len(chart.labels)))
        width = 0.8 / max(len(chart.datasets), 1)
        for i, dataset in enumerate(chart.datasets):
            values = [float(v) if v is not None else 0.0 for v in dataset["data"]]
            if chart.type == "bar":
                ax.bar([x + (i - (len(chart.datasets) - 1) / 2) * width for x in xs], values, width,
                       label=dataset["label"])  # fmt: skip
            else:
                ax.plot(xs, values, marker="o", label=dataset["label"])
        ax.set_xticks(xs, chart.labels, fontsize=8, rotation=30 if len(chart.labels) > 4 else 0)
        ax.set_title(chart.title, fontsize=10)
        highest = max((float(v or 0) for d in chart.datasets for v in d["data"]), default=0.0)
        ax.set_ylim(0, max(highest, 1.0) * 1.15)  # counts: from 0, with room for the bars' labels
        ax.yaxis.get_major_locator().set_params(integer=True)
        for bars in ax.containers:
            ax.bar_label(bars, fontsize=7)
        if len(chart.datasets) > 1:
            ax.legend(fontsize=7)
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()


def _send(app: Leadflow, head: Head, today: date, now: datetime) -> int:
    """Build yesterday's digest and queue it with today's `digests` row, in one transaction; 0 when another worker
    wrote that row first."""
    day = today - timedelta(days=1)
    digest = digest_of(app, head, day, now)
    png = charts_png(digest.charts)
    image = {"name": f"digest-{'-'.join(head.team_keys)}-{day.isoformat()}.png", "type": "image/png",
             "data": base64.b64encode(png).decode("ascii")}  # fmt: skip
    context: dict[str, Any] = {"manager_name": head.name, "team_name": head.team_name, "day": day.isoformat(),
                               "digest": digest.figures, "link": f"{app.base_url}/reports"}  # fmt: skip
    with app.engine.begin() as conn:
        insert = (postgresql if conn.dialect.name == "postgresql" else sqlite).insert
        claimed = conn.execute(insert(digests).values(recipient=head.recipient, day=today, sent_at=now)
                               .on_conflict_do_nothing(index_elements=["recipient", "day"])
                               .returning(digests.c.recipient)).first()  # fmt: skip
        if claimed is None:
            return 0  # another worker sent today's
        for channel, recipient in _targets(app, head):
            extra = {"images": [image]} if channel in IMAGE_CHANNELS else {}
            enqueue_notification(conn, event_id=None, event_type=EVENT, channel=channel, recipient=recipient,
                                 language=head.language, context=context | extra, now=now,
                                 overrides=app.rules.templates or None)  # fmt: skip
    return 1


def _targets(app: Leadflow, head: Head) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    if head.telegram_chat_id:
        found.append(("telegram", head.telegram_chat_id))
    if head.email:
        found.append(("email", head.email))
    return found + [("webhook", url) for url in app.notify.webhook_urls]


def _heads(conn: Connection, app: Leadflow) -> list[Head]:
    """Every head of a team, with the teams they head (by key)."""
    query = (
        select(teams.c.id, teams.c.key, teams.c.name, teams.c.timezone, managers.c.key.label("head"),
               managers.c.name.label("head_name"), managers.c.email, managers.c.telegram_chat_id, managers.c.languages,
               managers.c.team_id.label("own_team"))
        .join(managers, managers.c.key == teams.c.head_key)
        .order_by(managers.c.key, teams.c.key)
    )  # fmt: skip
    headed: dict[str, list[Any]] = {}
    for r in conn.execute(query):
        headed.setdefault(r.head, []).append(r)
    found = []
    for key, rows in headed.items():
        first = next((r for r in rows if r.id == r.own_team), rows[0])
        found.append(Head(tuple(r.id for r in rows), tuple(r.key for r in rows), ", ".join(r.name for r in rows),
                          _zone(first.timezone or app.rules.default_timezone), key, first.head_name, first.email,
                          first.telegram_chat_id, _language(first.languages, app.rules.default_language)))  # fmt: skip
    return found


def _language(languages: Sequence[str] | None, default: str) -> str:
    """The first of the head's languages (in the order the SLA's notifications take them) that notifications are
    written in; else the rules' default."""
    return next((lang for lang in sorted(languages or ()) if lang in LANGUAGES), default)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _missed_deadlines(conn: Connection, team_ids: Sequence[int], start: datetime, end: datetime) -> tuple[int, int]:
    """The team's leads whose first-contact deadline fell in [start, end) with no contact, and how many of them are
    still not contacted now. A missed deadline is acted on by the worker as it passes (an escalation, or the chain's
    end: an `assignments` row of kind escalation); one it has not acted on yet is a clock still running past it."""
    acted = select(assignments.c.lead_id).where(assignments.c.kind == "escalation", assignments.c.at >= start,
                                                assignments.c.at < end)  # fmt: skip
    waiting = select(leads.c.id).where(leads.c.sla_state == "running", leads.c.sla_due_at >= start,
                                       leads.c.sla_due_at < end)  # fmt: skip
    missed = union(acted, waiting).subquery()
    query = select(func.count(), func.count(leads.c.id).filter(leads.c.first_contact_at.is_(None))).where(
        leads.c.id.in_(select(missed.c[0])), leads.c.team_id.in_(team_ids)
    )
    total, uncontacted = conn.execute(query).one()
    return int(total), int(uncontacted)


def _bands(people: Report) -> list[tuple[str, int]]:
    """First contacts made that day by response band, summed over the team's managers (the KPIs' own counts)."""
    rows = people.table("managers").rows
    return [(band, sum(int(r.get("_bands", {}).get(band, 0)) for r in rows)) for band in BAND_LABELS]


def _ranked(people: Report) -> dict[str, list[dict[str, Any]]]:
    """The top and bottom managers by first contacts made that day, then by conversion of the leads they received;
    with six or fewer, the better half and the rest."""
    rows = [r for r in people.table("managers").rows if r.get("received") or r.get("first_contacts")]
    ranked = sorted(rows, key=lambda r: (-(r.get("first_contacts") or 0), -(r.get("to_final") or 0.0),
                                         str(r.get("manager"))))  # fmt: skip
    top_n = min(SHOWN, (len(ranked) + 1) // 2)
    top, rest = ranked[:top_n], ranked[top_n:]
    bottom = list(reversed(rest[-SHOWN:]))

    def shown(r: dict[str, Any]) -> dict[str, Any]:
        conversion = r.get("to_final")
        return {"name": r.get("manager"), "first_contacts": r.get("first_contacts") or 0, "received": r.get("received"),
                "conversion": f"{conversion:.0%}" if conversion is not None else "—"}  # fmt: skip

    return {"top": [shown(r) for r in top], "bottom": [shown(r) for r in bottom]}


def _percent(part: int, whole: int) -> str:
    return f"{part / whole:.0%}" if whole else "—"
