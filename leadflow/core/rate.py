"""Requests a minute per key: a sliding window counter, pure (the caller passes the clock).

The count of the current minute plus the previous minute's, weighted by how much of it still lies within the last
60 seconds: the estimate nginx and Cloudflare use, one entry per key and O(1) per request. (A library's in-memory
store was tried first: it started a thread every 10 ms to expire its entries, which cost each request of a
single-connection client about a millisecond.)
"""

from __future__ import annotations

import math
from collections.abc import Hashable

WINDOW = 60.0


class SlidingWindows:
    """Counters of many keys; entries of keys not seen for two windows are dropped when there are too many."""

    def __init__(self, window: float = WINDOW, max_keys: int = 100_000) -> None:
        self.window = window
        self.max_keys = max_keys
        self._counts: dict[Hashable, tuple[int, int, int]] = {}  # key -> (window index, count, previous count)

    def hit(self, key: Hashable, limit: int, now: float) -> int:
        """Count one request for `key` at `now` (seconds, any monotonic clock) if it is within `limit` a window;
        return 0 when it is, else the seconds to wait (the request is not counted)."""
        index = int(now // self.window)
        slot, count, previous = self._counts.get(key, (index, 0, 0))
        if slot != index:
            previous = count if slot == index - 1 else 0
            count, slot = 0, index
        elapsed = now - index * self.window
        weight = (self.window - elapsed) / self.window
        if previous * weight + count + 1 > limit:
            self._counts[key] = (slot, count, previous)
            return self._wait(limit, count, previous, elapsed)
        self._counts[key] = (slot, count + 1, previous)
        if len(self._counts) > self.max_keys:
            self._prune(index)
        return 0

    def _wait(self, limit: int, count: int, previous: int, elapsed: float) -> int:
        if count + 1 > limit:  # this window alone is full; in the next, it is the weighted one, falling
            return max(1, math.ceil(self.window - elapsed + self.window * (1 - (limit - 1) / count)))
        # The previous window's weight falls until previous * (window - t) / window + count + 1 <= limit.
        until = self.window * (1 - (limit - count - 1) / previous)
        return max(1, math.ceil(until - elapsed))

    def _prune(self, index: int) -> None:
        self._counts = {k: v for k, v in self._counts.items() if v[0] >= index - 1}
