"""The actor cell: terminate at once, and what happens to the messages it held."""

from __future__ import annotations

import anyio
import pytest

from relaybaton.errors import ActorStoppedError
from relaybaton.runtime import Actor, open_system
from relaybaton.testing import FakeClock

pytestmark = pytest.mark.anyio


class Waiting(Actor[str, str]):
    def __init__(self, gate: anyio.Event) -> None:
        self.gate = gate

    async def receive(self, message: str) -> str:
        await self.gate.wait()
        return message


async def test_terminate_fails_the_message_in_progress_and_everything_queued() -> None:
    gate = anyio.Event()
    async with open_system(clock=FakeClock()) as system:
        ref = await system.spawn(lambda: Waiting(gate), name="w")
        outcomes: list[str] = []

        async def ask(message: str) -> None:
            try:
                outcomes.append(await ref.ask(message))
            except ActorStoppedError as exc:
                outcomes.append(f"{message}: {exc}")

        async with anyio.create_task_group() as tg:
            tg.start_soon(ask, "in progress")
            await anyio.wait_all_tasks_blocked()
            tg.start_soon(ask, "queued")
            await anyio.wait_all_tasks_blocked()
            ref.tell("told")
            system.root.terminate("test")
        stopped = (
            "actor 'w' is stopped and takes no more messages; "
            "send to the ref its supervisor or activation table gives you now"
        )
        assert sorted(outcomes) == [f"in progress: {stopped}", f"queued: {stopped}"]
        assert ref.stopped
        assert system.dead_letters.counts == {"test": 1}  # the tell nobody waited for
        await anyio.wait_all_tasks_blocked()
        assert system.task_count == 0
