"""The journal in PostgreSQL: the store for many nodes (distributed mode).

psycopg 3 in async mode. Two connections: one writes, one reads, so listing approvals or
loading a conversation never waits behind a group commit. Every table lives in one schema
(``relaybaton`` unless told), created on connect, with a schema version in its ``meta``
table; tests use a throwaway schema and drop it.

Fencing happens inside the write transaction, in the heads upsert itself::

    INSERT INTO heads ... ON CONFLICT (conversation_id) DO UPDATE ...
        WHERE heads.epoch <= excluded.epoch RETURNING conversation_id

A conversation missing from what it returns holds a newer epoch: the transaction is rolled
back and ``StaleEpochError`` raised. Postgres's ``ON CONFLICT`` locks the conflicting row and
re-checks the condition against its latest committed version, so two writers racing on one
conversation are serialised by the row, or by the unique index when neither has a row yet,
which a ``SELECT ... FOR UPDATE`` (nothing to lock for a new conversation) would not do.

Cluster nodes add a second fence, per partition: ``partition_fence(partition,
generation)``. A node raises its partition's row to its lease generation before it acts
for the partition (``raise_fence``: only upwards), and each of its writes reads the rows of
its batch's partitions ``FOR SHARE`` in the same transaction and is refused
(``FencedWriteError``, nothing written) where a row moved past the writer's generation. The
share lock makes a takeover's raise wait for a write in progress, so a write either
committed before the takeover or is refused after it. A node that stops inside that
transaction would make the raise wait until it woke, so a node's sessions carry an
idle-in-transaction limit (``idle_transaction_limit_s``, half the lease TTL). The store
does not know partitions: the node gives it ``fencing``, a function from a conversation id
to the (partition, generation) it writes under, or None when it holds no lease for it.

Each table gets one statement per batch, rows passed as arrays through ``unnest``: a group
commit of thousands of records is a handful of round trips. A batch is idempotent (records
and heads upserted, approvals combined, pruning by seq), so when the connection breaks, the
operation is run again on a fresh connection, even if the first commit reached the server
before the break, with backoff for up to ``reconnect_within`` seconds (a server restart);
then ``StoreUnavailableError``.

Durability: ``sync`` and ``batched`` keep ``synchronous_commit`` on (the group commit
already spreads the WAL flush over many records, and a server crash is the case a shared
journal must survive); ``off`` turns it off for the session: a server crash may lose the
last commits, never reorder them.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Final, TypeVar, final

import anyio
import psycopg
import structlog
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from relaybaton.errors import (
    ConfigError,
    FencedWriteError,
    StoreError,
    StoreUnavailableError,
)
from relaybaton.runtime._listing import HeadPage, HeadQuery, page_of
from relaybaton.runtime._store import (
    ApprovalRow,
    Durability,
    Head,
    WriteBatch,
    check_decisions,
    check_fence,
    merge_approval_rows,
)
from relaybaton.stores._listing_sql import (
    APPROVAL_COLUMNS,
    HEADS_INDEX,
    approval_row,
    listing_query,
)
from relaybaton.stores._postgres_link import PostgresLink
from relaybaton.stores._postgres_sql import (
    DECIDED,
    FENCE_TABLE,
    HEAD_COLUMNS,
    PROVENANCE,
    PRUNE,
    PUT_APPROVALS,
    PUT_HEADS,
    PUT_RECORDS,
    RAISE_FENCE,
    READ_FENCES,
    SCHEMA_TABLES,
)
from relaybaton.stores._schema_lock import schema_lock

__all__ = ["SCHEMA_VERSION", "Fencing", "PostgresStore", "open_postgres_store"]

Fencing = Callable[[str], "tuple[int, int] | None"]
"""A conversation id to the (partition, lease generation) a cluster node writes it under,
or None when the node holds no lease for its partition."""

_log = structlog.get_logger("relaybaton.stores")

T = TypeVar("T")

# 2: a record body may hold several records (a MessagePack array); version 1 bodies, one
# record each, still read. The tables are the same, so 1 -> 2 only records the version,
# and a relaybaton that knows only version 1 refuses the file instead of misreading it.
SCHEMA_VERSION: Final = 2

_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def postgres_location(dsn: str, schema: str) -> str:
    """Check ``schema`` and describe the store's place for messages (never the password).

    Shared by the journal store and the graph store, which both keep their tables in a
    schema of their own.

    Raises:
        ConfigError: ``schema`` is not a plain identifier, or ``dsn`` cannot be parsed.
    """
    if not _IDENTIFIER.fullmatch(schema):
        raise ConfigError(
            f"Postgres schema must be a lower-case identifier ([a-z_][a-z0-9_]*), got {schema!r}"
        )
    return f"{_describe(dsn)} schema {schema}"


def _describe(dsn: str) -> str:
    """Where the store is, for messages: host, port and database, never the password."""
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        raise ConfigError(f"not a PostgreSQL connection string: {exc}") from exc
    host = params.get("host") or "localhost"
    port = params.get("port") or 5432
    return f"postgresql://{host}:{port}/{params.get('dbname') or ''}"


@final
class PostgresStore:
    """A :class:`~relaybaton.runtime.Store` in a PostgreSQL schema."""

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "relaybaton",
        durability: Durability | str = Durability.BATCHED,
        connect_timeout: float = 10.0,
        write_timeout: float = 30.0,
        reconnect_within: float = 15.0,
        application_name: str = "relaybaton",
        fencing: Fencing | None = None,
    ) -> None:
        """Describe the store; connections open on ``connect`` or on first use.

        Args:
            dsn: a libpq connection string or ``postgresql://`` URL.
            schema: the Postgres schema that holds the tables (a lower-case identifier).
            durability: ``off`` turns ``synchronous_commit`` off (see the module's docstring).
            connect_timeout: seconds to wait for a connection.
            write_timeout: seconds a write may take, retry included, before it fails with
                ``StoreUnavailableError``.
            application_name: shown in ``pg_stat_activity``.
            reconnect_within: seconds to keep trying (with backoff) once a connection that
                worked breaks: a server restarting or failing over comes back in that
                time; a server that never answered fails at once.
            fencing: a cluster node's partition fencing (see the module's docstring).

        Raises:
            ConfigError: ``schema`` is not a plain identifier, or ``dsn`` cannot be parsed.
        """
        self.where = postgres_location(dsn, schema)
        self.dsn = dsn
        self.schema = schema
        self.durability = Durability(durability)
        self.connect_timeout = connect_timeout
        self.write_timeout = write_timeout
        self.application_name = application_name
        self.reconnect_within = reconnect_within
        self.fencing = fencing
        # The node id recorded beside each body (``records.writer``); a cluster node sets it.
        self.writer = ""
        # A cluster node sets it: see ``_write_in``.
        self.idle_transaction_limit_s: float | None = None
        self._idle_limited: weakref.WeakSet[psycopg.AsyncConnection[Any]] = weakref.WeakSet()
        self._s = sql.Identifier(schema)
        self._writer = PostgresLink(self._open, self, reconnect_within=reconnect_within)
        self._reader = PostgresLink(self._open, self, reconnect_within=reconnect_within)
        # Its own connection: a takeover's fence must not wait behind a group commit of
        # this node's other partitions (it waits only for the rows it raises).
        self._writer_for_fences = PostgresLink(self._open, self, reconnect_within=reconnect_within)
        self._prepared = False
        self._closed = False
        self.reconnects = 0

    # --- connections ------------------------------------------------------------------------

    async def connect(self) -> None:
        """Open the writing connection and create the schema if needed.

        ``write`` and the reads do this on first use; call it to fail at start-up instead.

        Raises:
            StoreUnavailableError: the server does not answer.
            StoreError: the schema was created by a newer relaybaton.
        """
        await self._writer.run(lambda conn: _noop())

    async def _open(self) -> psycopg.AsyncConnection[Any]:
        if self._closed:
            raise StoreError(
                f"journal store {self.where} is closed; open a new one", store=self.where
            )
        try:
            conn = await psycopg.AsyncConnection.connect(
                self.dsn,
                autocommit=True,
                connect_timeout=max(1, round(self.connect_timeout)),
                application_name=self.application_name,
            )
        except psycopg.OperationalError as exc:
            raise StoreUnavailableError(
                f"PostgreSQL journal at {self.where} is not answering: {exc}".rstrip(),
                store=self.where,
            ) from exc
        try:
            if self.durability is Durability.OFF:
                await conn.execute("SET synchronous_commit = off")
            if not self._prepared:
                await self._migrate(conn)
                self._prepared = True
        except psycopg.Error as exc:
            with anyio.CancelScope(shield=True):
                await conn.close()
            raise StoreError(
                f"cannot prepare the journal at {self.where}: {exc}", store=self.where
            ) from exc
        except BaseException:
            with anyio.CancelScope(shield=True):
                await conn.close()
            raise
        return conn

    def _sql(self, text: str) -> sql.Composed:
        # Our own constant texts only: the schema goes in as a quoted identifier.
        return sql.SQL(text).format(s=self._s)

    async def _migrate(self, conn: psycopg.AsyncConnection[Any]) -> None:
        async with conn.transaction():
            await conn.execute(schema_lock(self.schema))
            await conn.execute(self._sql("CREATE SCHEMA IF NOT EXISTS {s}"))
            await conn.execute(
                self._sql(
                    "CREATE TABLE IF NOT EXISTS {s}.meta"
                    " (key text PRIMARY KEY, value text NOT NULL)"
                )
            )
            cur = await conn.execute(
                self._sql("SELECT value FROM {s}.meta WHERE key = 'schema_version'")
            )
            row = await cur.fetchone()
            version = int(row[0]) if row else 0
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"journal at {self.where} has schema version {version}, this relaybaton"
                    f" knows versions up to {SCHEMA_VERSION}: upgrade relaybaton, or use"
                    " another schema",
                    store=self.where,
                )
            if version < SCHEMA_VERSION:
                for statement in SCHEMA_TABLES.split(";"):
                    await conn.execute(self._sql(statement))
                await conn.execute(
                    self._sql(
                        "INSERT INTO {s}.meta (key, value) VALUES ('schema_version', %s)"
                        " ON CONFLICT (key) DO UPDATE SET value = excluded.value"
                    ),
                    (str(SCHEMA_VERSION),),
                )
            # Journals older than listings lack it; IF NOT EXISTS makes this cheap.
            await conn.execute(self._sql(HEADS_INDEX.format(s="{s}.")))
            await conn.execute(self._sql(FENCE_TABLE))
            await conn.execute(self._sql(PROVENANCE))

    # --- the Store protocol -----------------------------------------------------------------

    async def write(self, batch: WriteBatch) -> None:
        """Commit the batch in one transaction; see :meth:`Store.write`.

        On cancel, the write goes on (shielded, within ``write_timeout``) so that it either
        happened entirely or not at all. A broken connection is replaced and the batch
        written once more; then ``StoreUnavailableError``.
        """
        if not (batch.records or batch.heads or batch.approvals or batch.prune):
            return
        with anyio.CancelScope(shield=True):
            try:
                with anyio.fail_after(self.write_timeout):
                    await self._writer.run(lambda conn: self._write_in(conn, batch))
            except TimeoutError as exc:
                raise StoreUnavailableError(
                    f"journal write to {self.where} took more than {self.write_timeout:g} s",
                    store=self.where,
                ) from exc

    async def _write_in(self, conn: psycopg.AsyncConnection[Any], batch: WriteBatch) -> None:
        limit = self.idle_transaction_limit_s
        if limit is not None and conn not in self._idle_limited:
            # A node paused mid-transaction keeps its share locks on the fence rows, and a
            # takeover's raise would wait for it to wake up: the server ends such a session.
            await conn.execute(
                "SELECT set_config('idle_in_transaction_session_timeout', %s, false)",
                (f"{max(1, round(limit * 1000))}ms",),
            )
            self._idle_limited.add(conn)
        async with conn.transaction(), conn.cursor() as cur:
            tokens: dict[str, tuple[int, int] | None] = {}
            if self.fencing is not None:
                tokens = await self._check_fences(cur, batch, self.fencing)
            if batch.heads:
                heads = list(batch.heads.values())
                await cur.execute(
                    self._sql(PUT_HEADS),
                    (
                        [h.conversation_id for h in heads],
                        [h.seq for h in heads],
                        [h.epoch for h in heads],
                        [h.owner for h in heads],
                        [h.status for h in heads],
                        [h.unfinished for h in heads],
                        [h.updated_at for h in heads],
                    ),
                )
                written = {row[0] for row in await cur.fetchall()}
                if len(written) < len(heads):
                    await self._refuse(cur, batch, written)
            if batch.records:
                unique = {(r.conversation_id, r.seq): r for r in batch.records}.values()
                await cur.execute(
                    self._sql(PUT_RECORDS),
                    (
                        [r.conversation_id for r in unique],
                        [r.seq for r in unique],
                        [r.epoch for r in unique],
                        [r.kind for r in unique],
                        [r.body for r in unique],
                        [self.writer for _ in unique],
                        [_generation(tokens.get(r.conversation_id)) for r in unique],
                    ),
                )
            if batch.approvals:
                rows = merge_approval_rows(batch.approvals)
                deciding = [a.approval_id for a in rows if a.decision]
                if deciding:  # locked till the commit: a racing decision waits, then fails
                    await cur.execute(self._sql(DECIDED), (deciding,))
                    check_decisions(dict(await cur.fetchall()), rows)
                await cur.execute(
                    self._sql(PUT_APPROVALS),
                    (
                        [a.approval_id for a in rows],
                        [a.conversation_id for a in rows],
                        [a.request for a in rows],
                        [a.decision for a in rows],
                    ),
                )
            if batch.prune:
                await cur.execute(self._sql(PRUNE), (list(batch.prune), list(batch.prune.values())))

    async def _check_fences(
        self, cur: psycopg.AsyncCursor[Any], batch: WriteBatch, fencing: Fencing
    ) -> dict[str, tuple[int, int] | None]:
        """Refuse the batch if a partition it writes was fenced past the writer's lease;
        else each conversation's (partition, generation), to record beside its bodies."""
        conversation_ids = {
            *batch.heads,
            *(r.conversation_id for r in batch.records),
            *(a.conversation_id for a in batch.approvals),
            *batch.prune,
        }
        tokens = {c: fencing(c) for c in conversation_ids}
        partitions = sorted({t[0] for t in tokens.values() if t is not None})
        await cur.execute(self._sql(READ_FENCES), (partitions,))
        fences: dict[int, int] = dict(await cur.fetchall())
        refused = {c: t for c, t in tokens.items() if t is None or fences.get(t[0]) != t[1]}
        if refused:
            raise FencedWriteError(
                store=self.where,
                conversation_ids=refused,
                partitions={t[0] for t in refused.values() if t is not None},
            )
        return tokens

    async def raise_fence(self, partition: int, generation: int) -> None:
        """Raise ``partition``'s fence to ``generation`` (never lower it) before acting.

        Waits for writes in progress under the older generation to commit.

        Raises:
            FencedWriteError: the fence stands higher already (a newer holder raised it).
        """

        async def run(conn: psycopg.AsyncConnection[Any]) -> int:
            cur = await conn.execute(self._sql(RAISE_FENCE), (partition, generation))
            row = await cur.fetchone()
            assert row is not None
            return int(row[0])

        with anyio.fail_after(self.write_timeout):
            stored = await self._writer_for_fences.run(run)
        if stored != generation:
            raise FencedWriteError(store=self.where, conversation_ids=(), partitions=(partition,))

    async def _refuse(
        self, cur: psycopg.AsyncCursor[Any], batch: WriteBatch, written: set[str]
    ) -> None:
        fenced = sorted(set(batch.heads) - written)
        await cur.execute(
            self._sql(
                "SELECT conversation_id, epoch FROM {s}.heads WHERE conversation_id = ANY(%s)"
            ),
            (fenced,),
        )
        stored = dict(await cur.fetchall())
        for conversation_id in fenced:
            check_fence(stored.get(conversation_id), batch.heads[conversation_id])
        raise AssertionError(f"heads upsert skipped {fenced} yet none is stale")  # unreachable

    async def read(self, conversation_id: str) -> list[bytes]:
        """The conversation's record bodies, oldest first."""
        rows = await self._fetch(
            "SELECT body FROM {s}.records WHERE conversation_id = %s ORDER BY seq",
            (conversation_id,),
        )
        return [bytes(row[0]) for row in rows]

    async def heads(self, *, unfinished_only: bool = False) -> list[Head]:
        """Every conversation's head, least recently updated first."""
        where = " WHERE unfinished" if unfinished_only else ""
        rows = await self._fetch(
            f"SELECT {HEAD_COLUMNS} FROM {{s}}.heads{where} ORDER BY updated_at, conversation_id",
            (),
        )
        return [
            Head(conversation_id=c, seq=q, epoch=e, owner=o, status=s, unfinished=u, updated_at=t)
            for c, q, e, o, s, u, t in rows
        ]

    async def list_heads(self, query: HeadQuery) -> HeadPage:
        """One page of heads, newest update first; see ``relaybaton.runtime``'s listing."""
        text, params = listing_query(query, HEAD_COLUMNS, table="{s}.heads", mark="%s")
        rows = await self._fetch(text, tuple(params))
        return page_of(
            [
                Head(
                    conversation_id=c, seq=q, epoch=e, owner=o, status=s, unfinished=u, updated_at=t
                )
                for c, q, e, o, s, u, t in rows
            ],
            query.limit,
        )

    async def approvals(self, *, pending_only: bool = True) -> list[ApprovalRow]:
        """Approval requests, oldest first."""
        where = " WHERE decision = ''" if pending_only else ""
        rows = await self._fetch(
            f"SELECT {APPROVAL_COLUMNS} FROM {{s}}.approvals{where} ORDER BY position", ()
        )
        return [approval_row(row) for row in rows]

    async def approval(self, approval_id: str) -> ApprovalRow | None:
        """The approval request with this id, decided or not (one lookup by primary key)."""
        rows = await self._fetch(
            f"SELECT {APPROVAL_COLUMNS} FROM {{s}}.approvals WHERE approval_id = %s",
            (approval_id,),
        )
        return approval_row(rows[0]) if rows else None

    async def _fetch(self, query: str, params: tuple[object, ...]) -> list[Any]:
        async def run(conn: psycopg.AsyncConnection[Any]) -> list[Any]:
            cur = await conn.execute(self._sql(query), params)
            return await cur.fetchall()

        return await self._reader.run(run)

    async def aclose(self) -> None:
        """Close both connections; idempotent. Runs shielded."""
        self._closed = True
        with anyio.CancelScope(shield=True):
            await self._writer.close()
            await self._reader.close()
            await self._writer_for_fences.close()


def _generation(token: tuple[int, int] | None) -> int | None:
    return None if token is None else token[1]


async def _noop() -> None:
    return None


@asynccontextmanager
async def open_postgres_store(
    dsn: str,
    *,
    schema: str = "relaybaton",
    durability: Durability | str = Durability.BATCHED,
) -> AsyncIterator[PostgresStore]:
    """Connect (creating the schema if needed) for the body of an ``async with``, then close."""
    store = PostgresStore(dsn, schema=schema, durability=durability)
    try:
        await store.connect()
        yield store
    finally:
        await store.aclose()
