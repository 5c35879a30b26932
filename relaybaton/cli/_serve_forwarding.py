"""``serve --cluster``: any node answers for any conversation.

The service asks a ``ClusterForwarder`` about each request that names a conversation; the
forwarder sends those of partitions held elsewhere to their owner over the node's NATS
connection. A ``TunnelServer`` answers, with this node's application, the requests other
nodes send for the partitions this node holds. The service and the cluster do not import
each other: they meet here.
"""

from __future__ import annotations

from contextlib import AsyncExitStack

from aiohttp import web

from relaybaton.cluster import ClusterNode
from relaybaton.cluster._forwarder import ClusterForwarder, approvals_in
from relaybaton.cluster._tunnel import TunnelClient, TunnelServer
from relaybaton.runtime import Store

__all__ = ["answer_for_owned", "forward_to_owners"]


async def forward_to_owners(
    node: ClusterNode, store: Store | None, stack: AsyncExitStack
) -> ClusterForwarder:
    """The forwarder the service asks (after the node started: it uses its connection)."""
    client = TunnelClient(node.nats, prefix=node.config.prefix)
    await client.start()
    stack.push_async_callback(client.close)
    return ClusterForwarder(
        client,
        node,
        lease_ttl=node.config.lease_ttl,
        locate_approval=approvals_in(store) if store is not None else None,
    )


async def answer_for_owned(node: ClusterNode, app: web.Application, stack: AsyncExitStack) -> None:
    """Answer other nodes' requests for this node's partitions (once ``app`` is set up)."""
    server = TunnelServer(node.nats, app, node, prefix=node.config.prefix)
    await server.start()
    stack.push_async_callback(server.close)
