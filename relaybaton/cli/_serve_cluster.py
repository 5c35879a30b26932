"""``serve --cluster``: the node a served flow runs on, wired between store and runtime.

Cluster mode needs a PostgreSQL journal (the nodes share it, and it fences writes per
partition) and sync durability (a reply reaches a client only after its journal write, so a
node that lost its partition can never answer what it could not journal). The flow's long-
term memory moves to the same PostgreSQL when the flow did not name one, so every node
reads and writes one graph.
"""

from __future__ import annotations

from contextlib import AsyncExitStack

import msgspec

from relaybaton.cluster import ClusterConfig, ClusterNode
from relaybaton.cluster._host import RuntimeHost, bind_runtime
from relaybaton.errors import ConfigError
from relaybaton.flow._file import FlowFile, cluster_config
from relaybaton.flow._memory import uses_memory
from relaybaton.memory._factory import is_postgres_url
from relaybaton.stores import PostgresStore

__all__ = ["ClusterSetup", "cluster_setup"]


class ClusterSetup:
    """The node of ``serve --cluster`` before and after the runtime exists."""

    def __init__(self, config: ClusterConfig) -> None:
        self.config = config
        self.node = ClusterNode(config)
        self.host: RuntimeHost | None = None

    def fence_store(self, store: object) -> None:
        """Give the journal the node's fencing (refused: any store but PostgreSQL)."""
        if not isinstance(store, PostgresStore):
            raise ConfigError(
                "--cluster needs a PostgreSQL journal the nodes share: pass"
                " --store postgresql://USER@HOST:5432/DB (SQLite or no store cannot fence"
                " writes across machines)"
            )
        store.fencing = self.node.fencing_token
        store.writer = self.node.node_id  # recorded beside each body, for audits
        self.node.fence = store.raise_fence

    async def start(self, runtime: object, stack: AsyncExitStack, drain_timeout: float) -> None:
        """Bind the runtime and join the cluster; on exit the node leaves and disconnects."""
        from relaybaton.actors import Runtime  # noqa: PLC0415 - typing only at run time

        assert isinstance(runtime, Runtime)
        self.host = bind_runtime(runtime, self.node, drain_timeout=drain_timeout)
        stack.push_async_callback(self.node.aclose)
        await self.node.start()

    async def leave(self) -> None:
        """Hand every partition over (SIGTERM): finish or journal turns, release leases."""
        await self.node.leave()


def cluster_setup(
    flow: FlowFile, nats: str | None, store_path: str | None, durability: str
) -> tuple[ClusterSetup | None, FlowFile]:
    """The node for ``--cluster`` (or the flow's ``[cluster]``), and the flow to serve.

    Raises:
        ConfigError: no PostgreSQL ``--store``, a durability other than sync, or a bad
            ``[cluster]`` field.
    """
    table = flow.cluster
    if nats is None and (table is None or not table.nats):
        return None, flow
    if not store_path or not is_postgres_url(store_path):
        raise ConfigError(
            "--cluster needs a PostgreSQL journal the nodes share: pass"
            " --store postgresql://USER@HOST:5432/DB"
        )
    if durability != "sync":
        raise ConfigError(
            f"--durability {durability} cannot be used with --cluster: a node answers only"
            " what its journal holds, so cluster mode writes with --durability sync"
        )
    from relaybaton.flow._file import ClusterTable  # noqa: PLC0415

    config = cluster_config(table or ClusterTable(), nats)
    if uses_memory(flow) and not is_postgres_url(flow.memory.store):
        # One graph for every node: in the journal's database (its own schema).
        flow = msgspec.structs.replace(
            flow, memory=msgspec.structs.replace(flow.memory, store=store_path)
        )
    return ClusterSetup(config), flow
