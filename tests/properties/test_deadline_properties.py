"""Ask deadlines against a model: every ask fails exactly at its deadline unless answered.

The kernel keeps one timer for all pending asks (``runtime/_deadlines.py``). Whatever the
mix of timeouts, start times and answer times, an ask answered before its deadline is never
failed, an unanswered one fails with ``AskTimeoutError`` at its deadline and not a moment
earlier, and nothing stays pending once every ask is settled.
"""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from relaybaton.errors import AskTimeoutError
from relaybaton.runtime._deadlines import Deadlines
from relaybaton.testing import FakeClock

# (start time, timeout, answer delay or None for never), in whole seconds: exact floats
_ask = st.tuples(
    st.integers(0, 50), st.sampled_from([1, 5, 20, 30]), st.none() | st.integers(0, 40)
)


@given(asks=st.lists(_ask, min_size=1, max_size=25))
@settings(max_examples=150, deadline=None)
def test_each_ask_fails_exactly_at_its_deadline_unless_answered_first(
    asks: list[tuple[int, int, int | None]],
) -> None:
    asyncio.run(_check(asks))


async def _check(asks: list[tuple[int, int, int | None]]) -> None:
    clock = FakeClock()
    deadlines = Deadlines(clock)
    loop = asyncio.get_running_loop()
    futures: list[asyncio.Future[object]] = [loop.create_future() for _ in asks]
    failed_at: dict[int, int] = {}
    # Time moves in steps of a second; starts and answers happen at the step's beginning,
    # as the kernel does (an answer pops the ask from its pending dict).
    events = sorted({s for s, _, _ in asks} | {s + a for s, _, a in asks if a is not None})
    holders: dict[int, dict[asyncio.Future[object], tuple[float, str]]] = {}
    for step in range(max(events) + 31):
        for index, (start, timeout, answer) in enumerate(asks):
            future = futures[index]
            if start == step:
                holders[index] = deadlines.add(future, timeout, f"a{index}")
            if answer is not None and start + answer == step and not future.done():
                future.set_result("ok")
                holders[index].pop(future, None)
        await clock.advance(1)
        for index, future in enumerate(futures):
            if future.done() and index not in failed_at and future.exception() is not None:
                failed_at[index] = step + 1
    for index, (start, timeout, answer) in enumerate(asks):
        # An answer at the deadline's instant is too late: the clock reached it first.
        answered_in_time = answer is not None and answer < timeout
        future = futures[index]
        assert future.done()
        if answered_in_time:
            assert future.result() == "ok"
        else:
            assert isinstance(future.exception(), AskTimeoutError)
            assert failed_at[index] == start + timeout
    assert len(deadlines) == 0
    assert clock.pending == 0
