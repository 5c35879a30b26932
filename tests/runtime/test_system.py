"""The actor system: it owns every task, drains on exit, and fails loudly on a kernel bug."""

from __future__ import annotations

import gc

import anyio
import pytest

from relaybaton.runtime import Actor, open_system
from relaybaton.runtime._mailbox import Mailbox
from relaybaton.runtime._system import GC_MIDDLE_THRESHOLD
from relaybaton.testing import FakeClock

pytestmark = pytest.mark.anyio


class Echo(Actor[str, str]):
    def __init__(self, seen: list[str]) -> None:
        self.seen = seen

    async def receive(self, message: str) -> str:
        self.seen.append(message)
        return message


class Stuck(Actor[str, str]):
    def __init__(self, started: list[str]) -> None:
        self.started = started

    async def receive(self, message: str) -> str:
        self.started.append(message)
        await anyio.sleep_forever()
        return message  # pragma: no cover


async def test_every_task_has_finished_when_the_block_ends() -> None:
    seen: list[str] = []
    async with open_system(clock=FakeClock()) as system:
        table = system.activations("agent", lambda: Echo(seen))
        ref = await system.spawn(lambda: Echo(seen), name="single")
        for index in range(20):
            table.ref(f"k{index}").tell(f"m{index}")
        ref.tell("single")
        assert system.task_count == 21
    assert system.task_count == 0
    assert len(seen) == 21


async def test_messages_queued_at_shutdown_are_drained_within_the_grace() -> None:
    seen: list[str] = []
    async with open_system(clock=FakeClock()) as system:
        ref = await system.spawn(lambda: Echo(seen), name="echo")
        for index in range(5):
            ref.tell(str(index))
    assert seen == ["0", "1", "2", "3", "4"]
    assert system.dead_letters.total == 0


async def test_messages_that_cannot_drain_in_the_grace_are_counted_as_shutdown_dead_letters() -> (
    None
):
    started: list[str] = []
    async with open_system(clock=FakeClock(), shutdown_grace=0.01) as system:
        ref = await system.spawn(lambda: Stuck(started), name="stuck")
        ref.tell("in progress")
        ref.tell("queued 1")
        ref.tell("queued 2")
        await anyio.wait_all_tasks_blocked()
    assert started == ["in progress"]
    assert system.task_count == 0
    # The reason is the one DeadLetters documents for "still queued when the system closed".
    assert system.dead_letters.counts == {"shutdown": 3}


async def test_a_bug_in_a_kernel_task_fails_the_system_with_that_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_poll = Mailbox.poll
    broken = {"once": True}

    def poll(self: Mailbox[object]) -> object:
        if broken["once"] and self.owner == "victim":
            broken["once"] = False
            raise KeyError("kernel bug")
        return real_poll(self)

    monkeypatch.setattr(Mailbox, "poll", poll)
    systems = []

    async def run() -> None:
        async with open_system(clock=FakeClock()) as system:
            systems.append(system)
            ref = await system.spawn(lambda: Echo([]), name="victim")
            ref.tell("x")
            await anyio.sleep_forever()  # cancelled by the system's failure

    with pytest.raises(KeyError, match="kernel bug"):
        await run()
    assert isinstance(systems[0].failure, KeyError)
    assert systems[0].task_count == 0


async def test_the_caller_cancelling_the_block_still_drains_and_cleans_up() -> None:
    seen: list[str] = []
    with anyio.CancelScope() as outer:
        async with open_system(clock=FakeClock()) as system:
            ref = await system.spawn(lambda: Echo(seen), name="echo")
            ref.tell("queued")
            outer.cancel()
            await anyio.sleep_forever()
    assert seen == ["queued"]
    assert system.task_count == 0


async def test_the_collector_setting_applies_while_the_system_is_open_and_is_restored() -> None:
    saved = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        async with open_system(clock=FakeClock(), gc_young_threshold=10_000):
            assert gc.get_threshold() == (10_000, GC_MIDDLE_THRESHOLD, 10)
        assert gc.get_threshold() == (700, 10, 10)
        async with open_system(clock=FakeClock()):  # not asked: left alone
            assert gc.get_threshold() == (700, 10, 10)
    finally:
        gc.set_threshold(*saved)
