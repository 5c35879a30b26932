"""The edge's wait for an answer: a deadline on the wait, never on the turn."""

from __future__ import annotations

import asyncio

import pytest

from relaybaton.service._waiting import answered_within

pytestmark = pytest.mark.anyio


async def test_an_answer_in_time_is_seen_and_a_late_one_is_left_to_finish() -> None:
    loop = asyncio.get_running_loop()
    early: asyncio.Future[str] = loop.create_future()
    loop.call_later(0.01, early.set_result, "yes")
    assert await answered_within(early, 5.0)
    late: asyncio.Future[str] = loop.create_future()
    assert not await answered_within(late, 0.01)
    assert not late.cancelled()
    late.set_result("later")  # the turn still finishes
    assert await answered_within(late, 0.0)


async def test_a_client_going_away_ends_the_wait_and_not_the_answer() -> None:
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[str] = loop.create_future()
    waiting = asyncio.ensure_future(answered_within(answer, 30.0))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert not answer.done()
    answer.set_result("kept")
    assert answer.result() == "kept"
