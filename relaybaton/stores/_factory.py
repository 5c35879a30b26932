"""One place that turns a store's address (from a flag, a flow file, an env var) into a store."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import anyio.to_thread

from relaybaton.errors import ConfigError
from relaybaton.runtime._store import Durability, MemoryStore, Store
from relaybaton.stores._sqlite import SqliteStore

__all__ = ["open_store", "sqlite_path"]

_ACCEPTED = (
    "a file path or sqlite:///relative/path or sqlite:////absolute/path (SQLite),"
    " postgresql://user@host:port/db (PostgreSQL), or memory: (in memory, for tests)"
)


@asynccontextmanager
async def open_store(
    url_or_path: str | os.PathLike[str],
    *,
    durability: Durability | str = Durability.BATCHED,
    schema: str = "relaybaton",
) -> AsyncIterator[Store]:
    """Open the journal store at ``url_or_path`` for the body of an ``async with``.

    ``sqlite:///x.db`` is relative to the working directory and ``sqlite:////var/x.db``
    absolute, as in SQLAlchemy's URLs. A Postgres store connects (and creates its tables in
    ``schema``) before the body runs, so a wrong address fails here. The store is closed
    when the body ends, even on error or cancel.

    Raises:
        ConfigError: the address has none of the accepted forms, or PostgreSQL is asked for
            and psycopg is not installed.
        StoreError: the store cannot be opened (not a database, a newer schema, no answer).
    """
    target = os.fspath(url_or_path)
    durability = Durability(durability)
    store: Store
    if target == "memory:":
        store = MemoryStore()
    elif target.startswith(("postgresql://", "postgres://")):
        store = await _open_postgres(target, durability, schema)
    else:
        path = sqlite_path(target)
        # Opening creates the file and its tables: disk work, kept off the event loop.
        store = await anyio.to_thread.run_sync(lambda: SqliteStore(path, durability=durability))
    try:
        yield store
    finally:
        with anyio.CancelScope(shield=True):
            await store.aclose()


def sqlite_path(target: str) -> Path:
    """The database file a SQLite store address names."""
    if target.startswith("sqlite:///") and len(target) > len("sqlite:///"):
        return Path(target.removeprefix("sqlite:///"))
    if not target or "://" in target or target.startswith(("sqlite:", "memory")):
        raise ConfigError(f"cannot open a journal store at {target!r}: expected {_ACCEPTED}")
    return Path(target)


async def _open_postgres(dsn: str, durability: Durability, schema: str) -> Store:
    try:
        # psycopg is an optional extra: import it only when a postgresql:// URL asks for it.
        from relaybaton.stores._postgres import PostgresStore  # noqa: PLC0415
    except ImportError as exc:
        raise ConfigError(
            "a postgresql:// journal needs psycopg: pip install 'relaybaton[postgres]'"
        ) from exc
    store = PostgresStore(dsn, schema=schema, durability=durability)
    try:
        await store.connect()
    except BaseException:
        await store.aclose()
        raise
    return store
