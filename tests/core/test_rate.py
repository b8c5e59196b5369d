"""The sliding window counter behind intake keys' limits, on a clock the test moves."""

from __future__ import annotations

from leadflow.core.rate import SlidingWindows


def test_a_minute_takes_the_limit_and_then_says_how_long_to_wait() -> None:
    windows = SlidingWindows()
    assert [windows.hit("key", 3, 10.0 + i) for i in range(3)] == [0, 0, 0]
    wait = windows.hit("key", 3, 13.0)
    assert 1 <= wait <= 120  # refused, with a time to come back; the refusal is not counted
    assert windows.hit("other", 3, 13.0) == 0  # keys are counted apart


def test_the_previous_minute_weighs_less_as_it_slides_out() -> None:
    windows = SlidingWindows()
    for i in range(10):
        assert windows.hit("key", 10, 50.0 + i * 0.1) == 0  # ten in the first minute, near its end
    # Early in the next minute the ten still count almost fully; the wait names when enough of them slide out.
    wait = windows.hit("key", 10, 61.0)
    assert wait > 0
    assert windows.hit("key", 10, 61.0 + wait) == 0
    # Two minutes later nothing of them is left: the whole limit again.
    assert all(windows.hit("key", 10, 200.0 + i * 0.01) == 0 for i in range(10))
    assert windows.hit("key", 10, 200.2) > 0


def test_memory_stays_bounded_by_dropping_keys_not_seen_for_two_windows() -> None:
    windows = SlidingWindows(max_keys=100)
    for i in range(100):
        windows.hit(("address", i), 5, 1.0)
    windows.hit("late", 5, 500.0)  # the 101st key, long after: the old ones go
    assert len(windows._counts) == 1
