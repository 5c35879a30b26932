"""A tripped guardrail, seen from operations: a span named for it and a counter by verdict."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web

from relaybaton.actors import Agent, create_guardrail, open_runtime
from relaybaton.service import create_service
from relaybaton.testing import ScriptedModel

pytestmark = pytest.mark.anyio


async def test_a_blocked_message_is_a_guardrail_span_and_a_counted_verdict() -> None:
    topics = create_guardrail(
        "topics", deny=["password"], message="I can't help with passwords here."
    )
    agent = Agent(name="triage", guardrails=(topics,))
    model = ScriptedModel(["Happy to help."], per_conversation=True)
    async with open_runtime(agent, models=model, tracing=False) as runtime:
        service = create_service(runtime, flow_name="support")
        runner = web.AppRunner(service.app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        url = f"http://{host}:{port}"
        try:
            async with aiohttp.ClientSession() as http:
                base = f"{url}/v1/conversations/c1"
                blocked = await http.post(f"{base}/messages", json={"text": "my password?"})
                assert (await blocked.json())["replies"][0]["text"] == (
                    "I can't help with passwords here."
                )
                fine = await http.post(f"{url}/v1/conversations/c2/messages", json={"text": "hi"})
                assert (await fine.json())["replies"][0]["text"] == "Happy to help."
                spans = (await (await http.get(f"{base}/trace")).json())["spans"]
                metrics = await (await http.get(f"{url}/metrics")).text()
        finally:
            await service.drain(5.0)
            await runner.cleanup()
            service.close()
    [span] = [s for s in spans if s["name"] == "guardrail topics"]
    assert span["attributes"]["relaybaton.guardrail.verdict"] == "blocked"
    assert span["attributes"]["relaybaton.guardrail.stage"] == "input"
    assert span["attributes"]["relaybaton.guardrail.reason"] == "it mentions 'password'"
    for line in (
        'relaybaton_guardrail_checks_total{guardrail="topics",stage="input",verdict="blocked"} 1.0',
        'relaybaton_guardrail_checks_total{guardrail="topics",stage="input",verdict="passed"} 1.0',
    ):
        assert line in metrics
