"""Who is in the cluster, and which partitions each member should hold.

Each node writes its id under its own key of the members bucket every heartbeat (the
bucket's TTL is the lease TTL) and deletes it when it leaves. The desired placement is a
pure function of the live members: rendezvous (highest-random-weight) hashing gives each
partition to the member with the highest hash of (partition, member). Every node computes
the same placement from the same members, and a member joining or leaving moves only the
partitions it wins or held: about ``1/n`` of them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import nats.errors
import structlog
from nats.js.kv import KeyValue

__all__ = ["Membership", "assignment", "rendezvous_owner"]

_log = structlog.get_logger("relaybaton.cluster")


def _weight(partition: int, member: str) -> int:
    digest = hashlib.blake2b(f"{partition}/{member}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def rendezvous_owner(partition: int, members: Iterable[str]) -> str | None:
    """The member that should hold ``partition`` (None with no members)."""
    best: tuple[int, str] | None = None
    for member in members:
        candidate = (_weight(partition, member), member)
        if best is None or candidate > best:
            best = candidate
    return None if best is None else best[1]


def assignment(partitions: int, members: Iterable[str]) -> dict[int, str]:
    """Every partition's desired holder among ``members`` (empty with no members)."""
    names = sorted(set(members))
    if not names:
        return {}
    return {p: rendezvous_owner(p, names) or "" for p in range(partitions)}


class Membership:
    """This node's key in the members bucket."""

    def __init__(self, kv: KeyValue, node_id: str) -> None:
        self._kv = kv
        self.node_id = node_id

    async def announce(self) -> bool:
        """Say this node is alive (every heartbeat); False if NATS did not take it."""
        try:
            await self._kv.put(self.node_id, self.node_id.encode())
        except (nats.errors.Error, TimeoutError) as exc:
            _log.warning("membership_announce_failed", error=repr(exc), exc_info=exc)
            return False
        return True

    async def leave(self) -> None:
        """Remove this node's key, so that the others rebalance at once."""
        try:
            await self._kv.delete(self.node_id)
        except (nats.errors.Error, TimeoutError) as exc:
            # It expires by itself within the TTL; leaving is only slower.
            _log.warning("membership_leave_failed", error=repr(exc), exc_info=exc)
