"""The Anthropic Messages adapter against a local server speaking its wire format."""

from __future__ import annotations

from typing import Any

import pytest

from relaybaton.adapters import (
    AssistantMessage,
    ModelRequest,
    RetryPolicy,
    StreamDone,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    ToolResultMessage,
    ToolSpec,
    UserMessage,
)
from relaybaton.adapters._anthropic import AnthropicAdapter
from relaybaton.adapters._credentials import Secret
from relaybaton.errors import (
    AuthenticationError,
    ContextLengthExceededError,
    ModelOverloadedError,
    RateLimitedError,
    StreamInterruptedError,
)
from tests.adapters._fakes import StepClock
from tests.adapters._servers import FakeServer, Reply, anthropic_sse

pytestmark = pytest.mark.anyio

WEATHER = ToolSpec(name="get_weather", description="Weather for a city")
REQUEST = ModelRequest(
    instructions="Be brief.", messages=(UserMessage(text="Weather?"),), tools=(WEATHER,)
)
USAGE = {"input_tokens": 200, "cache_creation_input_tokens": 0,
         "cache_read_input_tokens": 1000, "output_tokens": 50}  # fmt: skip


def adapter(server: FakeServer, attempts: int = 3) -> AnthropicAdapter:
    return AnthropicAdapter(
        "claude-opus-4-6",
        api_key=Secret("sk-ant-test-0123456789"),
        base_url=server.base_url,
        clock=StepClock(),
        retry=RetryPolicy(attempts=attempts, base_delay=0.0),
    )


def message(content: list[dict[str, Any]], stop: str) -> dict[str, Any]:
    return {"id": "msg_01XFDUDYJgAACzvnptvVoYEL", "type": "message", "role": "assistant",
            "model": "claude-opus-4-6", "content": content, "stop_reason": stop,
            "stop_sequence": None, "usage": USAGE}  # fmt: skip


async def run(model: AnthropicAdapter, request: ModelRequest = REQUEST) -> Any:
    try:
        return await model.complete(request)
    finally:
        await model.aclose()


async def test_text_answer_headers_and_cache_aware_usage(server: FakeServer) -> None:
    server.enqueue(Reply.json(message([{"type": "text", "text": "Sunny."}], "end_turn")))
    response = await run(adapter(server))
    assert response.message == AssistantMessage(text="Sunny.")
    assert (response.usage.input_tokens, response.usage.cached_input_tokens) == (1200, 1000)
    assert response.usage.cost_usd == pytest.approx((200 * 5 + 1000 * 0.5 + 50 * 25) / 1e6)
    sent = server.received[0]
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == "sk-ant-test-0123456789"
    assert sent.headers["anthropic-version"] == "2023-06-01"
    body = sent.json()
    assert body["system"] == "Be brief."
    assert body["max_tokens"] == 4096
    assert body["tools"][0]["input_schema"] == {"type": "object", "properties": {}}
    assert body["tool_choice"] == {"type": "auto"}


async def test_parallel_tool_use_blocks_are_decoded(server: FakeServer) -> None:
    server.enqueue(Reply.json(message([
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "toolu_01B", "name": "get_weather", "input": {"city": "Rome"}},
    ], "tool_use")))  # fmt: skip
    response = await run(adapter(server))
    assert response.finish_reason == "tool_calls"
    assert response.message.tool_calls == (
        ToolCall(id="toolu_01A", name="get_weather", arguments='{"city":"Paris"}'),
        ToolCall(id="toolu_01B", name="get_weather", arguments='{"city":"Rome"}'),
    )


async def test_tool_results_go_first_in_the_next_user_turn_and_turns_merge(
    server: FakeServer,
) -> None:
    server.enqueue(Reply.json(message([{"type": "text", "text": "ok"}], "end_turn")))
    calls = (ToolCall(id="t1", name="get_weather", arguments='{"city":"Paris"}'),
             ToolCall(id="t2", name="get_weather", arguments='{"city":"Rome"}'))  # fmt: skip
    request = ModelRequest(
        messages=(
            UserMessage(text="Weather?"),
            AssistantMessage(text="Checking.", tool_calls=calls),
            ToolResultMessage(call_id="t1", name="get_weather", content="20C"),
            ToolResultMessage(call_id="t2", name="get_weather", content="boom", is_error=True),
            UserMessage(text="Thanks"),
        ),
        tools=(WEATHER,),
        tool_choice="required",
        parallel_tool_calls=False,
    )
    await run(adapter(server), request)
    body = server.received[0].json()
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "t1", "content": "20C"},
        {"type": "tool_result", "tool_use_id": "t2", "content": "boom", "is_error": True},
        {"type": "text", "text": "Thanks"},
    ]
    assert body["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}


def stream_of(*blocks: dict[str, Any], stop: str = "end_turn") -> list[dict[str, Any]]:
    start = message([], stop)
    start["stop_reason"] = None
    start["usage"] = {"input_tokens": 200, "cache_read_input_tokens": 1000, "output_tokens": 1}
    return [{"type": "message_start", "message": start}, {"type": "ping"}, *blocks,
            {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
             "usage": {"output_tokens": 50}},
            {"type": "message_stop"}]  # fmt: skip


TEXT_BLOCK = [
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "lo"}},
    {"type": "content_block_stop", "index": 0},
]
TOOL_BLOCK = [
    {"type": "content_block_start", "index": 1, "content_block": {
        "type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {}}},
    {"type": "content_block_delta", "index": 1,
     "delta": {"type": "input_json_delta", "partial_json": ""}},
    {"type": "content_block_delta", "index": 1,
     "delta": {"type": "input_json_delta", "partial_json": "{\"city\": \"Pa"}},
    {"type": "content_block_delta", "index": 1,
     "delta": {"type": "input_json_delta", "partial_json": "ris\"}"}},
    {"type": "content_block_stop", "index": 1},
]  # fmt: skip


async def stream(model: AnthropicAdapter) -> list[Any]:
    try:
        return [e async for e in model.stream(REQUEST)]
    finally:
        await model.aclose()


async def test_stream_assembles_text_and_tool_input_json(server: FakeServer) -> None:
    server.enqueue(Reply.sse(anthropic_sse(*stream_of(*TEXT_BLOCK, *TOOL_BLOCK, stop="tool_use"))))
    events = await stream(adapter(server))
    assert events[:2] == [TextDelta(text="Hel"), TextDelta(text="lo")]
    assert events[2] == ToolCallDelta(index=0, id="toolu_01", name="get_weather")
    done = events[-1]
    assert isinstance(done, StreamDone)
    r = done.response
    assert r.message.text == "Hello"
    assert r.message.tool_calls == (
        ToolCall(id="toolu_01", name="get_weather", arguments='{"city": "Paris"}'),
    )
    assert (r.usage.input_tokens, r.usage.output_tokens, r.usage.cached_input_tokens) == (
        1200, 50, 1000,
    )  # fmt: skip
    assert server.received[0].json()["stream"] is True


async def test_error_event_after_200_before_text_is_retried_as_overloaded(
    server: FakeServer,
) -> None:
    overloaded = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    server.enqueue(
        Reply.sse(anthropic_sse(stream_of()[0], overloaded)),
        Reply.sse(anthropic_sse(*stream_of(*TEXT_BLOCK))),
    )
    events = await stream(adapter(server))
    assert events[-1].response.message.text == "Hello"
    assert len(server.received) == 2


async def test_error_event_after_text_is_an_interruption_not_retried(server: FakeServer) -> None:
    overloaded = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    server.enqueue(Reply.sse(anthropic_sse(*stream_of()[:1], *TEXT_BLOCK[:2], overloaded)))
    with pytest.raises(StreamInterruptedError, match="overloaded_error") as info:
        await stream(adapter(server))
    assert info.value.emitted
    assert len(server.received) == 1


async def test_stream_cut_mid_way_without_message_stop(server: FakeServer) -> None:
    server.enqueue(Reply.sse(anthropic_sse(*stream_of(*TEXT_BLOCK)[:4]), cut=True))
    with pytest.raises(StreamInterruptedError) as info:
        await stream(adapter(server))
    assert info.value.emitted


@pytest.mark.parametrize(
    ("status", "kind", "text", "expected"),
    [
        (529, "overloaded_error", "Overloaded", ModelOverloadedError),
        (429, "rate_limit_error", "Number of request tokens has exceeded your rate limit",
         RateLimitedError),
        (401, "authentication_error", "invalid x-api-key", AuthenticationError),
        (400, "invalid_request_error", "prompt is too long: 208310 tokens > 200000 maximum",
         ContextLengthExceededError),
    ],
)  # fmt: skip
async def test_error_bodies_map_to_the_tree(
    server: FakeServer, status: int, kind: str, text: str, expected: type
) -> None:
    body = {"type": "error", "error": {"type": kind, "message": text},
            "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy"}  # fmt: skip
    server.enqueue(Reply.json(body, status=status, **{"retry-after": "1"}))
    with pytest.raises(expected) as info:
        await run(adapter(server, attempts=1))
    assert f"HTTP {status} {kind}" in str(info.value)
    assert text[:20] in str(info.value)
