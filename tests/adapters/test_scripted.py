"""The scripted model: exact replies in order, for tests."""

from __future__ import annotations

import anyio
import pytest

from relaybaton.adapters import (
    AssistantMessage,
    ModelRequest,
    ModelResponse,
    RequestMetadata,
    StreamDone,
    TextDelta,
    ToolCall,
    UserMessage,
)
from relaybaton.errors import ModelTimeoutError
from relaybaton.testing import ScriptedModel, tool_call

pytestmark = pytest.mark.anyio


def request(conversation_id: str = "c1", *messages: UserMessage) -> ModelRequest:
    return ModelRequest(
        messages=messages, metadata=RequestMetadata(agent="a", conversation_id=conversation_id)
    )


async def test_replies_come_in_script_order_whatever_the_item_kind() -> None:
    custom = ModelResponse(message=AssistantMessage(text="custom"), model="other")
    model = ScriptedModel(
        [
            "plain text",
            tool_call("lookup", order_id="AB-1"),
            [tool_call("a", "1"), tool_call("b", "2")],
            AssistantMessage(text="both", tool_calls=(tool_call("c"),)),
            custom,
        ]
    )
    first = await model.complete(request())
    assert (first.message.text, first.finish_reason, first.model) == (
        "plain text",
        "stop",
        "scripted",
    )
    second = await model.complete(request())
    assert second.message.tool_calls == (
        ToolCall(id="call_lookup", name="lookup", arguments='{"order_id":"AB-1"}'),
    )
    assert second.finish_reason == "tool_calls"
    third = await model.complete(request())
    assert [c.id for c in third.message.tool_calls] == ["1", "2"]
    fourth = await model.complete(request())
    assert (fourth.message.text, len(fourth.message.tool_calls)) == ("both", 1)
    assert await model.complete(request()) is custom
    assert len(model.requests) == 5


async def test_running_out_of_replies_raises_a_clear_index_error() -> None:
    model = ScriptedModel(["only one"], name="triage-script")
    await model.complete(request())
    with pytest.raises(IndexError) as caught:
        await model.complete(request())
    assert str(caught.value) == (
        "scripted model 'triage-script' ran out of replies after 1 (conversation ''); "
        "add more to its script"
    )


async def test_per_conversation_scripts_start_over_for_each_conversation() -> None:
    model = ScriptedModel(["hello", "again"], per_conversation=True)
    assert (await model.complete(request("c1"))).message.text == "hello"
    assert (await model.complete(request("c2"))).message.text == "hello"
    assert (await model.complete(request("c1"))).message.text == "again"
    with pytest.raises(IndexError, match=r"ran out of replies after 2 \(conversation 'c1'\)"):
        await model.complete(request("c1"))


async def test_an_exception_in_the_script_is_raised() -> None:
    model = ScriptedModel([ModelTimeoutError("too slow", phase="first_byte"), "after"])
    with pytest.raises(ModelTimeoutError, match="too slow"):
        await model.complete(request())
    assert (await model.complete(request())).message.text == "after"


async def test_a_callable_script_answers_from_the_request() -> None:
    model = ScriptedModel(lambda r: f"you said {r.messages[-1].text}")  # type: ignore[union-attr]
    response = await model.complete(request("c1", UserMessage(text="hi")))
    assert response.message.text == "you said hi"


async def test_usage_and_price_are_reported() -> None:
    model = ScriptedModel(["twelve chars"], cost_per_call=0.5)
    response = await model.complete(request("c1", UserMessage(text="a"), UserMessage(text="b")))
    assert (response.usage.input_tokens, response.usage.output_tokens) == (16, 3)
    assert response.usage.cost_usd == 0.5


async def test_the_gate_holds_a_call_in_flight_until_it_is_set() -> None:
    gate = anyio.Event()
    model = ScriptedModel(["released"], gate=gate)
    answers: list[str] = []

    async def call() -> None:
        answers.append((await model.complete(request())).message.text)

    async with anyio.create_task_group() as tg:
        tg.start_soon(call)
        await anyio.wait_all_tasks_blocked()
        assert answers == []
        assert len(model.requests) == 1
        gate.set()
    assert answers == ["released"]


async def test_stream_yields_the_words_then_the_whole_answer() -> None:
    model = ScriptedModel(["two words"])
    events = [event async for event in model.stream(request())]
    assert events[:2] == [TextDelta(text="two"), TextDelta(text=" words")]
    assert isinstance(events[-1], StreamDone)
    assert events[-1].response.message.text == "two words"
