"""Supervision trees: restart strategies, restart intensity on the clock, escalation."""

from __future__ import annotations

import json
from collections import Counter

import anyio
import pytest

from relaybaton.errors import ConfigError, EscalationError
from relaybaton.runtime import Actor, ActorRef, Strategy, Supervisor, open_system
from relaybaton.testing import FakeClock

pytestmark = pytest.mark.anyio


class Worker(Actor[str, str]):
    """Crashes on "crash"; counts its instances per name so restarts can be seen."""

    def __init__(self, name: str, made: Counter[str], seen: list[str]) -> None:
        made[name] += 1
        self.name = name
        self.seen = seen

    async def receive(self, message: str) -> str:
        if message == "crash":
            raise RuntimeError(f"{self.name} crashed")
        self.seen.append(f"{self.name}:{message}")
        return message


async def _children(
    supervisor: Supervisor, names: list[str], made: Counter[str], seen: list[str]
) -> dict[str, ActorRef[str, str]]:
    refs = {}
    for name in names:
        refs[name] = await supervisor.spawn(
            lambda name=name: Worker(name, made, seen),  # type: ignore[misc]
            name=name,
        )
    return refs


@pytest.mark.parametrize(
    ("strategy", "restarted"),
    [
        (Strategy.ONE_FOR_ONE, ("b",)),
        (Strategy.ONE_FOR_ALL, ("a", "b", "c")),
        (Strategy.REST_FOR_ONE, ("b", "c")),
    ],
)
async def test_a_crash_restarts_the_children_its_strategy_names(
    strategy: Strategy, restarted: tuple[str, ...]
) -> None:
    made: Counter[str] = Counter()
    async with open_system(clock=FakeClock()) as system:
        supervisor = system.spawn_supervisor("sv", strategy=strategy)
        refs = await _children(supervisor, ["a", "b", "c"], made, [])
        refs["b"].tell("crash")
        await anyio.wait_all_tasks_blocked()
        [event] = system.supervision_events
        assert (event.kind, event.supervisor, event.child) == ("restart", "sv", "b")
        assert event.restarted == restarted
        assert "RuntimeError('b crashed')" in event.error
        assert {name: made[name] - 1 for name in "abc"} == {
            name: int(name in restarted) for name in "abc"
        }


async def test_a_crash_the_supervisor_survives_is_logged_with_its_traceback(
    captured_logs: list[str],
) -> None:
    made: Counter[str] = Counter()
    async with open_system(clock=FakeClock()) as system:
        supervisor = system.spawn_supervisor("sv")
        refs = await _children(supervisor, ["a"], made, [])
        refs["a"].tell("crash")
        await anyio.wait_all_tasks_blocked()
        assert await refs["a"].ask("after") == "after"  # restarted, and serving
    [record] = [json.loads(line) for line in captured_logs if '"actor_crashed"' in line]
    assert (record["level"], record["actor"]) == ("warning", "a")
    assert record["exception"].startswith("Traceback (most recent call last):")
    assert "in receive" in record["exception"]
    assert record["exception"].rstrip().endswith("RuntimeError: a crashed")


async def test_restarts_within_the_window_beyond_the_intensity_escalate() -> None:
    clock = FakeClock()
    made: Counter[str] = Counter()
    async with open_system(clock=clock) as system:
        supervisor = system.spawn_supervisor("sv", max_restarts=2, within=10.0)
        refs = await _children(supervisor, ["a"], made, [])
        for _ in range(2):
            refs["a"].tell("crash")
            await anyio.wait_all_tasks_blocked()
            await clock.advance(4.0)
        assert supervisor.escalations == 0
        refs["a"].tell("crash")  # the third crash within 10 s
        await anyio.wait_all_tasks_blocked()
        assert supervisor.escalations == 1
        kinds = [(e.kind, e.supervisor) for e in system.supervision_events]
        assert kinds == [
            ("restart", "sv"),
            ("restart", "sv"),
            ("escalate", "sv"),
            ("restart", "system"),
        ]


async def test_restarts_that_fall_out_of_the_window_do_not_count() -> None:
    clock = FakeClock()
    made: Counter[str] = Counter()
    async with open_system(clock=clock) as system:
        supervisor = system.spawn_supervisor("sv", max_restarts=2, within=10.0)
        refs = await _children(supervisor, ["a"], made, [])
        for _ in range(5):
            refs["a"].tell("crash")
            await anyio.wait_all_tasks_blocked()
            await clock.advance(5.0)  # at most two restarts in any 10 s window
        assert supervisor.escalations == 0
        assert supervisor.restart_count == 5
        assert made["a"] == 6


async def test_a_child_supervisor_escalates_to_its_parent_exactly_once() -> None:
    made: Counter[str] = Counter()
    seen: list[str] = []
    async with open_system(clock=FakeClock(), max_restarts=5) as system:
        supervisor = system.spawn_supervisor("sv", max_restarts=1)
        refs = await _children(supervisor, ["a", "b"], made, seen)
        refs["a"].tell("crash")
        refs["a"].tell("crash")
        await anyio.wait_all_tasks_blocked()
        escalations = [e for e in system.supervision_events if e.kind == "escalate"]
        assert len(escalations) == 1
        assert (escalations[0].supervisor, escalations[0].child) == ("sv", "a")
        assert supervisor.escalations == 1
        assert system.root.restart_count == 1
        root_event = system.supervision_events[-1]
        assert (root_event.kind, root_event.child, root_event.restarted) == (
            "restart",
            "sv",
            ("sv",),
        )
        assert made == Counter({"a": 3, "b": 2})  # the parent restarted the whole subtree
        # The subtree's history is cleared: one more crash is a plain restart again.
        refs["a"].tell("crash")
        await anyio.wait_all_tasks_blocked()
        assert supervisor.escalations == 1
        assert await refs["b"].ask("still here") == "still here"


async def test_escalation_from_the_root_makes_open_system_raise() -> None:
    made: Counter[str] = Counter()
    systems = []

    async def run() -> None:
        async with open_system(clock=FakeClock(), max_restarts=1, within=5.0) as system:
            systems.append(system)
            refs = await _children(system.root, ["a"], made, [])
            refs["a"].tell("crash")
            refs["a"].tell("crash")
            await anyio.sleep_forever()  # cancelled by the system's failure

    with pytest.raises(EscalationError) as caught:
        await run()
    assert str(caught.value) == "supervisor 'system' gave up: more than 1 restart within 5 s"
    assert isinstance(caught.value.__cause__, RuntimeError)
    assert str(caught.value.__cause__) == "a crashed"
    assert systems[0].task_count == 0


async def test_a_crash_never_loses_the_messages_waiting_behind_it() -> None:
    made: Counter[str] = Counter()
    seen: list[str] = []
    async with open_system(clock=FakeClock()) as system:
        refs = await _children(system.root, ["a"], made, seen)
        for message in ("one", "crash", "two", "three"):
            refs["a"].tell(message)
        await anyio.wait_all_tasks_blocked()
        assert seen == ["a:one", "a:two", "a:three"]
        assert made["a"] == 2


async def test_a_sibling_restart_fails_the_message_it_was_handling_and_keeps_the_queue() -> None:
    gate = anyio.Event()

    class Slow(Actor[str, str]):
        async def receive(self, message: str) -> str:
            if message == "wait":
                await gate.wait()
            return message

    made: Counter[str] = Counter()
    async with open_system(clock=FakeClock()) as system:
        supervisor = system.spawn_supervisor("sv", strategy=Strategy.ONE_FOR_ALL)
        slow = await supervisor.spawn(Slow, name="slow")
        refs = await _children(supervisor, ["a"], made, [])
        outcome: list[str] = []

        async def ask(message: str) -> None:
            try:
                outcome.append(await slow.ask(message))
            except Exception as exc:
                outcome.append(f"{type(exc).__name__}: {exc}")

        async with anyio.create_task_group() as tg:
            tg.start_soon(ask, "wait")
            await anyio.wait_all_tasks_blocked()
            tg.start_soon(ask, "queued")
            await anyio.wait_all_tasks_blocked()
            refs["a"].tell("crash")
        assert outcome == [
            "CalleeFailedError: actor 'slow' failed: RuntimeError: restarted: a failed: "
            "RuntimeError",
            "queued",
        ]


def test_a_supervisor_refuses_a_meaningless_intensity() -> None:
    with pytest.raises(ConfigError, match="max_restarts must be >= 0 and within > 0, got -1 and 5"):
        Supervisor(None, "sv", max_restarts=-1)  # type: ignore[arg-type]
