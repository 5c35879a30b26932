"""A node whose PostgreSQL stays away past the journal's reconnect window leaves the cluster.

It cannot journal, so it must not keep its partitions: it hands them over (releasing its
leases, so nobody waits for them to expire) and exits 1, for its supervisor to start it
again once the database is back. The database is one of the test's own, stopped as a crash
would stop it and never started again.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest

from tests._nats import NATS_URL, require_nats, throwaway_prefix
from tests._postgres import require_postgres
from tests.cluster._harness import Cluster, Nodes, throwaway_database
from tests.cluster._servers import OwnPostgres

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

TTL = 10.0  # long, so a lease gone right after the exit was released, not expired
RECONNECT_WINDOW = 15.0  # the PostgreSQL link's reconnect_within


async def test_a_node_that_cannot_journal_releases_its_partitions_and_exits_1(
    tmp_path: Path,
) -> None:
    require_postgres()
    require_nats()
    own_pg = OwnPostgres()
    await own_pg.start()
    cluster = Cluster(nats=NATS_URL, prefix=throwaway_prefix(), lease_ttl_s=TTL, partitions=4)
    try:
        async with throwaway_database(own_pg.dsn) as dsn:
            nodes = Nodes(tmp_path, dsn, cluster=cluster)
            try:
                node = await nodes.add()
                await nodes.wait_placed([node.name], within=30)
                url = f"{node.url}/v1/conversations/lost1/messages"
                async with aiohttp.ClientSession() as session:
                    async with session.post(url, json={"text": "Hello"}) as first:
                        assert first.status == 200
                    left = node.watch("journal_failed_leaving_cluster")
                    await own_pg.stop()  # a crash, and it never comes back
                    # A message now needs a journal write the store cannot make; its client
                    # gets an error or loses the connection as the node leaves, never a reply.
                    try:
                        async with session.post(url, json={"text": "Hello again"}) as second:
                            body = await second.json()
                            assert second.status != 200 or not body.get("replies"), body
                    except aiohttp.ClientError:
                        pass
                await asyncio.wait_for(left, timeout=RECONNECT_WINDOW + 20)
                code = await node.wait(timeout=60)
                exited = time.monotonic()
                holders = await cluster.holders()
                assert time.monotonic() - exited < TTL / 2  # read long before any expiry
            finally:
                await nodes.aclose()
                await own_pg.start()  # so the throwaway database can be dropped
    finally:
        await cluster.delete()
        await own_pg.aclose()
    assert code == 1
    assert holders == {}, f"leases still held after the node left: {holders}"
    assert b"left the cluster so other nodes take its partitions" in node.log_path.read_bytes()
