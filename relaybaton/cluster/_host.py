"""The runtime's side of a node: recover a gained partition, stop acting for a lost one.

- **Gained** (the fence already raised): the partition's unfinished conversations are
  loaded from the journal and continue, as a restarted single process continues all of
  them. What the store holds is the truth: nothing of the partition stays in memory from
  an earlier time this node held it.
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

    async def gained(self, partition: int, generation: int) -> None:
        conversations = self.runtime.conversations
        journal = conversations.journal
        if journal is None:
            return
        partitions = self.node.partitions
        # Nothing of an earlier time this node held the partition may count: writes of
        # then still in flight end first (refused), then their refusals are forgotten and
        # anything left in memory is dropped, so every conversation is read from the store.
        await journal.flush()
        journal.forget_fenced(
            [c for c in journal.fenced if partition_of(c, partitions) == partition]
        )
        stale = self._of(partition)
        if stale:
            _log.warning(
                "partition_stale_state_dropped", partition=partition, conversations=len(stale)
            )
            self._evict(partition)
            journal.forget_fenced(stale)
        heads = await journal.store.heads(unfinished_only=True)
        mine = [
            h.conversation_id
            for h in heads
            if partition_of(h.conversation_id, partitions) == partition
            and h.conversation_id not in conversations.by_id
        ]
        if self.node.generation(partition) != generation:
            return  # lost again while reading
        self.recovered += await conversations.recover(mine)
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

    def _of(self, partition: int) -> list[str]:
        partitions = self.node.partitions
        return [
            c for c in self.runtime.conversations.by_id if partition_of(c, partitions) == partition
        ]

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
