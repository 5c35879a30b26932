"""Ask deadlines: one timer for all of a system's pending asks, not one per ask.

A timer per ask costs a heap push and a cancelled handle that stays in the loop's heap for
the whole timeout (300 s for an agent used as a tool), on every request/reply. Asks with
the same timeout expire in the order they were made, so each timeout keeps its pending
asks in one insertion-ordered dict (add and remove are O(1)), and one timer is set for the
earliest deadline of all. When it fires it expires what is due and sets itself for the
next deadline; an ask answered in time just leaves its dict.
"""

from __future__ import annotations

import asyncio
import math
from typing import final

from relaybaton.errors import AskTimeoutError
from relaybaton.runtime._clock import Clock, TimerHandle

__all__ = ["Deadlines", "Pending"]

# reply future -> (deadline, actor name), in deadline order for one timeout
Pending = dict[asyncio.Future[object], tuple[float, str]]


@final
class Deadlines:
    """Pending asks by timeout, and the one timer for the earliest of their deadlines."""

    __slots__ = ("_by_timeout", "_clock", "_timer", "_timer_at")

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._by_timeout: dict[float, Pending] = {}
        self._timer: TimerHandle | None = None
        self._timer_at = math.inf

    def __len__(self) -> int:
        return sum(len(p) for p in self._by_timeout.values())

    def add(self, reply: asyncio.Future[object], timeout: float, actor: str) -> Pending:
        """Fail ``reply`` with ``AskTimeoutError`` in ``timeout`` seconds unless it is done.

        Returns the dict that holds the ask: the asker pops ``reply`` from it when the
        answer comes, which is all it costs to cancel.
        """
        deadline = self._clock.now() + timeout
        pending = self._by_timeout.get(timeout)
        if pending is None:
            pending = self._by_timeout[timeout] = {}
        pending[reply] = (deadline, actor)
        if deadline < self._timer_at:
            self._arm(deadline)
        return pending

    def close(self) -> None:
        """Cancel the timer; pending asks are left to the shutdown that fails them."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = math.inf

    def _arm(self, deadline: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = deadline
        self._timer = self._clock.call_later(max(0.0, deadline - self._clock.now()), self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._timer_at = math.inf
        now = self._clock.now()
        earliest = math.inf
        for timeout, pending in list(self._by_timeout.items()):
            while pending:
                reply = next(iter(pending))
                deadline, actor = pending[reply]
                if deadline > now:
                    earliest = min(earliest, deadline)
                    break
                del pending[reply]
                if not reply.done():
                    reply.set_exception(AskTimeoutError(actor, timeout))
            if not pending:
                # An asker still holding this dict pops from a detached one: harmless.
                del self._by_timeout[timeout]
        if earliest < math.inf:
            self._arm(earliest)
