"""What a report is asked for (a period of local days, a time zone, teams, managers, channels, sources, UTM
campaigns) and what it may show (the caller's scope), resolved once into a `Window` every report reads by."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import ColumnElement, Table, select
from sqlalchemy.engine import Connection

from leadflow.core.errors import FieldProblem, Forbidden, InvalidInput
from leadflow.core.policy import Principal, ReportScope, report_scope
from leadflow.store.tables import leads, managers, teams

MAX_DAYS = 400  # a report covers at most this many days: its cost grows with the period
DEFAULT_DAYS = 30


@dataclass(frozen=True, slots=True)
class ReportQuery:
    """The filters, as a caller gives them. Dates are local days in `timezone`, both ends included; None: the
    last 30 days up to today. No team or manager: every one the caller may see."""

    start: date | None = None
    end: date | None = None
    timezone: str | None = None  # None: the rules' default_timezone
    teams: tuple[str, ...] = ()
    managers: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    campaigns: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Person:
    id: int
    key: str
    name: str
    team_id: int
    capacity: int = 0
    weight: int = 1
    active: bool = True


@dataclass(frozen=True, slots=True)
class TeamInfo:
    id: int
    key: str
    name: str
    timezone: str | None
    head_key: str | None


@dataclass(frozen=True)
class Window:
    """A resolved query: UTC bounds [start, end) of the local days asked for, the ids to filter by (None: no
    filter), and the people and teams of the caller's scope by id, to name them."""

    query: ReportQuery
    first_day: date
    last_day: date
    zone: ZoneInfo
    start: datetime
    end: datetime
    team_ids: tuple[int, ...] | None
    manager_ids: tuple[int, ...] | None
    people: dict[int, Person] = field(default_factory=dict)
    team_info: dict[int, TeamInfo] = field(default_factory=dict)
    own: bool = False  # a manager reading their own figures

    @property
    def days(self) -> list[date]:
        return [self.first_day + timedelta(days=i) for i in range((self.last_day - self.first_day).days + 1)]

    def local_day(self, instant: datetime) -> date:
        return instant.astimezone(self.zone).date()

    def lead_filters(self, table: Table = leads, *, owner: bool = True) -> list[ColumnElement[bool]]:
        """Conditions on a leads table by team, owner (when `owner`), channel, source and campaign; not by time."""
        found: list[ColumnElement[bool]] = []
        if self.team_ids is not None:
            found.append(table.c.team_id.in_(self.team_ids))
        if owner and self.manager_ids is not None:
            found.append(table.c.manager_id.in_(self.manager_ids))
        if self.query.channels:
            found.append(table.c.channel.in_(self.query.channels))
        if self.query.sources:
            found.append(table.c.source.in_(self.query.sources))
        if self.query.campaigns:
            found.append(table.c.utm_campaign.in_(self.query.campaigns))
        return found

    def created_in(self, table: Table = leads) -> list[ColumnElement[bool]]:
        """The leads that arrived in the period, with the filters."""
        return [table.c.created_at >= self.start, table.c.created_at < self.end, *self.lead_filters(table)]

    def people_of(self, ids: Sequence[int] | None = None) -> list[Person]:
        """The people in scope (the managers asked for, else everyone the caller may see), by name."""
        chosen = [p for p in self.people.values() if ids is None or p.id in ids]
        if self.manager_ids is not None:
            chosen = [p for p in chosen if p.id in self.manager_ids]
        return sorted(chosen, key=lambda p: (p.name.lower(), p.key))

    def echo(self) -> dict[str, Any]:
        """The query as it was understood, for the answer."""
        q = self.query
        return {"from": self.first_day.isoformat(), "to": self.last_day.isoformat(), "timezone": self.zone.key,
                "teams": list(q.teams), "managers": list(q.managers), "channels": list(q.channels),
                "sources": list(q.sources), "campaigns": list(q.campaigns)}  # fmt: skip


def resolve(conn: Connection, query: ReportQuery, who: Principal, default_timezone: str, now: datetime) -> Window:
    """The window of `query` for `who`: 422 naming each bad filter, 403 for a team or manager outside their scope."""
    scope = report_scope(who)
    if scope is None:
        raise Forbidden(f"{who.label} may not read reports: it takes the role admin, head or manager, or an API key "
                        "of scope read, write or admin")  # fmt: skip
    problems: list[FieldProblem] = []
    zone = _zone(query.timezone or default_timezone, problems)
    today = now.astimezone(zone).date()
    last = query.end or (today if query.start is None else min(query.start + timedelta(days=DEFAULT_DAYS - 1), today))
    first = query.start or last - timedelta(days=DEFAULT_DAYS - 1)
    if last < first:
        problems.append(FieldProblem("to", f"the period ends ({last}) before it starts ({first})"))
    elif (last - first).days + 1 > MAX_DAYS:
        problems.append(FieldProblem("from", f"a report covers at most {MAX_DAYS} days; this asks for "
                                             f"{(last - first).days + 1}"))  # fmt: skip
    team_rows = {r.key: r for r in conn.execute(select(teams.c.id, teams.c.key, teams.c.name, teams.c.timezone,
                                                        teams.c.head_key))}  # fmt: skip
    people_rows = list(conn.execute(select(managers.c.id, managers.c.key, managers.c.name, managers.c.team_id,
                                           managers.c.capacity, managers.c.weight, managers.c.active)))  # fmt: skip
    by_key = {r.key: r for r in people_rows}
    for key in query.teams:
        if key not in team_rows:
            problems.append(FieldProblem("team", f"team '{key}' does not exist"))
    for key in query.managers:
        if key not in by_key:
            problems.append(FieldProblem("manager", f"manager '{key}' does not exist"))
    if problems:
        raise InvalidInput(problems)
    team_ids = _team_ids(scope, [team_rows[k].id for k in query.teams], {r.id: k for k, r in team_rows.items()})
    manager_ids = _manager_ids(scope, [by_key[k].id for k in query.managers])
    visible = {
        r.id: Person(r.id, r.key, r.name, r.team_id, r.capacity, r.weight, r.active)
        for r in people_rows
        if (team_ids is None or r.team_id in team_ids) and (scope.manager_id is None or r.id == scope.manager_id)
    }
    teams_seen = {r.id: TeamInfo(r.id, r.key, r.name, r.timezone, r.head_key) for r in team_rows.values()
                  if team_ids is None or r.id in team_ids}  # fmt: skip
    start = datetime.combine(first, time(0), zone)
    end = datetime.combine(last + timedelta(days=1), time(0), zone)
    return Window(query, first, last, zone, start, end, team_ids, manager_ids, visible, teams_seen,
                  own=scope.manager_id is not None)  # fmt: skip


def _zone(name: str, problems: list[FieldProblem]) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(FieldProblem("tz", f"'{name}' is not a time zone: use an IANA name such as Europe/Kyiv"))
        return ZoneInfo("UTC")


def _team_ids(scope: ReportScope, asked: list[int], keys: dict[int, str]) -> tuple[int, ...] | None:
    if scope.team_ids is None:
        return tuple(asked) or None
    outside = [keys[t] for t in asked if t not in scope.team_ids]
    if outside:
        raise Forbidden(f"your reports cover your own teams; not {', '.join(outside)}")
    return tuple(asked) or tuple(sorted(scope.team_ids))


def _manager_ids(scope: ReportScope, asked: list[int]) -> tuple[int, ...] | None:
    if scope.manager_id is None:
        return tuple(asked) or None
    if any(m != scope.manager_id for m in asked):
        raise Forbidden("a manager's reports show their own figures only")
    return (scope.manager_id,)
