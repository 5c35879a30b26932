"""A circuit breaker per adapter that notices slow and hanging providers, not only errors.

States: ``closed`` (traffic flows) → ``open`` (no traffic) → ``half_open`` (a few probe
calls, one at a time) → ``closed`` when every probe came back in time, or ``open`` again,
for longer (``open_s × backoff^k``, capped by ``max_open_s``).

A breaker trips on any of:

- ``consecutive_failures`` failures in a row, in the order the calls *started* (a fast-fail
  outage shows in well under a second);
- an error rate above ``error_rate`` over the last ``window_calls`` calls of the last
  ``window_s`` seconds, once there are ``min_calls`` of them;
- a p95 latency above ``p95_s``, or above ``p95_ratio`` × the adapter's normal p95;
- ``stuck_calls`` requests in flight for longer than ``stuck_multiple`` × its normal p95.

Why start order: a provider that starts refusing calls answers the new ones in
milliseconds while calls sent a second or two earlier are still coming back fine. Counted in
the order they finish, those older successes keep resetting the run of failures, and the
outage waits for a lull; but a success only says the provider worked when that call began,
so it clears only the failures of calls that began before it. (A run counted by finish time
rewards the opposite too: a slow call that times out lands long after newer calls succeeded,
and is rightly ignored.)

The stuck-call rule is why a provider that hangs requests, or slows down eightfold, is noticed in
seconds: a breaker that counts only finished calls waits for the deadline (or forever). The
normal p95 is ``baseline_p95_s`` when given, else learned from calls made while closed.

Hysteresis: the window is cleared when the breaker closes, so the failures that opened it
cannot trip it again; and a trip within ``cooldown_s`` of closing backs off further, so a
provider that recovers slowly is not flapped between states.

Times are passed in (``now``) rather than read, so the breaker is a pure state machine that
runs the same on a wall clock, a ``FakeClock`` or a simulation's virtual time.
"""

from __future__ import annotations

import itertools
from enum import StrEnum
from typing import final

import msgspec

from relaybaton.actors.routing._windows import SlidingWindow

__all__ = ["Breaker", "BreakerPolicy", "BreakerState", "BreakerTransition"]


class BreakerState(StrEnum):
    """Where a breaker is."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class BreakerPolicy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """When to trip, when to probe, when to close. Defaults are the design's own:
    fail over when p95 > 500 ms or errors > 1%."""

    error_rate: float = 0.01
    min_calls: int = 20
    window_s: float = 30.0
    window_calls: int = 100
    consecutive_failures: int = 5
    p95_s: float | None = 0.5
    p95_ratio: float | None = None
    stuck_multiple: float = 2.0
    stuck_calls: int = 3
    baseline_p95_s: float | None = None
    baseline_calls: int = 500
    open_s: float = 5.0
    backoff: float = 2.0
    max_open_s: float = 60.0
    probes: int = 3
    probe_max_s: float | None = None
    cooldown_s: float = 60.0


class BreakerTransition(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A change of state, with the reason (``p95 4.1 s > 2.0 × 1.6 s over 40 calls``)."""

    adapter: str
    source: BreakerState
    target: BreakerState
    reason: str
    at: float


@final
class Breaker:
    """The breaker of one adapter; see the module docstring."""

    def __init__(self, adapter: str, policy: BreakerPolicy | None = None) -> None:
        self.adapter = adapter
        self.policy = policy = policy or BreakerPolicy()
        self.state = BreakerState.CLOSED
        self.window = SlidingWindow(horizon_s=policy.window_s, max_count=policy.window_calls)
        self._baseline = SlidingWindow(horizon_s=1e12, max_count=policy.baseline_calls)
        self.in_flight: dict[int, float] = {}
        self._ids = itertools.count()
        # Start times of failed calls that began after ``_ok_started`` (the latest start of a
        # call that succeeded): the run of failures in start order.
        self._failed_starts: list[float] = []
        self._ok_started = -1e18
        self._open_until = 0.0
        self._level = 0  # how many times in a row it opened without staying closed
        self._closed_at = -1e18
        self._probe: int | None = None
        self._probes_ok = 0
        self.trips = 0
        self.reopens = 0
        self.transitions: list[BreakerTransition] = []

    def __repr__(self) -> str:
        return f"Breaker({self.adapter!r}, {self.state.value})"

    # --- what the call path asks ------------------------------------------------------------

    def allows(self, now: float) -> bool:
        """Whether ordinary traffic may go to this adapter (only when closed)."""
        if self.state is BreakerState.OPEN and now >= self._open_until:
            self._move(BreakerState.HALF_OPEN, "open time over; probing", now)
        return self.state is BreakerState.CLOSED

    def take_probe(self, now: float) -> bool:
        """Whether the next call should be a probe; at most one probe is in flight."""
        self.allows(now)
        return self.state is BreakerState.HALF_OPEN and self._probe is None

    def started(self, now: float, *, probe: bool = False) -> int:
        """Count a call as in flight; return its token for ``finished``."""
        token = next(self._ids)
        self.in_flight[token] = now
        if probe:
            self._probe = token
        return token

    def finished(self, token: int, now: float, *, ok: bool) -> BreakerTransition | None:
        """Count a finished call; return the transition it caused, if any."""
        started = self.in_flight.pop(token, now)
        latency = now - started
        if token == self._probe:
            return self._probe_done(now, ok=ok, latency=latency)
        if self.state is not BreakerState.CLOSED:
            return None  # a call that began before the trip; its verdict is already in
        self.window.add(now, latency, ok=ok)
        if ok:
            if started > self._ok_started:
                self._ok_started = started
                if self._failed_starts:
                    self._failed_starts = [s for s in self._failed_starts if s > started]
            if self.policy.baseline_p95_s is None:
                self._baseline.add(now, latency, ok=True)
        elif started > self._ok_started:
            self._failed_starts.append(started)
        return self.evaluate(now)

    @property
    def consecutive_failures(self) -> int:
        """Failed calls that began after the latest-started call that succeeded."""
        return len(self._failed_starts)

    # --- decisions ------------------------------------------------------------------------

    @property
    def normal_p95(self) -> float | None:
        """The adapter's normal p95 latency: configured, or learned while closed."""
        policy = self.policy
        if policy.baseline_p95_s is not None:
            return policy.baseline_p95_s
        if self._baseline.successes < policy.min_calls:
            return None
        return self._baseline.quantile(0.95)

    def stuck(self, now: float) -> int:
        """How many calls have been in flight longer than ``stuck_multiple`` × normal p95."""
        normal = self.normal_p95
        if normal is None:
            return 0
        limit = now - self.policy.stuck_multiple * normal
        return sum(1 for started in self.in_flight.values() if started < limit)

    def trip_reason(self, now: float) -> str | None:
        """Why the breaker should open now, or None."""
        policy = self.policy
        window = self.window
        window.expire(now)
        failures = len(self._failed_starts)
        if failures >= policy.consecutive_failures:
            return f"{failures} failures in a row"
        if window.count >= policy.min_calls and window.error_rate > policy.error_rate:
            return (
                f"error rate {window.error_rate:.1%} > {policy.error_rate:.1%} over "
                f"{window.count} calls"
            )
        stuck = self.stuck(now)
        if stuck >= policy.stuck_calls:
            base = self.normal_p95 or 0.0
            return (
                f"{stuck} calls in flight longer than {policy.stuck_multiple:g} x normal p95 "
                f"({policy.stuck_multiple * base:.2f} s)"
            )
        if window.successes >= policy.min_calls:
            p95: float = window.quantile(0.95) or 0.0
            if policy.p95_s is not None and p95 > policy.p95_s:
                return f"p95 {p95:.3f} s > {policy.p95_s:g} s over {window.successes} calls"
            normal = self.normal_p95
            if policy.p95_ratio is not None and normal and p95 > policy.p95_ratio * normal:
                return (
                    f"p95 {p95:.3f} s > {policy.p95_ratio:g} x normal {normal:.3f} s over "
                    f"{window.successes} calls"
                )
        return None

    def evaluate(self, now: float) -> BreakerTransition | None:
        """Trip if a bound is broken, or fail a probe that hangs; return the transition."""
        if self.state is BreakerState.OPEN:
            return self.transitions[-1] if self.allows(now) or self._half_open() else None
        if self.state is BreakerState.HALF_OPEN:
            probe = self._probe
            if probe is not None and probe in self.in_flight:
                age = now - self.in_flight[probe]
                if age > self._probe_limit():
                    self.in_flight.pop(probe, None)
                    return self._probe_done(now, ok=True, latency=age)
            return None
        reason = self.trip_reason(now)
        if reason is None:
            return None
        return self._open(now, reason, trip=True)

    def _half_open(self) -> bool:
        return self.state is BreakerState.HALF_OPEN

    def _probe_limit(self) -> float:
        policy = self.policy
        if policy.probe_max_s is not None:
            return policy.probe_max_s
        normal = self.normal_p95
        return policy.stuck_multiple * normal if normal else 30.0

    def _probe_done(self, now: float, *, ok: bool, latency: float) -> BreakerTransition | None:
        self._probe = None
        if self.state is not BreakerState.HALF_OPEN:
            return None
        if not ok or latency > self._probe_limit():
            why = "failed" if not ok else f"took {latency:.2f} s"
            return self._open(now, f"probe {why}", trip=False)
        self._probes_ok += 1
        if self._probes_ok < self.policy.probes:
            return None
        self.window.clear()
        self._failed_starts.clear()
        self._closed_at = now
        return self._move(BreakerState.CLOSED, f"{self._probes_ok} probes answered in time", now)

    def _open(self, now: float, reason: str, *, trip: bool) -> BreakerTransition:
        policy = self.policy
        if trip:
            self.trips += 1
            if now - self._closed_at > policy.cooldown_s:
                self._level = 0  # it stayed closed a while: start again from open_s
        else:
            self.reopens += 1
        duration = min(policy.max_open_s, policy.open_s * policy.backoff**self._level)
        self._level += 1
        self._open_until = now + duration
        self._probes_ok = 0
        return self._move(BreakerState.OPEN, f"{reason}; open for {duration:g} s", now)

    def _move(self, target: BreakerState, reason: str, now: float) -> BreakerTransition:
        transition = BreakerTransition(
            adapter=self.adapter, source=self.state, target=target, reason=reason, at=now
        )
        self.state = target
        self.transitions.append(transition)
        if len(self.transitions) > 1000:
            del self.transitions[:500]
        return transition
