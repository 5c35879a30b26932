"""Two in-process services that forward to each other over a real NATS, on a fixed split.

Each node has its own runtime, HTTP server on an ephemeral loopback port, NATS connection,
tunnel server (answering for the partitions its ``SplitView`` holds) and forwarder. The
split gives partition ``p`` to node "a" or "b"; ``conversation_on`` finds an id that lands
on a given node.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import nats
from aiohttp import web
from nats.aio.client import Client as NatsClient

from relaybaton.actors import Runtime
from relaybaton.cluster._forwarder import ApprovalLocator, ClusterForwarder
from relaybaton.cluster._partitions import partition_of
from relaybaton.cluster._tunnel import TunnelClient, TunnelServer
from relaybaton.service import Service, ServiceLimits, TokenTable, create_service
from relaybaton.service._server import ApprovalDesk
from tests._nats import NATS_URL
from tests.cluster._split import Split, SplitView

PARTITIONS = 8


@dataclass
class Node:
    name: str
    url: str
    service: Service
    runtime: Runtime
    view: SplitView
    server: TunnelServer
    nc: NatsClient


def conversation_on(split: Split, node: str | None, stem: str = "c") -> str:
    """The first id ``<stem>-<n>`` whose partition ``node`` holds."""
    for n in itertools.count():
        candidate = f"{stem}-{n}"
        if split.owners[partition_of(candidate, split.partitions)] == node:
            return candidate
    raise AssertionError("unreachable")


RuntimeFactory = Callable[[str, AsyncExitStack], Awaitable[tuple[Runtime, ApprovalDesk | None]]]


@asynccontextmanager
async def two_nodes(
    prefix: str,
    make_runtime: RuntimeFactory,
    *,
    flow_name: str,
    lease_ttl: float = 1.0,
    frame_timeout: float = 3.0,
    locate_approval: ApprovalLocator | None = None,
    owners: dict[int, str | None] | None = None,
    limits: ServiceLimits | None = None,
    tokens: TokenTable | None = None,
) -> AsyncIterator[tuple[Node, Node, Split]]:
    """Nodes "a" and "b"; by default a holds the even partitions and b the odd ones."""
    split = Split(
        PARTITIONS,
        owners if owners is not None else {p: "ab"[p % 2] for p in range(PARTITIONS)},
    )
    async with AsyncExitStack() as stack:
        nodes = []
        for name in ("a", "b"):
            runtime, approvals = await make_runtime(name, stack)
            view = split.view(name)
            nc = await nats.connect(NATS_URL)
            stack.push_async_callback(nc.close)
            client = TunnelClient(nc, prefix=prefix)
            await client.start()
            forwarder = ClusterForwarder(
                client,
                view,
                lease_ttl=lease_ttl,
                locate_approval=locate_approval,
                frame_timeout=frame_timeout,
            )
            service = create_service(
                runtime,
                flow_name=flow_name,
                approvals=approvals,
                forwarder=forwarder,
                limits=limits,
                tokens=tokens,
            )
            runner = web.AppRunner(service.app, access_log=None, shutdown_timeout=1.0)
            await runner.setup()
            stack.push_async_callback(runner.cleanup)
            stack.callback(service.close)
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            host, port = runner.addresses[0][:2]
            server = TunnelServer(nc, service.app, view, prefix=prefix, alive_every=0.5)
            await server.start()
            stack.push_async_callback(server.close)
            await view.settled()
            nodes.append(Node(name, f"http://{host}:{port}", service, runtime, view, server, nc))
        yield nodes[0], nodes[1], split
