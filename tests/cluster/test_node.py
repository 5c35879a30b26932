"""Nodes on the real NATS: they split the partitions, hand them over, take a dead one's."""

from __future__ import annotations

import asyncio
import time

import pytest

from relaybaton.cluster import ClusterConfig, ClusterNode
from relaybaton.errors import PartitionNotOwnedError
from tests._nats import NATS_URL, wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

TTL = 2.0
PARTITIONS = 16


def config(prefix: str, node_id: str) -> ClusterConfig:
    return ClusterConfig(
        nats=NATS_URL, partitions=PARTITIONS, lease_ttl=TTL, node_id=node_id, prefix=prefix
    )


def split(a: ClusterNode, b: ClusterNode) -> bool:
    held_a, held_b = set(a.held()), set(b.held())
    return not held_a & held_b and len(held_a | held_b) == PARTITIONS and bool(held_a and held_b)


async def test_a_lone_node_takes_every_partition_and_fences_each(prefix: str) -> None:
    fenced: list[tuple[int, int]] = []

    async def fence(partition: int, generation: int) -> None:
        fenced.append((partition, generation))

    node = ClusterNode(config(prefix, "a"), fence=fence)
    try:
        await node.start()
        assert sorted(node.held()) == list(range(PARTITIONS))
        assert sorted(fenced) == sorted(node.held().items())
        assert node.owner_of(3) == "a"
    finally:
        await node.leave()
        await node.aclose()


async def test_two_nodes_split_the_partitions_and_refuse_each_others(prefix: str) -> None:
    a, b = ClusterNode(config(prefix, "a")), ClusterNode(config(prefix, "b"))
    try:
        await a.start()
        await b.start()
        await wait_until(lambda: split(a, b), within=3 * TTL)
        theirs = next(iter(b.held()))
        conversation = next(
            f"c{i}" for i in range(10_000) if b.fencing_token(f"c{i}") == (theirs, b.held()[theirs])
        )
        # a learns who holds it from the lease bucket's watcher, a moment after b took it.
        await wait_until(lambda: a.owner_of(theirs) == "b", within=TTL)
        with pytest.raises(PartitionNotOwnedError) as refused:
            a.check_owner(conversation)
        assert refused.value.partition == theirs
        assert refused.value.owner == "b"
        assert b.check_owner(conversation) == (theirs, b.held()[theirs])
    finally:
        for node in (a, b):
            await node.leave()
            await node.aclose()


async def test_a_leaving_node_hands_everything_over_at_once(prefix: str) -> None:
    a, b = ClusterNode(config(prefix, "a")), ClusterNode(config(prefix, "b"))
    try:
        await a.start()
        await b.start()
        await wait_until(lambda: split(a, b), within=3 * TTL)
        before = b.held()
        await b.leave()
        took = await wait_until(lambda: len(a.held()) == PARTITIONS, within=TTL)
        assert took < 1.0
        assert all(a.held()[p] > g for p, g in before.items())  # newer generations
    finally:
        for node in (a, b):
            await node.leave()
            await node.aclose()


async def test_a_dead_node_is_taken_over_within_the_ttl_and_a_second(prefix: str) -> None:
    a, b = ClusterNode(config(prefix, "a")), ClusterNode(config(prefix, "b"))
    try:
        await a.start()
        await b.start()
        await wait_until(lambda: split(a, b), within=3 * TTL)
        await b.aclose()  # no hand-over: its leases and membership expire
        took = await wait_until(lambda: len(a.held()) == PARTITIONS, within=TTL + 3)
        assert took < TTL + 1.0
    finally:
        await a.leave()
        await a.aclose()


async def test_a_step_down_behind_a_slow_listener_spares_a_partition_taken_anew(
    prefix: str,
) -> None:
    # The node's clock jumps past its leases (a pause); telling a listener of partition 0's
    # loss takes a while. Meanwhile the keys run out in NATS and the node acquires the
    # other partitions anew. Stepping down one by one, the guard would then give up those
    # new holdings once the slow listener returned.
    offset = 0.0
    node = ClusterNode(config(prefix, "a"), clock=lambda: time.monotonic() + offset)
    slow, untold = asyncio.Event(), asyncio.Event()

    async def listener(partition: int, generation: int | None) -> None:
        if partition == 0 and generation is None:
            await slow.wait()
            untold.set()

    try:
        await node.start()
        first = node.held()
        node.listen(listener)
        offset = TTL
        # Every other partition held again under a later lease, partition 0's loss untold.
        await wait_until(
            lambda: all((node.held().get(p) or 0) > first[p] for p in range(1, PARTITIONS)),
            within=4 * TTL,
        )
        assert not untold.is_set()
        again = {p: g for p, g in node.held().items() if p != 0}
        slow.set()
        await untold.wait()  # the step-down from partition 0 went on from here at once
        held = node.held()
        assert {p: held.get(p) for p in again} == again
    finally:
        slow.set()
        await node.leave()
        await node.aclose()
