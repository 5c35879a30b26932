"""Failover: how fast a breaker notices a sick model, and what users see meanwhile.

Virtual time (a discrete-event simulation; no sleeping), arrivals replayed from the Azure
LLM inference conversation trace (first 900 s, ~5.5 req/s; a Poisson stream at that rate
when the trace is absent). A primary model with lognormal latency (p50 1.57 s, p95 3.37 s)
and a base error rate of 0.5%; a fallback 1.2× slower with the same error rate; a deadline
of 30 s per request. Faults start at t = 300 s:

- ``healthy``: none (counts false trips);
- ``latency_x8``: the primary is 8× slower for 180 s;
- ``error_burst``: 60% of its calls fail for 30 s;
- ``outage_fast``: every call fails at once for 300 s;
- ``outage_blackhole``: every call hangs until the deadline for 300 s;
- ``slow_recovery``: 180 s of failures, then errors (50% → 0.5%) and latency (4× → 1×)
  decay to normal over 300 s.

The same traffic runs through relaybaton's own path (a ``ModelSlot`` on a ``HealthBoard``,
swapped by the ``ModelSupervisor`` actor's handler when a breaker transition reaches its
mailbox; a retry, when allowed, goes to the other model, and with a retry left an attempt
is abandoned at ``stuck_multiple`` × the primary's normal p95) and through breakers
with the published defaults of Envoy outlier detection, Hystrix, resilience4j and a
LiteLLM-style cooldown, all with the same routing (closed → primary, open → fallback).

Per scenario (medians over the seeds): ``ttd_s`` time from fault start to the first open
(null: never), ``fail_pct_retry0/1`` share of requests arriving in the fault window that
failed with 0 or 1 retry, ``p95_s`` of those requests' latency (1 retry), ``opens``
closed → open trips during the fault and the minute after, ``ttr_s`` time from the fault's
end until the primary takes traffic again (0 if before), ``primary_attempts`` calls sent to
the primary during the fault (wasted). Then a canary: a new version with 5% errors at 50%
weight must be rolled back, and a good one promoted, by ``relaybaton.actors.routing._rollout``.

Run: ``python benchmarks/failover.py [--data DIR] [--seeds 5] [--json]``.
"""

from __future__ import annotations

import argparse
import csv
import heapq
import itertools
import json
import logging
import math
import os
import random
import statistics
import sys
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Never

import structlog

from relaybaton.actors.routing import (
    BreakerPolicy,
    Candidate,
    HealthBoard,
    ModelSlot,
    Rollout,
    RolloutPolicy,
    SupervisorPolicy,
    SwapEvent,
)
from relaybaton.actors.routing._rollout import RolloutState
from relaybaton.actors.routing._supervisor import (
    ModelSupervisor,
    SupervisorMessage,
    SupervisorState,
    Tick,
)
from relaybaton.adapters import ModelRequest
from relaybaton.testing import ScriptedModel

P50, SIGMA = 1.57, math.log(3.37 / 1.57) / 1.645
BASE_ERRORS, DEADLINE, FAULT_AT, HORIZON = 0.005, 30.0, 300.0, 900.0
SCENARIOS: dict[str, float] = {  # name -> fault end
    "healthy": HORIZON,
    "latency_x8": FAULT_AT + 180,
    "error_burst": FAULT_AT + 30,
    "outage_fast": FAULT_AT + 300,
    "outage_blackhole": FAULT_AT + 300,
    "slow_recovery": FAULT_AT + 480,
}
OURS = BreakerPolicy(
    error_rate=0.3, min_calls=10, window_s=10.0, window_calls=20, consecutive_failures=3,
    p95_s=None, p95_ratio=2.0, stuck_multiple=1.5, stuck_calls=3, open_s=5.0, backoff=2.0,
    max_open_s=30.0, probes=5, cooldown_s=60.0,
)  # fmt: skip
REQUEST = ModelRequest()


def arrivals(data: Path | None, rng: random.Random) -> list[float]:
    """Arrival times (s) of the first 900 s of the conversation trace, or a Poisson stream."""
    trace = (
        data / "azure_llm_inference_trace_2023" / "AzureLLMInferenceTrace_conv.csv"
        if data is not None
        else None
    )
    if trace is not None and trace.exists():
        with trace.open() as handle:
            rows = csv.DictReader(handle)
            stamps = [datetime.fromisoformat(r["TIMESTAMP"][:26]) for r in rows]
        first = stamps[0]
        times = [(s - first).total_seconds() for s in stamps]
        return [t for t in times if t < HORIZON]
    out, now = [], 0.0
    while now < HORIZON:
        now += rng.expovariate(5.5)
        out.append(now)
    return out


def fault(scenario: str, t: float) -> tuple[float, float, bool]:
    """(error rate, latency factor, hangs) of the primary at time t."""
    end = SCENARIOS[scenario]
    if scenario == "healthy" or t < FAULT_AT or t >= end:
        return BASE_ERRORS, 1.0, False
    if scenario == "latency_x8":
        return BASE_ERRORS, 8.0, False
    if scenario == "error_burst":
        return 0.6, 1.0, False
    if scenario == "outage_fast":
        return 1.0, 1.0, False
    if scenario == "outage_blackhole":
        return 0.0, 1.0, True
    if t < FAULT_AT + 180:
        return 1.0, 1.0, False
    x = (t - FAULT_AT - 180) / 300
    return 0.5 + (BASE_ERRORS - 0.5) * x, 4.0 - 3.0 * x, False


# --- breakers -------------------------------------------------------------------------------


class Gate:
    """What the simulation asks a breaker: route, count, and when it opened/closed."""

    name = "gate"
    attempt_timeout = False

    def __init__(self) -> None:
        self.opens: list[float] = []
        self.closes: list[float] = []

    def route(self, now: float) -> tuple[bool, bool]:
        """(to primary, as a probe)."""
        raise NotImplementedError

    def started(self, now: float, probe: bool) -> int:
        return 0

    def finished(self, token: int, now: float, ok: bool) -> None:
        raise NotImplementedError

    def tick(self, now: float) -> None:
        return None

    def normal_p95(self) -> float | None:
        return None


class VirtualClock:
    """The simulation's time as a runtime ``Clock``; nothing in the runtime path sleeps here."""

    def __init__(self) -> None:
        self.at = 0.0

    def now(self) -> float:
        return self.at

    async def sleep(self, seconds: float) -> None:
        raise NotImplementedError("the simulation moves time itself")

    def call_later(self, delay: float, callback: Callable[..., object], *args: object) -> Never:
        raise NotImplementedError("the simulation moves time itself")


class Ours(Gate):
    """The runtime's own path: a slot on a health board, swapped by the model supervisor.

    Each attempt goes where the slot sends it (the adapter it holds, or a probe of its
    primary while that breaker is half-open: ``ModelSlot._choose``, as in a run); breaker
    transitions and ticks go to the ``ModelSupervisor``'s mailbox, which swaps the slot to
    the fallback on ``open`` and back on ``closed``. The mailbox is a queue handled before
    virtual time moves on, as an in-process mailbox is handled before a clock timer fires
    (its ``receive`` never awaits). Opens and closes are the supervisor's swaps.
    """

    name = "relaybaton"
    attempt_timeout = True

    def __init__(self) -> None:
        super().__init__()
        self.clock = VirtualClock()
        self.board = HealthBoard(self.clock, OURS)
        self.primary = ScriptedModel([], name="primary")
        fallback = ScriptedModel([], name="fallback")
        self.slot = ModelSlot(
            "chat",
            self.primary,
            clock=self.clock,
            board=self.board,
            candidates=[Candidate(self.primary), Candidate(fallback)],
        )
        state = SupervisorState(SupervisorPolicy())
        state.swap_listeners.append(self._swapped)
        self.supervisor = ModelSupervisor({"chat": self.slot}, self.board, state)
        self.mailbox: deque[SupervisorMessage] = deque()
        self.board.listeners.append(self.mailbox.append)

    def _swapped(self, event: SwapEvent) -> None:
        (self.opens if event.action == "failover" else self.closes).append(event.at)

    def _deliver(self) -> None:
        while self.mailbox:
            handling = self.supervisor.receive(self.mailbox.popleft())
            try:
                handling.send(None)
            except StopIteration:
                continue
            raise RuntimeError("the supervisor awaited; this simulation cannot run it")

    def route(self, now: float) -> tuple[bool, bool]:
        self.clock.at = now
        adapter, probe, _ = self.slot._choose(REQUEST, "", None, [], False)
        self._deliver()
        return adapter is self.primary, probe

    def started(self, now: float, probe: bool) -> int:
        return self.board.started("primary", probe=probe)

    def finished(self, token: int, now: float, ok: bool) -> None:
        self.clock.at = now
        self.board.finished("primary", token, ok=ok)
        self._deliver()

    def tick(self, now: float) -> None:
        self.clock.at = now
        self.mailbox.append(Tick())
        self._deliver()

    def normal_p95(self) -> float | None:
        return self.board.breaker("primary").normal_p95


class Envoy(Gate):
    """Outlier detection defaults: 5 consecutive 5xx (timeouts included) eject the host for
    30 s × times ejected (max 300 s); hosts come back at the next 10 s sweep."""

    name = "envoy"

    def __init__(self) -> None:
        super().__init__()
        self.consecutive = 0
        self.ejected_until: float | None = None
        self.times = 0

    def route(self, now: float) -> tuple[bool, bool]:
        if self.ejected_until is not None:
            sweep = math.ceil(now / 10.0) * 10.0 if now > self.ejected_until else None
            if (sweep is not None and now >= sweep - 1e-9) or (
                sweep is not None and now - self.ejected_until >= 10.0
            ):
                self.ejected_until = None
                self.closes.append(now)
            else:
                return False, False
        return True, False

    def finished(self, token: int, now: float, ok: bool) -> None:
        self.consecutive = 0 if ok else self.consecutive + 1
        if self.consecutive >= 5 and self.ejected_until is None:
            self.times += 1
            self.ejected_until = now + min(300.0, 30.0 * self.times)
            self.consecutive = 0
            self.opens.append(now)


class Hystrix(Gate):
    """20 requests in a 10 s rolling window, 50% errors, 5 s sleep, one trial request."""

    name = "hystrix"

    def __init__(self) -> None:
        super().__init__()
        self.calls: deque[tuple[float, bool]] = deque()
        self.open_at: float | None = None
        self.trial = False

    def route(self, now: float) -> tuple[bool, bool]:
        if self.open_at is None:
            return True, False
        if now - self.open_at >= 5.0 and not self.trial:
            self.trial = True
            return True, True
        return False, False

    def started(self, now: float, probe: bool) -> int:
        return 1 if probe else 0

    def finished(self, token: int, now: float, ok: bool) -> None:
        if token == 1:
            self.trial = False
            if ok:
                self.open_at = None
                self.calls.clear()
                self.closes.append(now)
            else:
                self.open_at = now
            return
        if self.open_at is not None:
            return
        self.calls.append((now, ok))
        while self.calls and self.calls[0][0] < now - 10.0:
            self.calls.popleft()
        failures = sum(1 for _, good in self.calls if not good)
        if len(self.calls) >= 20 and failures / len(self.calls) >= 0.5:
            self.open_at = now
            self.opens.append(now)


class Resilience4j(Gate):
    """Count window of 100 calls, 50% failures (slow = 60 s), 60 s open, 10 half-open calls."""

    name = "resilience4j"

    def __init__(self) -> None:
        super().__init__()
        self.calls: deque[bool] = deque(maxlen=100)
        self.open_at: float | None = None
        self.half: list[bool] = []
        self.permits = 0

    def route(self, now: float) -> tuple[bool, bool]:
        if self.open_at is None:
            return True, False
        if now - self.open_at >= 60.0 and self.permits < 10:
            self.permits += 1
            return True, True
        return False, False

    def started(self, now: float, probe: bool) -> int:
        return 1 if probe else 0

    def finished(self, token: int, now: float, ok: bool) -> None:
        if token == 1:
            self.half.append(ok)
            if len(self.half) >= 10:
                if self.half.count(False) / len(self.half) >= 0.5:
                    self.open_at = now
                else:
                    self.open_at = None
                    self.calls.clear()
                    self.closes.append(now)
                self.half, self.permits = [], 0
            return
        if self.open_at is not None:
            return
        self.calls.append(ok)
        if len(self.calls) >= 100 and self.calls.count(False) / len(self.calls) >= 0.5:
            self.open_at = now
            self.opens.append(now)


class LiteLLM(Gate):
    """More than 3 failures within the current minute puts the deployment in a 5 s cooldown."""

    name = "litellm"

    def __init__(self) -> None:
        super().__init__()
        self.minute = -1
        self.failures = 0
        self.cool_until = -1.0

    def route(self, now: float) -> tuple[bool, bool]:
        if now < self.cool_until:
            return False, False
        if self.cool_until > 0 and self.closes[-1:] != [self.cool_until]:
            self.closes.append(self.cool_until)
        return True, False

    def finished(self, token: int, now: float, ok: bool) -> None:
        minute = int(now // 60)
        if minute != self.minute:
            self.minute, self.failures = minute, 0
        if ok or now < self.cool_until:
            return
        self.failures += 1
        if self.failures > 3:
            self.cool_until = now + 5.0
            self.failures = 0
            self.opens.append(now)


GATES: dict[str, Callable[[], Gate]] = {
    g.name: g for g in (Ours, Envoy, Hystrix, Resilience4j, LiteLLM)
}


# --- the simulation -------------------------------------------------------------------------


def simulate(
    scenario: str, gate: Gate, times: list[float], seed: int, retries: int
) -> dict[str, float | None]:
    rng = random.Random(seed)
    events: list[tuple[float, int, str, tuple[object, ...]]] = []
    seq = itertools.count()
    push = lambda t, kind, *data: heapq.heappush(events, (t, next(seq), kind, data))  # noqa: E731
    for i, t in enumerate(times):
        push(t, "arrive", i)
    tick = 0.0
    while tick < HORIZON + DEADLINE:
        push(tick, "tick")
        tick += 0.25
    start_of = dict(enumerate(times))
    done: dict[int, tuple[float, bool]] = {}
    live: dict[int, int] = {}  # request -> live attempt id
    attempts = itertools.count()
    primary_attempts = 0
    end = SCENARIOS[scenario]

    def attempt(req: int, now: float, tried: int, exclude_primary: bool) -> None:
        nonlocal primary_attempts
        to_primary, probe = gate.route(now)
        if exclude_primary and not probe:
            to_primary = False
        aid = next(attempts)
        live[req] = aid
        if to_primary:
            if FAULT_AT <= now < end:
                primary_attempts += 1
            error, factor, hangs = fault(scenario, now)
            token = gate.started(now, probe)
        else:
            error, factor, hangs, token = BASE_ERRORS, 1.2, False, -1
        latency = P50 * factor * rng.lognormvariate(0.0, SIGMA)
        fails = rng.random() < error
        if (fails and error >= 0.99) or (fails and scenario != "healthy" and error > 0.5):
            latency = 0.05  # a fast failure
        deadline = start_of[req] + DEADLINE
        finish = math.inf if hangs else now + latency
        limit = deadline
        normal = gate.normal_p95()
        if gate.attempt_timeout and tried < retries and normal is not None and to_primary:
            limit = min(limit, now + OURS.stuck_multiple * normal)
        if finish <= limit:
            push(finish, "end", req, aid, to_primary, token, not fails, tried)
        else:
            push(limit, "end", req, aid, to_primary, token, False, tried)

    while events:
        now, _, kind, data = heapq.heappop(events)
        if kind == "tick":
            gate.tick(now)
            continue
        if kind == "arrive":
            attempt(int(data[0]), now, 0, False)  # type: ignore[call-overload]
            continue
        req, aid, to_primary, token, ok, tried = data
        assert isinstance(req, int)
        assert isinstance(tried, int)
        assert isinstance(token, int)
        if to_primary:
            gate.finished(token, now, bool(ok))
        if live.get(req) != aid:
            continue
        deadline = start_of[req] + DEADLINE
        if ok:
            done[req] = (now - start_of[req], True)
        elif tried < retries and now < deadline - 0.01:
            attempt(req, now, tried + 1, bool(to_primary))
        else:
            done[req] = (now - start_of[req], False)
    window_start = 0.0 if scenario == "healthy" else FAULT_AT
    inside = [done[i] for i, t in start_of.items() if window_start <= t < end and i in done]
    fail_pct = 100.0 * sum(1 for _, ok in inside if not ok) / max(1, len(inside))
    latencies = sorted(lat for lat, _ in inside)
    p95 = latencies[int(0.95 * (len(latencies) - 1))] if latencies else 0.0
    counted_until = HORIZON if scenario == "healthy" else end + 60
    opens = [t for t in gate.opens if window_start <= t < counted_until]
    ttd = (opens[0] - FAULT_AT) if opens and scenario != "healthy" else None
    ttr: float | None = None
    if scenario != "healthy" and opens:
        closes = [t for t in gate.closes if t >= opens[-1]]
        ttr = max(0.0, closes[0] - end) if closes else None
    elif scenario != "healthy":
        ttr = 0.0
    return {
        "ttd_s": ttd,
        "fail_pct": fail_pct,
        "p95_s": p95,
        "opens": float(len(opens)),
        "ttr_s": ttr,
        "primary_attempts": float(primary_attempts),
    }


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    if len(present) * 2 <= len(values) and len(values) > 0 and len(present) < len(values):
        return None  # undetected (or never restored) in most seeds
    return round(statistics.median(present), 3) if present else None


def run_gate(name: str, times: list[float], seeds: int) -> dict[str, dict[str, float | None]]:
    out: dict[str, dict[str, float | None]] = {}
    for scenario in SCENARIOS:
        rows0, rows1 = [], []
        for seed in range(seeds):
            rows0.append(simulate(scenario, GATES[name](), times, seed, retries=0))
            rows1.append(simulate(scenario, GATES[name](), times, seed, retries=1))
        out[scenario] = {
            "ttd_s": _median([r["ttd_s"] for r in rows1]),
            "fail_pct_retry0": _median([r["fail_pct"] for r in rows0]),
            "fail_pct_retry1": _median([r["fail_pct"] for r in rows1]),
            "p95_s": _median([r["p95_s"] for r in rows1]),
            "opens": _median([r["opens"] for r in rows1]),
            "ttr_s": _median([r["ttr_s"] for r in rows1]),
            "primary_attempts": _median([r["primary_attempts"] for r in rows1]),
        }
    return out


def canary(times: list[float], seeds: int = 20) -> dict[str, float | None]:
    """Roll out a bad version (5% errors, 50% weight) and a good one (0.5%)."""
    policy = RolloutPolicy(window_s=60.0, min_calls=50, error_margin=0.01, z=3.0)
    rollback_s: list[float | None] = []
    failed: list[float] = []
    false_rollbacks = 0
    for seed in range(seeds):
        for bad in (True, False):
            if not bad or seed < 5:
                rng = random.Random(1000 + seed)
                rollout = Rollout("v1", "v2", policy=policy, stages=(0.5, 1.0))
                failures = 0
                for i, t in enumerate(times):
                    arm = rollout.arm(f"conv-{seed}-{i}")
                    rate = 0.05 if (bad and arm == "v2") else BASE_ERRORS
                    ok = rng.random() >= rate
                    if not ok and arm == "v2":
                        failures += 1
                    decision = rollout.record(arm, t, P50 * rng.lognormvariate(0, SIGMA), ok=ok)
                    if decision in ("rollback", "promote"):
                        break
                if bad:
                    rolled = rollout.state is RolloutState.ROLLED_BACK
                    rollback_s.append(rollout.changed_at if rolled else None)
                    failed.append(float(failures))
                elif rollout.state is RolloutState.ROLLED_BACK:
                    false_rollbacks += 1
    return {
        "rollback_s": _median(rollback_s),
        "failed_before_rollback": _median(list(failed)),
        "false_rollbacks": float(false_rollbacks),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=os.environ.get("RELAYBATON_DATA"),
        help="the folder that holds azure_llm_inference_trace_2023/ (default: $RELAYBATON_DATA;"
        " without it, a Poisson stream)",
    )
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    # Every swap is logged at info; a run has thousands, and the table is the report.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    times = arrivals(args.data, random.Random(0))
    started = time.perf_counter()
    results = {name: run_gate(name, times, args.seeds) for name in GATES}
    ours = results["relaybaton"]
    report = {
        "scenarios": ours,
        "false_trips": ours["healthy"]["opens"],
        "canary": canary(times),
        "baselines": {k: v for k, v in results.items() if k != "relaybaton"},
        "requests": len(times),
        "seconds": round(time.perf_counter() - started, 1),
    }
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"{len(times)} requests over {HORIZON:.0f} s, {args.seeds} seeds (medians)")
    columns = ("ttd_s", "fail_pct_retry0", "fail_pct_retry1", "p95_s", "opens", "ttr_s",
               "primary_attempts")  # fmt: skip
    for scenario in SCENARIOS:
        print(f"\n{scenario}")
        print(f"  {'breaker':<13}" + "".join(f"{c:>17}" for c in columns))
        for name, table in results.items():
            row = table[scenario]
            cells = "".join(f"{'never' if row[c] is None else row[c]:>17}" for c in columns)
            print(f"  {name:<13}{cells}")
    print(f"\ncanary: {report['canary']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
