"""The health board: every adapter's breaker, shared by slots, router and supervisor.

Slots report each attempt's start and end here directly (two dict operations), because
stuck-request detection needs the start time of calls that have not finished; everything
slower (windows of utility and spend, swaps) happens in the supervisor actor, off the call
path. Transitions are handed to ``listeners`` synchronously; the supervisor's listener only
``tell``s itself, so nothing here waits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import final

from relaybaton.actors.routing._breaker import (
    Breaker,
    BreakerPolicy,
    BreakerState,
    BreakerTransition,
)
from relaybaton.runtime import Clock

__all__ = ["HealthBoard"]


@final
class HealthBoard:
    """Breakers by adapter name, on one clock; a ``HealthView`` for the router."""

    def __init__(self, clock: Clock, policy: BreakerPolicy | None = None) -> None:
        self.clock = clock
        self.policy = policy or BreakerPolicy()
        # An adapter's own policy where it differs from the board's (its own p95 limit: a
        # slow, strong model is not failing when it is as slow as it always is).
        self.policies: dict[str, BreakerPolicy] = {}
        self.breakers: dict[str, Breaker] = {}
        self.listeners: list[Callable[[BreakerTransition], None]] = []

    def breaker(self, adapter: str) -> Breaker:
        """The adapter's breaker, created closed on first use."""
        breaker = self.breakers.get(adapter)
        if breaker is None:
            policy = self.policies.get(adapter, self.policy)
            breaker = self.breakers[adapter] = Breaker(adapter, policy)
        return breaker

    def set_policy(self, adapter: str, policy: BreakerPolicy) -> None:
        """Give ``adapter`` its own breaker policy (before its first call)."""
        self.policies[adapter] = policy
        breaker = self.breakers.get(adapter)
        if breaker is not None:
            breaker.policy = policy

    # --- HealthView -------------------------------------------------------------------------

    def allows(self, adapter: str) -> bool:
        """Whether ordinary traffic may go to ``adapter`` now."""
        breaker = self.breakers.get(adapter)
        if breaker is None:
            return True
        before = breaker.state
        allowed = breaker.allows(self.clock.now())
        if breaker.state is not before:
            self._publish(breaker.transitions[-1])
        return allowed

    def latency(self, adapter: str) -> float | None:
        """The adapter's live p50 latency, or None without data."""
        breaker = self.breakers.get(adapter)
        return breaker.window.quantile(0.5) if breaker is not None else None

    # --- the call path ----------------------------------------------------------------------

    def take_probe(self, adapter: str) -> bool:
        """Whether the next call should probe ``adapter`` (its breaker is half-open)."""
        breaker = self.breakers.get(adapter)
        if breaker is None or breaker.state is BreakerState.CLOSED:
            return False
        before = breaker.state
        probe = breaker.take_probe(self.clock.now())
        if breaker.state is not before:
            self._publish(breaker.transitions[-1])
        return probe

    def started(self, adapter: str, *, probe: bool = False) -> int:
        """Count a call to ``adapter`` as in flight; return its token."""
        return self.breaker(adapter).started(self.clock.now(), probe=probe)

    def finished(self, adapter: str, token: int, *, ok: bool) -> None:
        """Count a finished call; publish the transition it caused."""
        transition = self.breaker(adapter).finished(token, self.clock.now(), ok=ok)
        if transition is not None:
            self._publish(transition)

    def evaluate(self) -> list[BreakerTransition]:
        """Check every breaker now (stuck calls, expired open time); publish and return."""
        now = self.clock.now()
        changes: list[BreakerTransition] = []
        for breaker in self.breakers.values():
            transition = breaker.evaluate(now)
            if transition is not None and transition.at == now:
                changes.append(transition)
                self._publish(transition)
        return changes

    def _publish(self, transition: BreakerTransition) -> None:
        for listener in self.listeners:
            listener(transition)
