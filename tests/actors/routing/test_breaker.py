"""Breakers: trips on errors, latency and stuck calls; probes; backoff; no false trips."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from relaybaton.actors.routing import BreakerPolicy
from relaybaton.actors.routing._breaker import Breaker, BreakerState

POLICY = BreakerPolicy(
    error_rate=0.4, min_calls=10, window_calls=20, consecutive_failures=4, p95_s=None,
    p95_ratio=3.0, stuck_multiple=2.0, stuck_calls=3, baseline_p95_s=2.0, open_s=5.0,
    max_open_s=40.0, probes=2,
)  # fmt: skip


def _call(breaker: Breaker, at: float, latency: float, *, ok: bool = True) -> None:
    token = breaker.started(at)
    breaker.finished(token, at + latency, ok=ok)


def test_consecutive_failures_trip_at_once() -> None:
    breaker = Breaker("a", POLICY)
    for i in range(4):
        _call(breaker, i * 0.1, 0.05, ok=False)
    assert breaker.state is BreakerState.OPEN
    assert breaker.transitions[-1].reason == "4 failures in a row; open for 5 s"


# Only the run of failures can trip it: isolates that rule from the window and latency ones.
RUN_ONLY = BreakerPolicy(
    error_rate=1.0, min_calls=10**6, consecutive_failures=3, p95_s=None, stuck_calls=10**6,
    baseline_p95_s=2.0,
)  # fmt: skip


def test_fast_failures_trip_though_calls_begun_earlier_succeed_between_them() -> None:
    breaker = Breaker("a", RUN_ONLY)
    older = [breaker.started(at) for at in (8.0, 8.5, 9.0)]
    failing = [breaker.started(at) for at in (10.0, 10.1, 10.2)]
    # Finish order: fail, old ok, fail, old ok, fail, old ok. Counted by finish time the run
    # never reaches 2; the old successes say nothing about the provider after 10.0.
    for fail, ok, at in zip(failing, older, (10.05, 10.15, 10.25), strict=True):
        breaker.finished(fail, at, ok=False)
        breaker.finished(ok, at + 0.01, ok=True)
    assert breaker.state is BreakerState.OPEN
    assert breaker.transitions[-1].reason == "3 failures in a row; open for 5 s"


def test_a_call_begun_after_the_failures_that_succeeds_clears_the_run() -> None:
    breaker = Breaker("a", RUN_ONLY)
    for at in (0.0, 0.1):
        _call(breaker, at, 0.05, ok=False)
    _call(breaker, 0.2, 0.05)
    _call(breaker, 0.3, 0.05, ok=False)
    assert breaker.consecutive_failures == 1
    assert breaker.state is BreakerState.CLOSED


def test_a_slow_failure_older_than_a_success_does_not_count() -> None:
    breaker = Breaker("a", RUN_ONLY)
    slow = breaker.started(0.0)
    _call(breaker, 1.0, 1.0)
    for at in (3.0, 3.1):
        _call(breaker, at, 0.05, ok=False)
    breaker.finished(slow, 5.0, ok=False)  # a timeout of a call sent before the success
    assert breaker.consecutive_failures == 2
    assert breaker.state is BreakerState.CLOSED


@given(
    older=st.lists(st.tuples(st.floats(0.0, 9.9), st.floats(0.2, 5.0)), max_size=30),
    burst=st.lists(st.tuples(st.floats(10.0, 11.0), st.floats(0.0, 0.1)), min_size=3, max_size=6),
)
def test_a_burst_of_fast_failures_trips_whatever_older_calls_do(
    older: list[tuple[float, float]], burst: list[tuple[float, float]]
) -> None:
    breaker = Breaker("a", RUN_ONLY)
    calls = [(start, start + latency, True) for start, latency in older]
    calls += [(start, start + latency, False) for start, latency in burst]
    tokens = {i: breaker.started(start) for i, (start, _, _) in _by(calls, 0)}
    for i, (_, end, ok) in _by(calls, 1):
        breaker.finished(tokens[i], end, ok=ok)
    assert breaker.state is BreakerState.OPEN


def _by(
    calls: list[tuple[float, float, bool]], field: int
) -> list[tuple[int, tuple[float, float, bool]]]:
    """The calls with their index, in the order of their start (0) or end (1)."""
    return sorted(enumerate(calls), key=lambda item: item[1][field])


@given(st.lists(st.tuples(st.floats(0.0, 3.0), st.booleans()), max_size=60))
def test_calls_one_after_another_trip_on_exactly_n_failures_in_a_row(
    calls: list[tuple[float, bool]],
) -> None:
    breaker = Breaker("a", RUN_ONLY)
    now, run, tripped = 0.0, 0, False
    for latency, ok in calls:
        _call(breaker, now, latency, ok=ok)
        now += latency + 0.01
        run = 0 if ok else run + 1
        tripped = tripped or run >= 3
        assert (breaker.state is BreakerState.OPEN) is tripped
        if tripped:
            break


def test_calls_stuck_in_flight_trip_before_any_of_them_ends() -> None:
    breaker = Breaker("a", POLICY)
    for i in range(3):
        breaker.started(float(i))
    assert breaker.evaluate(5.0) is None  # 5 - 2 = 3 s old at most: under 2 x 2 s
    transition = breaker.evaluate(6.5)
    assert transition is not None
    assert transition.target is BreakerState.OPEN
    assert transition.reason.startswith("3 calls in flight longer than 2 x normal p95 (4.00 s)")


def test_half_open_probes_close_it_and_failed_probes_back_off() -> None:
    breaker = Breaker("a", POLICY)
    for i in range(4):
        _call(breaker, 0.0, 0.01 * i, ok=False)
    assert not breaker.allows(4.0)
    assert breaker.take_probe(5.1)
    assert breaker.state is BreakerState.HALF_OPEN
    _call_probe = breaker.started(5.1, probe=True)
    assert not breaker.take_probe(5.1)  # one probe at a time
    breaker.finished(_call_probe, 5.5, ok=False)
    assert breaker.state is BreakerState.OPEN
    assert breaker.transitions[-1].reason == "probe failed; open for 10 s"
    assert not breaker.take_probe(14.0)
    for at in (15.6, 17.0):
        assert breaker.take_probe(at)
        token = breaker.started(at, probe=True)
        breaker.finished(token, at + 1.0, ok=True)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.trips == 1
    assert breaker.reopens == 1


def test_a_hanging_probe_counts_as_failed() -> None:
    breaker = Breaker("a", POLICY)
    for _ in range(4):
        _call(breaker, 0.0, 0.0, ok=False)
    assert breaker.take_probe(5.0)
    breaker.started(5.0, probe=True)
    assert breaker.evaluate(8.0) is None
    transition = breaker.evaluate(9.5)
    assert transition is not None
    assert transition.reason.startswith("probe took 4.50 s")


def test_a_healthy_lognormal_adapter_never_trips() -> None:
    rng = random.Random(7)
    breaker = Breaker("a", BreakerPolicy(**{**_fields(POLICY), "baseline_p95_s": None}))
    in_flight: list[tuple[float, int]] = []
    now = 0.0
    for _ in range(20_000):
        now += rng.expovariate(5.5)
        in_flight = [(end, t) for end, t in in_flight if not (end <= now and _end(breaker, t, end))]
        token = breaker.started(now)
        in_flight.append((now + 1.57 * rng.lognormvariate(0, 0.464), token))
        breaker.evaluate(now)
        if rng.random() < 0.005:
            in_flight.pop()
            breaker.finished(token, now, ok=False)
    assert breaker.trips == 0


def _end(breaker: Breaker, token: int, end: float) -> bool:
    breaker.finished(token, end, ok=True)
    return True


def _fields(policy: BreakerPolicy) -> dict[str, object]:
    return {name: getattr(policy, name) for name in policy.__struct_fields__}
