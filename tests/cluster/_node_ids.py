"""Node ids for tests whose nodes must each hold some partitions.

Rendezvous placement gives each partition to the member with the highest hash, so with
few partitions it can give every one of them to one member: with 8 partitions and two
nodes of random ids, once in 128 pairs. A test that waits for both nodes to hold a share
would then wait for ever; these ids are chosen so that it cannot happen.
"""

from __future__ import annotations

import itertools

from relaybaton.cluster import assignment

__all__ = ["split_ids"]


def split_ids(*names: str, partitions: int, tag: str = "") -> dict[str, str]:
    """An id per name (``<name>-<tag><n>``) such that any two or more of these nodes, live
    together, each hold at least one partition."""
    for n in itertools.count():
        ids = {name: f"{name}-{tag}{n}" for name in names}
        if all(
            len(set(assignment(partitions, group).values())) == size
            for size in range(2, len(ids) + 1)
            for group in itertools.combinations(ids.values(), size)
        ):
            return ids
    raise AssertionError("unreachable")  # pragma: no cover
