"""Partition leases on the real NATS KV: one holder, kept by renewal, lost when not renewed."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import anyio
import nats
import pytest
from nats.js.api import KeyValueConfig
from nats.js.kv import KeyValue

from relaybaton.cluster._leases import LeaseKeeper
from tests._nats import NATS_URL, delete_prefix, require_nats, throwaway_prefix

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

TTL = 2.0


@pytest.fixture
async def bucket() -> AsyncIterator[KeyValue]:
    require_nats()
    prefix = throwaway_prefix()
    nc = await nats.connect(NATS_URL)
    try:
        yield await nc.jetstream().create_key_value(
            KeyValueConfig(bucket=f"{prefix}_leases", ttl=TTL, history=1)
        )
    finally:
        await nc.close()
        await delete_prefix(prefix)


def keeper(kv: KeyValue, node: str) -> LeaseKeeper:
    return LeaseKeeper(kv, node_id=node, ttl=TTL, margin=0.2)


async def test_of_two_contenders_exactly_one_acquires(bucket: KeyValue) -> None:
    a, b = keeper(bucket, "a"), keeper(bucket, "b")
    results: dict[str, object] = {}

    async def contend(name: str, k: LeaseKeeper) -> None:
        results[name] = await k.acquire(7)

    async with anyio.create_task_group() as tg:
        tg.start_soon(contend, "a", a)
        tg.start_soon(contend, "b", b)
    winners = [name for name, lease in results.items() if lease is not None]
    assert len(winners) == 1
    assert (await bucket.get("p.7")).value == winners[0].encode()


async def test_renewal_keeps_the_lease_past_its_ttl(bucket: KeyValue) -> None:
    a, b = keeper(bucket, "a"), keeper(bucket, "b")
    lease = await a.acquire(1)
    assert lease is not None
    deadline = time.monotonic() + 2.5 * TTL
    while time.monotonic() < deadline:
        assert await a.renew(1)
        assert await b.acquire(1) is None
        await anyio.sleep(TTL / 3)
    assert a.expired() == []
    assert lease.generation < lease.revision  # renewals moved the revision, not the generation


async def test_a_stopped_renewer_loses_the_lease_to_a_higher_generation(bucket: KeyValue) -> None:
    a, b = keeper(bucket, "a"), keeper(bucket, "b")
    first = await a.acquire(3)
    assert first is not None
    started = time.monotonic()
    second = None
    while second is None:  # a stops renewing; b retries as a node's heartbeat would
        await anyio.sleep(0.1)
        second = await b.acquire(3)
        assert time.monotonic() - started < TTL + 2.0, "the lease did not expire"
    # a's own clock told it to step down before b could take the lease over.
    expiry = a.next_expiry()
    assert expiry is not None
    assert expiry <= time.monotonic()
    assert [lease.partition for lease in a.expired()] == [3]
    assert second.generation > first.generation
    assert not await a.renew(3)  # gone from a's leases: nothing to renew


async def test_a_renewal_after_a_takeover_is_refused(bucket: KeyValue) -> None:
    a, b = keeper(bucket, "a"), keeper(bucket, "b")
    assert await a.acquire(5) is not None
    # b takes the key over by force, as a holder whose lease expired would see it.
    await bucket.purge("p.5")
    assert await b.acquire(5) is not None
    assert not await a.renew(5)
    assert 5 not in a.held


async def test_release_hands_the_partition_over_at_once(bucket: KeyValue) -> None:
    a, b = keeper(bucket, "a"), keeper(bucket, "b")
    first = await a.acquire(2)
    assert first is not None
    await a.release(2)
    second = await b.acquire(2)
    assert second is not None
    assert second.generation > first.generation
