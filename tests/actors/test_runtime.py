"""The library edge: open_runtime, send and submit, exactly-once, and agent collection."""

from __future__ import annotations

from functools import partial

import anyio
import pytest

from relaybaton.actors import Agent, AgentTool, open_runtime
from relaybaton.actors._runtime import collect_agents
from relaybaton.errors import ConfigError
from relaybaton.testing import FakeClock, ScriptedModel

pytestmark = pytest.mark.anyio


async def test_send_returns_the_turn_result_and_submit_its_future() -> None:
    model = ScriptedModel(["first answer", "second answer"])
    async with open_runtime(Agent(name="solo"), models=model, clock=FakeClock()) as runtime:
        result = await runtime.send("c1", "hello")
        assert (result.conversation_id, result.text, result.owner, result.epoch) == (
            "c1",
            "first answer",
            "solo",
            0,
        )
        future = runtime.submit("c1", "again", message_id="m2")
        assert (await future).message_id == "m2"
        assert (await future).text == "second answer"
        assert runtime.agents == {"solo": Agent(name="solo")}
        assert set(runtime.slots) == {"default"}


async def test_a_duplicate_message_id_returns_the_same_result_processed_once() -> None:
    model = ScriptedModel(["only once"])
    async with open_runtime(Agent(name="solo"), models=model, clock=FakeClock()) as runtime:
        first = await runtime.send("c1", "hello", message_id="m1")
        again = await runtime.send("c1", "hello", message_id="m1")
        assert again is first
        assert len(model.requests) == 1
        conversation = runtime.conversation("c1")
        assert conversation is not None
        assert len(conversation.transcript) == 2  # one user message, one answer


async def test_generated_message_ids_are_unique() -> None:
    model = ScriptedModel(["a", "b"])
    async with open_runtime(Agent(name="solo"), models=model, clock=FakeClock()) as runtime:
        first = await runtime.send("c1", "x")
        second = await runtime.send("c1", "x")
        assert first.message_id != second.message_id
        assert (first.text, second.text) == ("a", "b")


async def test_cancelling_send_does_not_cancel_the_turn() -> None:
    gate = anyio.Event()
    model = ScriptedModel(["finished anyway"], gate=gate)
    async with open_runtime(Agent(name="solo"), models=model, clock=FakeClock()) as runtime:
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(partial(runtime.send, "c1", "hello", message_id="m1"))
                await anyio.wait_all_tasks_blocked()
                scope.cancel()
        assert scope.cancelled_caught
        assert len(model.requests) == 1
        gate.set()
        result = await runtime.send("c1", "hello", message_id="m1")
        assert result.text == "finished anyway"
        assert len(model.requests) == 1


async def test_different_conversations_do_not_wait_for_each_other() -> None:
    gate = anyio.Event()

    def script(request):  # type: ignore[no-untyped-def]
        return f"answer for {request.metadata.conversation_id}"

    slow = ScriptedModel(script, gate=gate)
    async with open_runtime(Agent(name="solo"), models=slow, clock=FakeClock()) as runtime:
        blocked = runtime.submit("c1", "slow")
        await anyio.wait_all_tasks_blocked()
        slow.gate = None  # new calls no longer wait
        assert (await runtime.send("c2", "fast")).text == "answer for c2"
        assert not blocked.done()
        gate.set()
        assert (await blocked).text == "answer for c1"


async def test_a_slot_without_a_model_is_a_config_error() -> None:
    agent = Agent(name="solo", model="cheap")
    with pytest.raises(ConfigError) as caught:
        async with open_runtime(agent, models={"other": ScriptedModel([])}):
            pass  # pragma: no cover
    assert str(caught.value) == "no model for slot(s) 'cheap'; pass one in `models`"


def test_collect_agents_finds_every_agent_reachable_by_handoffs_and_tools() -> None:
    policy = Agent(name="policy")
    refund = Agent(name="refund", tools=(policy.as_tool(),), handoffs=("triage",))
    triage = Agent(name="triage", handoffs=(refund, "billing"))
    billing = Agent(name="billing")
    found = collect_agents(triage, [billing])
    assert found == {"triage": triage, "refund": refund, "policy": policy, "billing": billing}


def test_two_different_agents_with_one_name_are_a_config_error() -> None:
    triage = Agent(name="triage", handoffs=(Agent(name="refund", instructions="one"),))
    with pytest.raises(ConfigError) as caught:
        collect_agents(triage, [Agent(name="refund", instructions="two")])
    assert str(caught.value) == (
        "two different agents are named 'refund'; agent names must be unique in a flow"
    )


def test_a_reference_to_an_unknown_agent_name_is_a_config_error() -> None:
    triage = Agent(name="triage", tools=(AgentTool(agent="ghost", name="ghost", description="?"),))
    with pytest.raises(ConfigError) as caught:
        collect_agents(triage)
    assert str(caught.value) == (
        "agent 'triage' refers to an agent named 'ghost' that the runtime was not given; "
        "pass it in `agents`"
    )


async def test_an_error_in_the_block_using_the_runtime_comes_out_as_itself() -> None:
    # Not wrapped in an exception group by a task group the runtime holds open.
    async def use() -> None:
        async with open_runtime(Agent(name="solo"), models=ScriptedModel(["hi"])) as runtime:
            await runtime.send("c1", "hello")
            raise KeyError("mine")

    with pytest.raises(KeyError, match="mine"):
        await use()
