"""Actors through their refs: tell, send, ask, stop, and the lifecycle hooks."""

from __future__ import annotations

import anyio
import pytest

from relaybaton.errors import (
    ActorStoppedError,
    AskTimeoutError,
    CalleeFailedError,
    MailboxFullError,
)
from relaybaton.runtime import Actor, ActorRef, ActorSystem, Envelope, open_system
from relaybaton.testing import FakeClock

pytestmark = pytest.mark.anyio


class Recorder(Actor[str, str]):
    """Answers every message with its upper case and keeps what it saw."""

    def __init__(self, seen: list[str]) -> None:
        self.seen = seen

    async def receive(self, message: str) -> str:
        if message == "boom":
            raise ValueError("boom")
        self.seen.append(message)
        return message.upper()


class Gated(Actor[str, str]):
    """Waits for the gate before answering."""

    def __init__(self, gate: anyio.Event, seen: list[str] | None = None) -> None:
        self.gate = gate
        self.seen = seen if seen is not None else []

    async def receive(self, message: str) -> str:
        self.seen.append(f"start {message}")
        await self.gate.wait()
        self.seen.append(f"end {message}")
        return message


async def _spawn_recorder(
    system: ActorSystem, name: str = "rec"
) -> tuple[ActorRef[str, str], list[str]]:
    seen: list[str] = []
    ref = await system.spawn(lambda: Recorder(seen), name=name)
    return ref, seen


async def test_tell_queues_without_waiting_and_the_actor_handles_it() -> None:
    async with open_system(clock=FakeClock()) as system:
        ref, seen = await _spawn_recorder(system)
        ref.tell("a")
        ref.tell("b")
        assert seen == []
        await anyio.wait_all_tasks_blocked()
        assert seen == ["a", "b"]


async def test_ask_returns_the_reply_of_receive() -> None:
    async with open_system(clock=FakeClock()) as system:
        ref, _ = await _spawn_recorder(system)
        assert await ref.ask("hello") == "HELLO"


async def test_send_waits_for_room_in_a_full_mailbox() -> None:
    gate = anyio.Event()
    seen: list[str] = []
    async with open_system(clock=FakeClock()) as system:
        ref = await system.spawn(lambda: Gated(gate, seen), name="gated", capacity=1)
        ref.tell("first")
        await anyio.wait_all_tasks_blocked()  # "first" is being handled; the mailbox is empty
        ref.tell("second")
        with pytest.raises(MailboxFullError, match="mailbox of actor 'gated' is full"):
            ref.tell("third")
        sent: list[str] = []

        async def send_third() -> None:
            await ref.send("third")
            sent.append("third")

        async with anyio.create_task_group() as tg:
            tg.start_soon(send_third)
            await anyio.wait_all_tasks_blocked()
            assert sent == []
            gate.set()
        assert sent == ["third"]
        await anyio.wait_all_tasks_blocked()
        assert seen[-1] == "end third"


async def test_an_ask_without_a_reply_in_time_raises_ask_timeout_on_the_fake_clock() -> None:
    clock = FakeClock()
    gate = anyio.Event()
    async with open_system(clock=clock) as system:
        ref = await system.spawn(lambda: Gated(gate), name="slow")
        errors: list[BaseException] = []

        async def ask() -> None:
            try:
                await ref.ask("q", timeout=5)
            except AskTimeoutError as exc:
                errors.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(ask)
            await anyio.wait_all_tasks_blocked()
            await clock.advance(4.9)
            assert errors == []
            await clock.advance(0.1)
        assert len(errors) == 1
        assert isinstance(errors[0], TimeoutError)
        assert str(errors[0]) == "actor 'slow' did not reply within 5 s"
        gate.set()
        await anyio.wait_all_tasks_blocked()
        assert system.dead_letters.counts["orphan_reply"] == 1


async def test_a_reply_in_time_leaves_no_deadline_behind() -> None:
    clock = FakeClock()
    async with open_system(clock=clock) as system:
        ref, _ = await _spawn_recorder(system)
        assert await ref.ask("x", timeout=1) == "X"
        assert len(system.deadlines) == 0
        await clock.advance(2)  # the shared timer fires once, finds nothing, and is not set again
        assert clock.pending == 0
        assert await ref.ask("y", timeout=1) == "Y"


async def test_a_callee_exception_reaches_the_asker_as_callee_failed_with_its_cause() -> None:
    async with open_system(clock=FakeClock()) as system:
        ref, _ = await _spawn_recorder(system)
        with pytest.raises(CalleeFailedError) as caught:
            await ref.ask("boom")
        assert str(caught.value) == "actor 'rec' failed: ValueError: boom"
        assert isinstance(caught.value.__cause__, ValueError)
        assert caught.value.error is caught.value.__cause__
        assert await ref.ask("after") == "AFTER"  # restarted, still reachable


async def test_messages_queued_before_stop_are_handled_and_later_sends_fail() -> None:
    async with open_system(clock=FakeClock()) as system:
        ref, seen = await _spawn_recorder(system)
        for message in ("a", "b", "c"):
            ref.tell(message)
        await ref.stop()
        assert seen == ["a", "b", "c"]
        assert ref.stopped
        with pytest.raises(ActorStoppedError) as caught:
            ref.tell("late")
        assert str(caught.value) == (
            "actor 'rec' is stopped and takes no more messages; "
            "send to the ref its supervisor or activation table gives you now"
        )
        with pytest.raises(ActorStoppedError):
            await ref.ask("late")
        with pytest.raises(ActorStoppedError):
            await ref.send("late")
        assert seen == ["a", "b", "c"]
        assert system.dead_letters.counts["stopped"] == 2  # tell and ask; send never queued


async def test_stop_is_idempotent_and_a_stopped_actor_is_never_revived() -> None:
    async with open_system(clock=FakeClock()) as system:
        ref, seen = await _spawn_recorder(system)
        await ref.stop()
        await ref.stop()
        assert all(child is not ref for child in system.root.children)
        system.root.restart("a supervisor restarts its children")
        with pytest.raises(ActorStoppedError):
            ref.tell("x")
        assert seen == []


async def test_an_idle_actor_holds_no_task() -> None:
    async with open_system(clock=FakeClock()) as system:
        ref, _ = await _spawn_recorder(system)
        assert system.task_count == 0
        ref.tell("a")
        assert system.task_count == 1  # one drain task for a burst, not one per message
        ref.tell("b")
        assert system.task_count == 1
        await anyio.wait_all_tasks_blocked()
        assert system.task_count == 0
        await ref.ask("c")
        await anyio.wait_all_tasks_blocked()
        assert system.task_count == 0


class Hooked(Actor[str, str]):
    generation = 0

    def __init__(self, log: list[str]) -> None:
        Hooked.generation += 1
        self.id = Hooked.generation
        self.log = log

    async def on_start(self) -> None:
        self.log.append(f"{self.id}:start")

    async def receive(self, message: str) -> str:
        self.log.append(f"{self.id}:receive {message}")
        if message == "crash":
            raise RuntimeError("crash")
        return message

    async def on_failure(self, error: Exception, envelope: Envelope[str] | None) -> None:
        message = envelope.message if envelope is not None else None
        self.log.append(f"{self.id}:failure {error} {message}")

    async def on_stop(self) -> None:
        self.log.append(f"{self.id}:stop")


async def test_hooks_run_in_order_across_a_crash_restart_and_stop() -> None:
    Hooked.generation = 0
    log: list[str] = []
    async with open_system(clock=FakeClock()) as system:
        ref = await system.spawn(lambda: Hooked(log), name="hooked")
        assert log == ["1:start"]
        ref.tell("a")
        ref.tell("crash")
        ref.tell("b")
        await ref.stop()
    assert log == [
        "1:start",
        "1:receive a",
        "1:receive crash",
        "1:failure crash crash",
        "2:start",
        "2:receive b",
        "2:stop",
    ]


async def test_a_crash_nobody_asked_about_is_a_dead_letter() -> None:
    async with open_system(clock=FakeClock()) as system:
        ref, _ = await _spawn_recorder(system)
        ref.tell("boom")
        await anyio.wait_all_tasks_blocked()
        assert system.dead_letters.counts["crashed"] == 1
        letter = system.dead_letters.recent[-1]
        assert (letter.actor, letter.reason, letter.message_type) == ("rec", "crashed", "str")


async def test_spawn_raises_what_on_start_raised() -> None:
    class Broken(Actor[str, str]):
        async def on_start(self) -> None:
            raise OSError("no database")

    async with open_system(clock=FakeClock()) as system:
        with pytest.raises(OSError, match="no database"):
            await system.spawn(Broken, name="broken")
        assert system.root.children == []
