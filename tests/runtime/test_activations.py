"""Activations: one actor per key, made on the first message, dropped when idle."""

from __future__ import annotations

import anyio
import pytest

from relaybaton.errors import ActorStoppedError
from relaybaton.runtime import Actor, open_system
from relaybaton.testing import FakeClock

pytestmark = pytest.mark.anyio


class Counting(Actor[str, int]):
    """Counts the messages this instance handled; waits on a per-key gate when told to."""

    instances = 0

    def __init__(self, gates: dict[str, anyio.Event], in_flight: dict[str, int]) -> None:
        Counting.instances += 1
        self.handled = 0
        self.gates = gates
        self.in_flight = in_flight

    async def receive(self, message: str) -> int:
        key = self.context.key or ""
        self.in_flight[key] = self.in_flight.get(key, 0) + 1
        self.in_flight["peak"] = max(self.in_flight.get("peak", 0), self._total())
        self.in_flight[f"peak:{key}"] = max(
            self.in_flight.get(f"peak:{key}", 0), self.in_flight[key]
        )
        try:
            if message == "wait":
                await self.gates[key].wait()
            self.handled += 1
            return self.handled
        finally:
            self.in_flight[key] -= 1

    def _total(self) -> int:
        return sum(v for k, v in self.in_flight.items() if not k.startswith("peak"))


async def test_an_activation_is_created_by_its_first_message_and_passivated_when_idle() -> None:
    async with open_system(clock=FakeClock()) as system:
        table = system.activations("agent", lambda: Counting({}, {}))
        ref = table.ref("conversation-1")
        assert table.live == {}
        assert table.created == 0
        assert await ref.ask("hello") == 1
        assert table.created == 1
        await anyio.wait_all_tasks_blocked()
        assert table.live == {}
        assert system.task_count == 0


async def test_a_ref_stays_valid_across_passivation_and_reaches_a_fresh_activation() -> None:
    Counting.instances = 0
    async with open_system(clock=FakeClock()) as system:
        table = system.activations("agent", lambda: Counting({}, {}))
        ref = table.ref("k")
        assert ref.name == "agent/k"
        assert await ref.ask("one") == 1
        await anyio.wait_all_tasks_blocked()
        assert table.live == {}
        assert await ref.ask("two") == 1  # a new instance: state lives elsewhere
        assert table.created == 2
        assert Counting.instances == 2


async def test_a_burst_for_one_key_is_handled_by_one_activation() -> None:
    async with open_system(clock=FakeClock()) as system:
        table = system.activations("agent", lambda: Counting({}, {}))
        ref = table.ref("k")
        for _ in range(3):
            ref.tell("x")
        assert await ref.ask("x") == 4
        assert table.created == 1


async def test_messages_for_one_key_are_handled_one_at_a_time_in_order() -> None:
    gates = {"k": anyio.Event()}
    in_flight: dict[str, int] = {}
    results: list[int] = []
    async with open_system(clock=FakeClock()) as system:
        table = system.activations("agent", lambda: Counting(gates, in_flight))
        ref = table.ref("k")

        async def ask(message: str) -> None:
            results.append(await ref.ask(message))

        async with anyio.create_task_group() as tg:
            tg.start_soon(ask, "wait")
            await anyio.wait_all_tasks_blocked()
            tg.start_soon(ask, "next")
            await anyio.wait_all_tasks_blocked()
            assert in_flight["k"] == 1
            assert results == []
            gates["k"].set()
        assert results == [1, 2]
        assert in_flight["peak:k"] == 1


async def test_different_keys_run_side_by_side() -> None:
    gates = {"k1": anyio.Event(), "k2": anyio.Event()}
    in_flight: dict[str, int] = {}
    async with open_system(clock=FakeClock()) as system:
        table = system.activations("agent", lambda: Counting(gates, in_flight))
        async with anyio.create_task_group() as tg:
            tg.start_soon(table.ref("k1").ask, "wait")
            tg.start_soon(table.ref("k2").ask, "wait")
            await anyio.wait_all_tasks_blocked()
            assert in_flight["peak"] == 2  # both are in progress at once
            assert set(table.live) == {"k1", "k2"}
            gates["k2"].set()
            await anyio.wait_all_tasks_blocked()
            assert set(table.live) == {"k1"}  # k2 finished and was passivated; k1 waits
            gates["k1"].set()
        await anyio.wait_all_tasks_blocked()
        assert table.live == {}


async def test_a_crashed_activation_is_restarted_and_handles_what_waits_behind_it() -> None:
    class Fragile(Actor[str, str]):
        async def receive(self, message: str) -> str:
            if message == "crash":
                raise RuntimeError("crash")
            return message

    async with open_system(clock=FakeClock()) as system:
        table = system.activations("agent", Fragile)
        ref = table.ref("k")
        ref.tell("crash")
        assert await ref.ask("after") == "after"
        assert table.restart_count == 1
        assert [e.kind for e in system.supervision_events] == ["restart"]


async def test_a_closed_table_makes_no_new_activations() -> None:
    async with open_system(clock=FakeClock()) as system:
        table = system.activations("agent", lambda: Counting({}, {}))
        table.close()
        assert table.ref("k").stopped
        with pytest.raises(ActorStoppedError, match="actor 'agent/k' is stopped"):
            table.ref("k").tell("x")
