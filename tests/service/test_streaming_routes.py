"""Streaming through a slot with fallbacks and a supervisor, end to end over HTTP.

The client reads each delta while the provider is still sending (not one chunk after the
turn ends); a failure before the first token fails over without the client knowing; a
failure after it ends the stream with an error frame, never a restart.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest
from aiohttp import web

from relaybaton.actors import Agent, open_runtime
from relaybaton.actors.routing import (
    Candidate,
    HealthBoard,
    ModelSlot,
    open_model_supervisor,
)
from relaybaton.adapters import (
    AssistantMessage,
    Capabilities,
    ModelRequest,
    ModelResponse,
    RetryPolicy,
    StreamDone,
    StreamEvent,
    TextDelta,
)
from relaybaton.errors import ModelOverloadedError
from relaybaton.runtime import MonotonicClock
from relaybaton.service import create_service
from relaybaton.testing import ScriptedModel

pytestmark = pytest.mark.anyio


class _Paced:
    """Streams two deltas with a gate between them; or fails after the first one."""

    capabilities = Capabilities()

    def __init__(self, name: str, *, fail_after_first: bool = False) -> None:
        self.name = name
        self.gate = asyncio.Event()
        self.first_sent = asyncio.Event()
        self.fail_after_first = fail_after_first

    async def complete(self, request: ModelRequest) -> ModelResponse:
        raise AssertionError("a streaming edge must stream")

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        yield TextDelta(text="first ")
        self.first_sent.set()
        await self.gate.wait()
        if self.fail_after_first:
            raise ModelOverloadedError(f"{self.name} dropped mid-answer")
        yield TextDelta(text="second")
        message = AssistantMessage(text="first second")
        yield StreamDone(response=ModelResponse(message=message, model=self.name))

    async def aclose(self) -> None:
        return None


@asynccontextmanager
async def _serve(*adapters: object) -> AsyncIterator[str]:
    clock = MonotonicClock()
    board = HealthBoard(clock)
    candidates = [Candidate(a) for a in adapters]  # type: ignore[arg-type]
    slot = ModelSlot(
        "general",
        candidates[0].adapter,
        clock=clock,
        board=board,
        candidates=candidates,
        retry=RetryPolicy(attempts=len(candidates), base_delay=0.0),
    )
    agent = Agent(name="assistant", instructions="Answer.", model="general")
    async with (
        open_runtime(agent, models={"general": slot}, clock=clock) as runtime,
        open_model_supervisor(runtime.system, {"general": slot}, board),
    ):
        service = create_service(runtime, flow_name="flow")
        runner = web.AppRunner(service.app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        try:
            yield f"http://{host}:{port}"
        finally:
            await service.drain(5.0)
            await runner.cleanup()
            service.close()


async def _frames(response: aiohttp.ClientResponse) -> AsyncIterator[dict[str, object] | str]:
    async for raw in response.content:
        line = raw.decode().strip()
        if line.startswith("data: "):
            data = line[6:]
            yield data if data == "[DONE]" else json.loads(data)


def _body() -> dict[str, object]:
    return {"model": "flow", "messages": [{"role": "user", "content": "hi"}], "stream": True}


async def test_each_delta_reaches_the_client_while_the_provider_is_still_sending() -> None:
    paced = _Paced("paced")
    async with (
        _serve(paced) as url,
        aiohttp.ClientSession() as http,
        http.post(f"{url}/v1/chat/completions", json=_body()) as response,
    ):
        frames = _frames(response)
        texts: list[str] = []
        async for frame in frames:
            assert isinstance(frame, dict)
            delta = frame["choices"][0]["delta"]  # type: ignore[index]
            if delta.get("content"):
                texts.append(delta["content"])
                break
        # The provider has not sent its second delta: the first is already here.
        assert texts == ["first "]
        assert not paced.gate.is_set()
        paced.gate.set()
        rest = [frame async for frame in frames]
    contents = [
        f["choices"][0]["delta"].get("content")  # type: ignore[index]
        for f in rest
        if isinstance(f, dict) and f.get("choices")
    ]
    assert "second" in contents
    assert rest[-1] == "[DONE]"


async def test_a_failure_before_the_first_token_fails_over_unseen_by_the_client() -> None:
    broken = ScriptedModel([ModelOverloadedError("primary busy")], name="primary")
    fallback = ScriptedModel(["the fallback answers"], name="fallback")
    async with (
        _serve(broken, fallback) as url,
        aiohttp.ClientSession() as http,
        http.post(f"{url}/v1/chat/completions", json=_body()) as response,
    ):
        frames = [frame async for frame in _frames(response)]
    text = "".join(
        f["choices"][0]["delta"].get("content") or ""  # type: ignore[index]
        for f in frames
        if isinstance(f, dict) and f.get("choices")
    )
    assert text == "the fallback answers"
    assert not any(isinstance(f, dict) and "error" in f for f in frames)


async def test_a_failure_after_the_first_token_is_an_error_in_the_stream_not_a_restart() -> None:
    cut = _Paced("primary", fail_after_first=True)
    fallback = ScriptedModel(["must never be streamed"], name="fallback")
    async with (
        _serve(cut, fallback) as url,
        aiohttp.ClientSession() as http,
        http.post(f"{url}/v1/chat/completions", json=_body()) as response,
    ):
        await cut.first_sent.wait()
        cut.gate.set()
        frames = [frame async for frame in _frames(response)]
    text = "".join(
        f["choices"][0]["delta"].get("content") or ""  # type: ignore[index]
        for f in frames
        if isinstance(f, dict) and f.get("choices")
    )
    assert text == "first "
    errors = [f for f in frames if isinstance(f, dict) and "error" in f]
    assert len(errors) == 1
    assert "dropped mid-answer" in json.dumps(errors[0])
    assert fallback.requests == []
