"""One PostgreSQL connection for one operation at a time, replaced when it breaks.

The journal store keeps three (writes, reads, and partition fences, so that a takeover's
fence never waits behind a group commit); a broken connection is reopened and the operation
retried, because psycopg reports a dropped server only on the next use, with backoff for a
while, because a server restarting or failing over is down for a second or more.
"""

from __future__ import annotations

import time
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
    """One connection, used by one operation at a time, replaced when it breaks.

    A connection that worked and broke (a server restart, a failover, a killed backend) is
    replaced and the operation run again, with backoff, for up to ``reconnect_within``
    seconds: what the stores run here is idempotent, so running it again is safe even if
    the first commit got through. A server that never answered fails at once.
    """

    def __init__(
        self,
        connect: Callable[[], Awaitable[Connection]],
        store: _Where,
        *,
        reconnect_within: float = 15.0,
    ) -> None:
        self._connect = connect
        self._store = store
        self._conn: Connection | None = None
        self._lock = anyio.Lock()
        self.reconnect_within = reconnect_within

    async def run(self, operation: Callable[[Connection], Awaitable[T]]) -> T:
        store = self._store
        async with self._lock:
            give_up: float | None = None  # set when a working connection first breaks
            pause = 0.05
            while True:
                if self._conn is None or self._conn.closed:
                    try:
                        self._conn = await self._connect()
                    except StoreUnavailableError:
                        if give_up is None or time.monotonic() > give_up:
                            raise
                        await anyio.sleep(pause)  # the server is restarting: let it
                        pause = min(pause * 2, 1.0)
                        continue
                conn = self._conn
                try:
                    return await operation(conn)
                except psycopg.Error as exc:
                    if not conn.broken:
                        raise StoreError(
                            f"journal operation on {store.where} failed: {exc}", store=store.where
                        ) from exc
                    await self._drop()
                    if give_up is None:
                        give_up = time.monotonic() + self.reconnect_within
                    elif time.monotonic() > give_up:
                        raise StoreUnavailableError(
                            f"lost the connection to the journal at {store.where} and it did"
                            f" not come back within {self.reconnect_within:g} s: {exc}",
                            store=store.where,
                        ) from exc
                    store.reconnects += 1
                    # Survived by reconnecting: the only place its traceback is kept.
                    _log.warning("journal_reconnect", store=store.where, exc_info=exc)
                except RelaybatonError:
                    raise  # refused by us (a stale epoch): the transaction rolled back cleanly
                except BaseException:
                    # Cancelled or timed out mid-operation: the connection's state is unknown.
                    await self._drop()
                    raise

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with anyio.CancelScope(shield=True):
                await conn.close()

    async def close(self) -> None:
        async with self._lock:
            await self._drop()
