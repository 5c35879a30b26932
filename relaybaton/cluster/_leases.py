"""Partition leases in a NATS KV bucket: acquired by create, kept by compare-and-set.

One key per partition (``p.<n>``), its value the holder's node id. The bucket's TTL is the
lease TTL, its history one value.

- **Acquire** with ``create``, which fails while anyone holds the key. The lease's
  **generation** is the revision ``create`` returns: KV revisions are sequence numbers of
  the bucket's stream, so a later holder always has a higher one. It is the fencing token
  the journal checks.
- **Renew** every heartbeat with ``update(key, node_id, last=revision)``: it succeeds only
  if nobody wrote the key since our last write. A failed compare-and-set means the key
  expired and someone else took it: the partition is lost at once.
- **Self-fencing.** A renewal sent at ``t`` and acknowledged keeps the key on the server
  until at least ``t + TTL``; the node counts its lease valid until ``t + TTL - margin``
  by its own monotonic clock, and steps down when that passes without a newer renewal,
  before any other node can acquire the key.
- **Release** (a graceful hand-over) deletes the key with compare-and-set, so another node
  acquires it at once instead of after the TTL.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import final

import nats.errors
import structlog
from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue

__all__ = ["Lease", "LeaseKeeper", "lease_key"]

_log = structlog.get_logger("relaybaton.cluster")


def lease_key(partition: int) -> str:
    """The KV key of a partition's lease."""
    return f"p.{partition}"


@dataclass(slots=True)
class Lease:
    """A partition this node holds: under which generation, at which revision, until when."""

    partition: int
    generation: int
    revision: int
    valid_until: float


@final
class LeaseKeeper:
    """This node's leases: acquire, renew, release, and which of them have run out."""

    def __init__(
        self,
        kv: KeyValue,
        *,
        node_id: str,
        ttl: float,
        margin: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._kv = kv
        self._value = node_id.encode()
        self._ttl = ttl
        self._margin = margin
        self._clock = clock
        self.held: dict[int, Lease] = {}

    async def acquire(self, partition: int) -> Lease | None:
        """Take the partition's lease if nobody holds it; None if somebody does."""
        started = self._clock()
        try:
            revision = await self._kv.create(lease_key(partition), self._value)
        except KeyWrongLastSequenceError:
            return None  # held (or just taken by another node)
        lease = Lease(partition, revision, revision, started + self._ttl - self._margin)
        self.held[partition] = lease
        return lease

    async def renew(self, partition: int) -> bool:
        """Extend the lease; False if it is lost (compare-and-set refused, or ran out).

        A renewal that fails for another reason (a timeout, a reconnect) keeps the lease
        until its validity runs out: ``expired`` then says so.
        """
        lease = self.held.get(partition)
        if lease is None:
            return False
        started = self._clock()
        try:
            revision = await self._kv.update(lease_key(partition), self._value, last=lease.revision)
        except KeyWrongLastSequenceError:
            self.held.pop(partition, None)
            return False
        except (nats.errors.Error, TimeoutError) as exc:
            _log.warning("lease_renewal_failed", partition=partition, error=repr(exc), exc_info=exc)
            return partition in self.held
        if self.held.get(partition) is not lease:
            return False  # stepped down while the renewal was on its way: it stays given up
        lease.revision = revision
        lease.valid_until = started + self._ttl - self._margin
        return True

    def expired(self) -> list[Lease]:
        """Forget and return the leases whose validity ran out (the node must step down
        from each, and only from that holding: the partition may be acquired anew while
        the step-downs run)."""
        now = self._clock()
        gone = [lease for lease in self.held.values() if lease.valid_until <= now]
        for lease in gone:
            del self.held[lease.partition]
        return gone

    def next_expiry(self) -> float | None:
        """The monotonic time the first held lease runs out, or None."""
        return min((lease.valid_until for lease in self.held.values()), default=None)

    def forget(self, partition: int) -> Lease | None:
        """Stop holding the partition without touching the key (it expires by itself)."""
        return self.held.pop(partition, None)

    async def release(self, partition: int) -> None:
        """Give the partition up now: delete its key if it is still ours."""
        lease = self.held.pop(partition, None)
        if lease is None:
            return
        try:
            await self._kv.delete(lease_key(partition), last=lease.revision)
        except KeyWrongLastSequenceError:
            pass  # somebody wrote it since: it is not ours to delete
        except (nats.errors.Error, TimeoutError) as exc:
            # The key expires by itself within the TTL; the hand-over is only slower.
            _log.warning("lease_release_failed", partition=partition, error=repr(exc), exc_info=exc)
