"""A node's consumers of producers' messages: one per partition the node holds.

``start_consumers`` checks (or creates) the streams, then follows the node's
``Ownership``: a partition gained starts its consumer (``_partition_consumer.py``), a
partition lost stops it before the listener returns, so the lease is released only once
this node takes no more of that partition's messages. A consumer stopped by a journal
refusal starts again after a delay while the node still holds the partition (the
consumer made afresh delivers the refused message first).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import final

import structlog
from nats.aio.client import Client

from relaybaton.actors import Runtime
from relaybaton.cluster._connection import ConnectionWatch
from relaybaton.cluster._events import EventPublisher
from relaybaton.cluster._partition_consumer import (
    ConsumerSettings,
    JournalRefusedError,
    PartitionConsumer,
    ProducerContext,
)
from relaybaton.cluster._partitions import Ownership
from relaybaton.cluster._producer_counters import ProducerCounters
from relaybaton.cluster._streams import DEFAULT_DEDUP_WINDOW_S, ensure_streams
from relaybaton.cluster._subjects import ProducerSubjects

__all__ = ["ProducerConsumers", "start_consumers"]

_log = structlog.get_logger("relaybaton.cluster")

RefusalListener = Callable[[int, BaseException], Awaitable[None]]


@final
class ProducerConsumers:
    """The running consumers of one node; made by ``start_consumers``."""

    def __init__(
        self,
        context: ProducerContext,
        ownership: Ownership,
        on_journal_refused: RefusalListener | None = None,
    ) -> None:
        self.context = context
        self.ownership = ownership
        self.on_journal_refused = on_journal_refused
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self.consumers: dict[int, PartitionConsumer] = {}
        self.closed = False
        #: Publishes producers' turns' events, when enabled (``_events.py``).
        self.events: EventPublisher | None = None

    @property
    def counters(self) -> ProducerCounters:
        return self.context.counters

    @property
    def subjects(self) -> ProducerSubjects:
        return self.context.subjects

    async def on_ownership(self, partition: int, generation: int | None) -> None:
        """The ``Ownership`` listener: start on a gain, stop (and wait) on a loss.

        A stopping consumer finishes the message in hand (journal commit, then ack) first,
        so a hand-over does not make the next holder redeliver what was accepted here.
        """
        await self._stop(partition)
        if generation is not None and not self.closed:
            self._start(partition)

    def _start(self, partition: int) -> None:
        consumer = PartitionConsumer(self.context, partition)
        self.consumers[partition] = consumer
        task = asyncio.get_running_loop().create_task(
            self._run(consumer), name=f"relaybaton-partition-{partition}"
        )
        self.tasks[partition] = task

    async def _run(self, consumer: PartitionConsumer) -> None:
        partition = consumer.partition
        while True:
            try:
                await consumer.run()
            except JournalRefusedError as exc:
                _log.warning("partition_consumer_stopped", partition=partition, exc_info=exc)
                if self.on_journal_refused is not None:
                    await self.on_journal_refused(partition, exc.__cause__ or exc)
            except Exception:
                # NATS went away mid-fetch, say: the client reconnects; so does this loop.
                _log.exception("partition_consumer_failed", partition=partition)
            if consumer.stopping:
                return
            await asyncio.sleep(self.context.settings.refused_delay_s)
            if self.closed or self.ownership.generation(partition) is None:
                return

    async def _stop(self, partition: int) -> None:
        task = self.tasks.pop(partition, None)
        consumer = self.consumers.pop(partition, None)
        if task is None:
            return
        if consumer is not None and consumer.stop_after_current():
            # A message in hand: let its journal commit and its ack finish, for a while.
            await asyncio.wait([task], timeout=self.context.settings.stop_timeout_s)
        task.cancel()
        # Python 3.11's wait_for (inside the NATS client) can swallow a cancel; the loop
        # then ends at its next check of `stopping`. Wait for either, never for ever: a
        # hand-over stuck here would hold the partition's lease while nobody serves it.
        done, _ = await asyncio.wait([task], timeout=self.context.settings.stop_timeout_s)
        if not done:
            _log.warning("partition_consumer_stop_slow", partition=partition)
        elif not task.cancelled() and (error := task.exception()) is not None:
            _log.warning("partition_consumer_ended_badly", partition=partition, exc_info=error)

    async def stop_taking(self) -> None:
        """Take no more messages: each consumer acks the message in hand, then stops.

        For a node leaving (SIGTERM): called before it hands its partitions over, so
        every message it accepted is acked, and the rest wait in the stream for the next
        holders. Replies of turns in flight are still published. Idempotent.
        """
        self.closed = True
        await asyncio.gather(*(self._stop(p) for p in list(self.tasks)))

    async def aclose(self) -> None:
        """Stop every consumer, let reply tasks end (for a while), cancel the rest."""
        await self.stop_taking()
        await self.context.replies.aclose(self.context.settings.stop_timeout_s)
        if self.events is not None:
            await self.events.aclose()


@asynccontextmanager
async def start_consumers(
    nc: Client,
    runtime: Runtime,
    ownership: Ownership,
    *,
    subjects: ProducerSubjects | None = None,
    settings: ConsumerSettings | None = None,
    dedup_window_s: float = DEFAULT_DEDUP_WINDOW_S,
    on_journal_refused: RefusalListener | None = None,
    events: bool = False,
    connection: ConnectionWatch | None = None,
) -> AsyncIterator[ProducerConsumers]:
    """Consume producers' messages for the partitions ``ownership`` holds, for the block.

    Args:
        nc: the node's NATS connection (JetStream enabled on the server).
        runtime: the node's runtime; its store is the cluster's journal.
        ownership: the node's leases (``Ownership.listen`` is called once).
        subjects: the names of one prefix (default ``relaybaton``).
        settings: fetching and acknowledging (see ``ConsumerSettings``).
        dedup_window_s: the inbound stream's dedup window, when this node creates it.
        on_journal_refused: told ``(partition, error)`` when the journal refused a message
            of a partition this node holds (fenced, or the database is down): a node may
            give the partition up.
        events: publish the events of producers' turns on ``<prefix>.events.<id>``
            (off by default: it cost the producers' path up to a fifth of its throughput
            in ``benchmarks/nats_events.py``).
        connection: the breaks and returns of ``nc`` (``ClusterNode.connection``): the
            replies published around a break are published again once it is back.

    Raises:
        ConfigError: a stream of the prefix exists with a configuration that cannot work.
    """
    subjects = subjects or ProducerSubjects()
    js = nc.jetstream()
    await ensure_streams(js, subjects, dedup_window_s=dedup_window_s)
    context = ProducerContext(
        nc=nc,
        js=js,
        runtime=runtime,
        subjects=subjects,
        partitions=ownership.partitions,
        settings=settings or ConsumerSettings(),
    )
    consumers = ProducerConsumers(context, ownership, on_journal_refused)
    context.replies.start()
    if connection is not None:
        context.replies.watch(connection)
    if events:
        consumers.events = EventPublisher(nc, runtime.conversations, subjects, context.counters)
        consumers.events.start()
    ownership.listen(consumers.on_ownership)
    try:
        yield consumers
    finally:
        await consumers.aclose()
