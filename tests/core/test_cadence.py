"""Call cadence: the client's window, gaps, calls a day, closed days, time zones, DST, the client's time zone."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from leadflow.core.cadence import (
    DEFAULT_CADENCE,
    AttemptLimits,
    CadencePolicy,
    Plan,
    client_timezone,
    next_attempt,
)
from leadflow.core.schedule import ScheduleError

KYIV = "Europe/Kyiv"
ALMATY = "Asia/Almaty"
NEW_YORK = "America/New_York"
WEEKEND = frozenset({5, 6})
OPEN = frozenset[int]()
H = timedelta(hours=1)


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=UTC)


def local(zone: str, y: int, mo: int, d: int, h: int = 0, mi: int = 0, *, fold: int = 0) -> datetime:
    """A local wall time as its UTC instant."""
    return datetime(y, mo, d, h, mi, tzinfo=ZoneInfo(zone), fold=fold).astimezone(UTC)


def plan(
    now: datetime,
    attempts: Sequence[datetime] = (),
    *,
    policy: CadencePolicy = DEFAULT_CADENCE,
    phone_type: str | None = "mobile",
    client_tz: str = KYIV,
    team_tz: str = KYIV,
    team_closed: frozenset[int] = OPEN,
) -> Plan:
    return next_attempt(
        policy,
        phone_type=phone_type,
        client_tz=client_tz,
        team_tz=team_tz,
        team_closed=team_closed,
        attempts=attempts,
        now=now,
    )


# ---------------------------------------------------------------------------------------------------------------
# The policy


def test_default_policy() -> None:
    p = DEFAULT_CADENCE
    assert p.key == "default"
    assert p.attempts == 7
    assert p.window == "10:00-19:00" and p.window_minutes == (600, 1140)
    assert (p.mobile.per_day, p.mobile.gap) == (3, 2 * H)
    assert (p.landline.per_day, p.landline.gap) == (2, 3 * H)
    assert p.closed_days == () and p.holidays == ()
    assert p.exhausted_status == "lost" and p.exhausted_reason == "could not reach"
    assert p.teams == () and p.rules == ()
    assert AttemptLimits() == AttemptLimits(per_day=3, gap=2 * H)


def test_policy_reads_what_people_write() -> None:
    p = CadencePolicy.model_validate(
        {
            "key": "b2b.calls",
            "attempts": 5,
            "window": "9:30 - 18:00",
            "mobile": {"per_day": 4, "gap": "90m"},
            "landline": {"gap": "1h30m"},
            "closed_days": ["Sat", "sunday", "sat"],
            "holidays": ["2026-12-25", date(2027, 1, 1)],
            "exhausted_status": None,
            "teams": ["sales"],
        }
    )
    assert p.window == "09:30-18:00" and p.window_minutes == (570, 1080)
    assert p.mobile == AttemptLimits(per_day=4, gap=timedelta(minutes=90))
    assert p.landline.per_day == 3 and p.landline.gap == timedelta(minutes=90)
    assert p.closed_days == ("sat", "sun") and p.closed_weekdays == {5, 6}
    assert p.holidays == (date(2026, 12, 25), date(2027, 1, 1))
    assert p.exhausted_status is None
    assert CadencePolicy(key="x", closed_days="sat, sun").closed_days == ("sat", "sun")
    assert CadencePolicy(key="x", window="00:00-24:00").window_minutes == (0, 1440)
    dumped = p.model_dump(mode="json")
    assert dumped["mobile"]["gap"] == "1h30m" and dumped["holidays"] == ["2026-12-25", "2027-01-01"]


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"window": "19:00-10:00"}, "must start before it ends"),
        ({"window": "10:00-10:00"}, "must start before it ends"),
        ({"window": "10-19"}, "not understood"),
        ({"window": "24:00-24:00"}, "bad time"),
        ({"window": "10:00-24:30"}, "bad time"),
        ({"window": "10:61-19:00"}, "bad time"),
        ({"closed_days": ["someday"]}, "unknown weekday 'someday'"),
        ({"attempts": 0}, "greater than or equal to 1"),
        ({"attempts": 51}, "less than or equal to 50"),
        ({"mobile": {"per_day": 25}}, "less than or equal to 24"),
        ({"mobile": {"gap": "soon"}}, "not understood"),
        ({"key": "no spaces"}, "pattern"),
        ({"colour": "red"}, "Extra inputs are not permitted"),
    ],
)
def test_policy_mistakes(data: dict[str, object], words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        CadencePolicy.model_validate({"key": "p", **data})


def test_policy_copy_works_out_its_values_again() -> None:
    p = CadencePolicy(key="p")
    now = local(KYIV, 2026, 11, 24, 9, 0)
    assert plan(now, policy=p).at == local(KYIV, 2026, 11, 24, 10, 0)  # works out and keeps the window
    earlier = p.model_copy(update={"window": "08:00-17:00", "attempts": 2})
    assert earlier.window_minutes == (480, 1020)
    assert plan(now, policy=earlier) == Plan(
        now, 1, "attempt 1 of 2: now, inside the client's 08:00-17:00 (Europe/Kyiv)"
    )
    assert p.model_copy().window_minutes == (600, 1140)


def test_policy_is_frozen() -> None:
    with pytest.raises(ValidationError):
        DEFAULT_CADENCE.attempts = 3  # type: ignore[misc]


# ---------------------------------------------------------------------------------------------------------------
# The window
# 2026-11-24 is a Tuesday; Kyiv is UTC+2 then.


def test_inside_the_window_is_now() -> None:
    now = local(KYIV, 2026, 11, 24, 12, 0)
    p = plan(now)
    assert p == Plan(now, 1, "attempt 1 of 7: now, inside the client's 10:00-19:00 (Europe/Kyiv)")
    assert p.at is not None and p.at.tzinfo is UTC


def test_before_the_window_waits_for_it() -> None:
    p = plan(local(KYIV, 2026, 11, 24, 7, 15))
    assert p.at == local(KYIV, 2026, 11, 24, 10, 0)
    assert p.reason == (
        "attempt 1 of 7: today at 10:00 client time: now is before the client's 10:00-19:00 (Europe/Kyiv)"
    )


def test_after_the_window_waits_for_the_next_day() -> None:
    p = plan(local(KYIV, 2026, 11, 24, 20, 0))
    assert p.at == local(KYIV, 2026, 11, 25, 10, 0)
    assert p.reason == (
        "attempt 1 of 7: tomorrow at 10:00 client time: now is after the client's 10:00-19:00 (Europe/Kyiv)"
    )


def test_window_end_is_not_in_it() -> None:
    assert plan(local(KYIV, 2026, 11, 24, 19, 0)).at == local(KYIV, 2026, 11, 25, 10, 0)
    just_before = local(KYIV, 2026, 11, 24, 18, 59) + timedelta(seconds=59)
    assert plan(just_before).at == just_before
    assert plan(local(KYIV, 2026, 11, 24, 10, 0)).at == local(KYIV, 2026, 11, 24, 10, 0)


def test_now_in_another_zone_is_the_same_instant() -> None:
    now = datetime(2026, 11, 24, 12, 0, tzinfo=ZoneInfo(KYIV))
    p = plan(now, [datetime(2026, 11, 24, 9, 0, tzinfo=ZoneInfo("Asia/Tokyo"))])
    assert p.at == now and p.at is not None and p.at.tzinfo is UTC


def test_naive_instants_are_refused() -> None:
    with pytest.raises(ValueError, match="now must be timezone-aware"):
        plan(datetime(2026, 11, 24, 12, 0))
    with pytest.raises(ValueError, match="an attempt must be timezone-aware"):
        plan(utc(2026, 11, 24, 12), [datetime(2026, 11, 24, 9, 0)])


def test_unknown_zone_is_refused() -> None:
    with pytest.raises(ScheduleError, match="unknown time zone"):
        plan(utc(2026, 11, 24, 12), client_tz="Mars/Olympus")


# ---------------------------------------------------------------------------------------------------------------
# Gaps and calls a day


def test_gap_after_the_last_attempt() -> None:
    last = local(KYIV, 2026, 11, 24, 11, 0)
    now = last + timedelta(minutes=5)
    mobile = plan(now, [last])
    assert mobile.at == last + 2 * H
    assert mobile.attempt == 2
    assert mobile.reason == "attempt 2 of 7: 2h after the last one, inside the client's 10:00-19:00 (Europe/Kyiv)"
    assert plan(now, [last], phone_type="landline").at == last + 3 * H
    # Other phone types and an unknown one count as landlines.
    assert plan(now, [last], phone_type="other").at == last + 3 * H
    assert plan(now, [last], phone_type=None).at == last + 3 * H


def test_gap_already_passed_is_now() -> None:
    last = local(KYIV, 2026, 11, 24, 10, 0)
    now = local(KYIV, 2026, 11, 24, 15, 0)
    assert plan(now, [last]) == Plan(now, 2, "attempt 2 of 7: now, inside the client's 10:00-19:00 (Europe/Kyiv)")


def test_latest_attempt_sets_the_gap_whatever_the_order() -> None:
    attempts = [local(KYIV, 2026, 11, 24, 13, 0), local(KYIV, 2026, 11, 23, 10, 0)]
    assert plan(local(KYIV, 2026, 11, 24, 13, 5), attempts).at == local(KYIV, 2026, 11, 24, 15, 0)


def test_gap_past_the_window_goes_to_the_next_day() -> None:
    last = local(KYIV, 2026, 11, 24, 17, 30)
    p = plan(last + timedelta(minutes=1), [last])
    assert p.at == local(KYIV, 2026, 11, 25, 10, 0)
    assert p.reason == (
        "attempt 2 of 7: tomorrow at 10:00 client time: 2h after the last one is after the client's "
        "10:00-19:00 (Europe/Kyiv)"
    )


def test_three_a_day_on_a_mobile_then_the_next_day() -> None:
    attempts = [local(KYIV, 2026, 11, 24, h, 0) for h in (10, 12, 14)]
    p = plan(local(KYIV, 2026, 11, 24, 14, 5), attempts)
    assert p.at == local(KYIV, 2026, 11, 25, 10, 0)
    assert p.attempt == 4
    assert p.reason == "attempt 4 of 7: tomorrow at 10:00 client time: 3 calls today already"
    # Two that day leave room for a third.
    assert plan(local(KYIV, 2026, 11, 24, 12, 5), attempts[:2]).at == local(KYIV, 2026, 11, 24, 14, 0)


def test_two_a_day_on_a_landline() -> None:
    attempts = [local(KYIV, 2026, 11, 24, 10, 0), local(KYIV, 2026, 11, 24, 13, 0)]
    p = plan(local(KYIV, 2026, 11, 24, 13, 5), attempts, phone_type="landline")
    assert p.at == local(KYIV, 2026, 11, 25, 10, 0)
    assert p.reason == "attempt 3 of 7: tomorrow at 10:00 client time: 2 calls today already"
    assert plan(local(KYIV, 2026, 11, 24, 10, 5), attempts[:1], phone_type="landline").at == local(
        KYIV, 2026, 11, 24, 13, 0
    )


def test_calls_a_day_count_client_days_not_utc_days() -> None:
    # Almaty is UTC+5: 10:00 and 12:00 there are 05:00 and 07:00 UTC, and 14:00 is 09:00 UTC, all one client day.
    attempts = [local(ALMATY, 2026, 11, 24, h, 0) for h in (10, 12, 14)]
    p = plan(local(ALMATY, 2026, 11, 24, 14, 5), attempts, client_tz=ALMATY)
    assert p.at == local(ALMATY, 2026, 11, 25, 10, 0) == utc(2026, 11, 25, 5)
    # Late calls on the previous client day do not count for today.
    evening = [local(NEW_YORK, 2026, 11, 23, h, 0) for h in (14, 16, 18)]  # 23:00 UTC is still Nov 23 in New York
    now = local(NEW_YORK, 2026, 11, 24, 9, 0)
    assert plan(now, evening, client_tz=NEW_YORK).at == local(NEW_YORK, 2026, 11, 24, 10, 0)


def test_all_attempts_made() -> None:
    attempts = [local(KYIV, 2026, 11, d, 10, 0) for d in range(16, 23)]
    assert plan(local(KYIV, 2026, 11, 24, 12, 0), attempts) == Plan(None, 7, "all 7 attempts made")
    three = CadencePolicy(key="short", attempts=3)
    assert plan(local(KYIV, 2026, 11, 24, 12, 0), attempts[:3], policy=three) == Plan(None, 3, "all 3 attempts made")
    assert plan(local(KYIV, 2026, 11, 24, 12, 0), attempts[:2], policy=three).attempt == 3


# ---------------------------------------------------------------------------------------------------------------
# Closed days, holidays


def test_team_weekend_is_skipped() -> None:
    friday_evening = local(KYIV, 2026, 11, 27, 20, 0)
    p = plan(friday_evening, team_closed=WEEKEND)
    assert p.at == local(KYIV, 2026, 11, 30, 10, 0)
    assert p.reason == (
        "attempt 1 of 7: on mon 2026-11-30 at 10:00 client time: now is after the client's 10:00-19:00 "
        "(Europe/Kyiv); the team does not work on sat, sun"
    )
    saturday_noon = local(KYIV, 2026, 11, 28, 12, 0)
    assert plan(saturday_noon, team_closed=WEEKEND).at == local(KYIV, 2026, 11, 30, 10, 0)
    assert plan(saturday_noon).at == saturday_noon


def test_policy_closed_days_and_holidays() -> None:
    policy = CadencePolicy(key="p", closed_days=("wed",), holidays=(date(2026, 11, 26),))
    p = plan(local(KYIV, 2026, 11, 24, 20, 0), policy=policy)  # Tuesday evening; Wednesday closed, Thursday a holiday
    assert p.at == local(KYIV, 2026, 11, 27, 10, 0)
    assert p.reason == (
        "attempt 1 of 7: on fri 2026-11-27 at 10:00 client time: now is after the client's 10:00-19:00 "
        "(Europe/Kyiv); no calls on wed; 2026-11-26 is a holiday"
    )
    # Both the team's closed days and the policy's.
    weekend_and_monday = CadencePolicy(key="p", closed_days=("mon",))
    p = plan(local(KYIV, 2026, 11, 27, 20, 0), policy=weekend_and_monday, team_closed=WEEKEND)
    assert p.at == local(KYIV, 2026, 12, 1, 10, 0)
    assert p.reason.endswith("the team does not work on sat, sun; no calls on mon")


def test_a_full_day_before_closed_days() -> None:
    attempts = [local(KYIV, 2026, 11, 27, h, 0) for h in (10, 12, 14)]  # Friday
    p = plan(local(KYIV, 2026, 11, 27, 14, 5), attempts, team_closed=WEEKEND)
    assert p.at == local(KYIV, 2026, 11, 30, 10, 0)
    assert p.reason == (
        "attempt 4 of 7: on mon 2026-11-30 at 10:00 client time: 3 calls today already; the team does not work on "
        "sat, sun"
    )


def test_no_time_within_sixty_days() -> None:
    everyday = frozenset(range(7))
    p = plan(local(KYIV, 2026, 11, 24, 12, 0), team_closed=everyday)
    assert p.at is None and p.attempt == 1
    assert p.reason == (
        "attempt 1 of 7: no calling time in the next 60 days: the team does not work on mon, tue, wed, thu, fri, "
        "sat, sun"
    )
    holidays = tuple(date(2026, 11, 24) + timedelta(days=i) for i in range(61))
    p = plan(local(KYIV, 2026, 11, 24, 20, 0), policy=CadencePolicy(key="p", holidays=holidays))
    assert p.at is None
    assert p.reason == "attempt 1 of 7: no calling time in the next 60 days: 60 holidays"
    # 2027-01-23 10:00 is 59 days and 14 hours after now, and 60 days and an hour after 09:00 on the 24th.
    short = CadencePolicy(key="p", holidays=holidays[:-1])
    assert plan(local(KYIV, 2026, 11, 24, 20, 0), policy=short).at == local(KYIV, 2027, 1, 23, 10, 0)
    assert plan(local(KYIV, 2026, 11, 24, 9, 0), policy=short).at is None
    long_gap = CadencePolicy(key="p", landline=AttemptLimits(per_day=2, gap=timedelta(days=61)))
    last = local(KYIV, 2026, 11, 24, 12, 0)
    p = plan(last, [last], policy=long_gap, phone_type="landline")
    assert p == Plan(
        None, 2, "attempt 2 of 7: no calling time in the next 60 days: the gap of 61d after the last one ends later"
    )


# ---------------------------------------------------------------------------------------------------------------
# The client's zone and the team's


def test_client_far_east_of_the_team() -> None:
    # Almaty (UTC+5): its 10:00-19:00 is 07:00-16:00 in Kyiv (UTC+2) in November.
    now = local(KYIV, 2026, 11, 24, 6, 0)  # 09:00 in Almaty
    p = plan(now, client_tz=ALMATY, team_closed=WEEKEND)
    assert p.at == local(ALMATY, 2026, 11, 24, 10, 0) == local(KYIV, 2026, 11, 24, 7, 0)
    assert (
        p.reason == "attempt 1 of 7: today at 10:00 client time: now is before the client's 10:00-19:00 (Asia/Almaty)"
    )
    # 17:00 in Kyiv is 20:00 in Almaty: the client's window is over although the team is at work.
    assert plan(local(KYIV, 2026, 11, 24, 17, 0), client_tz=ALMATY).at == local(ALMATY, 2026, 11, 25, 10, 0)


def test_closed_days_are_the_teams_weekdays() -> None:
    # New York's 10:00-19:00 is 17:00-02:00 in Kyiv: its last two hours fall on the next Kyiv day.
    friday = local(NEW_YORK, 2026, 11, 27, 17, 30)  # 00:30 Saturday in Kyiv
    p = plan(friday, client_tz=NEW_YORK, team_closed=WEEKEND)
    # Sunday 17:00 in New York is Monday 00:00 in Kyiv: the first time whose Kyiv weekday is open.
    assert p.at == local(NEW_YORK, 2026, 11, 29, 17, 0) == local(KYIV, 2026, 11, 30, 0, 0)
    assert p.reason == ("attempt 1 of 7: on sun 2026-11-29 at 17:00 client time: the team does not work on sat, sun")
    # Friday 16:30 in New York is 23:30 Friday in Kyiv: open.
    friday_afternoon = local(NEW_YORK, 2026, 11, 27, 16, 30)
    assert plan(friday_afternoon, client_tz=NEW_YORK, team_closed=WEEKEND).at == friday_afternoon


def test_holidays_are_team_dates() -> None:
    # 2026-11-27 in Kyiv starts at 17:00 on the 26th in New York.
    policy = CadencePolicy(key="p", holidays=(date(2026, 11, 27),))
    p = plan(local(NEW_YORK, 2026, 11, 26, 16, 0), policy=policy, client_tz=NEW_YORK)
    assert p.at == local(NEW_YORK, 2026, 11, 26, 16, 0)
    p = plan(local(NEW_YORK, 2026, 11, 26, 17, 0), policy=policy, client_tz=NEW_YORK)
    assert p.at == local(NEW_YORK, 2026, 11, 27, 17, 0)  # Nov 28 in Kyiv
    assert p.reason.endswith("2026-11-27 is a holiday")


# ---------------------------------------------------------------------------------------------------------------
# Daylight saving time: Kyiv moves to UTC+3 at 03:00 on 2026-03-29 and back to UTC+2 at 04:00 on 2026-10-25.


def test_spring_forward_day() -> None:
    last = local(KYIV, 2026, 3, 28, 18, 0)  # 16:00 UTC
    p = plan(last + timedelta(minutes=5), [last])
    assert p.at == local(KYIV, 2026, 3, 29, 10, 0) == utc(2026, 3, 29, 7)
    # The gap is real time: 2h after 09:30 local (UTC+3) is 11:30.
    morning = local(KYIV, 2026, 3, 29, 10, 30)
    assert plan(morning, [morning]).at == morning + 2 * H == local(KYIV, 2026, 3, 29, 12, 30)


def test_window_start_in_the_spring_gap() -> None:
    early = CadencePolicy(key="p", window="03:30-19:00")
    p = plan(utc(2026, 3, 29, 0, 0), policy=early)  # 02:00 local, before the gap
    assert p.at == utc(2026, 3, 29, 1, 0)  # 04:00 local: the first real instant after 03:30, which never happens
    assert (
        p.reason == "attempt 1 of 7: today at 04:00 client time: now is before the client's 03:30-19:00 (Europe/Kyiv)"
    )
    # The day before and after, 03:30 is 03:30.
    assert plan(utc(2026, 3, 28, 0, 0), policy=early).at == local(KYIV, 2026, 3, 28, 3, 30) == utc(2026, 3, 28, 1, 30)
    assert plan(utc(2026, 3, 30, 0, 0), policy=early).at == local(KYIV, 2026, 3, 30, 3, 30) == utc(2026, 3, 30, 0, 30)


def test_window_in_the_spring_gap_does_not_happen() -> None:
    gap_only = CadencePolicy(key="p", window="03:10-03:50")
    p = plan(utc(2026, 3, 28, 23, 0), policy=gap_only)  # 01:00 local on the 29th
    assert p.at == local(KYIV, 2026, 3, 30, 3, 10)
    assert p.reason.endswith("the clocks change over the client's 03:10-03:50 on 2026-03-29")


def test_fall_back_day() -> None:
    early = CadencePolicy(key="p", window="03:30-19:00")
    # 03:30 happens twice; the window opens at the first (UTC+3, 00:30 UTC).
    assert plan(utc(2026, 10, 24, 22, 0), policy=early).at == utc(2026, 10, 25, 0, 30)
    assert local(KYIV, 2026, 10, 25, 3, 30) == utc(2026, 10, 25, 0, 30)
    # 10:00 is UTC+2 again.
    assert plan(utc(2026, 10, 25, 5, 0)).at == local(KYIV, 2026, 10, 25, 10, 0) == utc(2026, 10, 25, 8, 0)


def test_gap_across_the_fall_back_hour_is_real_time() -> None:
    all_day = CadencePolicy(key="p", window="00:00-24:00", mobile=AttemptLimits(per_day=24, gap=H))
    attempts: list[datetime] = []
    now = utc(2026, 10, 24, 21, 0)  # 00:00 local on the 25th
    for _ in range(7):
        p = plan(now, attempts, policy=all_day)
        assert p.at is not None
        attempts.append(p.at)
        now = p.at
    assert attempts == [utc(2026, 10, 24, 21) + i * H for i in range(7)]
    # Two of them are at 03:00 local: the hour that happens twice.
    kyiv = ZoneInfo(KYIV)
    assert [f"{a.astimezone(kyiv):%H:%M}" for a in attempts] == [
        "00:00", "01:00", "02:00", "03:00", "03:00", "04:00", "05:00",
    ]  # fmt: skip


def test_calls_a_day_on_the_long_day() -> None:
    # The fall-back day has 25 hours; its calls are counted from local midnight to local midnight.
    all_day = CadencePolicy(key="p", window="00:00-24:00", mobile=AttemptLimits(per_day=2, gap=H))
    attempts = [utc(2026, 10, 24, 21, 0), utc(2026, 10, 25, 20, 0)]  # 00:00 and 22:00 local on the 25th
    p = plan(utc(2026, 10, 25, 20, 5), attempts, policy=all_day)
    # Not 21:00 UTC, 24 hours after local midnight: that is still 23:00 on the 25th.
    assert p.at == local(KYIV, 2026, 10, 26, 0, 0) == utc(2026, 10, 25, 22, 0)
    assert p.reason == "attempt 3 of 7: tomorrow at 00:00 client time: 2 calls today already"
    assert plan(utc(2026, 10, 25, 0, 0), [attempts[0]], policy=all_day).at == utc(2026, 10, 25, 0, 0)


# ---------------------------------------------------------------------------------------------------------------
# A frozen clock driven through the days: every unanswered attempt asks for the next


def in_window(at: datetime, zone: ZoneInfo, start: int, end: int) -> bool:
    """Wall time inside [start, end); in the second pass of an autumn hour, compare instants with the first pass."""
    t = at.astimezone(zone)
    minute = t.hour * 60 + t.minute
    if not t.fold:
        return start <= minute < end
    day = t.date()
    opens = datetime.combine(day, time()) + timedelta(minutes=start)
    closes = datetime.combine(day, time()) + timedelta(minutes=end)
    return opens.replace(tzinfo=zone).astimezone(UTC) <= at < closes.replace(tzinfo=zone).astimezone(UTC)


def check_attempts(
    attempts: Sequence[datetime],
    policy: CadencePolicy,
    phone_type: str | None,
    client_tz: str,
    team_tz: str,
    team_closed: frozenset[int],
) -> None:
    limits = policy.mobile if phone_type == "mobile" else policy.landline
    client, team = ZoneInfo(client_tz), ZoneInfo(team_tz)
    start, end = policy.window_minutes
    for a in attempts:
        assert in_window(a, client, start, end), a.astimezone(client)
        team_day = a.astimezone(team)
        assert team_day.weekday() not in team_closed | policy.closed_weekdays
        assert team_day.date() not in policy.holidays
    for before, after in pairwise(attempts):
        assert after - before >= limits.gap
    per_day = Counter(a.astimezone(client).date() for a in attempts)
    assert max(per_day.values()) <= limits.per_day


def drive(
    policy: CadencePolicy,
    phone_type: str | None,
    client_tz: str,
    team_tz: str,
    team_closed: frozenset[int],
    start: datetime,
) -> tuple[list[datetime], list[Plan]]:
    attempts: list[datetime] = []
    plans: list[Plan] = []
    now = start
    for _ in range(policy.attempts + 1):
        p = next_attempt(
            policy,
            phone_type=phone_type,
            client_tz=client_tz,
            team_tz=team_tz,
            team_closed=team_closed,
            attempts=attempts,
            now=now,
        )
        plans.append(p)
        if p.at is None:
            break
        assert p.at >= now
        assert p.attempt == len(attempts) + 1
        attempts.append(p.at)  # the call happens at once and nobody answers
        now = p.at
    return attempts, plans


def test_drive_through_the_days() -> None:
    start = local(KYIV, 2026, 11, 26, 17, 45)  # Thursday, late in the day
    attempts, plans = drive(DEFAULT_CADENCE, "mobile", KYIV, KYIV, WEEKEND, start)
    assert len(attempts) == 7
    assert plans[-1] == Plan(None, 7, "all 7 attempts made")
    check_attempts(attempts, DEFAULT_CADENCE, "mobile", KYIV, KYIV, WEEKEND)
    kyiv = ZoneInfo(KYIV)
    assert [f"{a.astimezone(kyiv):%a %H:%M}" for a in attempts] == [
        "Thu 17:45", "Fri 10:00", "Fri 12:00", "Fri 14:00", "Mon 10:00", "Mon 12:00", "Mon 14:00",
    ]  # fmt: skip
    assert plans[4].reason == (
        "attempt 5 of 7: on mon 2026-11-30 at 10:00 client time: 3 calls today already; the team does not work on "
        "sat, sun"
    )


def test_drive_a_landline_in_another_zone() -> None:
    start = local(KYIV, 2026, 11, 27, 9, 0)  # Friday 09:00 in Kyiv, 12:00 in Almaty
    attempts, _ = drive(DEFAULT_CADENCE, "landline", ALMATY, KYIV, WEEKEND, start)
    check_attempts(attempts, DEFAULT_CADENCE, "landline", ALMATY, KYIV, WEEKEND)
    almaty = ZoneInfo(ALMATY)
    assert [f"{a.astimezone(almaty):%a %H:%M}" for a in attempts] == [
        "Fri 12:00", "Fri 15:00", "Mon 10:00", "Mon 13:00", "Tue 10:00", "Tue 13:00", "Wed 10:00",
    ]  # fmt: skip


def test_drive_through_both_clock_changes() -> None:
    for start in (local(KYIV, 2026, 3, 27, 18, 0), local(KYIV, 2026, 10, 23, 18, 0)):
        attempts, _ = drive(DEFAULT_CADENCE, "mobile", KYIV, KYIV, OPEN, start)
        assert len(attempts) == 7
        check_attempts(attempts, DEFAULT_CADENCE, "mobile", KYIV, KYIV, OPEN)


# ---------------------------------------------------------------------------------------------------------------
# Properties


ZONES = (
    "Europe/Kyiv",
    "America/New_York",
    "Asia/Almaty",
    "Australia/Lord_Howe",  # a half-hour change
    "America/Santiago",  # changes at midnight
    "Asia/Kathmandu",  # UTC+5:45
    "UTC",
)
# Spring and autumn of 2026 on both hemispheres, so the clocks change inside many runs.
instants = st.datetimes(min_value=datetime(2026, 3, 1), max_value=datetime(2026, 11, 30), timezones=st.just(UTC))


@st.composite
def policies(draw: st.DrawFn) -> CadencePolicy:
    start = draw(st.integers(0, 1439))
    end = draw(st.integers(start + 1, 1440))
    closed = draw(st.frozensets(st.sampled_from(("mon", "tue", "wed", "thu", "fri", "sat", "sun")), max_size=2))
    first = date(2026, 3, 1)
    holidays = draw(st.lists(st.integers(0, 280).map(lambda i: first + timedelta(days=i)), max_size=8))
    limits = st.builds(
        AttemptLimits,
        per_day=st.integers(1, 5),
        gap=st.integers(1, 36 * 60).map(lambda m: timedelta(minutes=m)),
    )
    return CadencePolicy(
        key="p",
        attempts=draw(st.integers(1, 8)),
        window=f"{start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d}",
        mobile=draw(limits),
        landline=draw(limits),
        closed_days=tuple(sorted(closed)),
        holidays=tuple(holidays),
    )


def valid(
    t: datetime,
    policy: CadencePolicy,
    limits: AttemptLimits,
    client: ZoneInfo,
    team: ZoneInfo,
    closed: frozenset[int],
    attempts: Sequence[datetime],
    calls: Counter[date],
) -> bool:
    """Every condition a planned time must meet, checked one by one in local time (`calls`: attempts per client date)."""
    start, end = policy.window_minutes
    if not in_window(t, client, start, end):
        return False
    if attempts and t < max(attempts) + limits.gap:
        return False
    if calls[t.astimezone(client).date()] >= limits.per_day:
        return False
    team_day = t.astimezone(team)
    return team_day.weekday() not in closed and team_day.date() not in policy.holidays


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    policy=policies(),
    phone_type=st.sampled_from(("mobile", "landline", "other", None)),
    client_tz=st.sampled_from(ZONES),
    team_tz=st.sampled_from(ZONES),
    team_closed=st.frozensets(st.integers(0, 6), max_size=3),
    now=instants,
    offsets=st.lists(st.integers(0, 3 * 24 * 60), max_size=7),
)
def test_plan_meets_every_rule_and_is_the_earliest(
    policy: CadencePolicy,
    phone_type: str | None,
    client_tz: str,
    team_tz: str,
    team_closed: frozenset[int],
    now: datetime,
    offsets: list[int],
) -> None:
    attempts = [now - timedelta(minutes=m) for m in offsets]  # earlier attempts, in any order
    p = next_attempt(
        policy,
        phone_type=phone_type,
        client_tz=client_tz,
        team_tz=team_tz,
        team_closed=team_closed,
        attempts=attempts,
        now=now,
    )
    if len(attempts) >= policy.attempts:
        assert p == Plan(None, len(attempts), f"all {policy.attempts} attempts made")
        return
    assert p.attempt == len(attempts) + 1
    assert p.reason.startswith(f"attempt {p.attempt} of {policy.attempts}: ")
    limits = policy.mobile if phone_type == "mobile" else policy.landline
    client, team = ZoneInfo(client_tz), ZoneInfo(team_tz)
    closed = team_closed | policy.closed_weekdays
    calls = Counter(a.astimezone(client).date() for a in attempts)
    if p.at is None:
        assert "no calling time in the next 60 days" in p.reason
        return
    assert p.at.tzinfo is UTC
    assert now <= p.at < now + timedelta(days=60)
    assert valid(p.at, policy, limits, client, team, closed, attempts, calls)
    # Nothing earlier would do: the earliest allowed instant itself, then every whole minute up to the plan
    # (every boundary of the rules is a whole minute), for plans up to four days out.
    earliest = max(now, max(attempts) + limits.gap) if attempts else now
    if p.at > earliest and p.at - earliest <= timedelta(days=4):
        assert not valid(earliest, policy, limits, client, team, closed, attempts, calls)
        minute = earliest.replace(second=0, microsecond=0) + timedelta(minutes=1)
        while minute < p.at:
            assert not valid(minute, policy, limits, client, team, closed, attempts, calls), minute
            minute += timedelta(minutes=1)
    elif p.at == earliest:
        assert p.reason.endswith(f"inside the client's {policy.window} ({client_tz})")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    policy=policies(),
    phone_type=st.sampled_from(("mobile", "landline", None)),
    client_tz=st.sampled_from(ZONES),
    team_tz=st.sampled_from(ZONES),
    team_closed=st.frozensets(st.integers(0, 6), max_size=4),
    start=instants,
)
def test_driving_makes_every_attempt_by_the_rules(
    policy: CadencePolicy,
    phone_type: str | None,
    client_tz: str,
    team_tz: str,
    team_closed: frozenset[int],
    start: datetime,
) -> None:
    attempts, plans = drive(policy, phone_type, client_tz, team_tz, team_closed, start)
    # At most six closed weekdays and eight holidays: some calling time always comes within 60 days.
    assert len(attempts) == policy.attempts
    assert plans[-1] == Plan(None, policy.attempts, f"all {policy.attempts} attempts made")
    check_attempts(attempts, policy, phone_type, client_tz, team_tz, team_closed)


# ---------------------------------------------------------------------------------------------------------------
# The client's time zone


def test_zone_from_a_ukrainian_mobile() -> None:
    assert client_timezone("+380671234567", None, "UTC") == (
        "Europe/Kyiv",
        "Europe/Kyiv, from the phone number's region",
    )


def test_region_with_many_zones_takes_the_fallback_among_them() -> None:
    zone, why = client_timezone("+79161234567", None, "Europe/Moscow")
    assert zone == "Europe/Moscow"
    assert why.startswith("Europe/Moscow, one of the ") and why.endswith(" time zones of the phone number's region")
    zone, why = client_timezone("+79161234567", None, "Europe/Kyiv")
    assert zone == "Europe/Kyiv"
    assert why.startswith("Europe/Kyiv, the default: the phone number's region spans ")


def test_own_zone_wins() -> None:
    assert client_timezone("+380671234567", " Asia/Tokyo ", "UTC") == (
        "Asia/Tokyo",
        "Asia/Tokyo, the lead's own time zone",
    )


@pytest.mark.parametrize("own", ["Mars/Olympus", "", "   ", "../etc/passwd"])
def test_invalid_own_zone_is_ignored(own: str) -> None:
    assert client_timezone("+380671234567", own, "UTC")[0] == "Europe/Kyiv"


def test_no_phone_or_an_unreadable_one_gives_the_fallback() -> None:
    assert client_timezone(None, None, "Europe/Warsaw") == ("Europe/Warsaw", "Europe/Warsaw, the default")
    assert client_timezone("", None, "Europe/Warsaw")[0] == "Europe/Warsaw"
    assert client_timezone("not a phone", None, "Europe/Warsaw") == (
        "Europe/Warsaw",
        "Europe/Warsaw, the default: the phone number does not tell",
    )
    assert client_timezone("+12125551234", None, "Europe/Warsaw")[0] == "America/New_York"


def test_unknown_fallback_is_a_mistake() -> None:
    with pytest.raises(ScheduleError, match="unknown time zone"):
        client_timezone(None, None, "Nowhere/Land")
