"""The supervisor actor: fails over on a hung or failing adapter and restores it, on a FakeClock."""

from __future__ import annotations

import asyncio

import pytest

from relaybaton.actors.routing import (
    BreakerPolicy,
    Candidate,
    HealthBoard,
    ModelSlot,
    open_model_supervisor,
)
from relaybaton.adapters import (
    ModelRequest,
    RequestMetadata,
    RetryPolicy,
    SimulatedModel,
    UserMessage,
)
from relaybaton.runtime import SupervisionEvent, open_system
from relaybaton.testing import FakeClock, FaultyModel

pytestmark = pytest.mark.anyio

POLICY = BreakerPolicy(
    error_rate=0.5, min_calls=10, consecutive_failures=3, p95_s=None, baseline_p95_s=1.0,
    stuck_multiple=2.0, stuck_calls=2, open_s=2.0, max_open_s=8.0, probes=2,
)  # fmt: skip


def _request(i: int) -> ModelRequest:
    return ModelRequest(
        messages=(UserMessage(text=f"hello {i}"),),
        metadata=RequestMetadata(agent="triage", conversation_id=f"c{i}"),
    )


async def _setup(clock: FakeClock) -> tuple[FaultyModel, SimulatedModel, ModelSlot, HealthBoard]:
    primary = FaultyModel(
        SimulatedModel("simulated:primary", latency_p50_s=0.5, latency_sigma=0.1, clock=clock),
        clock=clock,
    )
    fallback = SimulatedModel(
        "simulated:fallback", latency_p50_s=0.6, latency_sigma=0.1, clock=clock
    )
    board = HealthBoard(clock, POLICY)
    slot = ModelSlot(
        "general",
        primary,
        clock=clock,
        retry=RetryPolicy(attempts=2, base_delay=0.0),
        candidates=[Candidate(primary, tier=2), Candidate(fallback, tier=2)],
        board=board,
        attempt_timeout_multiple=2.0,
    )
    return primary, fallback, slot, board


async def _traffic(clock: FakeClock, slot: ModelSlot, start: int, seconds: int) -> list[bool]:
    """One call every 0.25 s for ``seconds``; True per call that succeeded."""
    results: list[bool] = []

    async def one(i: int) -> None:
        try:
            await slot.call(_request(i), agent="triage")
            results.append(True)
        except Exception:
            results.append(False)

    tasks = []
    for i in range(seconds * 4):
        tasks.append(asyncio.get_running_loop().create_task(one(start + i)))
        await clock.advance(0.25)
    await clock.advance(5.0)
    await asyncio.gather(*tasks)
    return results


async def test_a_blackholed_adapter_is_swapped_out_and_restored_without_losing_calls() -> None:
    clock = FakeClock()
    primary, fallback, slot, board = await _setup(clock)
    async with open_system(clock=clock) as system:  # noqa: SIM117 - the supervisor needs the system
        async with open_model_supervisor(system, {"general": slot}, board) as supervisor:
            assert all(await _traffic(clock, slot, 0, 5))
            primary.blackhole()
            hung_at = clock.now()
            during = await _traffic(clock, slot, 100, 10)
            assert all(during)  # the attempt timeout retried hung calls on the fallback
            assert slot.adapter is fallback
            first = supervisor.state.swaps[0]
            assert (first.slot, first.source, first.target, first.action) == (
                "general", "simulated:primary", "simulated:fallback", "failover",
            )  # fmt: skip
            # Hung attempts are abandoned at 2 x normal p95 and count as failures.
            assert first.reason == "breaker open: 3 failures in a row; open for 2 s"
            assert first.at - hung_at <= 3.0
            primary.heal()
            assert all(await _traffic(clock, slot, 200, 20))
            assert slot.adapter is primary
            last = supervisor.state.swaps[-1]
            assert last.action == "restore"
            assert last.reason == "recovered: 2 probes answered in time"
            system.record_supervision(
                SupervisionEvent(kind="restart", supervisor="s", child="triage", error="x")
            )
            await clock.advance(0.5)
            assert supervisor.state.restarts == 1
            assert supervisor.state.crashes_by_child == {"triage": 1}
            assert supervisor.state.calls_by_model["simulated:fallback"] > 0


async def test_a_fast_failing_adapter_trips_in_a_second() -> None:
    clock = FakeClock()
    primary, _fallback, slot, board = await _setup(clock)
    async with open_system(clock=clock) as system:  # noqa: SIM117 - the supervisor needs the system
        async with open_model_supervisor(system, {"general": slot}, board) as supervisor:
            await _traffic(clock, slot, 0, 3)
            primary.fail()
            failed_at = clock.now()
            assert all(await _traffic(clock, slot, 100, 3))  # retries went to the fallback
            swap = supervisor.state.swaps[0]
            assert swap.at - failed_at <= 1.0
            assert swap.reason.startswith("breaker open: 3 failures in a row")
