"""One PostgreSQL connection for one operation at a time, replaced once when it breaks.

The journal store keeps three (writes, reads, and partition fences, so that a takeover's
fence never waits behind a group commit); a broken connection is reopened once and the
operation retried, because psycopg reports a dropped server only on the next use.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar, final

import anyio
import psycopg
import structlog

from relaybaton.errors import RelaybatonError, StoreError, StoreUnavailableError

__all__ = ["PostgresLink"]

T = TypeVar("T")
Connection = psycopg.AsyncConnection[Any]
_log = structlog.get_logger("relaybaton.stores")


class _Where(Protocol):
    """What a link reports on: the store's name, and its count of reconnections."""

    where: str
    reconnects: int


@final
class PostgresLink:
    """One connection, used by one operation at a time, replaced once when it breaks."""

    def __init__(self, connect: Callable[[], Awaitable[Connection]], store: _Where) -> None:
        self._connect = connect
        self._store = store
        self._conn: Connection | None = None
        self._lock = anyio.Lock()

    async def run(self, operation: Callable[[Connection], Awaitable[T]]) -> T:
        store = self._store
        async with self._lock:
            for attempt in (1, 2):
                if self._conn is None or self._conn.closed:
                    self._conn = await self._connect()
                conn = self._conn
                try:
                    return await operation(conn)
                except psycopg.Error as exc:
                    if not conn.broken:
                        raise StoreError(
                            f"journal operation on {store.where} failed: {exc}", store=store.where
                        ) from exc
                    await self._drop()
                    if attempt == 2:
                        raise StoreUnavailableError(
                            f"lost the connection to the journal at {store.where} twice: {exc}",
                            store=store.where,
                        ) from exc
                    store.reconnects += 1
                    # Survived by reconnecting once: the only place its traceback is kept.
                    _log.warning("journal_reconnect", store=store.where, exc_info=exc)
                except RelaybatonError:
                    raise  # refused by us (a stale epoch): the transaction rolled back cleanly
                except BaseException:
                    # Cancelled or timed out mid-operation: the connection's state is unknown.
                    await self._drop()
                    raise
            raise AssertionError("unreachable")

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with anyio.CancelScope(shield=True):
                await conn.close()

    async def close(self) -> None:
        async with self._lock:
            await self._drop()
