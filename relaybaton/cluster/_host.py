"""The runtime's side of a node: recover a gained partition, stop acting for a lost one.

- **Gained** (the fence already raised): the partition's unfinished conversations are
  loaded from the journal and continue, as a restarted single process continues all of
  them. What the store holds is the truth: nothing of the partition stays in memory from
  an earlier time this node held it. The partitions gained together (all of them at a
  node's start) share one read of the journal's unfinished heads.
- **Lost** (the lease is gone): its conversations are evicted at once: activations
  terminated without writing, and everyone waiting on one of their turns hears a
  retryable ``PartitionNotOwnedError`` (503 with Retry-After at the HTTP edge); the client
  retries and reaches the new owner, which continues from the journal.
- **Released** (a graceful hand-over, SIGTERM or a rebalance): new messages are refused
  already; the turns in flight get up to ``drain_timeout`` seconds to finish (their
  replies journaled and delivered), then the rest is evicted as above.

``admit`` refuses a conversation whose partition this node does not hold, so only the
owner ever loads or accepts anything for it; the journal's fencing refuses the rest.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection, Mapping
from typing import final

import structlog

from relaybaton.actors import Runtime
from relaybaton.cluster._node import ClusterNode
from relaybaton.cluster._partitions import partition_of
from relaybaton.errors import FencedWriteError, PartitionNotOwnedError

__all__ = ["RuntimeHost", "bind_runtime"]

_log = structlog.get_logger("relaybaton.cluster")


@final
class RuntimeHost:
    """Binds a ``Runtime`` to a ``ClusterNode`` (its ``PartitionHost``)."""

    def __init__(self, runtime: Runtime, node: ClusterNode, *, drain_timeout: float) -> None:
        self.runtime = runtime
        self.node = node
        self.drain_timeout = drain_timeout
        self.recovered = 0

    def admit(self, conversation_id: str) -> None:
        """Raise ``PartitionNotOwnedError`` unless this node holds the conversation."""
        self.node.check_owner(conversation_id)

    async def gained(self, holdings: Mapping[int, int]) -> None:
        """Recover the partitions gained together (partition -> generation, their fences
        raised): one read of the journal's unfinished heads serves the whole batch."""
        conversations = self.runtime.conversations
        journal = conversations.journal
        if journal is None:
            return
        partitions = self.node.partitions
        # Nothing of an earlier time this node held a partition may count: writes of then
        # still in flight end first (refused), then anything left in memory is dropped and
        # every refusal met there is forgotten (the eviction's own too), so every
        # conversation is read from the store.
        await journal.flush()
        for partition, stale in self._in_memory(holdings).items():
            _log.warning(
                "partition_stale_state_dropped", partition=partition, conversations=len(stale)
            )
            self._evict(partition)
        journal.forget_fenced(
            [c for c in journal.fenced if partition_of(c, partitions) in holdings]
        )
        unfinished: dict[int, list[str]] = {partition: [] for partition in holdings}
        for head in await journal.store.heads(unfinished_only=True):
            of_partition = unfinished.get(partition_of(head.conversation_id, partitions))
            if of_partition is not None:
                of_partition.append(head.conversation_id)
        outcomes = await asyncio.gather(
            *(self._recover(p, g, unfinished[p]) for p, g in holdings.items()),
            return_exceptions=True,
        )
        for partition, outcome in zip(holdings, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                if not isinstance(outcome, Exception):
                    raise outcome  # a cancellation, not a failure of this partition
                # The other partitions of the batch still recover; this one stays held
                # and its conversations load on their next message.
                _log.error(
                    "partition_host_failed",
                    partition=partition,
                    error=repr(outcome),
                    exc_info=outcome,
                )

    async def _recover(self, partition: int, generation: int, unfinished: list[str]) -> None:
        """Load and continue the partition's unfinished conversations not in memory."""
        if self.node.generation(partition) != generation:
            return  # lost again while reading
        conversations = self.runtime.conversations
        mine = [c for c in unfinished if c not in conversations.by_id]
        recovered = await conversations.recover(mine)
        self.recovered += recovered
        if mine:
            _log.info("partition_recovered", partition=partition, conversations=len(mine))

    async def lost(self, partition: int, *, graceful: bool, within: float | None = None) -> None:
        if graceful:
            await self._drain(partition, self.drain_timeout if within is None else within)
        self._evict(partition)

    def fenced(self, error: FencedWriteError) -> None:
        """The journal refused writes for partitions this node thought it held: step down."""
        for partition in error.partitions:
            self._evict(partition)
            self.node.step_down(partition, "the journal refused its writes (fenced)")

    def _in_memory(self, partitions: Collection[int]) -> dict[int, list[str]]:
        """The conversations in memory of these partitions, by partition (none: absent)."""
        count = self.node.partitions
        found: dict[int, list[str]] = {}
        for conversation_id in self.runtime.conversations.by_id:
            partition = partition_of(conversation_id, count)
            if partition in partitions:
                found.setdefault(partition, []).append(conversation_id)
        return found

    def _of(self, partition: int) -> list[str]:
        return self._in_memory((partition,)).get(partition, [])

    async def _drain(self, partition: int, within: float) -> None:
        """Let the partition's turns in flight end (their replies journaled), for a while."""
        deadline = time.monotonic() + within
        conversations = self.runtime.conversations
        while time.monotonic() < deadline:
            busy = [c for c in self._of(partition) if (conv := conversations.get(c)) and conv.busy]
            if not busy:
                break
            await asyncio.sleep(0.02)
        if conversations.journal is not None:
            await conversations.journal.flush()

    def _evict(self, partition: int) -> None:
        conversations = self.runtime.conversations
        evicted = 0
        mine = self._of(partition)
        if conversations.journal is not None and mine:
            # Records not committed yet must never be written: not now (the lease is gone)
            # and not after a regain either (the next holder's journal is the truth then).
            journal = conversations.journal
            journal.discard(
                mine,
                FencedWriteError(
                    store=_where(journal.store), conversation_ids=mine, partitions=(partition,)
                ),
            )
        for conversation_id in mine:
            error = PartitionNotOwnedError(
                conversation_id,
                partition,
                node_id=self.node.node_id,
                owner=None,
                retry_after=1.0,
            )
            evicted += conversations.evict(conversation_id, error)
        if evicted:
            _log.info("partition_evicted", partition=partition, conversations=evicted)


def _where(store: object) -> str:
    return str(getattr(store, "where", type(store).__name__))


def bind_runtime(runtime: Runtime, node: ClusterNode, *, drain_timeout: float) -> RuntimeHost:
    """Make ``runtime`` act only for the partitions ``node`` holds (see the module)."""
    host = RuntimeHost(runtime, node, drain_timeout=drain_timeout)
    runtime.conversations.admit = host.admit
    if runtime.conversations.journal is not None:
        runtime.conversations.journal.on_fenced = host.fenced
    node.host = host
    return host
