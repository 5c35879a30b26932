"""The injectable clock: every timeout, backoff and window in relaybaton reads time here.

``MonotonicClock`` is the event loop's clock. ``FakeClock`` is virtual time for tests and
for benchmarks that replay hours of traffic in seconds: nothing moves until ``advance``.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Protocol, TypeVarTuple, final

__all__ = ["Clock", "FakeClock", "MonotonicClock", "TimerHandle"]

Ts = TypeVarTuple("Ts")


class TimerHandle(Protocol):
    """A scheduled callback that can be cancelled before it fires."""

    def cancel(self) -> None:
        """Stop the callback from running; a no-op once it ran."""
        ...


class Clock(Protocol):
    """Time as the runtime sees it, in seconds."""

    def now(self) -> float:
        """Return the current time (monotonic, arbitrary origin)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds``; cancellable like any await."""
        ...

    def call_later(
        self, delay: float, callback: Callable[[*Ts], object], *args: *Ts
    ) -> TimerHandle:
        """Run ``callback(*args)`` once, ``delay`` seconds from now, on the event loop."""
        ...


@final
class MonotonicClock:
    """The running event loop's monotonic clock (asyncio's loop.time() is time.monotonic)."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def call_later(
        self, delay: float, callback: Callable[[*Ts], object], *args: *Ts
    ) -> TimerHandle:
        return asyncio.get_running_loop().call_later(delay, callback, *args)


@final
class _FakeTimer:
    __slots__ = ("args", "callback", "cancelled", "deadline", "seq")

    def __init__(
        self, deadline: float, seq: int, callback: Callable[..., object], args: tuple[object, ...]
    ) -> None:
        self.deadline = deadline
        self.seq = seq
        self.callback = callback
        self.args = args
        self.cancelled = False

    def __lt__(self, other: _FakeTimer) -> bool:
        return (self.deadline, self.seq) < (other.deadline, other.seq)

    def cancel(self) -> None:
        self.cancelled = True


@final
class FakeClock:
    """Virtual time: timers fire only inside ``advance``, in deadline order.

    ``advance`` yields to the event loop after each timer it fires, so that a task woken by
    one timer can schedule the next before time moves on; that keeps runs deterministic.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._timers: list[_FakeTimer] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    def call_later(
        self, delay: float, callback: Callable[[*Ts], object], *args: *Ts
    ) -> TimerHandle:
        timer = _FakeTimer(self._now + max(delay, 0.0), next(self._seq), callback, args)
        heapq.heappush(self._timers, timer)
        return timer

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not future.done():
                future.set_result(None)

        handle = self.call_later(seconds, wake)
        try:
            await future
        finally:
            handle.cancel()

    @property
    def pending(self) -> int:
        """How many timers wait to fire."""
        return sum(1 for t in self._timers if not t.cancelled)

    def next_deadline(self) -> float | None:
        """The deadline of the earliest live timer, or None."""
        while self._timers and self._timers[0].cancelled:
            heapq.heappop(self._timers)
        return self._timers[0].deadline if self._timers else None

    async def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, firing every timer that falls due on the way."""
        target = self._now + seconds
        await _settle()
        while True:
            deadline = self.next_deadline()
            if deadline is None or deadline > target:
                break
            timer = heapq.heappop(self._timers)
            self._now = max(self._now, timer.deadline)
            timer.callback(*timer.args)
            await _settle()
        self._now = max(self._now, target)
        await _settle()


async def _settle(rounds: int = 8) -> None:
    # Enough loop iterations for a woken task to run to its next await and for the callbacks
    # it scheduled (future results, call_soon) to run too; deterministic, not a wall-clock wait.
    for _ in range(rounds):
        await asyncio.sleep(0)
