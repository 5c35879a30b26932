"""Examples the supervision state machine found, kept as plain tests."""

from __future__ import annotations

import pytest

from relaybaton.runtime import Strategy, open_system
from relaybaton.testing import FakeClock
from tests.properties._driver import settle
from tests.properties.test_supervision_properties import Recorder, Worker


@pytest.mark.anyio
async def test_a_sibling_restarted_before_its_drain_task_ran_leaves_no_task_behind() -> None:
    # c0's crash restarts c1 (one_for_all) while c1's drain task is created but has not run
    # its first step. Cancelling a task that never started skips its `finally`, so the system
    # kept counting it for ever, and closing the system spun for the whole shutdown grace.
    recorder = Recorder()
    async with open_system(clock=FakeClock(), shutdown_grace=0.5) as system:
        sup = system.spawn_supervisor("sup", strategy=Strategy.ONE_FOR_ALL, max_restarts=5)
        c0 = await sup.spawn(lambda: Worker("c0", recorder), name="c0")
        c1 = await sup.spawn(lambda: Worker("c1", recorder), name="c1")
        c0.tell(("crash", 0))
        c1.tell(("ok", 1))
        await settle()
        assert recorder.handled["c1"] == [1]
        assert recorder.instances == {"c0": 2, "c1": 2}
        assert system.task_count == 0
