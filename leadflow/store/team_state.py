"""Load and lock what routing reads: managers and round-robin pointers; write the rules file's people."""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Numeric, String, bindparam, func, select, type_coerce, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, RowMapping

from leadflow.core.routing import ManagerState, TeamState
from leadflow.core.rules import Condition, RulesFile
from leadflow.core.schedule import parse_working_hours
from leadflow.store.fast import Fast, FastIn
from leadflow.store.tables import managers, rr_pointers, teams

# What changes with every lead (load, results) is read each time; who the manager is (skills, schedule) is cached by
# (id, updated_at) — every edit of a manager or their team moves updated_at, so a stale entry is never used.
_DYNAMIC = (
    # updated_at only tells cached descriptions apart: read as the database gives it, not parsed to a datetime.
    managers.c.id, type_coerce(managers.c.updated_at, String).label("updated_at"), managers.c.capacity, managers.c.open_leads, managers.c.active,
    managers.c.absent, managers.c.open_value, managers.c.open_deals, managers.c.closed_leads, managers.c.won_leads,
    managers.c.first_contacts, managers.c.fast_contacts,
)  # fmt: skip
_STATIC = (
    managers.c.key, managers.c.name, managers.c.hours, managers.c.regions, managers.c.products, managers.c.languages,
    managers.c.email, managers.c.telegram_chat_id, managers.c.vacations, managers.c.on_call, managers.c.weight,
    managers.c.tier, managers.c.role, managers.c.accepts, teams.c.key.label("team"), teams.c.timezone.label("team_tz"),
    teams.c.hours.label("team_hours"),
)  # fmt: skip
_BY_TEAMS = FastIn(
    "team",
    lambda keys: select(*_DYNAMIC).join(teams, teams.c.id == managers.c.team_id).where(teams.c.key.in_(keys))
    .order_by(managers.c.id),
)  # fmt: skip
_STATIC_BY_IDS = (
    select(managers.c.id, *_STATIC)
    .join(teams, teams.c.id == managers.c.team_id)
    .where(managers.c.id.in_(bindparam("ids", expanding=True)))
)
_BY_ID = Fast(select(*_DYNAMIC).where(managers.c.id == bindparam("id")))
_POINTERS = FastIn("rule", lambda keys: select(rr_pointers).where(rr_pointers.c.rule_key.in_(keys)))
_LOCK_TEAMS = (
    select(teams.c.id)
    .where(teams.c.key.in_(bindparam("teams", expanding=True)))
    .order_by(teams.c.key)
    .with_for_update()
)


@dataclass(slots=True)
class _Cached:
    """What is remembered of one database's managers. Per database (engine): ids and update times of two databases
    say nothing of each other."""

    static: dict[tuple[int, Any], ManagerState] = field(default_factory=dict)
    # Each manager's newest state with the row of live figures it was built from: between two leads only the last
    # owner's figures change, so the other managers' states are reused as they are instead of being rebuilt. One
    # entry per manager: a state whose figures have moved on is not asked for again (kept by row, every lead and
    # escalation added about 0.6 KB until 50,000 were held).
    live: dict[int, tuple[Any, ManagerState]] = field(default_factory=dict)


_cached: weakref.WeakKeyDictionary[Engine, _Cached] = weakref.WeakKeyDictionary()
_CACHE_LIMIT = 50_000


def _cache_of(conn: Connection) -> _Cached:
    found = _cached.get(conn.engine)
    if found is None:
        found = _cached[conn.engine] = _Cached()
    return found


def _static(row: RowMapping, default_tz: str) -> ManagerState:
    spec = row["hours"] if row["hours"] is not None else row["team_hours"]
    return ManagerState(
        id=row["id"],
        key=row["key"],
        name=row["name"],
        team=row["team"],
        capacity=0,
        open_leads=0,
        hours=parse_working_hours(spec, row["team_tz"] or default_tz),
        regions=frozenset(row["regions"]),
        products=frozenset(row["products"]),
        languages=frozenset(row["languages"]),
        email=row["email"],
        telegram_chat_id=row["telegram_chat_id"],
        vacations=tuple((date.fromisoformat(v["from"]), date.fromisoformat(v["to"])) for v in row["vacations"] or ()),
        on_call=row["on_call"],
        weight=row["weight"],
        tier=row["tier"],
        role=row["role"],
        accepts=Condition.model_validate({"fields": row["accepts"]}) if row["accepts"] else None,
    )


def _states(conn: Connection, rows: Sequence[Any], default_tz: str) -> list[ManagerState]:
    """Join each row of live figures to the cached description of its manager, loading what is missing at once."""
    cache = _cache_of(conn)
    static_cache, live_cache = cache.static, cache.live
    states = [hit[1] if (hit := live_cache.get(r.id)) is not None and hit[0] == r else None for r in rows]
    if None not in states:
        return states  # type: ignore[return-value]
    missing = [r.id for r in rows if (r.id, r.updated_at) not in static_cache]
    if missing:
        if len(static_cache) > _CACHE_LIMIT:
            static_cache.clear()
        fresh = {r["id"]: r for r in conn.execute(_STATIC_BY_IDS, {"ids": missing}).mappings()}
        for r in rows:
            if r.id in fresh:
                static_cache[(r.id, r.updated_at)] = _static(fresh[r.id], default_tz)
    for i, r in enumerate(rows):
        if states[i] is None:
            states[i] = state = replace(
                static_cache[(r.id, r.updated_at)],
                capacity=r.capacity,
                open_leads=r.open_leads,
                active=r.active,
                absent=r.absent,
                open_value=r.open_value,
                open_deals=r.open_deals,
                closed_leads=r.closed_leads,
                won_leads=r.won_leads,
                first_contacts=r.first_contacts,
                fast_contacts=r.fast_contacts,
            )
            live_cache[r.id] = (r, state)
    return states  # type: ignore[return-value]


def lock_teams(conn: Connection, team_keys: list[str]) -> None:
    """Serialise decisions that read the same people (PostgreSQL row locks; SQLite already has one writer)."""
    if team_keys and conn.dialect.name != "sqlite":
        conn.execute(_LOCK_TEAMS, {"teams": team_keys})


def load_team_state(conn: Connection, team_keys: list[str], rule_keys: Iterable[str], default_tz: str) -> TeamState:
    people: dict[str, ManagerState] = {}
    if team_keys:
        for m in _states(conn, _BY_TEAMS.all(conn, team_keys), default_tz):
            people[m.key] = m
    keys = list(rule_keys)
    rows = _POINTERS.all(conn, keys) if keys else []
    return TeamState(
        managers=people,
        rr_pointers={r.rule_key: r.last_manager_key for r in rows},
        credits={r.rule_key: r.state["credits"] for r in rows if r.state and "credits" in r.state},
    )


def load_manager(conn: Connection, manager_id: int, default_tz: str) -> ManagerState | None:
    row = _BY_ID.first(conn, {"id": manager_id})
    return _states(conn, [row], default_tz)[0] if row else None


def _upsert_pointer(dialect: Any, with_state: bool) -> Any:
    stmt = dialect.insert(rr_pointers).values(
        rule_key=bindparam("rule_key"), last_manager_key=bindparam("manager"), state=bindparam("state", type_=JSON)
    )
    changes = {"last_manager_key": stmt.excluded.last_manager_key}
    if with_state:
        changes["state"] = stmt.excluded.state
    return stmt.on_conflict_do_update(index_elements=["rule_key"], set_=changes)


# Built once: constructing an upsert per lead costs more than running it.
_UPSERTS = {(name, with_state): Fast(_upsert_pointer(dialect, with_state))
            for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite)) for with_state in (False, True)}  # fmt: skip


def save_pointer(conn: Connection, rule_key: str, manager_key: str, credits: Mapping[str, float] | None = None) -> None:
    """Remember who got the last lead of this rule (and the weighted strategies' credits)."""
    stmt = _UPSERTS[(conn.dialect.name, credits is not None)]
    state = {"credits": dict(credits)} if credits is not None else None
    stmt.run(conn, {"rule_key": rule_key, "manager": manager_key, "state": state})


# Public: batch routing sends it once per chunk for every manager with that manager's summed deltas.
ADD_LOAD = (
    update(managers)
    .where(managers.c.id == bindparam("manager_id"))
    .values(
        open_leads=managers.c.open_leads + bindparam("delta"),
        open_value=managers.c.open_value + bindparam("value", type_=Numeric(18, 2)),
    )
)


def jsonable(value: Any) -> Any:
    """YAML gives dates as date objects (`closed: [2026-12-25]`); JSON columns want their ISO text."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, date):
        return value.isoformat()
    return value


_ADD_LOAD = Fast(ADD_LOAD)


def add_load(conn: Connection, manager_id: int, delta: int, value: Decimal | None = None) -> None:
    """Count a lead in (+1) or out (-1) of a manager's open work, with its value for value-weighted load."""
    _ADD_LOAD.run(conn, {"manager_id": manager_id, "delta": delta, "value": (value or Decimal(0)) * delta})


def add_deals(conn: Connection, manager_id: int, delta: int) -> None:
    """Count an open deal in (+1) or out (-1) of a manager's work, for load measured in deals."""
    conn.execute(update(managers).where(managers.c.id == manager_id).values(open_deals=managers.c.open_deals + delta))


def record_result(conn: Connection, manager_id: int, *, closed: bool = False, won: bool = False,
                  first_contact: bool = False, fast: bool = False) -> None:  # fmt: skip
    """Keep the manager's results (conversion, contact speed) in step with the lead that just changed."""
    values = {}
    if closed:
        values["closed_leads"] = managers.c.closed_leads + 1
    if won:
        values["won_leads"] = managers.c.won_leads + 1
    if first_contact:
        values["first_contacts"] = managers.c.first_contacts + 1
    if fast:
        values["fast_contacts"] = managers.c.fast_contacts + 1
    if values:
        conn.execute(update(managers).where(managers.c.id == manager_id).values(**values))


def apply_rules_people(conn: Connection, rules: RulesFile, now: datetime) -> dict[str, int]:
    """Write the teams and managers the rules file declares (the file wins for them); return key → id."""
    for team in rules.teams:
        values: dict[str, Any] = {
            "name": team.name or team.key,
            "timezone": team.timezone,
            "head_key": team.head,
            "hours": jsonable(team.hours),
            "telegram_chat_id": team.telegram_chat_id,
            "slack_webhook_url": team.slack_webhook_url,
            "scoring": team.scoring,
            "desk": team.desk,
            "desk_sla_seconds": int(team.desk_sla.total_seconds()),
            "sticky": team.sticky,
            "sticky_wait_seconds": int(team.sticky_wait.total_seconds()),
            "match_accounts": team.match_accounts,
            "updated_at": now,
        }
        if conn.execute(update(teams).where(teams.c.key == team.key).values(**values)).rowcount == 0:
            conn.execute(teams.insert().values(key=team.key, created_at=now, **values))
    team_ids = dict(conn.execute(select(teams.c.key, teams.c.id)).all())
    for m in rules.managers:
        values = {
            "name": m.name,
            "team_id": team_ids[m.team],
            "email": m.email,
            "telegram_chat_id": m.telegram_chat_id,
            "regions": list(m.regions),
            "products": list(m.products),
            "languages": list(m.languages),
            "capacity": m.capacity,
            "hours": jsonable(m.hours),
            "active": m.active,
            "absent": m.absent,
            "vacations": [{"from": v.start.isoformat(), "to": v.end.isoformat()} for v in m.vacations],
            "on_call": m.on_call,
            "weight": m.weight,
            "tier": m.tier,
            "role": m.role,
            "accepts": m.accepts.as_json() if m.accepts is not None else None,
            "extension": m.extension,
            "updated_at": now,
        }
        if conn.execute(update(managers).where(managers.c.key == m.key).values(**values)).rowcount == 0:
            conn.execute(managers.insert().values(key=m.key, created_at=now, open_leads=0, **values))
    return dict(conn.execute(select(managers.c.key, managers.c.id)).all())


def count_managers(conn: Connection) -> int:
    return conn.execute(select(func.count()).select_from(managers)).scalar_one()
