"""Working hours: when a manager or a team is on shift, and deadlines counted in working time.

A lead that arrives at 22:00 for a team that opens at 09:00 with a 10-minute first-contact target is due at
09:10 local time the next working day. This module answers that kind of question.

Pure: no I/O and no wall clock; every function is given the instants it works on. Schedules are written in
local wall time of an IANA time zone; every local boundary is turned into a real instant with
``zoneinfo`` and all arithmetic happens on instants (in UTC), so a 09:00-18:00 day is 9 real hours even on the
day the clocks change. A boundary that falls into the spring-forward gap means the first real instant after
it; an ambiguous boundary in the autumn fold means its first occurrence (fold=0).

Returned datetimes are aware UTC instants: arithmetic on a zoned datetime is wall-clock arithmetic in Python,
which is ambiguous inside a DST fold, so callers convert to local time only to show a time to a person.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from leadflow.core.errors import LeadflowError

__all__ = [
    "ALWAYS",
    "DAY_NAMES",
    "ScheduleError",
    "WorkingHours",
    "add_working_time",
    "format_duration",
    "is_open",
    "next_open",
    "parse_duration",
    "parse_working_hours",
    "working_time_between",
]


class ScheduleError(LeadflowError, ValueError):
    """A schedule or a duration that cannot be understood, or a question it cannot answer."""


DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_INDEX = {name: i for i, name in enumerate(DAY_NAMES)} | {
    full: i for i, full in enumerate(("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"))
}
_DAY_HINT = "use " + ", ".join(DAY_NAMES)

_MINUTES_PER_DAY = 1440
_FULL_DAY: tuple[tuple[int, int], ...] = ((0, _MINUTES_PER_DAY),)
_FULL_WEEK: tuple[tuple[tuple[int, int], ...], ...] = (_FULL_DAY,) * 7
_ONE_DAY = timedelta(days=1)
_ZERO = timedelta(0)
# How far ahead to look for open time before deciding there is none.
_LOOKAHEAD_DAYS = 366

Span = tuple[int, int]


# --------------------------------------------------------------------------------------------------------------
# The schedule


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError, TypeError):
        raise ScheduleError(
            f"unknown time zone {name!r} (use an IANA name such as Europe/Kyiv, America/New_York or UTC)"
        ) from None


@dataclass(frozen=True, slots=True)
class WorkingHours:
    """A weekly schedule in a time zone, with holidays.

    ``week`` has 7 entries, Monday first; each is a sorted tuple of non-overlapping ``(start_minute,
    end_minute)`` local intervals with ``0 <= start < end <= 1440``. An overnight shift is stored split at
    midnight. ``closed_dates`` are local calendar dates closed from 00:00 to 24:00.
    """

    timezone: str
    week: tuple[tuple[tuple[int, int], ...], ...]
    closed_dates: frozenset[date] = frozenset()

    def __post_init__(self) -> None:
        _zone(self.timezone)
        try:
            week = tuple(tuple((int(s), int(e)) for s, e in day) for day in self.week)
        except (TypeError, ValueError):
            raise ScheduleError("week must be 7 tuples of (start_minute, end_minute) pairs") from None
        if len(week) != 7:
            raise ScheduleError(f"week must have 7 days, Monday first, not {len(week)}")
        for index, day in enumerate(week):
            previous_end = 0
            for s, e in day:
                if not 0 <= s < e <= _MINUTES_PER_DAY:
                    raise ScheduleError(f"bad interval ({s}, {e}) on {DAY_NAMES[index]}: minutes go 0 to 1440")
                if s < previous_end:
                    raise ScheduleError(f"intervals on {DAY_NAMES[index]} overlap or are not sorted: {day}")
                previous_end = e
        closed = frozenset(self.closed_dates)
        for d in closed:
            if isinstance(d, datetime) or not isinstance(d, date):
                raise ScheduleError(f"closed date {d!r} is not a date")
        object.__setattr__(self, "week", week)
        object.__setattr__(self, "closed_dates", closed)

    @property
    def always_open(self) -> bool:
        return self.week == _FULL_WEEK and not self.closed_dates


ALWAYS = WorkingHours("UTC", _FULL_WEEK)


# --------------------------------------------------------------------------------------------------------------
# Parsing working hours

_TIME = r"(\d{1,2}):(\d{2})"
_INTERVAL = re.compile(rf"^{_TIME}\s*[-–—]\s*{_TIME}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_COMPACT_PART = re.compile(r"^([a-z]+(?:\s*[-,]\s*[a-z]+)*)\s+(\S.*)$", re.IGNORECASE)
_OFF_WORDS = frozenset({"off", "closed"})
_ALL_DAY_WORDS = frozenset({"24h", "24/7"})
_ALWAYS_WORDS = frozenset({"always", "24/7"})
_KEY_HINT = (
    "use timezone, closed, or weekdays: mon, tue, wed, thu, fri, sat, sun, ranges like mon-fri, lists like sat,sun"
)
_HOURS_HINT = "write them like 09:00-18:00, several separated by commas, or off, or 24h"


def parse_working_hours(spec: Mapping[str, object] | str | None, default_timezone: str = "UTC") -> WorkingHours:
    """Read working hours as people write them in the rules file.

    ``None``, ``"always"`` and ``"24/7"`` mean always open. A mapping names days and their hours::

        {"timezone": "Europe/Kyiv", "mon-fri": "09:00-18:00", "sat": "10:00-14:00", "closed": ["2026-12-25"]}

    A string is the compact form ``"mon-fri 09:00-18:00; sat 10:00-14:00"``. Days not mentioned are closed.
    An overnight interval such as ``22:00-06:00`` belongs to the day it starts and runs into the next morning.
    """
    if spec is None:
        return _always_in(default_timezone)
    if isinstance(spec, str):
        text = spec.strip()
        if text.lower() in _ALWAYS_WORDS:
            return _always_in(default_timezone)
        if not text:
            raise ScheduleError("working hours are empty: write e.g. 'mon-fri 09:00-18:00', or 'always'")
        return _parse_mapping(_compact_to_mapping(text), default_timezone, separator=" ")
    if isinstance(spec, Mapping):
        return _parse_mapping(spec, default_timezone, separator=": ")
    raise ScheduleError(
        f"working hours must be text like 'mon-fri 09:00-18:00', a mapping of days to hours, or 'always'; got {spec!r}"
    )


def _always_in(timezone: str) -> WorkingHours:
    return ALWAYS if timezone == ALWAYS.timezone else WorkingHours(timezone, _FULL_WEEK)


def _compact_to_mapping(text: str) -> dict[str, object]:
    mapping: dict[str, object] = {}
    for part in (p.strip() for p in re.split(r"[;\n]", text)):
        if not part:
            continue
        match = _COMPACT_PART.match(part)
        if match is None:
            raise ScheduleError(
                f"cannot read {part!r} in {text!r}: write days and their hours, like 'mon-fri 09:00-18:00; "
                f"sat 10:00-14:00'"
            )
        key, value = match.group(1), match.group(2).strip()
        normal = re.sub(r"\s+", "", key.lower())
        if any(re.sub(r"\s+", "", k.lower()) == normal for k in mapping):
            raise ScheduleError(f"{key!r} is given twice in {text!r}")
        mapping[key] = value
    if not mapping:
        raise ScheduleError(f"working hours {text!r} name no days: write e.g. 'mon-fri 09:00-18:00', or 'always'")
    return mapping


def _parse_mapping(spec: Mapping[str, object], default_timezone: str, separator: str) -> WorkingHours:
    timezone = default_timezone
    closed: frozenset[date] = frozenset()
    named_in: dict[int, str] = {}
    # Per weekday: (start, end, where it came from) before sorting and merging.
    pieces: list[list[tuple[int, int, str]]] = [[] for _ in range(7)]
    for raw_key, value in spec.items():
        if not isinstance(raw_key, str):
            raise ScheduleError(f"unknown key {raw_key!r} in working hours ({_KEY_HINT})")
        key = raw_key.strip().lower()
        if key == "timezone":
            if value is None:
                continue
            if not isinstance(value, str) or not value.strip():
                raise ScheduleError(f"timezone must be an IANA name such as Europe/Kyiv, not {value!r}")
            timezone = value.strip()
            _zone(timezone)
            continue
        if key == "closed":
            closed = _parse_closed(value)
            continue
        days = _parse_day_key(raw_key)
        for day in days:
            if day in named_in:
                raise ScheduleError(f"{DAY_NAMES[day]} is given twice: in {named_in[day]!r} and in {raw_key!r}")
            named_in[day] = raw_key
        for start, end, text in _parse_day_value(raw_key, value, separator):
            where = f"{raw_key}{separator}{text}"
            for day in days:
                if start < end:
                    pieces[day].append((start, end, where))
                else:  # overnight: the part after midnight belongs to the morning of the next day
                    pieces[day].append((start, _MINUTES_PER_DAY, where))
                    if end > 0:
                        pieces[(day + 1) % 7].append((0, end, where))
    if not named_in:
        raise ScheduleError(
            "working hours name no days: add e.g. 'mon-fri: 09:00-18:00', or write 'always' for round the clock"
        )
    return WorkingHours(timezone, tuple(_assemble(i, p) for i, p in enumerate(pieces)), closed)


def _assemble(day: int, pieces: list[tuple[int, int, str]]) -> tuple[Span, ...]:
    merged: list[Span] = []
    previous: tuple[int, int, str] | None = None
    for piece in sorted(pieces):
        start, end, _ = piece
        if previous is not None and start < previous[1]:
            raise ScheduleError(
                f"hours overlap on {DAY_NAMES[day]}: {_hhmm(previous[0])}-{_hhmm(previous[1])} "
                f"(from {previous[2]!r}) and {_hhmm(start)}-{_hhmm(end)} (from {piece[2]!r})"
            )
        if merged and merged[-1][1] == start:  # touching intervals are one
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
        previous = piece
    return tuple(merged)


def _parse_day_key(key: str) -> list[int]:
    text = key.strip().lower()
    if not text:
        raise ScheduleError(f"unknown key {key!r} in working hours ({_KEY_HINT})")
    parts = [p.strip() for p in text.split(",")]
    if len(parts) == 1 and "-" not in text and text not in _DAY_INDEX:
        raise ScheduleError(f"unknown key {key!r} in working hours ({_KEY_HINT})")
    days: list[int] = []
    for part in parts:
        ends = [e.strip() for e in part.split("-")]
        if len(ends) > 2 or not all(ends):
            raise ScheduleError(f"cannot read days {part!r} in {key!r} (write a day, a range like mon-fri, or sat,sun)")
        for name in ends:
            if name not in _DAY_INDEX:
                raise ScheduleError(f"unknown weekday {name!r} in {key!r} ({_DAY_HINT})")
        first = _DAY_INDEX[ends[0]]
        last = _DAY_INDEX[ends[-1]]
        span = [(first + i) % 7 for i in range((last - first) % 7 + 1)]  # fri-mon wraps over the weekend
        for day in span:
            if day in days:
                raise ScheduleError(f"{DAY_NAMES[day]} is named twice in {key!r}")
            days.append(day)
    return days


def _parse_day_value(key: str, value: object, separator: str) -> list[tuple[int, int, str]]:
    """Intervals of one day as (start, end, text); end < start means overnight, end 0 means midnight."""
    if value is None or value is False:  # YAML reads a bare `off` as false
        return []
    if isinstance(value, list | tuple):
        items: list[object] = list(value)
    elif isinstance(value, str):
        if value.strip().lower() in _OFF_WORDS:
            return []
        items = list(value.split(","))
    else:
        raise ScheduleError(f"cannot read hours {value!r} for {key!r}: {_HOURS_HINT}")
    result: list[tuple[int, int, str]] = []
    for item in items:
        if not isinstance(item, str):
            raise ScheduleError(f"cannot read hours {item!r} for {key!r}: {_HOURS_HINT}")
        text = item.strip()
        if text.lower() in _ALL_DAY_WORDS:
            result.append((0, _MINUTES_PER_DAY, text))
            continue
        if text.lower() in _OFF_WORDS and len(items) == 1:
            return []
        match = _INTERVAL.match(text)
        if match is None:
            raise ScheduleError(f"cannot read hours {text!r} in '{key}{separator}{_shown(value)}': {_HOURS_HINT}")
        start = _minutes(match.group(1), match.group(2), text, key, separator, value)
        end = _minutes(match.group(3), match.group(4), text, key, separator, value)
        if start == _MINUTES_PER_DAY:
            raise ScheduleError(f"24:00 can only end an interval, not start it: {text!r} in {key!r}")
        if start == end:
            raise ScheduleError(f"interval {text!r} in {key!r} is empty (for round the clock write 24h)")
        result.append((start, end, text))
    return result


def _minutes(hh: str, mm: str, text: str, key: str, separator: str, value: object) -> int:
    hours, minutes = int(hh), int(mm)
    if hours > 24 or minutes > 59 or (hours == 24 and minutes):
        raise ScheduleError(f"bad time '{hh}:{mm}' in '{key}{separator}{_shown(value)}' (times go from 00:00 to 24:00)")
    return hours * 60 + minutes


def _shown(value: object) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value).strip()


def _parse_closed(value: object) -> frozenset[date]:
    if value is None:
        return frozenset()
    items: list[object]
    if isinstance(value, str):
        items = [v for v in (part.strip() for part in value.split(",")) if v]
    elif isinstance(value, list | tuple | set | frozenset):
        items = list(value)
    else:
        items = [value]
    dates: set[date] = set()
    for item in items:
        if isinstance(item, date) and not isinstance(item, datetime):  # YAML reads 2026-12-25 as a date
            dates.add(item)
            continue
        text = item.strip() if isinstance(item, str) else None
        parsed: date | None = None
        if text is not None and _DATE.match(text):
            try:
                parsed = date.fromisoformat(text)
            except ValueError:
                parsed = None
        if parsed is None:
            raise ScheduleError(f"closed date {item!r} is not a date (write it like 2026-12-25)")
        dates.add(parsed)
    return frozenset(dates)


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


# --------------------------------------------------------------------------------------------------------------
# Local wall time to instants


def _local_to_utc(zone: ZoneInfo, day: date, minute: int) -> datetime:
    """The instant of a local wall time: gap times move to the end of the gap, fold times take fold=0."""
    wall = datetime(day.year, day.month, day.day) + timedelta(minutes=minute)
    instant = wall.replace(tzinfo=zone).astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) == wall:
        return instant
    # The wall time does not exist. fold=0 reads it with the offset before the gap (an instant whose local time
    # is after `wall`), fold=1 with the offset after it (local time before `wall`); the transition lies between.
    other = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    low, high = sorted((instant, other))
    low_s, high_s = _seconds(low), _seconds(high)
    while high_s - low_s > 1:
        middle = (low_s + high_s) // 2
        if (_EPOCH + timedelta(seconds=middle)).astimezone(zone).replace(tzinfo=None) >= wall:
            high_s = middle
        else:
            low_s = middle
    return _EPOCH + timedelta(seconds=high_s)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _seconds(instant: datetime) -> int:
    return (instant - _EPOCH) // timedelta(seconds=1)


@lru_cache(maxsize=8192)
def _day_spans(timezone: str, spans: tuple[Span, ...], day: date) -> tuple[tuple[datetime, datetime], ...]:
    """The open intervals of one local date as UTC instants; empty ones (inside a gap) are dropped."""
    zone = _zone(timezone)
    result: list[tuple[datetime, datetime]] = []
    for start, end in spans:
        opens, closes = _local_to_utc(zone, day, start), _local_to_utc(zone, day, end)
        if closes > opens:
            result.append((opens, closes))
    return tuple(result)


def _open_spans(
    hours: WorkingHours, start: datetime, until: datetime | None = None
) -> Iterator[tuple[datetime, datetime]]:
    """Open intervals, in order, that end after `start` (a UTC instant).

    Stops after the local date of `until`, or, without `until`, after a run of more than a year of closed days.
    Intervals may touch (across midnight); they never overlap.
    """
    zone = _zone(hours.timezone)
    try:
        day = start.astimezone(zone).date()
        last_day = until.astimezone(zone).date() + _ONE_DAY if until is not None else None
        idle = 0
        while True:
            if last_day is not None:
                if day > last_day:
                    return
            elif idle > _LOOKAHEAD_DAYS:
                return
            found = False
            if day not in hours.closed_dates:
                for span in _day_spans(hours.timezone, hours.week[day.weekday()], day):
                    if span[1] > start:
                        found = True
                        yield span
            idle = 0 if found else idle + 1
            day += _ONE_DAY
    except OverflowError:  # the end of the calendar
        return


def _utc(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}")
    return value.astimezone(UTC)


# --------------------------------------------------------------------------------------------------------------
# Questions


def is_open(hours: WorkingHours, at: datetime) -> bool:
    """Whether `at` (timezone-aware) falls in working hours."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"at must be timezone-aware, got naive {at.isoformat()}")
    if hours.always_open:
        return True
    local = at.astimezone(_zone(hours.timezone))
    day = local.date()
    if local.fold:
        # The second pass through an autumn hour: wall-clock comparison would mislead, compare instants.
        utc = at.astimezone(UTC)
        for d in (day, day + _ONE_DAY):
            if d not in hours.closed_dates:
                for opens, closes in _day_spans(hours.timezone, hours.week[d.weekday()], d):
                    if opens <= utc < closes:
                        return True
        return False
    if day in hours.closed_dates:
        return False
    # Boundaries are whole minutes, so the minute `at` falls in decides; gap boundaries agree with wall time.
    minute = local.hour * 60 + local.minute
    for start, end in hours.week[local.weekday()]:
        if minute < start:
            return False
        if minute < end:
            return True
    return False


def next_open(hours: WorkingHours, at: datetime) -> datetime | None:
    """`at` itself if open, else the start of the next open interval, as a UTC instant.

    None when the schedule has no open time within a year.
    """
    utc = _utc(at, "at")
    if hours.always_open:
        return utc
    if not any(hours.week):
        return None
    for opens, _ in _open_spans(hours, utc):
        return max(opens, utc)
    return None


def add_working_time(hours: WorkingHours, start: datetime, duration: timedelta) -> datetime:
    """The UTC instant when `duration` of open time has passed since `start`.

    Closed time does not count. A zero duration gives `start` itself.
    """
    utc = _utc(start, "start")
    if duration < _ZERO:
        raise ScheduleError(f"working time to add must not be negative, got {duration}")
    if hours.always_open or not duration:
        return utc + duration
    remaining = duration
    for opens, closes in _open_spans(hours, utc):
        begin = max(opens, utc)
        available = closes - begin
        if remaining <= available:
            return begin + remaining
        remaining -= available
    raise ScheduleError(
        f"working hours in {hours.timezone} have no open time within {_LOOKAHEAD_DAYS} days "
        f"after {start.isoformat()}, so {format_duration(duration)} of working time never passes"
    )


def working_time_between(hours: WorkingHours, start: datetime, end: datetime) -> timedelta:
    """Open time within [start, end); zero when end is not after start."""
    begin, finish = _utc(start, "start"), _utc(end, "end")
    if finish <= begin:
        return _ZERO
    if hours.always_open:
        return finish - begin
    total = _ZERO
    for opens, closes in _open_spans(hours, begin, finish):
        if opens >= finish:
            break
        total += min(closes, finish) - max(opens, begin)
    return total


# --------------------------------------------------------------------------------------------------------------
# Durations

_US = {"w": 604_800_000_000, "d": 86_400_000_000, "h": 3_600_000_000, "m": 60_000_000, "s": 1_000_000}
_UNIT_ORDER = "wdhms"
_UNIT_WORDS = {
    **dict.fromkeys(("w", "wk", "wks", "week", "weeks"), "w"),
    **dict.fromkeys(("d", "day", "days"), "d"),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), "h"),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), "m"),
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), "s"),
}
_NUMBER = r"\d+(?:\.\d+)?"
_DURATION = re.compile(rf"^(?:\s*{_NUMBER}\s*[a-z]+)+\s*$")
_DURATION_PART = re.compile(rf"({_NUMBER})\s*([a-z]+)")
_PLAIN_NUMBER = re.compile(rf"^{_NUMBER}$")


def parse_duration(text: str | int | float | timedelta) -> timedelta:
    """Read a duration: ``90s``, ``10m``, ``2h``, ``3d``, ``1w``, ``1h30m``; a plain number is seconds."""
    if isinstance(text, timedelta):
        duration = text
    elif isinstance(text, bool):
        raise _not_understood(text)
    elif isinstance(text, int | float):
        if not math.isfinite(text):
            raise _not_understood(text)
        try:
            duration = timedelta(seconds=text)
        except OverflowError:
            raise ScheduleError(f"duration '{text}' is too long") from None
    elif isinstance(text, str):
        duration = _parse_duration_text(text)
    else:
        raise _not_understood(text)
    if duration <= _ZERO:
        raise ScheduleError(f"duration '{text}' must be longer than zero")
    return duration


def _parse_duration_text(text: str) -> timedelta:
    normal = text.strip().lower()
    if len(normal) > 100:
        raise _not_understood(text)
    micro = Decimal(0)
    if _PLAIN_NUMBER.match(normal):
        micro = Decimal(normal) * _US["s"]
    elif _DURATION.match(normal):
        last_rank = -1
        for match in _DURATION_PART.finditer(normal):
            unit = _UNIT_WORDS.get(match.group(2))
            if unit is None:
                raise _not_understood(text)
            rank = _UNIT_ORDER.index(unit)
            if rank <= last_rank:  # 30m1h, 1h1h
                raise _not_understood(text)
            last_rank = rank
            micro += Decimal(match.group(1)) * _US[unit]
    else:
        raise _not_understood(text)
    try:
        return timedelta(microseconds=int(micro.to_integral_value(rounding=ROUND_HALF_EVEN)))
    except OverflowError:
        raise ScheduleError(f"duration '{text}' is too long") from None


def _not_understood(text: object) -> ScheduleError:
    return ScheduleError(f"duration '{text}' is not understood: write it like 90s, 10m, 2h or 3d")


def format_duration(td: timedelta) -> str:
    """A duration for people, the inverse of parse_duration: 600s -> "10m", 5400s -> "1h30m", 0 -> "0s"."""
    micro = td // timedelta(microseconds=1)
    if micro == 0:
        return "0s"
    sign = "-" if micro < 0 else ""
    micro = abs(micro)
    parts: list[str] = []
    for unit in "dhm":
        count, micro = divmod(micro, _US[unit])
        if count:
            parts.append(f"{count}{unit}")
    seconds, fraction = divmod(micro, _US["s"])
    if fraction:
        parts.append(f"{seconds}.{fraction:06d}".rstrip("0") + "s")
    elif seconds:
        parts.append(f"{seconds}s")
    return sign + "".join(parts)
