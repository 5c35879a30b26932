"""The edge's wait for an answer: a deadline on the wait, never on the turn."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from relaybaton.service import ServiceLimits
from relaybaton.service._waiting import WaitDeadlines, answered_within
from tests.service._support import serving

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


async def test_deadlines_expire_in_order_and_a_discarded_one_never_does() -> None:
    deadlines = WaitDeadlines(0.05)
    expired: list[str] = []
    first = deadlines.add(lambda: expired.append("first"))
    deadlines.add(lambda: expired.append("second"))
    await asyncio.sleep(0.02)
    deadlines.add(lambda: expired.append("third"))  # ends 20 ms after the other two
    deadlines.discard(first)  # the earliest ends in time: its timer moves on to the next
    await asyncio.sleep(0.04)
    assert expired == ["second"]
    await asyncio.sleep(0.03)
    assert expired == ["second", "third"]
    assert len(deadlines) == 0
    deadlines.add(lambda: expired.append("fourth"))  # the timer starts again when needed
    await asyncio.sleep(0.07)
    assert expired == ["second", "third", "fourth"]


async def test_a_turn_slower_than_the_wait_is_accepted_with_202_and_still_answers() -> None:
    gate = asyncio.Event()
    limits = ServiceLimits(wait_timeout_s=0.2)
    async with serving(gate=gate, limits=limits) as served, aiohttp.ClientSession() as http:
        answer = await http.post(
            f"{served.url}/v1/conversations/w1/messages", json={"text": "slow", "message_id": "m"}
        )
        assert answer.status == 202
        assert (await answer.json())["message_id"] == "m"
        gate.set()
        result = await served.runtime.send("w1", "slow", message_id="m")
        assert result.text == "triage heard: slow"
