"""The hold on a PostgreSQL store: a session advisory lock and a row naming its holder.

The lock lives on a connection of its own, open for as long as the hold: when the holding
process dies, its session ends and PostgreSQL drops the lock with it, so the next process
gets in without anyone clearing anything. The row (``store_holder`` in the store's
schema) only describes the holder for messages and for the CLI, which reads the service's
address from it; a reader trusts a row only while the session it names holds the lock.

If the hold's connection breaks while held (the server restarted), the lock is gone: the
hold takes it again on a new connection, and if another process took it meanwhile, it sets
``lost`` so the holder stops writing.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final, final

import anyio
import msgspec
import psycopg
import psycopg.errors
import structlog
from psycopg import sql

from relaybaton.errors import StoreInUseError, StoreUnavailableError
from relaybaton.stores._hold import _RETRY_S, HolderInfo, refusal
from relaybaton.stores._postgres import postgres_location
from relaybaton.stores._schema_lock import schema_lock

__all__ = ["PostgresHold", "hold_postgres", "lock_keys", "read_postgres_holder"]

_log = structlog.get_logger("relaybaton.stores")

# The advisory lock's two keys: a constant for "a relaybaton store hold" and the schema's
# CRC-32 (both positive int4, so ``pg_locks`` shows them unchanged). The two-key space is
# apart from the one-key space the schema migration locks in.
_HOLD_KEY: Final = 0x52424831
_CHECK_EVERY_S: Final = 5.0

_TABLE = """
CREATE TABLE IF NOT EXISTS {s}.store_holder (
    slot text PRIMARY KEY,
    pid integer NOT NULL,
    host text NOT NULL,
    command text NOT NULL,
    since double precision NOT NULL,
    address text,
    backend_pid integer NOT NULL
)
"""

_PUT_HOLDER = """
INSERT INTO {s}.store_holder (slot, pid, host, command, since, address, backend_pid)
VALUES ('single', %s, %s, %s, %s, %s, pg_backend_pid())
ON CONFLICT (slot) DO UPDATE SET pid = excluded.pid, host = excluded.host,
    command = excluded.command, since = excluded.since, address = excluded.address,
    backend_pid = excluded.backend_pid
"""

_DROP_HOLDER = "DELETE FROM {s}.store_holder WHERE backend_pid = pg_backend_pid()"

# The described holder, only if the session it names holds the lock now.
_CURRENT_HOLDER = """
SELECT h.pid, h.host, h.command, h.since, h.address FROM {s}.store_holder AS h
JOIN pg_locks AS l ON l.pid = h.backend_pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
    AND l.classid = %s::oid AND l.objid = %s::oid
    AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


def lock_keys(schema: str) -> tuple[int, int]:
    """The advisory lock's keys for a store's schema."""
    return _HOLD_KEY, zlib.crc32(schema.encode()) & 0x7FFFFFFF


@final
class PostgresHold:
    """A hold on a PostgreSQL store; ``lost`` is set if another process took it over."""

    def __init__(self, dsn: str, schema: str, holder: HolderInfo) -> None:
        self.where = postgres_location(dsn, schema)
        self.dsn = dsn
        self.schema = schema
        self.holder = holder
        self.lost = anyio.Event()
        self._keys = lock_keys(schema)
        self._s = sql.Identifier(schema)
        self._conn: psycopg.AsyncConnection[Any] | None = None

    def _sql(self, text: str) -> sql.Composed:
        return sql.SQL(text).format(s=self._s)

    async def connect(self) -> psycopg.AsyncConnection[Any]:
        try:
            return await psycopg.AsyncConnection.connect(
                self.dsn, autocommit=True, connect_timeout=10, application_name="relaybaton hold"
            )
        except psycopg.OperationalError as exc:
            raise StoreUnavailableError(
                f"PostgreSQL journal at {self.where} is not answering: {exc}".rstrip(),
                store=self.where,
            ) from exc

    async def take(self, conn: psycopg.AsyncConnection[Any], wait: float) -> None:
        """Take the lock on ``conn`` and describe ourselves, or raise ``StoreInUseError``."""
        deadline = time.monotonic() + wait
        while True:
            cur = await conn.execute("SELECT pg_try_advisory_lock(%s, %s)", self._keys)
            row = await cur.fetchone()
            if row is not None and row[0]:
                break
            holder = await self.current_holder(conn)
            # A holder that died here a moment ago: its session is about to end; wait for it.
            if holder is not None and not holder.is_dead_here():
                raise refusal(self.where, holder)
            if time.monotonic() > deadline:
                raise refusal(self.where, holder)
            await anyio.sleep(_RETRY_S)
        self._conn = conn
        await self._prepare(conn)
        await self._describe(conn)

    async def current_holder(self, conn: psycopg.AsyncConnection[Any]) -> HolderInfo | None:
        try:
            cur = await conn.execute(self._sql(_CURRENT_HOLDER), self._keys)
        except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName):
            return None  # the first holder has not made its table yet
        row = await cur.fetchone()
        if row is None:
            return None
        pid, host, command, since, address = row
        return HolderInfo(pid=pid, host=host, command=command, since=since, address=address)

    async def _prepare(self, conn: psycopg.AsyncConnection[Any]) -> None:
        async with conn.transaction():
            await conn.execute(schema_lock(self.schema))
            await conn.execute(self._sql("CREATE SCHEMA IF NOT EXISTS {s}"))
            await conn.execute(self._sql(_TABLE))

    async def _describe(self, conn: psycopg.AsyncConnection[Any]) -> None:
        h = self.holder
        await conn.execute(self._sql(_PUT_HOLDER), (h.pid, h.host, h.command, h.since, h.address))

    async def announce(self, address: str) -> None:
        self.holder = msgspec.structs.replace(self.holder, address=address)
        if self._conn is not None and not self._conn.broken:
            await self._describe(self._conn)

    async def keep(self) -> None:
        """Check the session now and then, until the hold is lost (or this is cancelled)."""
        while not self.lost.is_set():
            await anyio.sleep(_CHECK_EVERY_S)
            await self.check()

    async def check(self) -> None:
        """If the session broke, take the lock again on a new one; set ``lost`` if another
        process took it meanwhile."""
        conn = self._conn
        try:
            if conn is not None and not conn.broken:
                await conn.execute("SELECT 1")
                return
        except psycopg.Error as exc:
            _log.warning("store_hold_connection_broke", store=self.where, exc_info=exc)
        await self._take_again()

    async def _take_again(self) -> None:
        await self.release()
        try:
            conn = await self.connect()
        except StoreUnavailableError:
            _log.exception("store_hold_reconnect_failed", store=self.where)
            return  # the next check tries again
        try:
            await self.take(conn, wait=0.0)
        except StoreInUseError as refused:
            with anyio.CancelScope(shield=True):
                await conn.close()
            if refused.holder == msgspec.structs.asdict(self.holder):
                # Our own old session, which the server has not seen end yet: not lost.
                _log.warning("store_hold_old_session_lingers", store=self.where)
                return
            _log.exception("store_hold_lost", store=self.where)
            self.lost.set()
        except Exception:
            _log.exception("store_hold_retake_failed", store=self.where)
            with anyio.CancelScope(shield=True):
                await conn.close()

    async def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        with anyio.CancelScope(shield=True):
            try:
                if not conn.broken:
                    await conn.execute(self._sql(_DROP_HOLDER))
            except psycopg.Error as exc:  # the lock goes with the session all the same
                _log.warning("store_hold_release_failed", store=self.where, exc_info=exc)
            finally:
                await conn.close()


async def read_postgres_holder(dsn: str, schema: str) -> HolderInfo | None:
    """Who holds the store in ``schema`` now (None: nobody), read without holding it."""
    hold = PostgresHold(dsn, schema, HolderInfo.of_this_process("reader"))
    conn = await hold.connect()
    try:
        return await hold.current_holder(conn)
    finally:
        with anyio.CancelScope(shield=True):
            await conn.close()


@asynccontextmanager
async def hold_postgres(
    dsn: str, schema: str, holder: HolderInfo, *, wait: float
) -> AsyncIterator[PostgresHold]:
    """Hold the store in ``schema`` for the body of an ``async with``; see the module."""
    hold = PostgresHold(dsn, schema, holder)
    conn = await hold.connect()
    try:
        await hold.take(conn, wait)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await conn.close()
        raise
    # A plain task, not a task group: an error of the body must leave as itself, unwrapped.
    keeper = asyncio.create_task(hold.keep(), name="relaybaton store hold")
    try:
        yield hold
    finally:
        keeper.cancel()
        with anyio.CancelScope(shield=True):
            await asyncio.gather(keeper, return_exceptions=True)
            await hold.release()
