"""A cluster node and its runtime in this process, bound as ``serve --cluster`` binds them.

For tests that need to reach into a node (its held partitions, its journal, its runtime)
rather than drive a ``relaybaton serve`` process.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from relaybaton import Agent, open_runtime
from relaybaton.actors import Runtime
from relaybaton.adapters import ModelAdapter
from relaybaton.cluster import ClusterConfig, ClusterNode
from relaybaton.cluster._host import bind_runtime
from relaybaton.stores import PostgresStore
from relaybaton.testing import ScriptedModel
from tests._nats import NATS_URL
from tests._postgres import PG_DSN
from tests.cluster._producing import echo

TTL = 1.0
NODE_PARTITIONS = 8


@asynccontextmanager
async def cluster_node(
    prefix: str,
    schema: str,
    node_id: str,
    agent: Agent | None = None,
    models: Mapping[str, ModelAdapter] | None = None,
) -> AsyncIterator[tuple[ClusterNode, Runtime]]:
    """A started node and its runtime, bound as ``serve --cluster`` binds them (by default
    one agent answering with an echo of the user's message)."""
    node = ClusterNode(
        ClusterConfig(
            nats=NATS_URL, partitions=NODE_PARTITIONS, lease_ttl=TTL, node_id=node_id, prefix=prefix
        )
    )
    store = PostgresStore(PG_DSN, schema=schema, application_name=node_id)
    store.fencing = node.fencing_token
    node.fence = store.raise_fence
    await store.connect()
    try:
        async with open_runtime(
            agent or Agent(name="assistant", instructions="Answer.", model="general"),
            models=models or {"general": ScriptedModel(echo)},
            store=store,
            durability="sync",
            resume=False,
        ) as runtime:
            bind_runtime(runtime, node, drain_timeout=5)
            try:
                await node.start()
                yield node, runtime
            finally:
                await node.leave()
                await node.aclose()
    finally:
        await store.aclose()
