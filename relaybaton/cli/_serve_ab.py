"""``relaybaton serve FLOW --ab FLOW2``: an A/B of two flow versions behind one address.

Both flows run in this process, each in its own runtime behind its own service (with its
online grading and thresholds from its ``[evals]`` table); a ``FlowSplit`` in front sends
each new conversation to B with the share of the current stage, keeps every conversation on
its variant, and promotes B or rolls it back by the rollout rules (``--ab-stages``,
``--ab-window-s``, ``--ab-min-calls``, ``--ab-min-graded``, margins as in a
``[models.<slot>.rollout]`` table). ``GET /v1/ab`` reports the split.
"""

from __future__ import annotations

import asyncio
import signal
from contextlib import AsyncExitStack
from typing import TextIO

import structlog
from aiohttp import web

from relaybaton.actors.routing import RolloutPolicy
from relaybaton.cli._quality import watch_quality
from relaybaton.flow._compose import open_flow
from relaybaton.flow._file import FlowFile
from relaybaton.service._ab import FlowSplit
from relaybaton.service._auth import TokenTable
from relaybaton.service._limits import ServiceLimits
from relaybaton.service._server import Service, create_service

__all__ = ["serve_ab"]


async def serve_ab(
    flows: tuple[FlowFile, FlowFile],
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    tokens: TokenTable | None = None,
    limits: ServiceLimits | None = None,
    policy: RolloutPolicy | None = None,
    overrides: tuple[dict[str, str], dict[str, str]] = ({}, {}),
    out: TextIO,
    stop: asyncio.Event | None = None,
    on_ready: asyncio.Future[tuple[str, FlowSplit]] | None = None,
) -> int:
    """Serve flow A and flow B as one until SIGTERM/SIGINT (or ``stop``), then drain both."""
    tokens = tokens or TokenTable()
    limits = limits or ServiceLimits()
    stop = stop or asyncio.Event()
    log = structlog.get_logger("relaybaton.service")
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    finished = True
    try:
        async with AsyncExitStack() as stack:
            services: list[Service] = []
            for flow, models in zip(flows, overrides, strict=True):
                runtime = await stack.enter_async_context(
                    open_flow(flow, tracing=False, model_overrides=models)
                )
                # Both answer to A's name: clients address one flow, whichever variant serves.
                service = create_service(
                    runtime, flow_name=flows[0].flow.name, tokens=tokens, limits=limits
                )
                await watch_quality(flow, runtime, service, stack)
                services.append(service)
            split = FlowSplit(services[0], services[1], policy=policy)
            split.watch_grades("A")
            split.watch_grades("B")
            runner = web.AppRunner(split.app, access_log=None, handle_signals=False)
            await runner.setup()
            site = web.TCPSite(runner, host, port, backlog=4096)
            await site.start()
            bound = runner.addresses[0]
            url = f"http://{bound[0]}:{bound[1]}"
            out.write(
                f"relaybaton: A/B of {flows[0].source or flows[0].flow.name} (A) and "
                f"{flows[1].source or flows[1].flow.name} (B) on {url}; GET {url}/v1/ab\n"
            )
            out.flush()
            if on_ready is not None:
                on_ready.set_result((url, split))
            await stop.wait()
            await site.stop()
            for service in services:
                finished = await service.drain(limits.drain_timeout_s) and finished
            await runner.cleanup()
            split.close()
            for service in services:
                service.close()
            if not finished:
                log.warning("drain_deadline_passed")
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
    return 0 if finished else 1
