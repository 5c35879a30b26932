"""A small flow on scripted models, served over real HTTP on 127.0.0.1 for the tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiohttp import web

from relaybaton.actors import Agent, FunctionTool, Runtime, handoff, open_runtime
from relaybaton.actors._fork_models import ModelBuilder
from relaybaton.adapters import ModelRequest, ToolResultMessage, UserMessage
from relaybaton.service import Service, ServiceLimits, TokenTable, create_service
from relaybaton.service._server import ConsoleOptions
from relaybaton.testing import ScriptedModel, ScriptItem, tool_call

FLOW = "support"


def _last_user_text(request: ModelRequest) -> str:
    for message in reversed(request.messages):
        if isinstance(message, UserMessage):
            return message.text
    return ""


def _answer(request: ModelRequest) -> ScriptItem:
    """triage hands "billing ..." to billing and calls the clock tool for "time"; else echoes."""
    agent = request.metadata.agent
    last = request.messages[-1] if request.messages else None
    text = _last_user_text(request)
    if agent == "triage" and isinstance(last, UserMessage):
        if text.startswith("billing"):
            return tool_call("transfer_to_billing", reason=text)
        if text.startswith("time"):
            return tool_call("clock")
    if isinstance(last, ToolResultMessage) and last.name == "clock":
        return f"it is {last.content}"
    return f"{agent} heard: {text}"


async def clock() -> str:
    """Tell the time."""
    return "noon"


def agents() -> tuple[Agent, Agent]:
    billing = Agent(name="billing", instructions="Billing.", model="general")
    triage = Agent(
        name="triage",
        instructions="Route.",
        model="general",
        tools=(FunctionTool(clock, name="clock", description="Tell the time."),),
        handoffs=(handoff(billing, return_to_sender=True),),
    )
    return triage, billing


@dataclass
class Served:
    url: str
    service: Service
    runtime: Runtime
    model: ScriptedModel


@asynccontextmanager
async def serving(
    *,
    limits: ServiceLimits | None = None,
    tokens: TokenTable | None = None,
    gate: asyncio.Event | None = None,
    record_content: bool = False,
    console: ConsoleOptions | None = None,
    model_builder: ModelBuilder | None = None,
    tracing: bool = False,
) -> AsyncIterator[Served]:
    """Run the flow behind the service on an ephemeral loopback port."""
    model = ScriptedModel(_answer, name="scripted:general", gate=gate, keep_requests=False)
    triage, billing = agents()
    async with open_runtime(
        triage, agents=[billing], models=model, tracing=tracing, model_builder=model_builder
    ) as runtime:
        service = create_service(
            runtime,
            flow_name=FLOW,
            tokens=tokens,
            limits=limits,
            record_content=record_content,
            console=console,
        )
        runner = web.AppRunner(service.app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=4096)
        await site.start()
        host, port = runner.addresses[0][:2]
        try:
            yield Served(f"http://{host}:{port}", service, runtime, model)
        finally:
            if gate is not None:
                gate.set()
            await service.drain(5.0)
            await runner.cleanup()
            service.close()
