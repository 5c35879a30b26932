"""``serve --cluster``: the node a served flow runs on, wired between store and runtime.

Cluster mode needs a PostgreSQL journal (the nodes share it, and it fences writes per
partition) and sync durability (a reply reaches a client only after its journal write, so a
node that lost its partition can never answer what it could not journal). The flow's long-
term memory moves to the same PostgreSQL when the flow did not name one, so every node
reads and writes one graph.

The node also consumes producers' messages from NATS for the partitions it holds
(``start_consumers``): its consumers follow every gain and loss, their counters are
scraped with the service's metrics, and at SIGTERM they stop taking messages (the one in
hand is journaled and acked) before the node hands its partitions over.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AsyncExitStack

import msgspec
import structlog
from prometheus_client import CollectorRegistry

from relaybaton.cluster import (
    ClusterConfig,
    ClusterNode,
    ConsumerSettings,
    ProducerCollector,
    ProducerConsumers,
    ProducerSubjects,
    start_consumers,
)
from relaybaton.cluster._host import RuntimeHost, bind_runtime
from relaybaton.errors import ConfigError, FencedWriteError
from relaybaton.flow._file import FlowFile, cluster_config
from relaybaton.flow._memory import uses_memory
from relaybaton.memory._factory import is_postgres_url
from relaybaton.stores import PostgresStore

__all__ = ["ClusterSetup", "cluster_setup"]

_log = structlog.get_logger("relaybaton.cluster")


class ClusterSetup:
    """The node of ``serve --cluster`` before and after the runtime exists."""

    def __init__(self, config: ClusterConfig) -> None:
        self.config = config
        self.node = ClusterNode(config)
        self.host: RuntimeHost | None = None
        self.consumers: ProducerConsumers | None = None

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
        # A node stopped mid-write must not hold a takeover's fence raise past about half
        # a TTL: the server ends its transaction (a live node's write retries on a new one).
        store.idle_transaction_limit_s = self.config.lease_ttl / 2
        self.node.fence = store.raise_fence

    async def start(
        self,
        runtime: object,
        stack: AsyncExitStack,
        drain_timeout: float,
        on_journal_failed: Callable[[BaseException], None] | None = None,
    ) -> None:
        """Bind the runtime, join the cluster and consume producers' messages; on exit the
        consumers stop, then the node leaves and disconnects.

        ``on_journal_failed`` hears when the journal fails for good (PostgreSQL away past
        the store's reconnect window): a node that cannot journal must not keep its
        partitions, so ``serve`` leaves the cluster and exits 1 for its supervisor to
        restart it once the database is back.
        """
        from relaybaton.actors import Runtime  # noqa: PLC0415 - typing only at run time

        assert isinstance(runtime, Runtime)
        self.host = bind_runtime(runtime, self.node, drain_timeout=drain_timeout)
        journal = runtime.conversations.journal
        if journal is not None and on_journal_failed is not None:
            journal.on_failed = on_journal_failed
        stack.push_async_callback(self.node.aclose)
        await self.node.start()
        self.consumers = await stack.enter_async_context(
            start_consumers(
                self.node.nats,
                runtime,
                self.node,
                subjects=ProducerSubjects(self.config.prefix),
                settings=ConsumerSettings(),
                on_journal_refused=self._journal_refused,
                events=self.config.events,
                connection=self.node.connection,
            )
        )

    def expose_metrics(self, registry: CollectorRegistry) -> None:
        """Scrape the producers' counters with the service's metrics."""
        if self.consumers is not None:
            registry.register(ProducerCollector(self.consumers.counters))

    async def _journal_refused(self, partition: int, error: BaseException) -> None:
        # Fenced: another node holds the partition now; stop acting for it here at once
        # (the journal's own notice does too: stepping down twice is harmless). Any other
        # refusal (the database away) keeps the partition: its consumer tries again.
        if isinstance(error, FencedWriteError):
            self.node.step_down(partition, "the journal refused a producer's message (fenced)")
        else:
            _log.warning("producer_message_journal_refused", partition=partition, exc_info=error)

    async def leave(self) -> None:
        """Hand every partition over (SIGTERM): stop taking producers' messages (the one
        in hand acked), finish or journal turns, release leases."""
        if self.consumers is not None:
            await self.consumers.stop_taking()
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
