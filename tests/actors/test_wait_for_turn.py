"""Waiting for one conversation's turn hears that conversation's events only.

``Conversations.watch`` wakes a waiter on its own conversation's events: with many turns
waiting (a reply owed per NATS message, a chat request each), an event costs one lookup,
not a call per waiter.
"""

from __future__ import annotations

import pytest

from relaybaton.actors import Agent, Paused, function_tool, open_runtime, wait_for_turn
from relaybaton.testing import ScriptedModel, tool_call

pytestmark = pytest.mark.anyio


async def test_a_watcher_hears_its_own_conversation_only_and_leaves_nothing() -> None:
    agent = Agent(name="assistant")
    async with open_runtime(agent, models=ScriptedModel(lambda _r: "Hi."), tracing=False) as rt:
        conversations = rt.conversations
        assert not conversations.observed  # no tracing, nobody listening: no events built
        heard: list[str] = []
        unwatch = conversations.watch("c1", lambda: heard.append("c1"))
        assert conversations.observed
        await rt.send("c2", "Hello")
        assert heard == []  # another conversation's events wake nobody here
        await rt.send("c1", "Hello")
        assert heard
        assert set(heard) == {"c1"}
        unwatch()
        unwatch()  # twice is harmless
        assert conversations.watchers == {}
        assert not conversations.observed
        count = len(heard)
        await rt.send("c1", "Again")
        assert len(heard) == count


async def test_a_turn_waiting_for_a_person_is_told_while_others_run() -> None:
    @function_tool(needs_approval="amount > 100")
    def issue_refund(order_id: str, amount: float) -> str:
        """Refund an order."""
        return "refunded"

    def script(request: object) -> object:
        return tool_call("issue_refund", order_id="AB-1", amount=150.0)

    agent = Agent(name="refunds", tools=(issue_refund,))
    async with open_runtime(agent, models=ScriptedModel(script), tracing=False) as runtime:
        others = [runtime.submit(f"other-{i}", "refund $150 on AB-1") for i in range(20)]
        future = runtime.submit("c1", "refund $150 on AB-1")
        paused = await wait_for_turn(runtime.conversations, "c1", future)
        assert isinstance(paused, Paused)
        assert paused.conversation_id == "c1"
        assert len(paused.approval_ids) == 1
        assert runtime.conversations.watchers == {}  # the wait cleaned up after itself
        for other in others:
            other.cancel()
