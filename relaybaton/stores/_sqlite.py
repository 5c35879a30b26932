"""The journal in SQLite: the embedded default store.

One file holds every conversation's records, heads and approvals. WAL lets the reading
connection run beside the writing one. Each ``write`` is one transaction (the fence check,
the heads, the records, and the approvals and pruning when there are any), so a batch of
many conversations' records costs one commit: that is the journal's group commit. Usually
it is a single statement in autocommit mode (see ``_BATCH_TRIGGER``), else ``BEGIN
IMMEDIATE`` around a few. ``busy_timeout`` makes a second process on the same file wait for
the write lock instead of failing, and either way that lock is taken before the fence is
read, so two processes cannot both pass the check and then overwrite each other.

``PRAGMA synchronous`` follows the durability mode: ``FULL`` for ``sync`` (the WAL is
flushed at every commit: a power loss keeps what was acknowledged), ``NORMAL`` for
``batched`` (the usual WAL pairing: a crash of the process loses nothing, a power loss may
lose the last commits), ``OFF`` for ``off`` (never flushed by us; the file stays consistent
after a process crash, not necessarily after a power loss).

Every call runs in a worker thread behind a one-slot limiter per connection: a commit takes
tens of microseconds to a few milliseconds (an ``fsync``), but waiting for another
process's lock may take seconds, and that must never stall the event loop. A cancelled call
waits for its transaction to finish (commit or roll back) before the cancellation is
raised, so a write either happened entirely or not at all.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Final, NamedTuple, final

import anyio
import anyio.to_thread
import msgspec

from relaybaton.errors import ConfigError, StaleEpochError, StoreError
from relaybaton.runtime._listing import HeadPage, HeadQuery, page_of
from relaybaton.runtime._store import (
    ApprovalRow,
    Durability,
    Head,
    WriteBatch,
    check_decisions,
    merge_approval_rows,
)
from relaybaton.stores._listing_sql import (
    APPROVAL_COLUMNS,
    HEADS_INDEX,
    approval_row,
    listing_query,
)

__all__ = ["SCHEMA_VERSION", "SqliteStore"]

# 2: a record body may hold several records (a MessagePack array); version 1 bodies, one
# record each, still read. The tables are the same, so 1 -> 2 only records the version,
# and a relaybaton that knows only version 1 refuses the file instead of misreading it.
SCHEMA_VERSION: Final = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    conversation_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    kind TEXT NOT NULL,
    body BLOB NOT NULL,
    PRIMARY KEY (conversation_id, seq)
);
CREATE TABLE IF NOT EXISTS heads (
    conversation_id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    owner TEXT,
    status TEXT NOT NULL,
    unfinished INTEGER NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS approvals (
    approval_id TEXT NOT NULL UNIQUE,
    conversation_id TEXT NOT NULL,
    request BLOB NOT NULL,
    decision TEXT NOT NULL DEFAULT ''
);
"""

_SYNCHRONOUS: Final = {
    Durability.SYNC: "FULL",
    Durability.BATCHED: "NORMAL",
    Durability.OFF: "OFF",
}

# A batch reaches SQLite as one statement with three parameters, not a statement per
# table nor a row per ``executemany`` step: ``INSERT INTO journal_batch`` fires a trigger
# (on a view that exists on the writer's connection only) that unpacks the rows inside
# SQLite (json_each, and substr on one blob of bodies). Why: the worker thread must take
# the GIL back after every SQLite call, and while the event loop is busy each take is a
# forced switch that stalls the loop; a commit of ten statements cost the loop more than
# its records did (see benchmarks/journal.py). One statement in autocommit mode is also
# one write transaction, taken before the fence is read, as ``BEGIN IMMEDIATE`` would.
#
# The fence aborts the statement (nothing written) when a stored epoch is newer. Records
# are upserted, not inserted: a batch written again (after an error whose outcome was
# unknown) must give the same journal, as it does in MemoryStore; within a batch the last
# record for a (conversation, seq) wins (rows are applied in array order).
_STALE = "relaybaton: stale epoch"
_BATCH_TRIGGER = f"""
CREATE TEMP VIEW IF NOT EXISTS journal_batch (heads, records, bodies) AS
    SELECT NULL, NULL, NULL WHERE false;
CREATE TEMP TRIGGER IF NOT EXISTS journal_batch_write
INSTEAD OF INSERT ON journal_batch BEGIN
    SELECT RAISE(ABORT, '{_STALE}')
        FROM json_each(NEW.heads) AS j JOIN heads AS h ON h.conversation_id = j.value->>0
        WHERE h.epoch > j.value->>2;
    INSERT INTO heads (conversation_id, seq, epoch, owner, status, unfinished, updated_at)
        SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5, value->>6
        FROM json_each(NEW.heads) WHERE true
        ON CONFLICT (conversation_id) DO UPDATE SET seq = excluded.seq,
            epoch = excluded.epoch, owner = excluded.owner, status = excluded.status,
            unfinished = excluded.unfinished, updated_at = excluded.updated_at;
    INSERT INTO records (conversation_id, seq, epoch, kind, body)
        SELECT value->>0, value->>1, value->>2, value->>3,
            substr(NEW.bodies, value->>4, value->>5)
        FROM json_each(NEW.records) WHERE true ORDER BY key
        ON CONFLICT (conversation_id, seq) DO UPDATE SET
            epoch = excluded.epoch, kind = excluded.kind, body = excluded.body;
END;
"""
_WRITE_BATCH = "INSERT INTO journal_batch (heads, records, bodies) VALUES (?, ?, ?)"
# Which conversation the fence refused (the first by id), for the error.
_STALE_HEAD = (
    "SELECT h.conversation_id, j.value->>2, h.epoch"
    " FROM json_each(?) AS j JOIN heads AS h ON h.conversation_id = j.value->>0"
    " WHERE h.epoch > j.value->>2 ORDER BY h.conversation_id LIMIT 1"
)
# A decision row carries an empty request: keep the stored one (see combine_approval_rows).
_PUT_APPROVAL = (
    "INSERT INTO approvals (approval_id, conversation_id, request, decision) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (approval_id) DO UPDATE SET conversation_id = excluded.conversation_id,"
    " request = CASE WHEN length(excluded.request) > 0 THEN excluded.request"
    " ELSE approvals.request END,"
    " decision = CASE WHEN excluded.decision <> '' THEN excluded.decision"
    " ELSE approvals.decision END"
)
_HEAD_COLUMNS = "conversation_id, seq, epoch, owner, status, unfinished, updated_at"


def _head(row: tuple[str, int, int, str | None, str, int, float]) -> Head:
    conversation_id, seq, epoch, owner, status, unfinished, updated_at = row
    return Head(
        conversation_id=conversation_id,
        seq=seq,
        epoch=epoch,
        owner=owner,
        status=status,
        unfinished=bool(unfinished),
        updated_at=updated_at,
    )


class _Packed(NamedTuple):
    """A batch as the parameters of its statements (built on the event loop's thread)."""

    heads: bytes  # JSON: [[conversation_id, seq, epoch, owner, status, unfinished, at], ...]
    records: bytes  # JSON: [[conversation_id, seq, epoch, kind, offset, length], ...]
    bodies: bytes  # every record's body, one after the other
    approvals: list[tuple[str, str, bytes, str]]
    prune: list[tuple[str, int]]
    rows: list[ApprovalRow]  # the approvals as rows, for check_decisions


def _pack(batch: WriteBatch) -> _Packed:
    index = []
    offset = 1  # substr counts from 1
    for r in batch.records:
        size = len(r.body)
        index.append((r.conversation_id, r.seq, r.epoch, r.kind, offset, size))
        offset += size
    rows = merge_approval_rows(batch.approvals)
    return _Packed(
        # Arrays in Head's field order, not objects: SQLite finds an array's items faster.
        heads=_json_encode([msgspec.structs.astuple(h) for h in batch.heads.values()]),
        records=_json_encode(index),
        bodies=b"".join([r.body for r in batch.records]),
        approvals=[(a.approval_id, a.conversation_id, a.request, a.decision) for a in rows],
        prune=list(batch.prune.items()),
        rows=rows,
    )


def _decided(
    conn: sqlite3.Connection, approvals: list[tuple[str, str, bytes, str]]
) -> dict[str, str]:
    """The stored decisions of the approvals a batch decides (inside its transaction)."""
    ids = [a[0] for a in approvals if a[3]]
    if not ids:
        return {}
    marks = ", ".join("?" * len(ids))
    query = f"SELECT approval_id, decision FROM approvals WHERE approval_id IN ({marks})"
    return dict(conn.execute(query, ids).fetchall())


@final
class SqliteStore:
    """A :class:`~relaybaton.runtime.Store` on one SQLite file."""

    def __init__(
        self,
        path: str | Path,
        *,
        durability: Durability | str = Durability.BATCHED,
        busy_timeout: float = 30.0,
    ) -> None:
        """Open (and create if needed) the journal at ``path``; this blocks on the disk.

        Args:
            path: the database file; its folder must exist. Several processes may share it.
            durability: sets ``PRAGMA synchronous`` (see the module's docstring).
            busy_timeout: seconds to wait for another process's write lock before a write
                fails with ``StoreError``.

        Raises:
            ConfigError: ``path`` is ``":memory:"`` (two connections cannot share it; use
                ``MemoryStore``).
            StoreError: the file is not a SQLite database, or was written by a newer
                relaybaton (its schema version is higher than ``SCHEMA_VERSION``).
        """
        self.path = str(path)
        if self.path == ":memory:" or self.path.startswith("file::memory:"):
            raise ConfigError(
                "SqliteStore needs a file: its reader and writer connections cannot share"
                " an in-memory database; use MemoryStore (or open_store('memory:')) instead"
            )
        self.durability = Durability(durability)
        self._busy_ms = int(busy_timeout * 1000)
        # Each connection's lock guards it against aclose (and direct synchronous use).
        self._write_lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._closed = False
        self._writer = self._connect()
        try:
            self._prepare()
            self._reader = self._connect()
        except BaseException:
            self._writer.close()
            raise
        # One operation in flight per connection: queued callers wait in the event loop,
        # not as threads blocked on a lock.
        self._write_limiter = anyio.CapacityLimiter(1)
        self._read_limiter = anyio.CapacityLimiter(1)

    # --- opening ----------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path,
                isolation_level=None,  # we issue BEGIN and COMMIT ourselves
                check_same_thread=False,  # worker threads change; the limiters serialise use
                timeout=self._busy_ms / 1000,
            )
            conn.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
        except sqlite3.Error as exc:
            raise self._error("cannot open the journal", exc) from exc
        return conn

    def _prepare(self) -> None:
        conn = self._writer
        # Switching a new file to WAL fails at once with "database is locked" while another
        # process does the same (the busy handler is not consulted), so retry it within
        # the busy timeout instead of failing the second process.
        deadline = time.monotonic() + self._busy_ms / 1000
        while True:
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("BEGIN IMMEDIATE")
                try:
                    self._migrate(conn)
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise self._error("cannot open the journal", exc) from exc
                time.sleep(0.01)
            except sqlite3.Error as exc:
                raise self._error("cannot open the journal", exc) from exc
            else:
                break
        try:
            conn.execute(f"PRAGMA synchronous = {_SYNCHRONOUS[self.durability]}")
            conn.executescript(_BATCH_TRIGGER)
            conn.execute(HEADS_INDEX.format(s=""))  # journals older than listings lack it
        except sqlite3.Error as exc:
            raise self._error("cannot open the journal", exc) from exc

    def _migrate(self, conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        version = int(row[0]) if row else 0
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"journal {self.path!r} has schema version {version}, this relaybaton knows"
                f" versions up to {SCHEMA_VERSION}: upgrade relaybaton, or point it at"
                " another file",
                store=self.path,
            )
        if version < SCHEMA_VERSION:
            # Version 0 is a new file; 1 -> 2 changes no table (see SCHEMA_VERSION).
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(SCHEMA_VERSION),),
            )

    def _error(self, doing: str, exc: sqlite3.Error) -> StoreError:
        # The one place sqlite3's errors become ours.
        return StoreError(f"{doing} at {self.path!r}: {exc}", store=self.path)

    # --- the Store protocol -----------------------------------------------------------------

    async def write(self, batch: WriteBatch) -> None:
        """Commit the batch in one transaction; see :meth:`Store.write`.

        On cancel, the transaction in flight finishes first. On error (``StaleEpochError``,
        ``StoreError``), nothing of the batch is written.
        """
        if not (batch.records or batch.heads or batch.approvals or batch.prune):
            return
        packed = _pack(batch)  # here, not in the worker: Python there contends for the GIL
        await anyio.to_thread.run_sync(self._write_packed, packed, limiter=self._write_limiter)

    def write_sync(self, batch: WriteBatch) -> None:
        """Commit the batch in the calling thread (what ``write`` does in its worker)."""
        self._write_packed(_pack(batch))

    def _write_packed(self, packed: _Packed) -> None:
        with self._write_lock:
            self._check_open()
            conn = self._writer
            try:
                if not (packed.approvals or packed.prune):
                    conn.execute(_WRITE_BATCH, packed[:3])  # its own transaction
                    return
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.execute(_WRITE_BATCH, packed[:3])
                    if packed.approvals:
                        check_decisions(_decided(conn, packed.approvals), packed.rows)
                        conn.executemany(_PUT_APPROVAL, packed.approvals)
                    conn.executemany(
                        "DELETE FROM records WHERE conversation_id = ? AND seq < ?", packed.prune
                    )
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            except sqlite3.IntegrityError as exc:
                if str(exc) != _STALE:
                    raise self._error("journal write failed", exc) from exc
                stale = conn.execute(_STALE_HEAD, (packed.heads,)).fetchone()
                if stale is None:  # the newer epoch is gone again: report what happened
                    raise self._error("journal write failed", exc) from exc
                raise StaleEpochError(*stale) from None
            except sqlite3.Error as exc:
                raise self._error("journal write failed", exc) from exc

    async def read(self, conversation_id: str) -> list[bytes]:
        """The conversation's record bodies, oldest first."""
        rows = await self._read(
            "SELECT body FROM records WHERE conversation_id = ? ORDER BY seq", (conversation_id,)
        )
        return [bytes(row[0]) for row in rows]

    async def heads(self, *, unfinished_only: bool = False) -> list[Head]:
        """Every conversation's head, least recently updated first."""
        where = " WHERE unfinished" if unfinished_only else ""
        rows = await self._read(
            f"SELECT {_HEAD_COLUMNS} FROM heads{where} ORDER BY updated_at, conversation_id", ()
        )
        return [_head(row) for row in rows]

    async def approvals(self, *, pending_only: bool = True) -> list[ApprovalRow]:
        """Approval requests, oldest first."""
        where = " WHERE decision = ''" if pending_only else ""
        rows = await self._read(
            f"SELECT {APPROVAL_COLUMNS} FROM approvals{where} ORDER BY rowid", ()
        )
        return [approval_row(row) for row in rows]

    async def approval(self, approval_id: str) -> ApprovalRow | None:
        """The approval request with this id, decided or not (one lookup in its unique index)."""
        rows = await self._read(
            f"SELECT {APPROVAL_COLUMNS} FROM approvals WHERE approval_id = ?", (approval_id,)
        )
        return approval_row(rows[0]) if rows else None

    async def list_heads(self, query: HeadQuery) -> HeadPage:
        """One page of heads, newest update first; see ``relaybaton.runtime``'s listing."""
        text, params = listing_query(query, _HEAD_COLUMNS, table="heads", mark="?")
        rows = await self._read(text, tuple(params))
        return page_of([_head(row) for row in rows], query.limit)

    async def _read(self, query: str, params: tuple[object, ...]) -> list[Any]:
        def run() -> list[Any]:
            with self._read_lock:
                self._check_open()
                try:
                    return self._reader.execute(query, params).fetchall()
                except sqlite3.Error as exc:
                    raise self._error("journal read failed", exc) from exc

        return await anyio.to_thread.run_sync(run, limiter=self._read_limiter)

    async def aclose(self) -> None:
        """Close both connections once the call in flight ends; idempotent."""
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self._close_sync, limiter=self._write_limiter)

    def _close_sync(self) -> None:
        with self._write_lock, self._read_lock:
            if not self._closed:
                self._closed = True
                self._reader.close()
                self._writer.close()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"journal {self.path!r} is closed; open a new store", store=self.path)


_json_encode = msgspec.json.Encoder().encode
