"""The OpenAI-compatible endpoint, driven by the official ``openai`` client."""

from __future__ import annotations

import asyncio

import openai
import pytest

from relaybaton.service import ServiceLimits, TokenTable
from tests.service._support import Served, serving

pytestmark = pytest.mark.anyio

TOKEN = "sk-test-" + "c" * 24


def _client(served: Served, key: str = TOKEN) -> openai.AsyncOpenAI:
    # No retries: each refusal must surface as the client's own error class.
    return openai.AsyncOpenAI(base_url=f"{served.url}/v1", api_key=key, max_retries=0)


async def test_non_streamed_completion_keeps_the_conversation_server_side() -> None:
    async with serving() as served:
        async with _client(served) as client:
            first = await client.chat.completions.create(
                model="support", messages=[{"role": "user", "content": "hello"}], user="u1"
            )
            assert first.object == "chat.completion"
            assert first.choices[0].message.content == "triage heard: hello"
            assert first.choices[0].finish_reason == "stop"
            assert first.usage is not None
            assert first.usage.total_tokens > 0
            history = [
                {"role": "user", "content": "hello"},
                {"role": "assistant", "content": "triage heard: hello"},
                {"role": "user", "content": "billing: why?"},
            ]
            second = await client.chat.completions.create(
                model="support",
                messages=history,
                user="u1",  # type: ignore[arg-type]
            )
            assert second.choices[0].message.content == "billing heard: billing: why?"
            # A retry of the same request is answered from the first run, not run again.
            again = await client.chat.completions.create(
                model="support",
                messages=history,
                user="u1",  # type: ignore[arg-type]
            )
            assert again.choices[0].message.content == second.choices[0].message.content
        conversation = served.runtime.conversation("u1")
        assert conversation is not None
        assert sum(1 for m in conversation.transcript if type(m).__name__ == "UserMessage") == 2


async def test_streamed_completion_sends_chunks_usage_and_done() -> None:
    async with serving() as served:
        async with _client(served) as client:
            stream = await client.chat.completions.create(
                model="support",
                messages=[{"role": "user", "content": "billing: stream me"}],
                stream=True,
                stream_options={"include_usage": True},
                extra_headers={"X-Relaybaton-Conversation-Id": "s1"},
            )
            chunks = [chunk async for chunk in stream]
        assert all(c.object == "chat.completion.chunk" for c in chunks)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text.strip() == "billing heard: billing: stream me"
        assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 3
        finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
        assert finishes[-1] == "stop"
        assert chunks[-1].choices == []
        assert chunks[-1].usage is not None
        assert chunks[-1].usage.completion_tokens > 0
        assert served.runtime.conversation("s1") is not None


async def test_models_lists_the_flow_and_its_agents_and_flow_agent_starts_there() -> None:
    async with serving() as served, _client(served) as client:
        models = [m.id async for m in client.models.list()]
        assert models == ["support", "support:billing", "support:triage"]
        answer = await client.chat.completions.create(
            model="support:billing", messages=[{"role": "user", "content": "hi"}], user="b"
        )
        assert answer.choices[0].message.content == "billing heard: hi"


async def test_refusals_raise_the_clients_error_classes() -> None:
    tokens = TokenTable.from_environment({"RELAYBATON_API_TOKENS": TOKEN})
    limits = ServiceLimits(max_body_bytes=4096, rate_per_s=0.01, burst=6)
    async with (
        serving(tokens=tokens, limits=limits) as served,
        _client(served) as client,
        _client(served, "sk-wrong-" + "d" * 20) as bad,
    ):
        with pytest.raises(openai.AuthenticationError):
            await bad.chat.completions.create(
                model="support", messages=[{"role": "user", "content": "hi"}]
            )
        with pytest.raises(openai.NotFoundError, match=r"does not exist"):
            await client.chat.completions.create(
                model="nope", messages=[{"role": "user", "content": "hi"}]
            )
        with pytest.raises(openai.BadRequestError, match="role 'user'"):
            await client.chat.completions.create(
                model="support", messages=[{"role": "system", "content": "only system"}]
            )
        with pytest.raises(openai.APIStatusError) as too_large:
            await client.chat.completions.create(
                model="support", messages=[{"role": "user", "content": "z" * 10_000}]
            )
        assert too_large.value.status_code == 413
        results = await asyncio.gather(
            *(
                client.chat.completions.create(
                    model="support", messages=[{"role": "user", "content": f"m{i}"}]
                )
                for i in range(4)
            ),
            return_exceptions=True,
        )
        limited = [r for r in results if isinstance(r, openai.RateLimitError)]
        assert limited
        assert limited[0].response.headers["Retry-After"]


async def test_client_tools_are_refused_saying_what_is_supported() -> None:
    weather = {
        "type": "function",
        "function": {"name": "weather", "parameters": {"type": "object", "properties": {}}},
    }
    hello = [{"role": "user", "content": "hello"}]
    async with serving() as served, _client(served) as client:
        with pytest.raises(openai.BadRequestError, match="client-side tools are not supported"):
            await client.chat.completions.create(
                model="support",
                messages=hello,  # type: ignore[arg-type]
                tools=[weather],  # type: ignore[list-item]
            )
        with pytest.raises(openai.BadRequestError, match="tool_choice 'required'"):
            await client.chat.completions.create(
                model="support",
                messages=hello,  # type: ignore[arg-type]
                tool_choice="required",
            )
        # What changes nothing is accepted: no tools, plain text.
        plain = await client.chat.completions.create(
            model="support",
            messages=hello,  # type: ignore[arg-type]
            tool_choice="none",
            response_format={"type": "text"},
        )
        assert plain.choices[0].message.content == "triage heard: hello"
