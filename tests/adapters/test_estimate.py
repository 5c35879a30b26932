"""Usage a server does not report is estimated from the text, and marked as estimated."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relaybaton.adapters import (
    AssistantMessage,
    ModelRequest,
    ModelResponse,
    ToolCall,
    Usage,
    UserMessage,
)
from relaybaton.adapters._estimate import estimate_tokens, with_estimated_usage
from relaybaton.adapters._openai import OpenAIChatAdapter
from tests.adapters._servers import FakeServer, Reply, openai_sse

FAMILIES = st.sampled_from(["openai", "anthropic", "gemini", "openai-compatible"])


@given(st.text(max_size=200), st.text(max_size=200), FAMILIES)
def test_an_estimate_grows_with_the_text_and_is_zero_only_for_no_text(
    left: str, right: str, family: str
) -> None:
    alone = estimate_tokens(left, family)
    assert (alone == 0) == (left == "")
    assert estimate_tokens(left + right, family) >= max(alone, estimate_tokens(right, family)) - 1


def test_english_prose_is_near_four_characters_a_token_and_cjk_a_token_a_character() -> None:
    text = "The quick brown fox jumps over the lazy dog near the riverbank today."
    assert 15 <= estimate_tokens(text, "openai") <= 20
    assert estimate_tokens("你好世界", "openai") == 4
    assert estimate_tokens(text, "anthropic") >= estimate_tokens(text, "openai")


@given(st.integers(0, 1000), st.integers(0, 1000))
def test_reported_usage_is_kept_as_it_is(input_tokens: int, output_tokens: int) -> None:
    reported = Usage(input_tokens=input_tokens, output_tokens=output_tokens)
    response = ModelResponse(message=AssistantMessage(text="some answer"), usage=reported)
    request = ModelRequest(messages=(UserMessage(text="a question"),))
    out = with_estimated_usage(request, response, "openai")
    if input_tokens or output_tokens:
        assert out.usage == reported
    else:
        assert out.usage.estimated
        assert out.usage.input_tokens > 0
        assert out.usage.output_tokens > 0


def test_tool_calls_count_as_output() -> None:
    call = ToolCall(id="c1", name="lookup_order", arguments='{"order_id": "AB-1234"}')
    response = ModelResponse(message=AssistantMessage(tool_calls=(call,)))
    out = with_estimated_usage(ModelRequest(), response, "openai")
    assert out.usage.output_tokens > 0


def _chunk(delta: dict[str, object], finish: str | None = None) -> dict[str, object]:
    return {
        "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-5.2",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
    }  # fmt: skip


@pytest.mark.anyio
async def test_a_stream_without_usage_is_estimated_and_priced_not_free(server: FakeServer) -> None:
    # llama.cpp ignores stream_options.include_usage: no usage chunk at all.
    server.enqueue(
        Reply.sse(
            openai_sse(
                _chunk({"role": "assistant", "content": "Hello there,"}),
                _chunk({"content": " how can I help?"}),
                _chunk({}, "stop"),
            )
        )
    )
    model = OpenAIChatAdapter("gpt-5.2", api_key=None, base_url=f"{server.base_url}/v1")
    request = ModelRequest(instructions="Be brief.", messages=(UserMessage(text="Hi there"),))
    try:
        events = [event async for event in model.stream(request)]
    finally:
        await model.aclose()
    final = events[-1].response  # type: ignore[union-attr]
    assert final.usage.estimated
    assert final.usage.input_tokens > 0
    assert final.usage.output_tokens > 0
    assert final.usage.cost_usd > 0
