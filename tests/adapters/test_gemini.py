"""The Gemini adapter against a local server speaking its wire format."""

from __future__ import annotations

from typing import Any

import pytest

from relaybaton.adapters import (
    AssistantMessage,
    ImagePart,
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
from relaybaton.adapters._credentials import Secret
from relaybaton.adapters._gemini import GeminiAdapter
from relaybaton.errors import (
    AuthenticationError,
    ContentFilteredError,
    ModelOverloadedError,
    RateLimitedError,
    StreamInterruptedError,
)
from tests.adapters._fakes import StepClock
from tests.adapters._servers import FakeServer, Reply, gemini_sse

pytestmark = pytest.mark.anyio

WEATHER = ToolSpec(name="get_weather", description="Weather for a city")
REQUEST = ModelRequest(
    instructions="Be brief.", messages=(UserMessage(text="Weather?"),), tools=(WEATHER,)
)
USAGE = {"promptTokenCount": 1200, "candidatesTokenCount": 40, "totalTokenCount": 1250,
         "cachedContentTokenCount": 1000, "thoughtsTokenCount": 10}  # fmt: skip


def adapter(server: FakeServer, attempts: int = 3) -> GeminiAdapter:
    return GeminiAdapter(
        "gemini-3-pro",
        api_key=Secret("AIzaSyTest0123456789abcdefghijklmnopq"),
        base_url=server.base_url,
        clock=StepClock(),
        retry=RetryPolicy(attempts=attempts, base_delay=0.0),
    )


def answer(parts: list[dict[str, Any]], finish: str = "STOP", **extra: Any) -> dict[str, Any]:
    return {"candidates": [{"content": {"parts": parts, "role": "model"},
                            "finishReason": finish, "index": 0}],
            "usageMetadata": USAGE, "modelVersion": "gemini-3-pro",
            "responseId": "abc123", **extra}  # fmt: skip


async def collect(model: GeminiAdapter) -> list[Any]:
    try:
        return [e async for e in model.stream(REQUEST)]
    finally:
        await model.aclose()


async def run(model: GeminiAdapter, request: ModelRequest = REQUEST) -> Any:
    try:
        return await model.complete(request)
    finally:
        await model.aclose()


async def test_text_answer_url_key_header_and_usage(server: FakeServer) -> None:
    server.enqueue(Reply.json(answer([{"text": "Sunny."}])))
    response = await run(adapter(server))
    assert response.message == AssistantMessage(text="Sunny.")
    u = response.usage
    assert (u.input_tokens, u.output_tokens, u.cached_input_tokens, u.reasoning_tokens) == (
        1200, 50, 1000, 10,
    )  # fmt: skip
    sent = server.received[0]
    assert sent.path == "/v1beta/models/gemini-3-pro:generateContent"
    assert sent.headers["x-goog-api-key"] == "AIzaSyTest0123456789abcdefghijklmnopq"
    body = sent.json()
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert body["tools"][0]["functionDeclarations"][0]["name"] == "get_weather"
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "AUTO"}}


async def test_function_calls_keep_ids_and_thought_signatures_for_the_next_turn(
    server: FakeServer,
) -> None:
    server.enqueue(Reply.json(answer([
        {"functionCall": {"id": "fc1", "name": "get_weather", "args": {"city": "Paris"}},
         "thoughtSignature": "c2lnbmF0dXJl"},
        {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}},
    ])), Reply.json(answer([{"text": "Both sunny."}])))  # fmt: skip
    first = await run(adapter(server))
    calls = first.message.tool_calls
    assert first.finish_reason == "tool_calls"
    assert calls[0] == ToolCall(id="fc1", name="get_weather", arguments='{"city":"Paris"}',
                                signature="c2lnbmF0dXJl")  # fmt: skip
    assert calls[1].id.startswith("call_")
    follow = ModelRequest(messages=(
        UserMessage(text="Weather?", images=(ImagePart(data_base64="iVBORw0K"),)),
        first.message,
        ToolResultMessage(call_id="fc1", name="get_weather", content="20C"),
        ToolResultMessage(call_id=calls[1].id, name="get_weather", content="x", is_error=True),
    ))  # fmt: skip
    await run(adapter(server), follow)
    contents = server.received[1].json()["contents"]
    assert [c["role"] for c in contents] == ["user", "model", "user"]
    assert contents[0]["parts"][1] == {"inlineData": {"mimeType": "image/png", "data": "iVBORw0K"}}
    assert contents[1]["parts"][0]["thoughtSignature"] == "c2lnbmF0dXJl"
    assert contents[2]["parts"] == [
        {"functionResponse": {"id": "fc1", "name": "get_weather", "response": {"output": "20C"}}},
        {"functionResponse": {"id": calls[1].id, "name": "get_weather",
                              "response": {"error": "x"}}},
    ]  # fmt: skip


async def test_stream_with_usage_in_the_last_chunk(server: FakeServer) -> None:
    server.enqueue(Reply.sse(gemini_sse(
        {"candidates": [{"content": {"parts": [{"text": "Hel"}], "role": "model"}, "index": 0}],
         "usageMetadata": {"promptTokenCount": 1200}, "modelVersion": "gemini-3-pro"},
        {"candidates": [{"content": {"parts": [{"text": "lo"}], "role": "model"}, "index": 0}],
         "modelVersion": "gemini-3-pro"},
        {"candidates": [{"content": {"parts": [{"functionCall": {"name": "get_weather",
                                                                  "args": {"city": "Paris"}}}],
                                     "role": "model"}, "finishReason": "STOP", "index": 0}],
         "usageMetadata": USAGE, "modelVersion": "gemini-3-pro"},
    )))  # fmt: skip
    model = adapter(server)
    try:
        events = [e async for e in model.stream(REQUEST)]
    finally:
        await model.aclose()
    assert events[:2] == [TextDelta(text="Hel"), TextDelta(text="lo")]
    assert isinstance(events[2], ToolCallDelta)
    assert events[2].arguments == '{"city":"Paris"}'
    done = events[-1]
    assert isinstance(done, StreamDone)
    assert done.response.message.text == "Hello"
    assert done.response.usage.output_tokens == 50
    assert server.received[0].path == "/v1beta/models/gemini-3-pro:streamGenerateContent"
    assert server.received[0].query == {"alt": "sse"}


async def test_stream_ending_without_finish_reason_is_interrupted(server: FakeServer) -> None:
    server.enqueue(Reply.sse(gemini_sse(
        {"candidates": [{"content": {"parts": [{"text": "Hel"}], "role": "model"}}]})))  # fmt: skip
    with pytest.raises(StreamInterruptedError) as info:
        await collect(adapter(server))
    assert info.value.emitted


async def test_blocked_prompt_is_content_filtered(server: FakeServer) -> None:
    server.enqueue(Reply.json({"promptFeedback": {"blockReason": "SAFETY"},
                               "usageMetadata": USAGE}))  # fmt: skip
    with pytest.raises(ContentFilteredError, match="prompt blocked: SAFETY"):
        await run(adapter(server))


@pytest.mark.parametrize(
    ("status", "state", "text", "expected"),
    [
        (429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota).",
         RateLimitedError),
        (503, "UNAVAILABLE", "The model is overloaded. Please try again later.",
         ModelOverloadedError),
        (400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.",
         AuthenticationError),
    ],
)  # fmt: skip
async def test_error_bodies_map_to_the_tree(
    server: FakeServer, status: int, state: str, text: str, expected: type
) -> None:
    details = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                "domain": "googleapis.com"}] if expected is AuthenticationError else []  # fmt: skip
    server.enqueue(Reply.json({"error": {"code": status, "message": text, "status": state,
                                         "details": details}}, status=status))  # fmt: skip
    with pytest.raises(expected) as info:
        await run(adapter(server, attempts=1))
    assert f"HTTP {status} {state}" in str(info.value)
    assert text in str(info.value)
