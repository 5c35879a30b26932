"""Estimated token counts are counted apart in the metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from relaybaton.actors import Agent, open_runtime
from relaybaton.adapters import (
    AssistantMessage,
    Capabilities,
    ModelRequest,
    ModelResponse,
    StreamDone,
    StreamEvent,
    Usage,
)
from relaybaton.service import create_service

pytestmark = pytest.mark.anyio


class _Unreported:
    """Answers with counts its server did not report: estimated, as the adapters mark them."""

    name = "openai-compatible:local"
    capabilities = Capabilities()

    async def complete(self, request: ModelRequest) -> ModelResponse:
        usage = Usage(input_tokens=12, output_tokens=5, estimated=True)
        return ModelResponse(message=AssistantMessage(text="hi there"), usage=usage)

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        yield StreamDone(response=await self.complete(request))

    async def aclose(self) -> None:
        return None


async def test_estimated_tokens_have_their_own_counter_and_the_ledger_says_so() -> None:
    agent = Agent(name="assistant", instructions="Answer.", model="general")
    async with open_runtime(agent, models=_Unreported()) as runtime:  # type: ignore[arg-type]
        service = create_service(runtime, flow_name="flow")
        runner = web.AppRunner(service.app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        url = f"http://{host}:{port}"
        try:
            async with aiohttp.ClientSession() as http:
                sent = await http.post(f"{url}/v1/conversations/c1/messages", json={"text": "hi"})
                assert sent.status == 200
                metrics = await (await http.get(f"{url}/metrics")).text()
        finally:
            await service.drain(5.0)
            await runner.cleanup()
            service.close()
        conversation = runtime.conversation("c1")
        assert conversation is not None
        assert conversation.usage_total().estimated_calls == 1
    assert 'relaybaton_model_tokens_estimated_total{direction="input"' in metrics
    line = next(
        m
        for m in metrics.splitlines()
        if m.startswith("relaybaton_model_tokens_estimated_total") and 'direction="output"' in m
    )
    assert line.endswith(" 5.0")
