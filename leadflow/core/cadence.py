"""Call cadence: when to call a new lead again after an attempt nobody answered.

A new lead gets several call attempts (seven by default) spread out by simple rules: only inside the client's
own calling window (10:00-19:00 in the client's time zone), a few hours apart, no more than a few a day (mobiles
take more calls a day than landlines), and never on a day the team does not work or on a holiday.

Pure: no I/O and no wall clock. The caller keeps each lead's attempts and asks `next_attempt` for the next one,
giving it `now`. Every instant is an aware UTC datetime; local time is used only to compare with the window and
to tell dates apart. A window boundary that falls into the spring-forward gap means the first real instant after
it, an ambiguous one in the autumn fold its first occurrence (fold=0), as for working hours.

A client-local day runs from its local midnight to the next; the client's dates decide the window and the
calls-per-day limit, the team's dates decide closed weekdays and holidays.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cached_property, lru_cache
from typing import Annotated, Any, Self

import phonenumbers
from phonenumbers import timezone as phone_timezones
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, field_validator

from leadflow.core.schedule import DAY_NAMES, ScheduleError, _local_to_utc, _zone, format_duration, parse_duration

__all__ = [
    "DEFAULT_CADENCE",
    "LOOKAHEAD_DAYS",
    "AttemptLimits",
    "CadencePolicy",
    "Plan",
    "client_timezone",
    "next_attempt",
]

# The rules file imports this module, so these two are declared here and not taken from it.
Key = Annotated[str, Field(min_length=1, max_length=60, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
Duration = Annotated[timedelta, BeforeValidator(parse_duration), PlainSerializer(format_duration, return_type=str)]

# How far ahead of `now` to look for calling time before deciding there is none.
LOOKAHEAD_DAYS = 60
_LOOKAHEAD = timedelta(days=LOOKAHEAD_DAYS)
_ONE_DAY = timedelta(days=1)
_MINUTES_PER_DAY = 1440
_WINDOW = re.compile(r"^(\d{1,2}):(\d{2})\s*[-–—]\s*(\d{1,2}):(\d{2})$")
_DAY_INDEX = {name: i for i, name in enumerate(DAY_NAMES)} | {
    full: i for i, full in enumerate(("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"))
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AttemptLimits(_Strict):
    per_day: int = Field(3, ge=1, le=24, description="Most call attempts on one client-local day.")
    gap: Duration = Field(timedelta(hours=2), description="Least time between two attempts, like 2h or 90m.")


class CadencePolicy(_Strict):
    """How a new lead is called: how many attempts, when, and what happens when nobody ever answers."""

    key: Key
    attempts: int = Field(7, ge=1, le=50, description="Call attempts before giving up.")
    window: str = Field("10:00-19:00", description="When the client may be called, in the client's local time.")
    mobile: AttemptLimits = Field(AttemptLimits(per_day=3, gap=timedelta(hours=2)), description="Limits for mobiles.")
    landline: AttemptLimits = Field(
        AttemptLimits(per_day=2, gap=timedelta(hours=3)),
        description="Limits for landlines, other phone types and leads whose phone type is unknown.",
    )
    closed_days: tuple[str, ...] = Field(
        (), description="Weekdays nobody calls, on top of the days the team does not work: sat, sun ..."
    )
    holidays: tuple[date, ...] = Field((), description="Dates (the team's local dates) nobody calls.")
    exhausted_status: Key | None = Field("lost", description="Status a lead moves to when the attempts run out.")
    exhausted_reason: str = Field("could not reach", description="The reason recorded with that status.")
    teams: tuple[Key, ...] = Field((), description="Teams whose leads this policy is for; empty means any.")
    rules: tuple[Key, ...] = Field((), description="Routing rules whose leads this policy is for; empty means any.")

    @field_validator("window")
    @classmethod
    def _window(cls, value: str) -> str:
        start, end = _parse_window(value)
        return f"{_hhmm(start)}-{_hhmm(end)}"

    @field_validator("closed_days", mode="before")
    @classmethod
    def _split_days(cls, value: Any) -> Any:
        return [part for part in value.split(",") if part.strip()] if isinstance(value, str) else value

    @field_validator("closed_days")
    @classmethod
    def _days(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        names: list[str] = []
        for value in values:
            index = _DAY_INDEX.get(value.strip().lower())
            if index is None:
                raise ValueError(f"unknown weekday {value!r} in closed_days (use {', '.join(DAY_NAMES)})")
            if DAY_NAMES[index] not in names:
                names.append(DAY_NAMES[index])
        return tuple(names)

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        copy = super().model_copy(update=update, deep=deep)
        if update:  # what was worked out from the old values must not outlive them
            for name in ("window_minutes", "closed_weekdays", "_compiled"):
                copy.__dict__.pop(name, None)
        return copy

    @cached_property
    def window_minutes(self) -> tuple[int, int]:
        """The window as (start, end) minutes of the local day, 0 to 1440."""
        return _parse_window(self.window)

    @cached_property
    def closed_weekdays(self) -> frozenset[int]:
        """closed_days as weekday numbers, 0 = Monday."""
        return frozenset(_DAY_INDEX[name] for name in self.closed_days)

    @cached_property
    def _compiled(self) -> _Compiled:
        # Plain values for next_attempt, which runs for every lead: no model attribute look-ups in the loop.
        start, end = self.window_minutes
        return (
            self.attempts,
            start,
            end,
            (self.mobile.per_day, self.mobile.gap, format_duration(self.mobile.gap)),
            (self.landline.per_day, self.landline.gap, format_duration(self.landline.gap)),
            self.closed_weekdays,
            frozenset(self.holidays),
            self.window,
        )


_Limits = tuple[int, timedelta, str]
_Compiled = tuple[int, int, int, _Limits, _Limits, frozenset[int], frozenset[date], str]

DEFAULT_CADENCE = CadencePolicy(key="default")


def _parse_window(text: str) -> tuple[int, int]:
    match = _WINDOW.match(text.strip())
    if match is None:
        raise ValueError(f"calling window {text!r} is not understood: write it like 10:00-19:00")
    start_h, start_m, end_h, end_m = (int(g) for g in match.groups())
    if start_h > 23 or end_h > 24 or start_m > 59 or end_m > 59 or (end_h == 24 and end_m):
        raise ValueError(f"bad time in calling window {text!r} (times go from 00:00 to 24:00)")
    start, end = start_h * 60 + start_m, end_h * 60 + end_m
    if start >= end:
        raise ValueError(f"calling window {text!r} must start before it ends, within one day")
    return start, end


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


# --------------------------------------------------------------------------------------------------------------
# The client's time zone


def client_timezone(phone: str | None, own: str | None, fallback: str) -> tuple[str, str]:
    """The client's IANA time zone and why it was chosen.

    The lead's own zone when it is a real one; else the zone of the phone number's region when the region has
    one zone, or when `fallback` is among its zones; else `fallback`.
    """
    _zone(fallback)  # an unknown fallback is a configuration mistake: say so
    if own is not None and own.strip():
        name = own.strip()
        try:
            _zone(name)
        except ScheduleError:
            pass
        else:
            return name, f"{name}, the lead's own time zone"
    zones = _phone_zones(phone.strip()) if phone and phone.strip() else ()
    if len(zones) == 1:
        return zones[0], f"{zones[0]}, from the phone number's region"
    if fallback in zones:
        return fallback, f"{fallback}, one of the {len(zones)} time zones of the phone number's region"
    if zones:
        return fallback, f"{fallback}, the default: the phone number's region spans {len(zones)} time zones"
    return fallback, f"{fallback}, the default: the phone number does not tell" if phone else f"{fallback}, the default"


@lru_cache(maxsize=8192)
def _phone_zones(phone: str) -> tuple[str, ...]:
    try:
        number = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return ()
    found: list[str] = []
    for name in phone_timezones.time_zones_for_number(number):
        try:
            _zone(name)
        except ScheduleError:  # "Etc/Unknown" for numbers the metadata cannot place
            continue
        found.append(name)
    return tuple(found)


# --------------------------------------------------------------------------------------------------------------
# The next attempt


@dataclass(frozen=True, slots=True)
class Plan:
    """The next call attempt: when (an aware UTC instant, None when there is none), its number, and why."""

    at: datetime | None
    attempt: int
    reason: str


_Piece = tuple[datetime, datetime, date, int, str]
_NO_TIMES: tuple[datetime, ...] = ()


@lru_cache(maxsize=16384)
def _client_day(
    client_tz: str, team_tz: str, day: date, start: int, end: int
) -> tuple[datetime, datetime, tuple[_Piece, ...]]:
    """One client-local date as UTC instants: where it starts and ends, and its window cut at the team's midnights.

    Each piece of the window is (opens, closes, team-local date, its weekday, the client's local time at opens);
    a window that lies in a spring-forward gap has no pieces.
    """
    client, team = _zone(client_tz), _zone(team_tz)
    opens, closes = _local_to_utc(client, day, start), _local_to_utc(client, day, end)
    pieces: list[_Piece] = []
    if closes > opens:
        team_day = opens.astimezone(team).date()
        while True:
            midnight = _local_to_utc(team, team_day + _ONE_DAY, 0)
            piece_end = min(midnight, closes)
            pieces.append((opens, piece_end, team_day, team_day.weekday(), f"{opens.astimezone(client):%H:%M}"))
            if piece_end == closes:
                break
            opens, team_day = midnight, team_day + _ONE_DAY
    return _local_to_utc(client, day, 0), _local_to_utc(client, day + _ONE_DAY, 0), tuple(pieces)


def _as_utc(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}")
    return value.astimezone(UTC)


# Why a time was passed over, kept as (kind, value) and put into words only when a plan is made.
_BEFORE, _AFTER, _FULL, _TEAM_OFF, _NO_CALLS, _HOLIDAY, _NO_WINDOW = range(7)


def next_attempt(
    policy: CadencePolicy,
    *,
    phone_type: str | None,
    client_tz: str,
    team_tz: str,
    team_closed: frozenset[int],
    attempts: Sequence[datetime],
    now: datetime,
) -> Plan:
    """The earliest instant, at or after `now`, for the next call attempt to a lead.

    `attempts` are the instants of the attempts made so far, in any order. `team_closed` holds the weekdays
    (0 = Monday) the team does not work, in the team's time zone `team_tz`. The instant is inside the client's
    window on the client's local date, at least the gap after the latest attempt, on a client-local date with
    fewer than the day's limit of attempts, and on a team-local date that is neither a closed weekday nor a
    holiday. `at` is None when every attempt has been made, or when no such instant comes within 60 days.
    """
    total, start, end, mobile, landline, own_closed, holidays, window = policy._compiled
    made = len(attempts)
    if made >= total:
        return Plan(None, made, f"all {total} attempts made")
    per_day, gap, gap_text = mobile if phone_type == "mobile" else landline
    if now.tzinfo is not UTC:
        now = _as_utc(now, "now")
    earliest, waited = now, False
    times: Sequence[datetime] = _NO_TIMES
    if made:
        times = sorted([a if a.tzinfo is UTC else _as_utc(a, "an attempt") for a in attempts])
        after_gap = times[-1] + gap
        if after_gap > now:
            earliest, waited = after_gap, True
    closed = team_closed | own_closed if own_closed else team_closed
    horizon = now + _LOOKAHEAD
    first = day = earliest.astimezone(_zone(client_tz)).date()
    passed: list[tuple[int, Any]] = []
    while earliest < horizon:  # one client-local day a turn, until a day starts beyond the horizon
        day_start, day_end, pieces = _client_day(client_tz, team_tz, day, start, end)
        if day_start >= horizon:
            break
        if day == first:
            first_start = day_start
        calls = bisect_left(times, day_end) - bisect_left(times, day_start)
        if calls >= per_day:
            passed.append((_FULL, (day, calls)))
        elif not pieces:
            passed.append((_NO_WINDOW, day))
        else:
            for opens, closes, team_day, weekday, local in pieces:
                if closes <= earliest:
                    continue
                if weekday in closed or team_day in holidays:
                    if weekday in team_closed:
                        passed.append((_TEAM_OFF, weekday))
                    elif weekday in own_closed:
                        passed.append((_NO_CALLS, weekday))
                    else:
                        passed.append((_HOLIDAY, team_day))
                    continue
                if opens <= earliest:
                    if not passed:  # the common case: a time inside the window, nothing in the way
                        return Plan(earliest, made + 1, _inside(made + 1, total, waited, gap_text, window, client_tz))
                    at, local = earliest, f"{earliest.astimezone(_zone(client_tz)):%H:%M}"
                else:
                    at = opens
                    if not passed:
                        passed.append((_BEFORE, None))
                if at >= horizon:
                    break
                # The client's date of `now`: the first day's, unless the gap took the first day past midnight.
                today = first if now >= first_start else now.astimezone(_zone(client_tz)).date()
                shift = (day - today).days
                when = "today" if shift == 0 else "tomorrow" if shift == 1 else f"on {_day_text(day)}"
                whys = _whys(tuple(passed), today, waited, gap_text, window, client_tz)
                return Plan(at, made + 1, f"attempt {made + 1} of {total}: {when} at {local} client time: {whys}")
            else:
                if pieces[-1][1] <= earliest:
                    passed.append((_AFTER, None))
                day += _ONE_DAY
                continue
            break  # the next free time is beyond the horizon
        day += _ONE_DAY
    return Plan(None, made + 1, _none(made + 1, total, now, earliest, gap_text, window, client_tz, passed))


def _inside(number: int, total: int, waited: bool, gap_text: str, window: str, client_tz: str) -> str:
    when = f"{gap_text} after the last one" if waited else "now"
    return f"attempt {number} of {total}: {when}, inside the client's {window} ({client_tz})"


@lru_cache(maxsize=4096)
def _whys(
    passed: tuple[tuple[int, Any], ...], today: date, waited: bool, gap_text: str, window: str, client_tz: str
) -> str:
    """The reasons times were passed over, in the order met, one phrase per kind: "the team does not work on sat, sun"."""
    subject = f"{gap_text} after the last one" if waited else "now"
    grouped: dict[int, list[Any]] = {}
    for kind, value in passed:
        values = grouped.setdefault(kind, [])
        if value not in values:
            values.append(value)
    whys: list[str] = []
    for kind, values in grouped.items():
        if kind == _BEFORE:
            whys.append(f"{subject} is before the client's {window} ({client_tz})")
        elif kind == _AFTER:
            whys.append(f"{subject} is after the client's {window} ({client_tz})")
        elif kind == _FULL:
            whys.append(
                ", ".join(
                    f"{calls} calls {'today' if day == today else 'on ' + _day_text(day)} already"
                    for day, calls in values
                )
            )
        elif kind == _TEAM_OFF:
            whys.append("the team does not work on " + ", ".join(DAY_NAMES[d] for d in values))
        elif kind == _NO_CALLS:
            whys.append("no calls on " + ", ".join(DAY_NAMES[d] for d in values))
        elif kind == _HOLIDAY:
            whys.append(", ".join(map(str, values)) + (" is a holiday" if len(values) == 1 else " are holidays"))
        else:
            whys.append(f"the clocks change over the client's {window} on " + ", ".join(map(str, values)))
    return "; ".join(whys)


def _none(
    number: int,
    total: int,
    now: datetime,
    earliest: datetime,
    gap_text: str,
    window: str,
    client_tz: str,
    passed: list[tuple[int, Any]],
) -> str:
    head = f"attempt {number} of {total}: no calling time in the next {LOOKAHEAD_DAYS} days"
    if earliest - now >= _LOOKAHEAD:
        return f"{head}: the gap of {gap_text} after the last one ends later"
    team_off = sorted({v for k, v in passed if k == _TEAM_OFF})
    no_calls = sorted({v for k, v in passed if k == _NO_CALLS})
    holidays = {v for k, v in passed if k == _HOLIDAY}
    full = sum(1 for k, _ in passed if k == _FULL)
    parts: list[str] = []
    if team_off:
        parts.append("the team does not work on " + ", ".join(DAY_NAMES[d] for d in team_off))
    if no_calls:
        parts.append("no calls on " + ", ".join(DAY_NAMES[d] for d in no_calls))
    if holidays:
        parts.append(f"{len(holidays)} holiday{'s' if len(holidays) != 1 else ''}")
    if full:
        parts.append(f"{full} day{'s' if full != 1 else ''} with all their calls made")
    if not parts:
        parts.append(f"the client's {window} ({client_tz}) never comes")
    return f"{head}: " + "; ".join(parts)


def _day_text(day: date) -> str:
    return f"{DAY_NAMES[day.weekday()]} {day.isoformat()}"
