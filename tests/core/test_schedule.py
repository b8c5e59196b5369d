"""Working hours: parsing, open/closed, deadlines in working time, DST, durations."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leadflow.core.schedule import (
    ALWAYS,
    ScheduleError,
    WorkingHours,
    add_working_time,
    format_duration,
    is_open,
    next_open,
    parse_duration,
    parse_working_hours,
    working_time_between,
)

KYIV = ZoneInfo("Europe/Kyiv")
OFFICE = parse_working_hours({"timezone": "Europe/Kyiv", "mon-fri": "09:00-18:00"})
TEN = timedelta(minutes=10)


def kyiv(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0, us: int = 0, *, fold: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, us, tzinfo=KYIV, fold=fold)


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=UTC)


def same(a: datetime | None, b: datetime) -> bool:
    """Same instant. `==` between zones is always False for a time in a DST fold (PEP 495), so compare in UTC."""
    return a is not None and a.astimezone(UTC) == b.astimezone(UTC)


WEEKDAYS_9_18 = (((540, 1080),),) * 5 + ((), ())


# ---------------------------------------------------------------------------------------------------------------
# Parsing


@pytest.mark.parametrize("spec", [None, "always", "24/7", " Always "])
def test_always_forms(spec: str | None) -> None:
    hours = parse_working_hours(spec)
    assert hours.always_open
    assert hours == ALWAYS


def test_always_keeps_default_timezone() -> None:
    hours = parse_working_hours("always", "Europe/Kyiv")
    assert hours.always_open
    assert hours.timezone == "Europe/Kyiv"
    assert ALWAYS.timezone == "UTC" and ALWAYS.always_open


def test_mapping_form() -> None:
    hours = parse_working_hours(
        {
            "timezone": "Europe/Kyiv",
            "mon-fri": "09:00-18:00",
            "sat": "10:00-14:00",
            "closed": ["2026-12-25", "2027-01-01"],
        }
    )
    assert hours.timezone == "Europe/Kyiv"
    assert hours.week == (*WEEKDAYS_9_18[:5], ((600, 840),), ())
    assert hours.closed_dates == frozenset({date(2026, 12, 25), date(2027, 1, 1)})
    assert not hours.always_open


def test_mapping_timezone_defaults() -> None:
    assert parse_working_hours({"mon": "09:00-10:00"}).timezone == "UTC"
    assert parse_working_hours({"mon": "09:00-10:00"}, "America/New_York").timezone == "America/New_York"
    assert parse_working_hours({"timezone": None, "mon": "09:00-10:00"}, "Asia/Tokyo").timezone == "Asia/Tokyo"


def test_compact_form_equals_mapping() -> None:
    compact = parse_working_hours("mon-fri 09:00-18:00; sat 10:00-14:00", "Europe/Kyiv")
    mapping = parse_working_hours({"timezone": "Europe/Kyiv", "mon-fri": "09:00-18:00", "sat": "10:00-14:00"})
    assert compact == mapping


def test_compact_form_extras() -> None:
    hours = parse_working_hours(
        "timezone Europe/Kyiv; mon - wed 09:00-13:00, 14:00-18:00\nsat, sun off; closed 2026-12-25"
    )
    assert hours.timezone == "Europe/Kyiv"
    assert hours.week[0] == ((540, 780), (840, 1080))
    assert hours.week[3] == ()
    assert hours.week[5] == hours.week[6] == ()
    assert hours.closed_dates == {date(2026, 12, 25)}


def test_day_keys_ranges_lists_and_wrapping() -> None:
    hours = parse_working_hours({"fri-mon": "10:00-11:00", "wed,thu": "12:00-13:00"})
    assert [bool(d) for d in hours.week] == [True, False, True, True, True, True, True]
    assert hours.week[6] == ((600, 660),)
    assert hours.week[2] == ((720, 780),)
    full = parse_working_hours({"Monday": "24h", "TUE": "00:00-24:00", "wed": "24/7"})
    assert full.week[:3] == (((0, 1440),),) * 3


@pytest.mark.parametrize("value", ["off", "closed", "OFF", False, None, ["off"]])
def test_off_values(value: object) -> None:
    hours = parse_working_hours({"mon-fri": "09:00-18:00", "sat": value})
    assert hours.week[5] == ()


def test_several_intervals_and_lists() -> None:
    a = parse_working_hours({"mon": "09:00-13:00, 14:00-18:00"})
    b = parse_working_hours({"mon": ["09:00-13:00", "14:00-18:00"]})
    assert a == b
    assert a.week[0] == ((540, 780), (840, 1080))


def test_touching_intervals_merge() -> None:
    hours = parse_working_hours({"mon": "09:00-13:00, 13:00-18:00"})
    assert hours.week[0] == ((540, 1080),)


def test_overnight_interval_is_split() -> None:
    hours = parse_working_hours({"timezone": "Europe/Kyiv", "fri": "22:00-06:00", "sun": "22:00-24:00"})
    assert hours.week[4] == ((1320, 1440),)
    assert hours.week[5] == ((0, 360),)
    # Sunday night runs into Monday morning, wrapping the week.
    wrapped = parse_working_hours({"sun": "22:00-06:00"})
    assert wrapped.week[6] == ((1320, 1440),)
    assert wrapped.week[0] == ((0, 360),)
    # Ending at midnight is the same as ending at 24:00.
    assert parse_working_hours({"mon": "18:00-00:00"}).week[0] == ((1080, 1440),)


def test_overnight_joins_next_day_hours() -> None:
    hours = parse_working_hours({"mon": "22:00-06:00", "tue": "06:00-09:00"})
    assert hours.week[1] == ((0, 540),)


def test_closed_dates_accept_yaml_dates_and_strings() -> None:
    hours = parse_working_hours({"mon": "09:00-10:00", "closed": [date(2026, 12, 25), " 2027-01-01 "]})
    assert hours.closed_dates == {date(2026, 12, 25), date(2027, 1, 1)}
    single = parse_working_hours({"mon": "09:00-10:00", "closed": "2026-12-25, 2027-01-01"})
    assert single.closed_dates == hours.closed_dates


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"mnday-fri": "09:00-18:00"},
            "unknown weekday 'mnday' in 'mnday-fri' (use mon, tue, wed, thu, fri, sat, sun)",
        ),
        ({"holidays": ["2026-12-25"]}, "unknown key 'holidays'"),
        ({"mon-": "09:00-18:00"}, "cannot read days 'mon-' in 'mon-'"),
        ({"timezone": "Europe/Kiyv", "mon": "09:00-18:00"}, "unknown time zone 'Europe/Kiyv'"),
        ({"timezone": 3, "mon": "09:00-18:00"}, "timezone must be an IANA name"),
        ({"mon-fri": "09:00-25:00"}, "bad time '25:00' in 'mon-fri: 09:00-25:00'"),
        ({"mon-fri": "09:60-18:00"}, "bad time '09:60' in 'mon-fri: 09:60-18:00'"),
        ({"mon": "24:00-06:00"}, "24:00 can only end an interval"),
        ({"mon": "24:30-06:00"}, "bad time '24:30'"),
        ({"mon": "9-18"}, "cannot read hours '9-18' in 'mon: 9-18'"),
        ({"mon": "09:00-09:00"}, "interval '09:00-09:00' in 'mon' is empty"),
        ({"mon": True}, "cannot read hours True for 'mon'"),
        ({"mon": 540}, "cannot read hours 540 for 'mon'"),
        (
            {"mon": "09:00-13:00, 12:00-18:00"},
            "hours overlap on mon: 09:00-13:00 (from 'mon: 09:00-13:00') and 12:00-18:00 (from 'mon: 12:00-18:00')",
        ),
        (
            {"mon": "22:00-06:00", "tue": "05:00-10:00"},
            "hours overlap on tue: 00:00-06:00 (from 'mon: 22:00-06:00') and 05:00-10:00",
        ),
        ({"mon-fri": "09:00-18:00", "fri": "off"}, "fri is given twice: in 'mon-fri' and in 'fri'"),
        ({"mon-fri,wed": "09:00-18:00"}, "wed is named twice in 'mon-fri,wed'"),
        ({"mon": "09:00-18:00", "closed": ["2026-13-01"]}, "closed date '2026-13-01' is not a date"),
        ({"mon": "09:00-18:00", "closed": ["25.12.2026"]}, "closed date '25.12.2026' is not a date"),
        ({"timezone": "Europe/Kyiv"}, "working hours name no days"),
        ("mon-fri 09:00-25:00", "bad time '25:00' in 'mon-fri 09:00-25:00'"),
        ("mon-fri; sat 10:00-14:00", "cannot read 'mon-fri' in 'mon-fri; sat 10:00-14:00'"),
        ("mon 09:00-10:00; mon 11:00-12:00", "'mon' is given twice"),
        ("", "working hours are empty"),
        (" ; ", "name no days"),
    ],
)
def test_bad_specs_say_what_is_wrong(spec: object, message: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        parse_working_hours(spec)  # type: ignore[arg-type]
    assert message in str(caught.value)


def test_bad_spec_type() -> None:
    with pytest.raises(ScheduleError, match="working hours must be"):
        parse_working_hours(42)  # type: ignore[arg-type]


def test_schedule_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_working_hours({"mon": "nope"})


def test_direct_construction_is_validated() -> None:
    with pytest.raises(ScheduleError, match="7 days"):
        WorkingHours("UTC", ((),) * 6)
    with pytest.raises(ScheduleError, match="overlap"):
        WorkingHours("UTC", (((0, 600), (500, 700)),) + ((),) * 6)
    with pytest.raises(ScheduleError, match="bad interval"):
        WorkingHours("UTC", (((600, 1500),),) + ((),) * 6)
    with pytest.raises(ScheduleError, match="unknown time zone"):
        WorkingHours("Mars/Olympus", ((),) * 7)
    hours = WorkingHours("UTC", [[(0, 1440)]] * 7)  # type: ignore[arg-type]
    assert hours.always_open and hash(hours) == hash(ALWAYS)


# ---------------------------------------------------------------------------------------------------------------
# is_open


def test_is_open_at_boundaries() -> None:
    tue = (2026, 6, 9)
    assert not is_open(OFFICE, kyiv(*tue, 8, 59, 59))
    assert is_open(OFFICE, kyiv(*tue, 9, 0))
    assert is_open(OFFICE, kyiv(*tue, 17, 59, 59, 999999))
    assert not is_open(OFFICE, kyiv(*tue, 18, 0))
    assert not is_open(OFFICE, kyiv(2026, 6, 6, 12, 0))  # Saturday


def test_is_open_converts_other_zones() -> None:
    # 06:00 UTC on a June Tuesday is 09:00 in Kyiv (UTC+3).
    assert is_open(OFFICE, utc(2026, 6, 9, 6, 0))
    assert not is_open(OFFICE, utc(2026, 6, 9, 5, 59))
    assert not is_open(OFFICE, datetime(2026, 6, 9, 11, 0, tzinfo=ZoneInfo("America/New_York")))  # 18:00 Kyiv


def test_is_open_rejects_naive() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        is_open(OFFICE, datetime(2026, 6, 9, 10, 0))
    with pytest.raises(ValueError, match="timezone-aware"):
        next_open(OFFICE, datetime(2026, 6, 9, 10, 0))


def test_is_open_overnight() -> None:
    night = parse_working_hours({"timezone": "Europe/Kyiv", "fri": "22:00-06:00"})
    assert not is_open(night, kyiv(2026, 6, 5, 21, 59))
    assert is_open(night, kyiv(2026, 6, 5, 22, 0))
    assert is_open(night, kyiv(2026, 6, 6, 0, 0))
    assert is_open(night, kyiv(2026, 6, 6, 5, 59))
    assert not is_open(night, kyiv(2026, 6, 6, 6, 0))
    assert not is_open(night, kyiv(2026, 6, 6, 22, 30))  # Saturday night is off


def test_is_open_closed_dates() -> None:
    hours = parse_working_hours({"timezone": "Europe/Kyiv", "mon-fri": "09:00-18:00", "closed": ["2026-12-25"]})
    assert not is_open(hours, kyiv(2026, 12, 25, 12, 0))
    assert is_open(hours, kyiv(2026, 12, 24, 12, 0))
    # The holiday is a Kyiv date: 23:30 UTC on the 24th is already the 25th in Kyiv.
    assert not is_open(hours, utc(2026, 12, 25, 8, 0))


def test_always_is_open() -> None:
    assert is_open(ALWAYS, utc(2026, 1, 1))
    assert is_open(ALWAYS, kyiv(2026, 3, 29, 3, 30))


# ---------------------------------------------------------------------------------------------------------------
# next_open


def test_next_open_returns_at_when_open() -> None:
    at = kyiv(2026, 6, 9, 10, 15)
    assert next_open(OFFICE, at) == at


def test_next_open_friday_evening_to_monday() -> None:
    result = next_open(OFFICE, kyiv(2026, 6, 5, 19, 30))
    assert result == kyiv(2026, 6, 8, 9, 0)
    assert result is not None and result.tzinfo == UTC  # instants come back in UTC
    assert next_open(OFFICE, kyiv(2026, 6, 5, 18, 0)) == kyiv(2026, 6, 8, 9, 0)


def test_next_open_skips_holiday() -> None:
    hours = parse_working_hours({"timezone": "Europe/Kyiv", "mon-fri": "09:00-18:00", "closed": ["2026-06-08"]})
    assert next_open(hours, kyiv(2026, 6, 5, 19, 30)) == kyiv(2026, 6, 9, 9, 0)


def test_next_open_never() -> None:
    never = parse_working_hours({"mon-sun": "off"})
    assert next_open(never, utc(2026, 6, 9)) is None
    with pytest.raises(ScheduleError, match="no open time"):
        add_working_time(never, utc(2026, 6, 9), TEN)
    assert working_time_between(never, utc(2026, 6, 9), utc(2026, 7, 9)) == timedelta(0)


def test_next_open_looks_ahead_a_year() -> None:
    closed = frozenset(date(2026, 1, 1) + timedelta(days=i) for i in range(400))
    hours = WorkingHours("UTC", WEEKDAYS_9_18, closed)
    assert next_open(hours, utc(2026, 1, 1)) is None
    # 300 closed days, up to Tuesday 2026-10-27, are still within reach.
    short = WorkingHours("UTC", WEEKDAYS_9_18, frozenset(d for d in closed if d <= date(2026, 10, 27)))
    assert next_open(short, utc(2026, 1, 1)) == utc(2026, 10, 28, 9, 0)


# ---------------------------------------------------------------------------------------------------------------
# Deadlines in working time


def test_deadline_within_the_day() -> None:
    assert add_working_time(OFFICE, kyiv(2026, 6, 9, 10, 0), TEN) == kyiv(2026, 6, 9, 10, 10)


def test_deadline_ending_exactly_at_closing() -> None:
    assert add_working_time(OFFICE, kyiv(2026, 6, 9, 17, 50), TEN) == kyiv(2026, 6, 9, 18, 0)


def test_deadline_crosses_closing_time() -> None:
    due = add_working_time(OFFICE, kyiv(2026, 6, 9, 17, 55), TEN)
    assert due == kyiv(2026, 6, 10, 9, 5)
    assert due.tzinfo == UTC


def test_lead_at_night_is_due_after_opening() -> None:
    assert add_working_time(OFFICE, kyiv(2026, 6, 9, 22, 0), TEN) == kyiv(2026, 6, 10, 9, 10)
    assert add_working_time(OFFICE, kyiv(2026, 6, 10, 3, 0), TEN) == kyiv(2026, 6, 10, 9, 10)


def test_deadline_over_the_weekend() -> None:
    assert add_working_time(OFFICE, kyiv(2026, 6, 5, 17, 58), TEN) == kyiv(2026, 6, 8, 9, 8)


def test_deadline_over_a_holiday() -> None:
    hours = parse_working_hours({"timezone": "Europe/Kyiv", "mon-fri": "09:00-18:00", "closed": ["2026-06-08"]})
    assert add_working_time(hours, kyiv(2026, 6, 5, 17, 58), TEN) == kyiv(2026, 6, 9, 9, 8)


def test_deadline_spanning_several_days() -> None:
    # 20 working hours from Monday 09:00: 9 on Monday, 9 on Tuesday, 2 on Wednesday.
    assert add_working_time(OFFICE, kyiv(2026, 6, 8, 9, 0), timedelta(hours=20)) == kyiv(2026, 6, 10, 11, 0)


def test_deadline_through_an_overnight_shift() -> None:
    night = parse_working_hours({"timezone": "Europe/Kyiv", "mon-fri": "22:00-06:00"})
    # Friday 23:50 + 20m runs past midnight into Saturday morning, still Friday's shift.
    assert add_working_time(night, kyiv(2026, 6, 5, 23, 50), timedelta(minutes=20)) == kyiv(2026, 6, 6, 0, 10)
    # Saturday 05:55 + 10m: the shift ends at 06:00, next one starts Monday 22:00.
    assert add_working_time(night, kyiv(2026, 6, 6, 5, 55), TEN) == kyiv(2026, 6, 8, 22, 5)


def test_zero_duration_is_start() -> None:
    at = kyiv(2026, 6, 6, 12, 0)
    assert add_working_time(OFFICE, at, timedelta(0)) == at


def test_negative_duration_is_refused() -> None:
    with pytest.raises(ScheduleError, match="negative"):
        add_working_time(OFFICE, kyiv(2026, 6, 9, 10, 0), -TEN)


def test_always_open_is_plain_addition() -> None:
    start = utc(2026, 3, 28, 23, 17, 5)
    for duration in (TEN, timedelta(hours=30), timedelta(days=400, microseconds=3)):
        assert add_working_time(ALWAYS, start, duration) == start + duration
        assert working_time_between(ALWAYS, start, start + duration) == duration
    kyiv_always = parse_working_hours("24/7", "Europe/Kyiv")
    # Across the spring-forward night: 2 real hours after 02:30 is 05:30 on the wall clock.
    assert add_working_time(kyiv_always, kyiv(2026, 3, 29, 2, 30), timedelta(hours=2)) == kyiv(2026, 3, 29, 5, 30)


def test_working_time_between() -> None:
    assert working_time_between(OFFICE, kyiv(2026, 6, 5, 17, 0), kyiv(2026, 6, 8, 10, 0)) == timedelta(hours=2)
    assert working_time_between(OFFICE, kyiv(2026, 6, 8, 0, 0), kyiv(2026, 6, 15, 0, 0)) == timedelta(hours=45)
    assert working_time_between(OFFICE, kyiv(2026, 6, 8, 10, 0), kyiv(2026, 6, 8, 10, 0)) == timedelta(0)
    assert working_time_between(OFFICE, kyiv(2026, 6, 8, 11, 0), kyiv(2026, 6, 8, 10, 0)) == timedelta(0)
    with pytest.raises(ValueError, match="timezone-aware"):
        working_time_between(OFFICE, datetime(2026, 6, 8), kyiv(2026, 6, 9))


def test_working_time_between_far_apart() -> None:
    start = kyiv(2026, 1, 5, 0, 0)  # a Monday
    assert working_time_between(OFFICE, start, start + timedelta(weeks=52)) == timedelta(hours=45 * 52)


# ---------------------------------------------------------------------------------------------------------------
# Daylight saving time in Kyiv: 2026-03-29 03:00 -> 04:00, 2026-10-25 04:00 -> 03:00 (both Sundays)

EVERY_DAY = parse_working_hours({"timezone": "Europe/Kyiv", "mon-sun": "09:00-18:00"})
ROUND_THE_CLOCK_SUNDAY = parse_working_hours({"timezone": "Europe/Kyiv", "sun": "24h"})


def test_dst_working_day_is_nine_real_hours() -> None:
    for day in (date(2026, 3, 29), date(2026, 10, 25)):
        start = kyiv(day.year, day.month, day.day, 0, 0)
        end = start + timedelta(days=1)
        assert working_time_between(EVERY_DAY, start, end) == timedelta(hours=9)
        assert add_working_time(EVERY_DAY, start, timedelta(hours=9)) == kyiv(day.year, day.month, day.day, 18)


def test_dst_wall_clock_boundaries() -> None:
    # Spring: 09:00 local is 06:00 UTC (UTC+3), the day before it was 07:00 UTC (UTC+2).
    assert next_open(EVERY_DAY, utc(2026, 3, 29, 0, 0)) == utc(2026, 3, 29, 6, 0)
    assert next_open(EVERY_DAY, utc(2026, 3, 28, 0, 0)) == utc(2026, 3, 28, 7, 0)
    # Autumn: back to UTC+2.
    assert next_open(EVERY_DAY, utc(2026, 10, 25, 0, 0)) == utc(2026, 10, 25, 7, 0)
    assert next_open(EVERY_DAY, utc(2026, 10, 24, 0, 0)) == utc(2026, 10, 24, 6, 0)
    # A deadline across the change keeps wall-clock opening times.
    assert add_working_time(EVERY_DAY, kyiv(2026, 3, 28, 17, 55), TEN) == kyiv(2026, 3, 29, 9, 5)
    assert add_working_time(EVERY_DAY, kyiv(2026, 10, 24, 17, 55), TEN) == kyiv(2026, 10, 25, 9, 5)


def test_dst_round_the_clock_day_length() -> None:
    spring = working_time_between(ROUND_THE_CLOCK_SUNDAY, kyiv(2026, 3, 28, 12), kyiv(2026, 3, 30, 12))
    autumn = working_time_between(ROUND_THE_CLOCK_SUNDAY, kyiv(2026, 10, 24, 12), kyiv(2026, 10, 26, 12))
    assert spring == timedelta(hours=23)
    assert autumn == timedelta(hours=25)
    # 23 real hours after Sunday 00:00 in spring is the end of the day.
    end = add_working_time(ROUND_THE_CLOCK_SUNDAY, kyiv(2026, 3, 29, 0, 0), timedelta(hours=23))
    assert end == kyiv(2026, 3, 30, 0, 0)


def test_dst_spring_gap_boundary_moves_to_first_valid_instant() -> None:
    # 03:30 does not exist on 2026-03-29; the shift opens at 04:00 (01:00 UTC), the first instant after.
    hours = parse_working_hours({"timezone": "Europe/Kyiv", "sun": "03:30-05:00"})
    assert next_open(hours, kyiv(2026, 3, 29, 0, 0)) == utc(2026, 3, 29, 1, 0)
    assert not is_open(hours, utc(2026, 3, 29, 0, 59, 59))
    assert is_open(hours, utc(2026, 3, 29, 1, 0))
    assert working_time_between(hours, kyiv(2026, 3, 29), kyiv(2026, 3, 30)) == timedelta(hours=1)
    # An interval entirely inside the gap has no real time at all that day.
    gap = parse_working_hours({"timezone": "Europe/Kyiv", "sun": "03:10-03:50"})
    assert working_time_between(gap, kyiv(2026, 3, 29), kyiv(2026, 3, 30)) == timedelta(0)
    assert next_open(gap, kyiv(2026, 3, 29)) == kyiv(2026, 4, 5, 3, 10)


def test_dst_autumn_fold_boundary_takes_first_occurrence() -> None:
    # 03:30 happens twice on 2026-10-25: first at 00:30 UTC (UTC+3), again at 01:30 UTC (UTC+2).
    hours = parse_working_hours({"timezone": "Europe/Kyiv", "sun": "03:30-05:00"})
    opening = next_open(hours, kyiv(2026, 10, 25, 0, 0))
    assert same(opening, utc(2026, 10, 25, 0, 30))
    local = opening.astimezone(KYIV) if opening is not None else None
    assert local is not None and local.fold == 0 and (local.hour, local.minute) == (3, 30)
    assert working_time_between(hours, kyiv(2026, 10, 25), kyiv(2026, 10, 26)) == timedelta(hours=2, minutes=30)
    assert not is_open(hours, kyiv(2026, 10, 25, 3, 15, fold=0))  # 00:15 UTC, before the first 03:30
    assert is_open(hours, kyiv(2026, 10, 25, 3, 45, fold=0))
    # The second 03:15 is after the first 03:30, so the shift is already running.
    assert is_open(hours, kyiv(2026, 10, 25, 3, 15, fold=1))
    assert is_open(hours, utc(2026, 10, 25, 1, 15))
    # And a shift that ends at 03:30 ends at its first occurrence.
    early = parse_working_hours({"timezone": "Europe/Kyiv", "sun": "01:00-03:30"})
    assert is_open(early, kyiv(2026, 10, 25, 3, 15, fold=0))
    assert not is_open(early, kyiv(2026, 10, 25, 3, 15, fold=1))
    assert working_time_between(early, kyiv(2026, 10, 25), kyiv(2026, 10, 26)) == timedelta(hours=2, minutes=30)


def test_other_zone_dst() -> None:
    ny = parse_working_hours({"timezone": "America/New_York", "mon-fri": "09:00-17:00"})
    # US clocks moved on 2026-03-08; Monday 09:00 is 13:00 UTC after, 14:00 UTC the Monday before.
    assert next_open(ny, utc(2026, 3, 7)) == utc(2026, 3, 9, 13, 0)
    assert next_open(ny, utc(2026, 2, 28)) == utc(2026, 3, 2, 14, 0)


# ---------------------------------------------------------------------------------------------------------------
# Properties

SCHEDULES = [
    OFFICE,
    EVERY_DAY,
    ROUND_THE_CLOCK_SUNDAY,
    parse_working_hours(
        {
            "timezone": "Europe/Kyiv",
            "mon-thu": "08:30-12:00, 13:00-17:30",
            "fri": "22:00-06:00",
            "sun": "03:10-03:50, 03:55-04:20",
            "closed": ["2026-03-30", "2026-10-26", "2026-12-25"],
        }
    ),
    parse_working_hours({"timezone": "America/New_York", "sat,sun": "01:30-02:30", "wed": "24h"}),
    parse_working_hours("mon 00:00-00:01; thu 23:59-24:00", "Asia/Kathmandu"),
    ALWAYS,
]

instants = st.datetimes(
    min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
) | st.sampled_from([utc(2026, 3, 29, 0, 59, 59), utc(2026, 3, 29, 1), utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1)])
# Up to about ten weeks' worth of each schedule's open time, so the sparse ones stay quick.
durations = st.floats(min_value=0, max_value=10)


@settings(max_examples=300, deadline=None)
@given(hours=st.sampled_from(SCHEDULES), start=instants, weeks_of_work=durations)
def test_between_inverts_add(hours: WorkingHours, start: datetime, weeks_of_work: float) -> None:
    weekly = working_time_between(hours, utc(2026, 6, 1), utc(2026, 6, 8))
    duration = timedelta(microseconds=round(weekly / timedelta(microseconds=1) * weeks_of_work))
    end = add_working_time(hours, start, duration)
    assert end >= start
    assert working_time_between(hours, start, end) == duration
    if duration:
        assert is_open(hours, end - timedelta(microseconds=1))


@settings(max_examples=300, deadline=None)
@given(hours=st.sampled_from(SCHEDULES), at=instants)
def test_is_open_agrees_with_instant_arithmetic(hours: WorkingHours, at: datetime) -> None:
    tick = timedelta(microseconds=1)
    expected = working_time_between(hours, at, at + tick) == tick
    assert is_open(hours, at) is expected
    assert is_open(hours, at.astimezone(ZoneInfo(hours.timezone))) is expected
    opening = next_open(hours, at)
    assert opening is not None
    assert opening >= at
    assert is_open(hours, opening)
    assert working_time_between(hours, at, opening) == timedelta(0)
    assert same(opening, at) is expected


# ---------------------------------------------------------------------------------------------------------------
# Durations


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("10m", timedelta(minutes=10)),
        ("2h", timedelta(hours=2)),
        ("3d", timedelta(days=3)),
        ("1w", timedelta(weeks=1)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        (" 1h 30m ", timedelta(hours=1, minutes=30)),
        ("1.5h", timedelta(hours=1, minutes=30)),
        ("10 min", timedelta(minutes=10)),
        ("2 hours", timedelta(hours=2)),
        ("1D2H", timedelta(days=1, hours=2)),
        ("600", timedelta(minutes=10)),
        (600, timedelta(minutes=10)),
        (1.5, timedelta(seconds=1.5)),
        (timedelta(minutes=5), timedelta(minutes=5)),
    ],
)
def test_parse_duration(text: str | int | float | timedelta, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "   ", "10x", "-5m", "m", "10m5h", "1h1h", "h1", "1,5h", "ten minutes"])
def test_parse_duration_not_understood(text: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        parse_duration(text)
    assert str(caught.value) == f"duration '{text}' is not understood: write it like 90s, 10m, 2h or 3d"


@pytest.mark.parametrize("value", ["0s", "0", 0, 0.0, -5, timedelta(0), timedelta(minutes=-1)])
def test_parse_duration_must_be_positive(value: str | int | float | timedelta) -> None:
    with pytest.raises(ScheduleError, match="longer than zero"):
        parse_duration(value)


@pytest.mark.parametrize("value", [True, float("nan"), float("inf"), None])
def test_parse_duration_rejects_other_values(value: object) -> None:
    with pytest.raises(ScheduleError, match="not understood"):
        parse_duration(value)  # type: ignore[arg-type]


def test_parse_duration_too_long() -> None:
    with pytest.raises(ScheduleError, match="too long"):
        parse_duration("99999999999w")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (1, "1s"),
        (90, "1m30s"),
        (600, "10m"),
        (5400, "1h30m"),
        (3 * 86400, "3d"),
        (7 * 86400 + 3600 + 1, "7d1h1s"),
        (1.5, "1.5s"),
        (-600, "-10m"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(timedelta(seconds=seconds)) == text


@given(st.timedeltas(min_value=timedelta(microseconds=1), max_value=timedelta(days=999_999)))
def test_duration_round_trip(duration: timedelta) -> None:
    assert parse_duration(format_duration(duration)) == duration
