"""The knowledge graph in PostgreSQL: the store shared by many processes and nodes.

One schema (``relaybaton_graph`` unless told) holds every namespace, created on first use
with a version in its ``meta`` table (key ``graph_schema_version``, so the journal's
schema may be shared). psycopg 3 in sync mode: one connection, used by one operation at a
time from a worker thread (``anyio.to_thread.run_sync`` behind a one-slot limiter), as
the SQLite store does, since :meth:`GraphStore.run` hands over a plain function.

Each operation is one transaction. A writing one first takes
``pg_advisory_xact_lock(hashtext('relaybaton graph <schema> <namespace>'))``: writers on
one namespace, in any process on any host, run one after the other (their reads then
see every earlier commit, READ COMMITTED) and none loses an update; writers on other
namespaces do not wait. The lock is released by the commit or rollback. A ``readonly``
operation runs REPEATABLE READ, READ ONLY: one consistent snapshot, no lock.

Graph order ("file order") is the ``bigserial`` id of entities and relations: a deleted
and re-created entity goes to the end. Observations keep theirs by their own id.

Search:

* substring (the reference's search): ``strpos`` over lower-cased copies stored beside
  the text, lower-cased in Python (``str.lower``, like JavaScript's ``toLowerCase``), so
  the result does not depend on the database's locale. It scans the namespace's rows.
* ranked: a ``tsvector`` per entity (name weight A, type B, observations D) and per
  relation (its type), built with the ``simple`` configuration (no stemming, no stop
  words, any language) from text lower-cased and with diacritics removed in Python
  (NFKD, combining marks dropped; the ``unaccent`` extension is not needed). Each query
  word is a prefix (``word:*``), OR-ed; entities are ordered by ``ts_rank`` with weights
  1.0 / 0.4 / 0.1 for name / type / observations, plus half the rank of each matching
  relation they are an end of; ties keep graph order. Both vectors have GIN indexes.

A broken connection is replaced: an operation that failed before its commit was sent
rolled back on the server and is run once more on the fresh connection; one that broke
during the commit may or may not have committed, so it is not repeated and raises
``StoreUnavailableError``. Other database errors raise ``StoreError``.

PostgreSQL text cannot hold NUL characters: a name or observation containing ``\\x00`` is
refused with ``StoreError`` (SQLite keeps it).
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from contextlib import asynccontextmanager
from datetime import UTC
from typing import Any, Final, TypeVar, final

import anyio
import anyio.to_thread
import psycopg
import structlog
from psycopg import sql

from relaybaton.errors import StoreError, StoreUnavailableError
from relaybaton.memory._postgres_sql import QUERY, RANK_WEIGHTS, RELATION_SHARE, SCHEMA, fold
from relaybaton.memory._store import GraphTransaction
from relaybaton.memory._types import EntityRow, Observation, Provenance, Relation
from relaybaton.stores._postgres import postgres_location
from relaybaton.stores._schema_lock import schema_lock

__all__ = ["SCHEMA_VERSION", "PostgresGraphStore", "open_postgres_graph_store"]

_log = structlog.get_logger("relaybaton.memory")

T = TypeVar("T")

SCHEMA_VERSION: Final = 1


@final
class _PostgresTransaction(GraphTransaction):
    """The primitives of :class:`GraphTransaction` on one connection and namespace."""

    def __init__(self, cur: psycopg.Cursor[Any], schema: sql.Identifier, namespace: str) -> None:
        self._cur = cur
        self._s = schema
        self._ns = namespace
        # Entities whose search text changed; re-indexed once, just before commit.
        self.dirty: set[int] = set()

    def _exec(self, query: str, params: Sequence[object] = ()) -> psycopg.Cursor[Any]:
        # Our own constant texts only: the schema goes in as a quoted identifier.
        return self._cur.execute(sql.SQL(query).format(s=self._s), params)

    def _rows(self, query: str, params: Sequence[object] = ()) -> list[Any]:
        return self._exec(query, params).fetchall()

    def _one(self, query: str, params: Sequence[object]) -> Any:
        row = self._exec(query, params).fetchone()
        assert row is not None  # an INSERT ... RETURNING one row, or a SELECT of aggregates
        return row

    def find_entities(self, names: Collection[str]) -> list[EntityRow]:
        rows = self._rows(
            "SELECT id, name, entity_type FROM {s}.entity"
            " WHERE namespace = %s AND name = ANY(%s::text[]) ORDER BY id",
            (self._ns, list(names)),
        )
        return [EntityRow(*r) for r in rows]

    def insert_entity(self, name: str, entity_type: str) -> int:
        (entity_id,) = self._one(
            "INSERT INTO {s}.entity (namespace, name, entity_type, name_lc, type_lc)"
            " VALUES (%s, %s, %s, %s, %s) RETURNING id",
            (self._ns, name, entity_type, name.lower(), entity_type.lower()),
        )
        self.dirty.add(entity_id)
        return int(entity_id)

    def observations(self, entity_ids: Collection[int]) -> dict[int, list[str]]:
        found: dict[int, list[str]] = {i: [] for i in entity_ids}
        if not found:
            return found
        for entity_id, content in self._rows(
            "SELECT entity_id, content FROM {s}.observation"
            " WHERE entity_id = ANY(%s::bigint[]) ORDER BY entity_id, id",
            (list(found),),
        ):
            found[entity_id].append(content)
        return found

    def observations_with_provenance(self, entity_id: int) -> list[Observation]:
        rows = self._rows(
            "SELECT content, agent, conversation_id, at FROM {s}.observation"
            " WHERE entity_id = %s ORDER BY id",
            (entity_id,),
        )
        return [
            Observation(
                content=content,
                provenance=Provenance(
                    agent=agent,
                    conversation_id=conversation,
                    at=at.astimezone(UTC) if at is not None else None,
                ),
            )
            for content, agent, conversation, at in rows
        ]

    def insert_observations(
        self, entity_id: int, contents: Sequence[str], provenance: Provenance
    ) -> None:
        if not contents:
            return
        at = provenance.at
        if at is not None and at.tzinfo is None:
            at = at.replace(tzinfo=UTC)  # naive times are taken as UTC, as everywhere here
        self._exec(
            "INSERT INTO {s}.observation (entity_id, content, content_lc, agent,"
            " conversation_id, at)"
            " SELECT %s, c, lc, %s, %s, %s FROM unnest(%s::text[], %s::text[])"
            " WITH ORDINALITY AS u(c, lc, n) ORDER BY n",
            (
                entity_id,
                provenance.agent,
                provenance.conversation_id,
                at,
                list(contents),
                [c.lower() for c in contents],
            ),
        )
        self.dirty.add(entity_id)

    def delete_observations(self, entity_id: int, contents: Collection[str]) -> None:
        cur = self._exec(
            "DELETE FROM {s}.observation WHERE entity_id = %s AND content = ANY(%s::text[])",
            (entity_id, list(contents)),
        )
        if cur.rowcount:
            self.dirty.add(entity_id)

    def delete_entities(self, names: Collection[str]) -> None:
        wanted = list(names)
        # Observations go with their entity (ON DELETE CASCADE).
        gone = self._rows(
            "DELETE FROM {s}.entity WHERE namespace = %s AND name = ANY(%s::text[]) RETURNING id",
            (self._ns, wanted),
        )
        self.dirty.difference_update(r[0] for r in gone)
        self._exec(
            "DELETE FROM {s}.relation WHERE namespace = %s"
            " AND (source = ANY(%s::text[]) OR target = ANY(%s::text[]))",
            (self._ns, wanted, wanted),
        )

    def existing_relations(self, relations: Sequence[Relation]) -> set[tuple[str, str, str]]:
        wanted = {r.key for r in relations}
        rows = self._rows(
            "SELECT source, target, relation_type FROM {s}.relation"
            " WHERE namespace = %s AND source = ANY(%s::text[])",
            (self._ns, list({r.from_ for r in relations})),
        )
        return {row for row in map(tuple, rows) if row in wanted}

    def insert_relation(self, relation: Relation) -> None:
        self._exec(
            "INSERT INTO {s}.relation (namespace, source, target, relation_type, search)"
            " VALUES (%s, %s, %s, %s, to_tsvector('simple', %s))",
            (
                self._ns,
                relation.from_,
                relation.to,
                relation.relation_type,
                fold(relation.relation_type),
            ),
        )

    def delete_relations(self, relations: Sequence[Relation]) -> None:
        if not relations:
            return
        self._exec(
            "DELETE FROM {s}.relation AS r USING unnest(%s::text[], %s::text[], %s::text[])"
            " AS d(source, target, relation_type)"
            " WHERE r.namespace = %s AND r.source = d.source AND r.target = d.target"
            " AND r.relation_type = d.relation_type",
            (
                [r.from_ for r in relations],
                [r.to for r in relations],
                [r.relation_type for r in relations],
                self._ns,
            ),
        )

    def count(self) -> tuple[int, int]:
        (entities, relations) = self._one(
            "SELECT (SELECT count(*) FROM {s}.entity WHERE namespace = %s),"
            " (SELECT count(*) FROM {s}.relation WHERE namespace = %s)",
            (self._ns, self._ns),
        )
        return int(entities), int(relations)

    def entities(self, offset: int = 0, limit: int | None = None) -> list[EntityRow]:
        rows = self._rows(
            "SELECT id, name, entity_type FROM {s}.entity WHERE namespace = %s"
            " ORDER BY id LIMIT %s OFFSET %s",
            (self._ns, limit, offset),
        )
        return [EntityRow(*r) for r in rows]

    def relations(self, offset: int = 0, limit: int | None = None) -> list[Relation]:
        rows = self._rows(
            "SELECT source, target, relation_type FROM {s}.relation WHERE namespace = %s"
            " ORDER BY id LIMIT %s OFFSET %s",
            (self._ns, limit, offset),
        )
        return [Relation(from_=s, to=t, relation_type=k) for s, t, k in rows]

    def relations_touching(self, names: Collection[str]) -> list[Relation]:
        wanted = list(names)
        rows = self._rows(
            "SELECT source, target, relation_type FROM {s}.relation WHERE namespace = %s"
            " AND (source = ANY(%s::text[]) OR target = ANY(%s::text[])) ORDER BY id",
            (self._ns, wanted, wanted),
        )
        return [Relation(from_=s, to=t, relation_type=k) for s, t, k in rows]

    def search_substring(self, needle: str) -> list[EntityRow]:
        rows = self._rows(
            "SELECT e.id, e.name, e.entity_type FROM {s}.entity e WHERE e.namespace = %s"
            " AND (strpos(e.name_lc, %s) > 0 OR strpos(e.type_lc, %s) > 0 OR EXISTS ("
            "  SELECT 1 FROM {s}.observation o"
            "  WHERE o.entity_id = e.id AND strpos(o.content_lc, %s) > 0"
            " )) ORDER BY e.id",
            (self._ns, needle, needle, needle),
        )
        return [EntityRow(*r) for r in rows]

    def search_ranked(self, terms: Sequence[str], limit: int | None) -> list[EntityRow]:
        folded = [t for t in (fold(term) for term in terms) if t]
        if not folded:
            return []
        scores: dict[int, float] = {}
        rows: dict[int, EntityRow] = {}
        for entity_id, name, kind, score in self._rows(
            f"SELECT e.id, e.name, e.entity_type, ts_rank({RANK_WEIGHTS}, e.search, q)"
            f" FROM {{s}}.entity e, {QUERY} AS q(q)"
            " WHERE e.namespace = %s AND e.search @@ q",
            (folded, self._ns),
        ):
            scores[entity_id] = score
            rows[entity_id] = EntityRow(entity_id, name, kind)
        by_name: dict[str, float] = {}
        for source, target, score in self._rows(
            "SELECT r.source, r.target, ts_rank(r.search, q)"
            f" FROM {{s}}.relation r, {QUERY} AS q(q)"
            " WHERE r.namespace = %s AND r.search @@ q",
            (folded, self._ns),
        ):
            for name in (source, target):
                by_name[name] = by_name.get(name, 0.0) + RELATION_SHARE * score
        if by_name:
            for row in self.find_entities(by_name):
                scores[row.id] = scores.get(row.id, 0.0) + by_name[row.name]
                rows[row.id] = row
        # Higher rank is better; ties keep graph order.
        ranked = sorted(scores, key=lambda i: (-scores[i], i))
        return [rows[i] for i in ranked[:limit]]

    def clear(self) -> None:
        self._exec("DELETE FROM {s}.entity WHERE namespace = %s", (self._ns,))
        self._exec("DELETE FROM {s}.relation WHERE namespace = %s", (self._ns,))
        self.dirty.clear()

    def reindex(self) -> None:
        """Rewrite the search vectors of the entities touched in this transaction."""
        if not self.dirty:
            return
        found = self._rows(
            "SELECT e.id, e.name, e.entity_type, coalesce((SELECT string_agg(o.content,"
            " E'\\n' ORDER BY o.id) FROM {s}.observation o WHERE o.entity_id = e.id), '')"
            " FROM {s}.entity e WHERE e.id = ANY(%s::bigint[])",
            (list(self.dirty),),
        )
        if found:
            self._exec(
                "UPDATE {s}.entity AS e SET search ="
                " setweight(to_tsvector('simple', u.name), 'A')"
                " || setweight(to_tsvector('simple', u.kind), 'B')"
                " || setweight(to_tsvector('simple', u.obs), 'D')"
                " FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[])"
                " AS u(id, name, kind, obs) WHERE e.id = u.id",
                (
                    [r[0] for r in found],
                    [fold(r[1]) for r in found],
                    [fold(r[2]) for r in found],
                    [fold(r[3]) for r in found],
                ),
            )
        self.dirty.clear()


class _NotCommittedError(Exception):
    """The connection broke before the commit was sent: nothing was kept; run again."""


@final
class PostgresGraphStore:
    """A :class:`GraphStore` in a PostgreSQL schema, shared by any number of processes."""

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "relaybaton_graph",
        connect_timeout: float = 10.0,
        application_name: str = "relaybaton",
    ) -> None:
        """Describe the store; the connection opens on first use (or :meth:`connect`).

        Args:
            dsn: a libpq connection string or ``postgresql://`` URL.
            schema: the Postgres schema that holds the tables (a lower-case identifier).
            connect_timeout: seconds to wait for a connection.
            application_name: shown in ``pg_stat_activity``.

        Raises:
            ConfigError: ``schema`` is not a plain identifier, or ``dsn`` cannot be parsed.
        """
        self.where = postgres_location(dsn, schema)
        self.dsn = dsn
        self.schema = schema
        self.connect_timeout = connect_timeout
        self.application_name = application_name
        self._s = sql.Identifier(schema)
        self._conn: psycopg.Connection[Any] | None = None
        self._prepared = False
        self._closed = False
        self._limiter = anyio.CapacityLimiter(1)
        self._lock = threading.Lock()
        self.reconnects = 0

    # --- connection ---------------------------------------------------------------------

    async def connect(self) -> None:
        """Open the connection and create the schema if needed, to fail at start-up.

        Raises:
            StoreUnavailableError: the server does not answer.
            StoreError: the schema was created by a newer relaybaton.
        """
        await anyio.to_thread.run_sync(self._connected, limiter=self._limiter)

    def _connected(self) -> psycopg.Connection[Any]:
        with self._lock:
            return self._connection()

    def _connection(self) -> psycopg.Connection[Any]:
        if self._closed:
            raise StoreError(
                f"graph store {self.where} is closed; open a new one", store=self.where
            )
        if self._conn is not None and not self._conn.closed:
            return self._conn
        try:
            conn = psycopg.connect(
                self.dsn,
                autocommit=True,
                connect_timeout=max(1, round(self.connect_timeout)),
                application_name=self.application_name,
            )
        except psycopg.OperationalError as exc:
            raise StoreUnavailableError(
                f"PostgreSQL graph store at {self.where} is not answering: {exc}".rstrip(),
                store=self.where,
            ) from exc
        try:
            conn.execute("SET TIME ZONE 'UTC'")
            if not self._prepared:
                self._migrate(conn)
                self._prepared = True
        except psycopg.Error as exc:
            conn.close()
            raise StoreError(
                f"cannot prepare the graph store at {self.where}: {exc}", store=self.where
            ) from exc
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    def _sql(self, text: str) -> sql.Composed:
        return sql.SQL(text).format(s=self._s)

    def _migrate(self, conn: psycopg.Connection[Any]) -> None:
        with conn.transaction():
            conn.execute(schema_lock(self.schema))
            conn.execute(self._sql("CREATE SCHEMA IF NOT EXISTS {s}"))
            conn.execute(
                self._sql(
                    "CREATE TABLE IF NOT EXISTS {s}.meta"
                    " (key text PRIMARY KEY, value text NOT NULL)"
                )
            )
            row = conn.execute(
                self._sql("SELECT value FROM {s}.meta WHERE key = 'graph_schema_version'")
            ).fetchone()
            version = int(row[0]) if row else 0
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"graph store at {self.where} has schema version {version}, this"
                    f" relaybaton knows versions up to {SCHEMA_VERSION}: upgrade relaybaton,"
                    " or use another schema",
                    store=self.where,
                )
            if version < SCHEMA_VERSION:
                for statement in SCHEMA.split(";"):
                    conn.execute(self._sql(statement))
                conn.execute(
                    self._sql(
                        "INSERT INTO {s}.meta (key, value) VALUES ('graph_schema_version', %s)"
                        " ON CONFLICT (key) DO UPDATE SET value = excluded.value"
                    ),
                    (str(SCHEMA_VERSION),),
                )

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    # --- the GraphStore protocol --------------------------------------------------------

    async def run(
        self,
        namespace: str,
        operation: Callable[[GraphTransaction], T],
        *,
        readonly: bool = False,
    ) -> T:
        """Run ``operation`` as one transaction; see :meth:`GraphStore.run`."""
        return await anyio.to_thread.run_sync(
            self.run_sync, namespace, operation, readonly, limiter=self._limiter
        )

    def run_sync(
        self, namespace: str, operation: Callable[[GraphTransaction], T], readonly: bool = False
    ) -> T:
        """Run ``operation`` as one transaction in the calling thread.

        Raises:
            StoreUnavailableError: the connection broke twice, or during the commit.
            StoreError: the database refused a statement.
        """
        with self._lock:
            for attempt in (1, 2):
                conn = self._connection()
                try:
                    return self._attempt(conn, namespace, operation, readonly)
                except _NotCommittedError as broke:
                    self._drop()
                    if attempt == 2:
                        raise StoreUnavailableError(
                            f"lost the connection to the graph store at {self.where} twice:"
                            f" {broke.__cause__}",
                            store=self.where,
                        ) from broke.__cause__
                    self.reconnects += 1
                    # Survived by reconnecting once: the only place its traceback is kept.
                    _log.warning("graph_store_reconnect", store=self.where, exc_info=broke)
            raise AssertionError("unreachable")

    def _attempt(
        self,
        conn: psycopg.Connection[Any],
        namespace: str,
        operation: Callable[[GraphTransaction], T],
        readonly: bool,
    ) -> T:
        committing = False
        try:
            with conn.transaction(), conn.cursor() as cur:
                if readonly:
                    cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                else:
                    cur.execute(
                        "SELECT pg_advisory_xact_lock(hashtext(%s))",
                        (f"relaybaton graph {self.schema} {namespace}",),
                    )
                tx = _PostgresTransaction(cur, self._s, namespace)
                result = operation(tx)
                tx.reindex()
                committing = True
        except psycopg.Error as exc:
            if not conn.broken:
                raise StoreError(
                    f"graph operation on {self.where} failed: {exc}", store=self.where
                ) from exc
            if committing:
                self._drop()
                raise StoreUnavailableError(
                    f"lost the connection to the graph store at {self.where} while committing;"
                    f" the operation may or may not have been kept: {exc}",
                    store=self.where,
                ) from exc
            raise _NotCommittedError() from exc
        except BaseException:
            if conn.broken:
                self._drop()
            raise
        return result

    async def aclose(self) -> None:
        """Close the connection; idempotent."""
        with self._lock:
            self._closed = True
            self._drop()


@asynccontextmanager
async def open_postgres_graph_store(
    dsn: str, *, schema: str = "relaybaton_graph"
) -> AsyncIterator[PostgresGraphStore]:
    """Connect (creating the schema if needed) for the body of an ``async with``, then close."""
    store = PostgresGraphStore(dsn, schema=schema)
    try:
        await store.connect()
        yield store
    finally:
        with anyio.CancelScope(shield=True):
            await store.aclose()
