"""Small fakes shared by the adapter tests."""

from __future__ import annotations


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
