"""Which partition a conversation belongs to, and who owns which partitions now.

A conversation hashes to one of ``partitions`` partitions with CRC-32 of its id's UTF-8
bytes, modulo the count. CRC-32 is in every language's standard library, so a producer
written in any of them can compute the subject of a conversation's partition itself
(``relaybaton.in.<partition>``) without depending on relaybaton.

A node leases partitions (``_leases.py``); everything else on the node asks an
``Ownership`` which partitions it holds, under which lease generation, and hears when one
is gained or lost. The generation is the fencing token that the journal checks on every
write from that partition (a write carrying an older generation is refused).
"""

from __future__ import annotations

import zlib
from collections.abc import Awaitable, Callable
from typing import Protocol

__all__ = [
    "DEFAULT_PARTITIONS",
    "Ownership",
    "OwnershipListener",
    "partition_of",
]

DEFAULT_PARTITIONS = 64
"""Enough to spread over tens of nodes; each costs one lease and one consumer per node."""


def partition_of(conversation_id: str, partitions: int) -> int:
    """The partition that owns ``conversation_id``: CRC-32 of its UTF-8 bytes mod the count."""
    if partitions < 1:
        raise ValueError(f"partitions must be at least 1, got {partitions}")
    return zlib.crc32(conversation_id.encode("utf-8")) % partitions


OwnershipListener = Callable[[int, int | None], Awaitable[None]]
"""Called with ``(partition, generation)`` when a partition is gained, and with
``(partition, None)`` when it is lost or released; a loss is reported before anything
else acts for that partition's conversations again."""


class Ownership(Protocol):
    """The partitions this node holds right now."""

    @property
    def node_id(self) -> str:
        """This node's name in the membership (unique per process)."""
        ...

    @property
    def partitions(self) -> int:
        """How many partitions the cluster has (the same on every node)."""
        ...

    def generation(self, partition: int) -> int | None:
        """The lease generation this node holds ``partition`` under, or None if it does not."""
        ...

    def owner_of(self, partition: int) -> str | None:
        """The node that holds ``partition`` as last seen here (None while it is unowned)."""
        ...

    def listen(self, listener: OwnershipListener) -> None:
        """Hear every gain and loss from now on (gains already held are replayed first)."""
        ...
