"""Sliding windows over model calls, bounded by time and by count.

A window keeps the last ``max_count`` calls of the last ``horizon_s`` seconds. Latencies of
successful calls are also kept sorted (``bisect``), so p50/p95 cost one index, and adding or
expiring a call costs O(log n + n) with a small n (hundreds) — cheaper here than a
t-digest or a reservoir, and exact.
"""

from __future__ import annotations

import bisect
from collections import deque
from typing import NamedTuple, final

from relaybaton.errors import ConfigError

__all__ = ["SlidingWindow"]


class _Entry(NamedTuple):
    at: float
    latency: float
    ok: bool
    cost: float
    tokens: int
    utility: float | None


@final
class SlidingWindow:
    """The recent calls of one adapter: latency quantiles, error rate, spend, utility."""

    __slots__ = ("_entries", "_errors", "_graded", "_sorted", "_utility", "horizon_s", "max_count")

    def __init__(self, *, horizon_s: float = 60.0, max_count: int = 200) -> None:
        if horizon_s <= 0 or max_count < 1:
            raise ConfigError(
                f"a window needs horizon_s > 0 and max_count >= 1, got {horizon_s} and {max_count}"
            )
        self.horizon_s = horizon_s
        self.max_count = max_count
        self._entries: deque[_Entry] = deque()
        self._sorted: list[float] = []
        self._errors = 0
        self._graded = 0
        self._utility = 0.0

    def add(
        self,
        at: float,
        latency: float,
        *,
        ok: bool,
        cost: float = 0.0,
        tokens: int = 0,
        utility: float | None = None,
    ) -> None:
        """Count one finished call (at its finish time ``at``)."""
        entry = _Entry(at, latency, ok, cost, tokens, utility)
        self._entries.append(entry)
        if ok:
            bisect.insort(self._sorted, latency)
        else:
            self._errors += 1
        if utility is not None:
            self._graded += 1
            self._utility += utility
        while len(self._entries) > self.max_count:
            self._drop()
        self.expire(at)

    def grade(self, utility: float) -> None:
        """Add a grade that arrived after its call was counted."""
        self._graded += 1
        self._utility += utility

    def expire(self, now: float) -> None:
        """Forget calls older than the horizon."""
        horizon = now - self.horizon_s
        entries = self._entries
        while entries and entries[0].at < horizon:
            self._drop()

    def clear(self) -> None:
        """Forget everything (after a recovery, old failures must not trip again)."""
        self._entries.clear()
        self._sorted.clear()
        self._errors = self._graded = 0
        self._utility = 0.0

    def _drop(self) -> None:
        entry = self._entries.popleft()
        if entry.ok:
            index = bisect.bisect_left(self._sorted, entry.latency)
            del self._sorted[index]
        else:
            self._errors -= 1
        if entry.utility is not None:
            self._graded -= 1
            self._utility -= entry.utility

    @property
    def count(self) -> int:
        """Calls in the window."""
        return len(self._entries)

    @property
    def errors(self) -> int:
        """Failed calls in the window."""
        return self._errors

    @property
    def error_rate(self) -> float:
        """Failed share of the calls in the window (0 when empty)."""
        return self._errors / len(self._entries) if self._entries else 0.0

    @property
    def successes(self) -> int:
        """Successful calls in the window (those with a latency)."""
        return len(self._sorted)

    def quantile(self, q: float) -> float | None:
        """The ``q`` quantile of successful latencies (nearest rank), or None if none."""
        values = self._sorted
        if not values:
            return None
        index = min(len(values) - 1, max(0, int(q * len(values) + 0.5) - 1))
        return values[index]

    @property
    def utility(self) -> float | None:
        """Mean graded utility, or None without grades."""
        return self._utility / self._graded if self._graded else None

    @property
    def graded(self) -> int:
        """How many calls in the window were graded."""
        return self._graded

    def spend_rate(self, now: float) -> float:
        """Dollars per second over the window's span up to ``now``."""
        if not self._entries:
            return 0.0
        span = max(now - self._entries[0].at, 1e-9)
        return sum(e.cost for e in self._entries) / span

    def tokens(self) -> int:
        """Tokens used by the calls in the window."""
        return sum(e.tokens for e in self._entries)
