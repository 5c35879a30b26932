"""Small fakes shared by the adapter tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVarTuple

if TYPE_CHECKING:
    from relaybaton.runtime import TimerHandle

Ts = TypeVarTuple("Ts")


class StepClock:
    """A clock whose ``sleep`` returns at once and moves time by the amount asked."""

    def __init__(self) -> None:
        self.t = 0.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds

    def call_later(
        self, delay: float, callback: Callable[[*Ts], object], *args: *Ts
    ) -> TimerHandle:
        # The adapters only sleep; a timer runs on the loop, in real time, to be a ``Clock``.
        return asyncio.get_running_loop().call_later(delay, callback, *args)
