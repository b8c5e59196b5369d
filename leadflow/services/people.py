"""Managers and teams: the people routing chooses from."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.engine import Connection

from leadflow.core.errors import Conflict, FieldProblem, InvalidInput, NotFound
from leadflow.core.fields import CleanJson, CleanText
from leadflow.core.policy import Action, Principal
from leadflow.core.rules import EXTENSION_PATTERN, Condition, Key, Manager, Team, Vacation
from leadflow.core.schedule import ScheduleError, parse_working_hours
from leadflow.services.access import guard_team
from leadflow.services.context import Leadflow
from leadflow.store.db import READ_ONLY
from leadflow.store.events import append_events, new_event
from leadflow.store.tables import leads, managers, teams

_MANAGER_VIEW = select(managers, teams.c.key.label("team")).join(teams, teams.c.id == managers.c.team_id)


# Text a manager or team row keeps, bounded by its column and refused when it holds control characters.
Name = Annotated[CleanText, Field(min_length=1, max_length=200)]
Email = Annotated[CleanText, Field(min_length=1, max_length=254)]
ChatId = Annotated[CleanText, Field(min_length=1, max_length=60, description="A Telegram chat id.")]
TimeZone = Annotated[CleanText, Field(min_length=1, max_length=60, description="An IANA name like Europe/Kyiv.")]
Tag = Annotated[CleanText, Field(min_length=1, max_length=60)]
Hours = Annotated[
    CleanJson | Annotated[CleanText, Field(max_length=2000)] | None,
    Field(description="Working hours: 'mon-fri 09:00-18:00', a mapping of days to hours, or 'always'."),
]


class ManagerIn(Manager):
    """A new manager, as the rules file describes one, with every text field bounded and clean."""

    name: Name
    email: Email | None = None
    telegram_chat_id: ChatId | None = None
    regions: tuple[Tag, ...] = ()
    products: tuple[Tag, ...] = ()
    languages: tuple[Tag, ...] = ()
    hours: Hours = None


class TeamIn(Team):
    """A new team, as the rules file describes one, with every text field bounded and clean."""

    name: Name | None = None
    timezone: TimeZone | None = None
    hours: Hours = None
    telegram_chat_id: ChatId | None = None
    slack_webhook_url: Annotated[CleanText | None, Field(max_length=500, description="An incoming webhook.")] = None


# Manager's annotations name Vacation and Condition, defined after it; a subclass in another module resolves them here.
ManagerIn.model_rebuild(_types_namespace={"Vacation": Vacation, "Condition": Condition})


class ManagerPatch(BaseModel):
    """Fields a head of sales changes day to day; all optional."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    team: Key | None = None
    email: Email | None = None
    telegram_chat_id: ChatId | None = None
    regions: list[Tag] | None = None
    products: list[Tag] | None = None
    languages: list[Tag] | None = None
    capacity: int | None = Field(None, ge=0, le=100_000)
    hours: Hours = None
    active: bool | None = None
    absent: bool | None = None
    accepts: dict[str, Any] | None = Field(
        None, description="Only leads matching this condition (a rule's when: language); null accepts every lead."
    )
    extension: str | None = Field(
        None, min_length=1, max_length=40, pattern=EXTENSION_PATTERN,
        description="Their internal phone number, as call tracking reports it.",
    )  # fmt: skip


class TeamPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    timezone: TimeZone | None = None
    head: Key | None = None
    hours: Hours = None


def _team_id(conn: Connection, key: str) -> int:
    found = conn.execute(select(teams.c.id).where(teams.c.key == key)).scalar()
    if found is None:
        raise InvalidInput.one("team", f"team '{key}' does not exist")
    return int(found)


def _check_hours(spec: Any, timezone: str) -> None:
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput.one(
            "timezone", f"unknown time zone '{timezone}' (use an IANA name like Europe/Kyiv)"
        ) from None
    try:
        parse_working_hours(spec, timezone)
    except (ScheduleError, ValueError) as exc:
        raise InvalidInput.one("hours", str(exc)) from None


def _no_nulls(changes: dict[str, Any], required: tuple[str, ...]) -> None:
    """An explicit null for a field that must have a value is the caller's mistake, not a server error."""
    problems = [FieldProblem(f, f"{f} cannot be empty: leave it out to keep the current value") for f in required
                if f in changes and changes[f] is None]  # fmt: skip
    if problems:
        raise InvalidInput(problems)


def _extension_free(conn: Connection, extension: str | None, key: str) -> None:
    """An extension names one manager: a call answered on it must say whose contact it is."""
    if extension is None:
        return
    holder = conn.execute(select(managers.c.key).where(managers.c.extension == extension,
                                                       managers.c.key != key)).scalar()  # fmt: skip
    if holder is not None:
        raise Conflict(f"extension '{extension}' is {holder}'s: a call must name one manager")


def _accepts(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """A patch's `accepts`, checked as the rules file checks it and stored in the same form."""
    if value is None:
        return None
    try:
        condition = Manager.model_validate({"key": "k", "name": "n", "team": "t", "accepts": value}).accepts
    except ValidationError as exc:
        raise InvalidInput([FieldProblem("accepts", e["msg"]) for e in exc.errors()]) from None
    return condition.as_json() if condition is not None else None


def _manager(conn: Connection, key: str) -> dict[str, Any]:
    row = conn.execute(_MANAGER_VIEW.where(managers.c.key == key)).mappings().first()
    if row is None:
        raise NotFound(f"manager '{key}' does not exist")
    return dict(row)


def list_managers(app: Leadflow, team: str | None = None) -> list[dict[str, Any]]:
    query = _MANAGER_VIEW.order_by(managers.c.id)
    if team:
        query = query.where(teams.c.key == team)
    with app.engine.connect().execution_options(**READ_ONLY) as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def get_manager(app: Leadflow, key: str) -> dict[str, Any]:
    with app.engine.connect().execution_options(**READ_ONLY) as conn:
        return _manager(conn, key)


def create_manager(app: Leadflow, data: Manager, now: datetime, *, who: Principal) -> dict[str, Any]:
    _check_hours(data.hours, app.rules.default_timezone)
    with app.engine.begin() as conn:
        team_id = _team_id(conn, data.team)
        guard_team(who, Action.PEOPLE_WRITE, team_id, f"team '{data.team}'")
        if conn.execute(select(exists().where(managers.c.key == data.key))).scalar():
            raise Conflict(f"manager '{data.key}' already exists")
        _extension_free(conn, data.extension, data.key)
        values = data.model_dump(exclude={"team"})
        values.update(team_id=team_id, open_leads=0, created_at=now, updated_at=now)
        values.update(regions=list(data.regions), products=list(data.products), languages=list(data.languages))
        # Stored as the rules file writes them, which is how routing reads them back.
        values["vacations"] = [{"from": v.start.isoformat(), "to": v.end.isoformat()} for v in data.vacations]
        values["accepts"] = data.accepts.as_json() if data.accepts is not None else None
        conn.execute(managers.insert().values(**values))
        append_events(conn, [new_event(None, "manager.created", now, who, manager=data.key, team=data.team)])
        return _manager(conn, data.key)


def update_manager(app: Leadflow, key: str, patch: ManagerPatch, now: datetime, *, who: Principal) -> dict[str, Any]:
    changes = patch.model_dump(exclude_unset=True)
    _no_nulls(changes, ("name", "team", "capacity", "active", "absent", "regions", "products", "languages"))
    if "hours" in changes:
        _check_hours(changes["hours"], app.rules.default_timezone)
    with app.engine.begin() as conn:
        current = _manager(conn, key)
        guard_team(who, Action.PEOPLE_WRITE, current["team_id"], f"manager '{key}'")
        changed = sorted(changes)
        if "team" in changes:
            new_team = changes.pop("team")
            changes["team_id"] = _team_id(conn, new_team)
            guard_team(who, Action.PEOPLE_WRITE, changes["team_id"], f"team '{new_team}'")
        if "accepts" in changes:
            changes["accepts"] = _accepts(changes["accepts"])
        if changes.get("extension") is not None:
            _extension_free(conn, changes["extension"], key)
        for field, fold in (("regions", str.upper), ("products", str.lower), ("languages", str.lower)):
            if changes.get(field) is not None:
                changes[field] = [fold(v) for v in changes[field]]
        conn.execute(update(managers).where(managers.c.key == key).values(**changes, updated_at=now))
        append_events(conn, [new_event(None, "manager.updated", now, who, manager=key, fields=changed)])
        return _manager(conn, key)


def delete_manager(app: Leadflow, key: str, now: datetime, *, who: Principal) -> dict[str, Any]:
    """Remove a manager who never had a lead; one with history is deactivated instead, so reports stay whole."""
    with app.engine.begin() as conn:
        row = _manager(conn, key)
        guard_team(who, Action.PEOPLE_WRITE, row["team_id"], f"manager '{key}'")
        append_events(conn, [new_event(None, "manager.removed", now, who, manager=key)])
        if conn.execute(select(exists().where(leads.c.manager_id == row["id"]))).scalar():
            conn.execute(update(managers).where(managers.c.key == key).values(active=False, updated_at=now))
            return {**_manager(conn, key), "deleted": False}
        conn.execute(delete(managers).where(managers.c.key == key))
        return {**row, "deleted": True}


def list_teams(app: Leadflow) -> list[dict[str, Any]]:
    size = select(func.count()).where(managers.c.team_id == teams.c.id).scalar_subquery()
    with app.engine.connect().execution_options(**READ_ONLY) as conn:
        return [dict(r) for r in conn.execute(select(teams, size.label("managers")).order_by(teams.c.id)).mappings()]


def _team(conn: Connection, key: str) -> dict[str, Any]:
    row = conn.execute(select(teams).where(teams.c.key == key)).mappings().first()
    if row is None:
        raise NotFound(f"team '{key}' does not exist")
    return dict(row)


def get_team(app: Leadflow, key: str) -> dict[str, Any]:
    with app.engine.connect().execution_options(**READ_ONLY) as conn:
        return _team(conn, key)


def create_team(app: Leadflow, data: Team, now: datetime, *, who: Principal) -> dict[str, Any]:
    _check_hours(data.hours, data.timezone or app.rules.default_timezone)
    with app.engine.begin() as conn:
        append_events(conn, [new_event(None, "team.created", now, who, team=data.key)])
        if conn.execute(select(exists().where(teams.c.key == data.key))).scalar():
            raise Conflict(f"team '{data.key}' already exists")
        conn.execute(
            teams.insert().values(
                key=data.key, name=data.name or data.key, timezone=data.timezone, head_key=data.head,
                hours=data.hours, telegram_chat_id=data.telegram_chat_id, slack_webhook_url=data.slack_webhook_url,
                scoring=data.scoring, desk=data.desk, desk_sla_seconds=int(data.desk_sla.total_seconds()),
                sticky=data.sticky, sticky_wait_seconds=int(data.sticky_wait.total_seconds()),
                match_accounts=data.match_accounts, created_at=now, updated_at=now,
            )
        )  # fmt: skip
        return _team(conn, data.key)


def update_team(app: Leadflow, key: str, patch: TeamPatch, now: datetime, *, who: Principal) -> dict[str, Any]:
    changes = patch.model_dump(exclude_unset=True)
    _no_nulls(changes, ("name",))
    if "head" in changes:
        changes["head_key"] = changes.pop("head")
    with app.engine.begin() as conn:
        current = _team(conn, key)
        guard_team(who, Action.PEOPLE_WRITE, current["id"], f"team '{key}'")
        append_events(conn, [new_event(None, "team.updated", now, who, team=key, fields=sorted(changes))])
        if "hours" in changes or "timezone" in changes:
            timezone = changes.get("timezone") or current["timezone"] or app.rules.default_timezone
            _check_hours(changes.get("hours", current["hours"]), timezone)
        conn.execute(update(teams).where(teams.c.key == key).values(**changes, updated_at=now))
        # Managers' cached schedules depend on their team's hours and zone.
        conn.execute(update(managers).where(managers.c.team_id == current["id"]).values(updated_at=now))
        return _team(conn, key)


def delete_team(app: Leadflow, key: str, now: datetime, *, who: Principal) -> None:
    with app.engine.begin() as conn:
        team = _team(conn, key)
        append_events(conn, [new_event(None, "team.removed", now, who, team=key)])
        if conn.execute(select(exists().where(managers.c.team_id == team["id"]))).scalar():
            raise Conflict(f"team '{key}' still has managers: move or remove them first")
        conn.execute(delete(teams).where(teams.c.key == key))
    app.forget_team(key)
