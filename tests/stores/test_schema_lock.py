"""Everything that creates tables in a PostgreSQL schema waits on the one schema lock.

The journal, the store hold and the knowledge graph may share a schema; each creates its
tables under ``stores/_schema_lock.py``'s advisory lock. Here a session holds that lock,
taken with the statement earlier releases ran (so the key cannot change unseen either), and
each of the three must wait for it before it creates anything.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import anyio
import psycopg
import pytest

from relaybaton.memory._postgres import open_postgres_graph_store
from relaybaton.stores._hold import HolderInfo
from relaybaton.stores._hold_postgres import hold_postgres
from relaybaton.stores._postgres import open_postgres_store
from tests._postgres import PG_DSN, drop_schema, require_postgres, throwaway_schema

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

# The lock as the journal took it before the helper: a process of an earlier release and
# one of this must still wait for each other.
_EARLIER_LOCK = "SELECT pg_advisory_xact_lock(hashtext('relaybaton schema ' || %s))"

# A session waiting (not granted) for the one-key advisory lock on that key.
_WAITING = """
SELECT count(*) FROM pg_locks
WHERE locktype = 'advisory' AND NOT granted AND objsubid = 1
    AND objid = (hashtext('relaybaton schema ' || %s)::bigint & 4294967295)::oid
    AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


@pytest.fixture
def pg_schema() -> Iterator[str]:
    require_postgres()
    schema = throwaway_schema()
    yield schema
    drop_schema(schema)


async def _journal(schema: str) -> None:
    async with open_postgres_store(PG_DSN, schema=schema):
        pass


async def _hold(schema: str) -> None:
    async with hold_postgres(PG_DSN, schema, HolderInfo.of_this_process("test"), wait=5.0):
        pass


async def _graph(schema: str) -> None:
    async with open_postgres_graph_store(PG_DSN, schema=schema):
        pass


async def _wait_for_a_waiter(conn: psycopg.AsyncConnection[Any], schema: str) -> None:
    deadline = time.monotonic() + 10.0
    while True:
        cur = await conn.execute(_WAITING, (schema,))
        row = await cur.fetchone()
        if row is not None and row[0] > 0:
            return
        assert time.monotonic() < deadline, "nobody waited for the schema lock"
        await anyio.sleep(0.02)


@pytest.mark.parametrize("create", [_journal, _hold, _graph], ids=["journal", "hold", "graph"])
async def test_creating_tables_in_a_schema_waits_for_its_lock(
    pg_schema: str, create: Callable[[str], Awaitable[None]]
) -> None:
    done = anyio.Event()

    async def creating() -> None:
        await create(pg_schema)
        done.set()

    async with (
        await psycopg.AsyncConnection.connect(PG_DSN, autocommit=True) as holder,
        await psycopg.AsyncConnection.connect(PG_DSN, autocommit=True) as watcher,
        anyio.create_task_group() as tasks,
    ):
        async with holder.transaction():
            await holder.execute(_EARLIER_LOCK, (pg_schema,))
            tasks.start_soon(creating)
            await _wait_for_a_waiter(watcher, pg_schema)
            assert not done.is_set()
        # The holder's commit released the lock: the creation goes on and ends.
        with anyio.fail_after(10):
            await done.wait()
