"""One place that turns the memory store's address into an open graph store.

A ``postgresql://`` (or ``postgres://``) URL opens a :class:`PostgresGraphStore` in the
``relaybaton_graph`` schema; anything else is a SQLite file (or ``:memory:``).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from relaybaton.errors import ConfigError
from relaybaton.memory._sqlite import open_sqlite_graph_store
from relaybaton.memory._store import GraphStore

__all__ = ["GRAPH_SCHEMA", "is_postgres_url", "open_graph_store"]

# The Postgres schema of the memory store when none is given.
GRAPH_SCHEMA = "relaybaton_graph"


def is_postgres_url(store: str | os.PathLike[str]) -> bool:
    """Whether ``store`` names a PostgreSQL database rather than a SQLite file."""
    return os.fspath(store).startswith(("postgresql://", "postgres://"))


@asynccontextmanager
async def open_graph_store(
    store: str | os.PathLike[str], *, schema: str | None = None
) -> AsyncIterator[GraphStore]:
    """Open the graph store at ``store`` for the body of an ``async with``, then close it.

    A Postgres store connects (and creates its tables in ``schema``) before the body
    runs, so a wrong address fails here. ``schema`` defaults to :data:`GRAPH_SCHEMA`.

    Raises:
        ConfigError: PostgreSQL is asked for and psycopg is not installed.
        StoreError: the Postgres store does not answer or has a newer schema.
    """
    if not is_postgres_url(store):
        async with open_sqlite_graph_store(Path(store) if store != ":memory:" else store) as s:
            yield s
        return
    try:
        # psycopg is an optional extra: import it only when a postgresql:// URL asks for it.
        from relaybaton.memory._postgres import open_postgres_graph_store  # noqa: PLC0415
    except ImportError as exc:
        raise ConfigError(
            "a postgresql:// memory store needs psycopg: pip install 'relaybaton[postgres]'"
        ) from exc
    async with open_postgres_graph_store(os.fspath(store), schema=schema or GRAPH_SCHEMA) as p:
        yield p
