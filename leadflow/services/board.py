"""What a head of sales watches: the team board (load, who can take leads right now, today's first contacts and
breaches), the feed of routing moves, the unassigned queue, the junk, and whom a lead can be reassigned to.

Reads only, each limited to what `who` may see. The board is a few grouped queries whatever the number of leads
and managers: today's first contacts through ix_leads_first_contact_at, today's escalations through
ix_events_actor_at (the chain's moves are the SLA process's own events), the people through routing's own loader.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select
from sqlalchemy.engine import Connection

from leadflow.core.policy import Action, Principal, team_ids_for
from leadflow.core.routing import ManagerState
from leadflow.core.schedule import is_open
from leadflow.core.sla import BANDS, LATE_BAND
from leadflow.services.access import restrict
from leadflow.services.context import Leadflow
from leadflow.store.db import READ_ONLY
from leadflow.store.tables import events, leads, managers, teams
from leadflow.store.team_state import load_team_state

# The response bands as services/sla.py writes them into leads.response_band, fastest first.
BAND_KEYS = (*(label for _, label in BANDS), LATE_BAND)
FAST_BAND = BANDS[0][1]
# Escalations are written by the SLA process under this actor (services/sla.py), which the audit index covers.
SLA_ACTOR = "sla"
BREACH_EVENTS = ("lead.escalated", "lead.chain_exhausted")
FEED_EVENTS = ("lead.assigned", "lead.escalated", "lead.reassigned", "lead.chain_exhausted", "lead.unassigned")
FEED_LIMIT = 100
UNASSIGNED_LIMIT = 200
JUNK_LIMIT = 100


def day_bounds(now: datetime, timezone: ZoneInfo) -> tuple[datetime, datetime]:
    """Today in `timezone`, as UTC instants: [its midnight, the next midnight)."""
    today = now.astimezone(timezone).date()
    start = datetime.combine(today, time(0), tzinfo=timezone)
    end = datetime.combine(today + timedelta(days=1), time(0), tzinfo=timezone)
    return start.astimezone(UTC), end.astimezone(UTC)


# -- The team board -------------------------------------------------------------------------------------------


def _first_contacts(conn: Connection, start: datetime, end: datetime) -> dict[int, dict[str, int]]:
    """manager id -> band -> leads first contacted today (counted for the lead's owner)."""
    query = (
        select(leads.c.manager_id, leads.c.response_band, func.count().label("n"))
        .where(leads.c.first_contact_at >= start, leads.c.first_contact_at < end, leads.c.manager_id.is_not(None))
        .group_by(leads.c.manager_id, leads.c.response_band)
    )
    found: dict[int, dict[str, int]] = {}
    for manager_id, band, n in conn.execute(query):
        bands = found.setdefault(manager_id, {})
        bands[band or LATE_BAND] = bands.get(band or LATE_BAND, 0) + int(n)
    return found


def _breaches(conn: Connection, start: datetime, end: datetime) -> dict[str, int]:
    """manager key -> leads the chain took away from them today (their deadline passed)."""
    previous = events.c.data["previous"].as_string()
    query = (
        select(previous.label("previous"), func.count().label("n"))
        .where(events.c.actor == SLA_ACTOR, events.c.at >= start, events.c.at < end,
               events.c.type.in_(BREACH_EVENTS))
        .group_by(previous)
    )  # fmt: skip
    return {key: int(n) for key, n in conn.execute(query) if key}


def _teams_in_scope(conn: Connection, who: Principal) -> list[Any]:
    query = select(teams.c.id, teams.c.key, teams.c.name).order_by(teams.c.name, teams.c.key)
    scope = team_ids_for(who, Action.PEOPLE_WRITE)
    if scope is not None:
        query = query.where(teams.c.id.in_(sorted(scope)))
    return list(conn.execute(query))


def availability(m: ManagerState, now: datetime) -> dict[str, Any]:
    """Whether routing can give the manager a lead right now, by routing's own tests (core/routing.py)."""
    vacation_until = m.on_vacation(now) if m.vacations else None
    on_shift = is_open(m.hours, now)
    if not m.active:
        state = "inactive"
    elif m.absent:
        state = "absent"
    elif vacation_until is not None:
        state = "vacation"
    else:
        state = "on_shift" if on_shift else "off_shift"
    return {"state": state, "absent": m.absent, "vacation_until": vacation_until, "on_shift": on_shift}


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _row(m: ManagerState, now: datetime, bands: Mapping[str, int], breaches: int) -> dict[str, Any]:
    counted = {band: bands.get(band, 0) for band in BAND_KEYS}
    total = sum(counted.values())
    return {
        "key": m.key, "name": m.name, "team": m.team, "role": m.role, "active": m.active,
        "open_leads": m.open_leads, "capacity": m.capacity, **availability(m, now),
        "first_contacts": total, "fast_contacts": counted[FAST_BAND], "fast_share": _share(counted[FAST_BAND], total),
        "bands": counted, "breaches": breaches,
    }  # fmt: skip


def _team_totals(team: Any, rows: list[dict[str, Any]]) -> dict[str, Any]:
    bands = {band: sum(r["bands"][band] for r in rows) for band in BAND_KEYS}
    total = sum(bands.values())
    return {
        "key": team.key, "name": team.name, "managers": rows, "bands": bands, "first_contacts": total,
        "fast_contacts": bands[FAST_BAND], "fast_share": _share(bands[FAST_BAND], total),
        "breaches": sum(r["breaches"] for r in rows), "open_leads": sum(r["open_leads"] for r in rows),
        "capacity": sum(r["capacity"] for r in rows),
        "available": sum(1 for r in rows if r["state"] == "on_shift" and r["role"] == "manager"),
    }  # fmt: skip


def team_board(app: Leadflow, now: datetime, timezone: ZoneInfo, *, who: Principal) -> dict[str, Any]:
    """Per team `who` heads (every team for an admin), per manager: open leads against capacity, whether they can
    take leads now, today's first contacts by response band and the share within 20 minutes, and today's breaches
    (leads the chain took from them). "Today" is the calendar day of `now` in `timezone`.

    First contacts count for the lead's owner; a lead reassigned by hand after its first contact counts for its
    new owner."""
    start, end = day_bounds(now, timezone)
    with app.engine.connect().execution_options(**READ_ONLY) as conn:
        shown = _teams_in_scope(conn, who)
        people = load_team_state(conn, [t.key for t in shown], (), app.rules.default_timezone).managers
        contacts = _first_contacts(conn, start, end)
        breaches = _breaches(conn, start, end)
    by_team: dict[str, list[ManagerState]] = {}
    for m in people.values():
        by_team.setdefault(m.team, []).append(m)
    board = []
    for team in shown:
        members = sorted(by_team.get(team.key, []), key=lambda m: (m.name.casefold(), m.key))
        rows = [_row(m, now, contacts.get(m.id, {}), breaches.get(m.key, 0)) for m in members]
        board.append(_team_totals(team, rows))
    return {"since": start, "until": end, "bands": list(BAND_KEYS), "teams": board}


# -- The feed -------------------------------------------------------------------------------------------------


def manager_names(app: Leadflow) -> dict[str, str]:
    """Every manager's name by key (a few hundred rows): what a list of keys is shown with."""
    with app.engine.connect().execution_options(**READ_ONLY) as conn:
        return {key: name for key, name in conn.execute(select(managers.c.key, managers.c.name))}


def _move(row: Any, names: Mapping[str, str]) -> dict[str, Any]:
    data = row.data or {}
    to, previous = data.get("manager"), data.get("previous")
    return {
        "event_id": row.id, "type": row.type, "at": row.at, "actor": row.actor, "lead_id": row.lead_id,
        "lead_name": row.name or row.phone or row.email, "from_key": previous, "to_key": to,
        "from_name": names.get(previous, previous) if previous else None, "to_name": names.get(to, to) if to else None,
        "reason": data.get("reason") if isinstance(data.get("reason"), str) else None,
    }  # fmt: skip


def live_feed(app: Leadflow, *, who: Principal, limit: int = FEED_LIMIT) -> list[dict[str, Any]]:
    """The newest routing moves (assigned, escalated, reassigned, end of chain, left unassigned) of the leads `who`
    may see, each with from, to and the recorded reason."""
    query = (
        select(events.c.id, events.c.type, events.c.at, events.c.actor, events.c.data, events.c.lead_id,
               leads.c.name, leads.c.phone, leads.c.email)
        .join(leads, leads.c.id == events.c.lead_id)
        .where(events.c.type.in_(FEED_EVENTS))
        .order_by(events.c.id.desc())
        .limit(limit)
    )  # fmt: skip
    with app.engine.connect().execution_options(**READ_ONLY) as conn:
        rows = conn.execute(restrict(query, who)).all()
    names = manager_names(app) if rows else {}
    return [_move(r, names) for r in rows]


# -- The unassigned queue and the junk ------------------------------------------------------------------------

_LIST_COLUMNS = (
    leads.c.id, leads.c.name, leads.c.phone, leads.c.email, leads.c.company, leads.c.channel, leads.c.source,
    leads.c.product, leads.c.status, leads.c.created_at, leads.c.updated_at, leads.c.team_id, leads.c.sla_state,
    leads.c.junk_reason,
)  # fmt: skip


def _last_events(conn: Connection, lead_ids: Iterable[int], types: tuple[str, ...]) -> dict[int, list[Any]]:
    """Each lead's events of these types, oldest first (through the events' lead index)."""
    ids = sorted(set(lead_ids))
    found: dict[int, list[Any]] = {}
    if not ids:
        return found
    query = (
        select(events.c.lead_id, events.c.type, events.c.actor, events.c.data, events.c.at)
        .where(events.c.lead_id.in_(ids), events.c.type.in_(types))
        .order_by(events.c.id)
    )
    for row in conn.execute(query):
        found.setdefault(row.lead_id, []).append(row)
    return found


def unassigned_leads(app: Leadflow, *, who: Principal, limit: int = UNASSIGNED_LIMIT) -> dict[str, Any]:
    """Open leads with no owner that are not waiting at the quality desk, oldest first, each with why it has no
    owner: the reason of its last routing decision that left it without one (intake's or the batch's
    lead.unassigned, or a chain that ended with nobody to take it)."""
    where = (leads.c.manager_id.is_(None), leads.c.status.in_(sorted(app.rules.open_statuses)),
             or_(leads.c.queue.is_(None), leads.c.queue != "desk"))  # fmt: skip
    page = select(*_LIST_COLUMNS).where(*where).order_by(leads.c.created_at, leads.c.id).limit(limit)
    count = select(func.count()).select_from(leads).where(*where)
    with app.engine.connect().execution_options(**READ_ONLY) as conn:
        rows = [dict(r) for r in conn.execute(restrict(page, who)).mappings()]
        total = int(conn.execute(restrict(count, who)).scalar_one())
        why = _last_events(conn, (r["id"] for r in rows), ("lead.unassigned", "lead.chain_exhausted"))
    for row in rows:
        last = next((e for e in reversed(why.get(row["id"], [])) if not (e.data or {}).get("manager")), None)
        data = last.data if last is not None else {}
        row.update(reason=data.get("reason"), unassigned_at=last.at if last is not None else None,
                   wait_until=_instant(data.get("wait_until")))  # fmt: skip
    return {"items": rows, "total": total}


def _instant(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _junked_by(history: list[Any]) -> Any | None:
    """The event that set the lead aside: the last lead.junked, or a status change to junk."""
    for e in reversed(history):
        if e.type == "lead.junked" or (e.data or {}).get("new") == "junk":
            return e
    return None


def junk_leads(app: Leadflow, *, who: Principal, limit: int = JUNK_LIMIT, offset: int = 0) -> dict[str, Any]:
    """Junk leads `who` may see, newest first, with the reason and who or what set each aside (`actor` None:
    leadflow's own junk rules at intake)."""
    page = (
        select(*_LIST_COLUMNS)
        .where(leads.c.status == "junk")
        .order_by(leads.c.created_at.desc(), leads.c.id.desc())
        .limit(limit)
        .offset(offset)
    )
    count = select(func.count()).select_from(leads).where(leads.c.status == "junk")
    with app.engine.connect().execution_options(**READ_ONLY) as conn:
        rows = [dict(r) for r in conn.execute(restrict(page, who)).mappings()]
        total = int(conn.execute(restrict(count, who)).scalar_one())
        history = _last_events(conn, (r["id"] for r in rows), ("lead.junked", "lead.status_changed"))
    for row in rows:
        setting = _junked_by(history.get(row["id"], []))
        data = setting.data if setting is not None else {}
        row.update(junked_at=setting.at if setting is not None else row["updated_at"],
                   actor=setting.actor if setting is not None else None,
                   by_desk=data.get("by") == "desk",
                   reason=row["junk_reason"] or data.get("reason"))  # fmt: skip
    return {"items": rows, "total": total, "limit": limit, "offset": offset}


# -- Reassignment ---------------------------------------------------------------------------------------------


def reassign_choices(app: Leadflow, lead: Mapping[str, Any], *, who: Principal) -> list[dict[str, Any]]:
    """Whom a head can give the lead to: the active managers (not desk operators) of the lead's team (its owner's,
    or the one it was headed for), its current owner left out; a lead of no known team: those of `who`'s teams."""
    with app.engine.connect().execution_options(**READ_ONLY) as conn:
        team_id = lead.get("team_id")
        if lead.get("manager_id") is not None:
            team_id = conn.execute(select(managers.c.team_id).where(managers.c.id == lead["manager_id"])).scalar()
        query = (
            select(managers.c.key, managers.c.name, managers.c.open_leads, managers.c.capacity, managers.c.absent)
            .where(managers.c.active.is_(True), managers.c.role == "manager")
            .order_by(managers.c.name, managers.c.key)
        )
        if team_id is not None:
            query = query.where(managers.c.team_id == team_id)
        else:
            scope = team_ids_for(who, Action.LEAD_ASSIGN)
            if scope is not None:
                query = query.where(managers.c.team_id.in_(sorted(scope)))
        if lead.get("manager_id") is not None:
            query = query.where(managers.c.id != lead["manager_id"])
        return [dict(r) for r in conn.execute(query).mappings()]
