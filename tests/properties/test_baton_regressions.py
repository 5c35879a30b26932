"""Examples the baton state machine found, kept as plain tests."""

from __future__ import annotations

import asyncio

import pytest

from relaybaton.actors import Agent, function_tool, handoff, open_runtime
from relaybaton.actors._runtime import collect_agents
from relaybaton.adapters import ModelRequest
from relaybaton.testing import FakeClock, ScriptedModel, tool_call
from tests.properties._driver import settle


def test_an_agent_passed_in_agents_may_refer_to_the_entry_agent_by_name() -> None:
    # Found building the machine's flow: with `billing` in `agents`, its handoff back to
    # "triage" (the entry, by name) was looked up before the entry had been visited.
    billing = Agent(name="billing", handoffs=("triage",))
    triage = Agent(name="triage", handoffs=(handoff(billing),))
    assert set(collect_agents(triage, [billing])) == {"triage", "billing"}


@pytest.mark.anyio
async def test_a_handoff_to_a_stopping_activation_leaves_the_conversation_usable() -> None:
    # billing/c0 is busy answering an agent-tool request (its caller gave up after the
    # ask timeout) and is being stopped; triage then hands c0 to billing. The baton could
    # not be delivered: the turn ended with owner None and the baton in flight for ever, and
    # the next user message failed an assertion inside `submit`.
    clock = FakeClock()
    released = asyncio.Event()

    @function_tool
    async def wait() -> str:
        """Wait for the test."""
        await released.wait()
        return "done"

    billing = Agent(name="billing", tools=(wait,))
    triage = Agent(
        name="triage", tools=(billing.as_tool(timeout=5.0),), handoffs=(handoff(billing),)
    )
    plan = {
        "triage": ["tool:billing", "to_billing", "reply", "reply"],
        "billing": ["tool:wait", "reply", "reply", "reply"],
    }

    def script(request: ModelRequest) -> object:
        step = plan[request.metadata.agent].pop(0)
        if step == "tool:billing":
            return tool_call("billing", "call-1", input="help")
        if step == "tool:wait":
            return tool_call("wait", "call-2")
        if step == "to_billing":
            return tool_call("transfer_to_billing", "call-3")
        return f"{request.metadata.agent} answers"

    async with open_runtime(triage, models=ScriptedModel(script), clock=clock) as runtime:
        first = runtime.submit("c0", "hello", message_id="m1")
        await settle()
        stopping = asyncio.ensure_future(runtime.conversations.agents["billing"].ref("c0").stop())
        await settle()
        await clock.advance(6.0)  # the ask times out; triage goes on and hands off
        result = await first
        conversation = runtime.conversation("c0")
        assert conversation is not None
        assert (conversation.owner is None) != (conversation.in_flight is None)
        assert result.error is not None
        second = runtime.submit("c0", "still there?", message_id="m2")
        released.set()
        await stopping
        assert (await second).error is None
