"""The fake clock: virtual time that moves only when a test advances it."""

from __future__ import annotations

import anyio
import pytest

from relaybaton.runtime import MonotonicClock
from relaybaton.testing import FakeClock

pytestmark = pytest.mark.anyio


async def test_timers_fire_in_deadline_order_then_in_scheduling_order() -> None:
    clock = FakeClock()
    fired: list[tuple[str, float]] = []

    def note(label: str) -> None:
        fired.append((label, clock.now()))

    clock.call_later(3.0, note, "c")
    clock.call_later(1.0, note, "a")
    clock.call_later(2.0, note, "b1")
    clock.call_later(2.0, note, "b2")
    await clock.advance(5.0)
    assert fired == [("a", 1.0), ("b1", 2.0), ("b2", 2.0), ("c", 3.0)]
    assert clock.now() == 5.0


async def test_advance_fires_only_the_timers_that_fall_due() -> None:
    clock = FakeClock(start=10.0)
    fired: list[int] = []
    clock.call_later(1.0, fired.append, 1)
    clock.call_later(2.0, fired.append, 2)
    await clock.advance(1.5)
    assert fired == [1]
    assert clock.now() == 11.5
    assert clock.pending == 1
    assert clock.next_deadline() == 12.0
    await clock.advance(0.5)
    assert fired == [1, 2]
    assert clock.next_deadline() is None


async def test_call_later_passes_its_arguments() -> None:
    clock = FakeClock()
    got: list[tuple[str, int]] = []
    clock.call_later(1.0, lambda name, n: got.append((name, n)), "x", 7)
    await clock.advance(1.0)
    assert got == [("x", 7)]


async def test_a_cancelled_timer_never_fires() -> None:
    clock = FakeClock()
    fired: list[str] = []
    handle = clock.call_later(1.0, fired.append, "cancelled")
    clock.call_later(1.0, fired.append, "kept")
    handle.cancel()
    assert clock.pending == 1
    await clock.advance(2.0)
    assert fired == ["kept"]


async def test_a_negative_delay_fires_at_the_current_time() -> None:
    clock = FakeClock(start=5.0)
    fired: list[float] = []
    clock.call_later(-3.0, lambda: fired.append(clock.now()))
    await clock.advance(0.0)
    assert fired == [5.0]


async def test_sleep_wakes_at_exactly_the_virtual_deadline() -> None:
    clock = FakeClock()
    woke_at: list[float] = []

    async def sleeper() -> None:
        await clock.sleep(2.0)
        woke_at.append(clock.now())

    async with anyio.create_task_group() as tg:
        tg.start_soon(sleeper)
        await anyio.wait_all_tasks_blocked()
        await clock.advance(1.999)
        assert woke_at == []
        await clock.advance(0.001)
        assert woke_at == [2.0]


async def test_a_sleep_woken_by_a_timer_can_schedule_the_next_in_the_same_advance() -> None:
    clock = FakeClock()
    ticks: list[float] = []

    async def ticker() -> None:
        for _ in range(3):
            await clock.sleep(1.0)
            ticks.append(clock.now())

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        await anyio.wait_all_tasks_blocked()
        await clock.advance(3.0)
    assert ticks == [1.0, 2.0, 3.0]


async def test_a_cancelled_sleep_leaves_no_timer_behind() -> None:
    clock = FakeClock()
    async with anyio.create_task_group() as tg:
        tg.start_soon(clock.sleep, 10.0)
        await anyio.wait_all_tasks_blocked()
        assert clock.pending == 1
        tg.cancel_scope.cancel()
    assert clock.pending == 0


async def test_the_monotonic_clock_never_goes_back() -> None:
    clock = MonotonicClock()
    first = clock.now()
    await clock.sleep(0)
    assert clock.now() >= first
