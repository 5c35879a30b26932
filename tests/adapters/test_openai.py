"""The OpenAI Chat Completions adapter against a local server speaking its wire format."""

from __future__ import annotations

from typing import Any

import pytest

from relaybaton.adapters import (
    AssistantMessage,
    ModelRequest,
    RetryPolicy,
    StreamDone,
    TextDelta,
    Timeouts,
    ToolCall,
    ToolCallDelta,
    ToolResultMessage,
    ToolSpec,
    UserMessage,
    sending_once,
)
from relaybaton.adapters._credentials import Secret
from relaybaton.adapters._openai import OpenAIChatAdapter
from relaybaton.errors import (
    ContextLengthExceededError,
    ModelOverloadedError,
    ModelTimeoutError,
    RateLimitedError,
    StreamInterruptedError,
)
from tests.adapters._fakes import StepClock
from tests.adapters._servers import FakeServer, Reply, openai_sse

pytestmark = pytest.mark.anyio

WEATHER = ToolSpec(
    name="get_weather",
    description="Weather for a city",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}},
)
REQUEST = ModelRequest(
    instructions="Be brief.",
    messages=(UserMessage(text="Weather in Paris and Rome?"),),
    tools=(WEATHER,),
)


def adapter(server: FakeServer, **kwargs: Any) -> OpenAIChatAdapter:
    kwargs.setdefault("retry", RetryPolicy(attempts=3, base_delay=0.0))
    return OpenAIChatAdapter(
        "gpt-5.2",
        api_key=Secret("sk-test-0123456789abcdef"),
        base_url=server.base_url + "/v1",
        clock=StepClock(),
        **kwargs,
    )


def completion(message: dict[str, Any], finish: str, usage: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "chatcmpl-abc123",
        "object": "chat.completion",
        "created": 1741569952,
        "model": "gpt-5.2-2025-12-11",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "refusal": None, **message},
             "logprobs": None, "finish_reason": finish}
        ],
        "usage": usage,
        "service_tier": "default",
        "system_fingerprint": None,
    }  # fmt: skip


USAGE = {
    "prompt_tokens": 1200,
    "completion_tokens": 300,
    "total_tokens": 1500,
    "prompt_tokens_details": {"cached_tokens": 1000, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 128, "audio_tokens": 0,
                                  "accepted_prediction_tokens": 0,
                                  "rejected_prediction_tokens": 0},
}  # fmt: skip


async def test_plain_text_answer_with_usage_and_cost(server: FakeServer) -> None:
    server.enqueue(Reply.json(completion({"content": "Sunny."}, "stop", USAGE)))
    model = adapter(server)
    try:
        response = await model.complete(REQUEST)
    finally:
        await model.aclose()
    assert response.message == AssistantMessage(text="Sunny.")
    assert response.model == "gpt-5.2-2025-12-11"
    u = response.usage
    assert (u.input_tokens, u.output_tokens, u.cached_input_tokens, u.reasoning_tokens) == (
        1200, 300, 1000, 128,
    )  # fmt: skip
    # 200 fresh input at 1.75, 1000 cached at 0.175, 300 output at 14 (per 1M)
    assert u.cost_usd == pytest.approx((200 * 1.75 + 1000 * 0.175 + 300 * 14) / 1e6)
    sent = server.received[0]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["Authorization"] == "Bearer sk-test-0123456789abcdef"
    body = sent.json()
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert body["tools"][0]["function"]["name"] == "get_weather"
    assert body["tool_choice"] == "auto"
    assert body["parallel_tool_calls"] is True
    assert "stream" not in body


async def test_parallel_tool_calls_are_decoded_in_order(server: FakeServer) -> None:
    calls = [
        {"id": "call_a", "type": "function",
         "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
        {"id": "call_b", "type": "function",
         "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'}},
    ]  # fmt: skip
    server.enqueue(
        Reply.json(completion({"content": None, "tool_calls": calls}, "tool_calls", USAGE))
    )
    model = adapter(server)
    try:
        response = await model.complete(REQUEST)
    finally:
        await model.aclose()
    assert response.finish_reason == "tool_calls"
    assert response.message.tool_calls == (
        ToolCall(id="call_a", name="get_weather", arguments='{"city": "Paris"}'),
        ToolCall(id="call_b", name="get_weather", arguments='{"city": "Rome"}'),
    )


async def test_history_with_tool_results_is_encoded_with_tool_roles(server: FakeServer) -> None:
    server.enqueue(Reply.json(completion({"content": "Done."}, "stop", USAGE)))
    call = ToolCall(id="call_a", name="get_weather", arguments='{"city":"Paris"}')
    request = ModelRequest(
        messages=(
            UserMessage(text="hi"),
            AssistantMessage(tool_calls=(call,)),
            ToolResultMessage(call_id="call_a", name="get_weather", content="20C"),
        ),
        tools=(WEATHER,),
        tool_choice="get_weather",
        parallel_tool_calls=False,
        max_output_tokens=50,
        response_format={"type": "object"},
    )
    model = adapter(server)
    try:
        await model.complete(request)
    finally:
        await model.aclose()
    body = server.received[0].json()
    assert body["messages"][1] == {
        "role": "assistant", "content": "",
        "tool_calls": [{"id": "call_a", "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}],
    }  # fmt: skip
    assert body["messages"][2] == {"role": "tool", "tool_call_id": "call_a", "content": "20C"}
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert body["parallel_tool_calls"] is False
    assert body["max_completion_tokens"] == 50
    assert body["response_format"]["type"] == "json_schema"


def chunk(delta: dict[str, Any] | None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    choices = [] if delta is None else [
        {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    ]  # fmt: skip
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
            "model": "gpt-5.2", "choices": choices, "usage": None, **extra}  # fmt: skip


async def collect(
    model: OpenAIChatAdapter, request: ModelRequest = REQUEST, into: list[Any] | None = None
) -> list[Any]:
    seen: list[Any] = [] if into is None else into
    try:
        async for event in model.stream(request):
            seen.append(event)
    finally:
        await model.aclose()
    return seen


async def run(model: OpenAIChatAdapter, request: ModelRequest = REQUEST) -> Any:
    try:
        return await model.complete(request)
    finally:
        await model.aclose()


async def test_stream_of_text_ends_with_the_usage_chunk_and_done(server: FakeServer) -> None:
    server.enqueue(Reply.sse(openai_sse(
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Hel"}),
        chunk({"content": "lo"}),
        chunk({}, "stop"),
        chunk(None, usage=USAGE),
    )))  # fmt: skip
    events = await collect(adapter(server))
    assert events[:2] == [TextDelta(text="Hel"), TextDelta(text="lo")]
    done = events[-1]
    assert isinstance(done, StreamDone)
    assert done.response.message.text == "Hello"
    assert done.response.usage.input_tokens == 1200
    body = server.received[0].json()
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}


def tool_piece(index: int, id: str | None, name: str | None, args: str) -> dict[str, Any]:
    function: dict[str, Any] = {"arguments": args}
    if name:
        function["name"] = name
    piece: dict[str, Any] = {"index": index, "function": function}
    if id:
        piece |= {"id": id, "type": "function"}
    return chunk({"tool_calls": [piece]})


async def test_stream_assembles_parallel_tool_calls_by_index(server: FakeServer) -> None:
    server.enqueue(Reply.sse(openai_sse(
        tool_piece(0, "call_a", "get_weather", ""),
        tool_piece(0, None, None, '{"city":'),
        tool_piece(1, "call_b", "get_weather", '{"city":"Rome"}'),
        tool_piece(0, None, None, '"Paris"}'),
        chunk({}, "tool_calls"),
    )))  # fmt: skip
    events = await collect(adapter(server))
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    assert [d.index for d in deltas] == [0, 0, 1, 0]
    assert deltas[0].id == "call_a"
    assert deltas[0].name == "get_weather"
    final = events[-1].response.message.tool_calls
    assert [(c.id, c.arguments) for c in final] == [
        ("call_a", '{"city":"Paris"}'), ("call_b", '{"city":"Rome"}'),
    ]  # fmt: skip


async def test_stream_tolerates_reused_index_zero_and_fresh_ids_per_piece(
    server: FakeServer,
) -> None:
    server.enqueue(Reply.sse(openai_sse(
        # one server sends every call at index 0 ...
        tool_piece(0, "call_a", "get_weather", '{"city":"Paris"}'),
        tool_piece(0, "call_b", "get_weather", '{"city":"Rome"}'),
        # ... another sends a fresh id with each piece of one call
        tool_piece(0, "call_c", "get_time", '{"tz":'),
        tool_piece(0, "call_c2", None, '"UTC"}'),
        chunk({}, "stop"),
        # and the usage chunk's choices is null, not []
        {"id": "x", "object": "chat.completion.chunk", "model": "m", "choices": None,
         "usage": USAGE},
    )))  # fmt: skip
    events = await collect(adapter(server))
    response = events[-1].response
    assert [(c.id, c.name, c.arguments) for c in response.message.tool_calls] == [
        ("call_a", "get_weather", '{"city":"Paris"}'),
        ("call_b", "get_weather", '{"city":"Rome"}'),
        ("call_c", "get_time", '{"tz":"UTC"}'),
    ]
    assert response.finish_reason == "tool_calls"
    assert response.usage.output_tokens == 300


async def test_stream_cut_after_text_is_not_retried(server: FakeServer) -> None:
    server.enqueue(
        Reply.sse(openai_sse(chunk({"content": "Half"}), done=False), cut=True),
        Reply.sse(openai_sse(chunk({"content": "again"}), chunk({}, "stop"))),
    )
    seen: list[Any] = []
    with pytest.raises(StreamInterruptedError) as info:
        await collect(adapter(server), into=seen)
    assert seen == [TextDelta(text="Half")]
    assert info.value.emitted
    assert len(server.received) == 1


async def test_stream_that_ends_without_done_before_any_text_is_retried(
    server: FakeServer,
) -> None:
    server.enqueue(
        Reply.sse(openai_sse(chunk({"role": "assistant"}), done=False)),
        Reply.sse(openai_sse(chunk({"content": "ok"}), chunk({}, "stop"))),
    )
    events = await collect(adapter(server))
    assert events[-1].response.message.text == "ok"
    assert len(server.received) == 2


async def test_rate_limit_then_success_honours_retry_after(server: FakeServer) -> None:
    limited = {
        "error": {
            "message": "Rate limit reached for gpt-5.2 on requests per min (RPM)",
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }
    server.enqueue(
        Reply.json(limited, status=429, **{"retry-after": "2"}),
        Reply.json(completion({"content": "ok"}, "stop", USAGE)),
    )
    clock = StepClock()
    model = OpenAIChatAdapter(
        "gpt-5.2", api_key=Secret("sk-test-0123456789abcdef"),
        base_url=server.base_url + "/v1", clock=clock, retry=RetryPolicy(attempts=2),
    )  # fmt: skip
    try:
        assert (await model.complete(REQUEST)).message.text == "ok"
    finally:
        await model.aclose()
    assert clock.sleeps[0] >= 2.0


async def test_under_sending_once_the_adapter_sends_each_call_once(server: FakeServer) -> None:
    # What a ModelSlot does around its calls: the slot retries, so its adapter must not.
    overloaded = {
        "error": {"message": "The engine is currently overloaded", "type": "server_error"}
    }
    server.enqueue(*(Reply.json(overloaded, status=503) for _ in range(6)))
    model = adapter(server, retry=RetryPolicy(attempts=3, base_delay=0.0))
    try:
        with sending_once():
            with pytest.raises(ModelOverloadedError):
                await model.complete(REQUEST)
            with pytest.raises(ModelOverloadedError):
                [e async for e in model.stream(REQUEST)]
    finally:
        await model.aclose()
    assert len(server.received) == 2


@pytest.mark.parametrize(
    ("status", "doc", "expected"),
    [
        (429, {"error": {"message": "Rate limit reached", "type": "requests",
                         "code": "rate_limit_exceeded"}}, RateLimitedError),
        (503, {"error": {"message": "The engine is currently overloaded, please try again later",
                         "type": "server_error"}}, ModelOverloadedError),
        (400, {"error": {"message": "This model's maximum context length is 128000 tokens.",
                         "type": "invalid_request_error", "param": "messages",
                         "code": "context_length_exceeded"}}, ContextLengthExceededError),
    ],
)  # fmt: skip
async def test_error_statuses_raise_the_mapped_error_after_retries(
    server: FakeServer, status: int, doc: dict[str, Any], expected: type
) -> None:
    server.enqueue(*(Reply.json(doc, status=status) for _ in range(3)))
    model = adapter(server, retry=RetryPolicy(attempts=2, base_delay=0.0))
    with pytest.raises(expected) as info:
        await run(model)
    assert f"HTTP {status}" in str(info.value)
    assert len(server.received) == (1 if expected is ContextLengthExceededError else 2)


async def test_slow_first_byte_times_out(server: FakeServer) -> None:
    server.enqueue(Reply(delay=0.5, body=b"{}"))
    model = adapter(server, timeouts=Timeouts(first_byte=0.1), retry=RetryPolicy(attempts=1))
    with pytest.raises(ModelTimeoutError) as info:
        await run(model)
    assert info.value.phase == "first_byte"


async def test_in_stream_error_payload_before_text_is_mapped_and_retried(
    server: FakeServer,
) -> None:
    error = {"error": {"message": "overloaded", "type": "server_error", "code": None}}
    server.enqueue(
        Reply.sse(openai_sse(error, done=False)),
        Reply.sse(openai_sse(chunk({"content": "ok"}), chunk({}, "stop"))),
    )
    events = await collect(adapter(server))
    assert events[-1].response.message.text == "ok"
