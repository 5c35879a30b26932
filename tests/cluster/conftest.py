"""The cluster tests' throwaway resources: a NATS prefix, a PostgreSQL schema, a database.

Each is fresh for one test and removed after it, so tests on the shared servers never see
one another's streams, buckets or journals.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests._nats import delete_prefix, require_nats, throwaway_prefix
from tests._postgres import PG_DSN, drop_schema, require_postgres, throwaway_schema
from tests.cluster._harness import throwaway_database


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    """A NATS prefix; its KV buckets (lower case) and streams (upper case) go afterwards."""
    require_nats()
    name = throwaway_prefix()
    try:
        yield name
    finally:
        await delete_prefix(name)


@pytest.fixture
def schema() -> Iterator[str]:
    """A PostgreSQL schema on the test database, dropped afterwards."""
    require_postgres()
    name = throwaway_schema()
    try:
        yield name
    finally:
        drop_schema(name)


@pytest.fixture
async def database_url() -> AsyncIterator[str]:
    """A throwaway database's URL (the CLI's journal uses a fixed schema name)."""
    require_postgres()
    async with throwaway_database(PG_DSN) as url:
        yield url
