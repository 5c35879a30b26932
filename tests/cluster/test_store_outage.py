"""The PostgreSQL journal rides out its server's restart, and gives up on one that stays down.

A server of the test's own (the shared one serves everyone else), stopped the way a crash
stops it (``immediate``) between two writes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest

from relaybaton.errors import StoreUnavailableError
from relaybaton.stores import PostgresStore
from tests._postgres import require_postgres
from tests.cluster._records import batch
from tests.cluster._servers import OwnPostgres

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


@pytest.fixture
async def server() -> AsyncIterator[OwnPostgres]:
    require_postgres()  # the programs come with the server the other tests use
    own = OwnPostgres()
    await own.start()
    try:
        yield own
    finally:
        await own.aclose()


async def test_a_write_during_a_server_restart_waits_for_it_and_lands(server: OwnPostgres) -> None:
    store = PostgresStore(server.dsn, schema="outage")
    try:
        await store.write(batch("c1", 1))
        await server.stop()
        async with anyio.create_task_group() as tg:
            tg.start_soon(store.write, batch("c1", 2))  # the server is down: it waits
            await server.start()
        assert len(await store.read("c1")) == 2
        assert store.reconnects >= 1
    finally:
        await store.aclose()


async def test_a_server_that_stays_down_fails_the_write_after_the_window(
    server: OwnPostgres,
) -> None:
    store = PostgresStore(server.dsn, schema="outage", reconnect_within=0.5)
    try:
        await store.write(batch("c1", 1))
        await server.stop()
        with pytest.raises(StoreUnavailableError, match=r"not answering"):
            await store.write(batch("c1", 2))
    finally:
        await store.aclose()
