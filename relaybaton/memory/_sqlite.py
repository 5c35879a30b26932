"""The knowledge graph in SQLite: the embedded default store.

One file holds every namespace. WAL lets readers run beside the writer; each writing
operation is one ``BEGIN IMMEDIATE`` transaction and ``busy_timeout`` makes a second
process wait for the lock instead of failing, so several processes on one file lose
nothing. ``synchronous=NORMAL`` (the usual WAL pairing) survives a crash of the process
but may lose the last commits on power loss; it never corrupts the file.

Calls run in a worker thread (``anyio.to_thread.run_sync``) behind a one-slot limiter:
a transaction is fast (tens of microseconds to a few milliseconds), but waiting on
another process's lock may take seconds, and that must never stall the event loop.

Ranked search uses FTS5 (``unicode61``, diacritics folded) over each entity's name, type
and observations, and over relation types. The reference's substring search is done on
lower-cased copies of the text kept beside it (``str.lower``, like JavaScript's
``toLowerCase``), because SQLite's own case folding knows ASCII only.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import TypeVar, final

import anyio
import anyio.to_thread

from relaybaton.memory._store import GraphTransaction
from relaybaton.memory._types import (
    EntityRow,
    Observation,
    Provenance,
    Relation,
)

__all__ = ["SqliteGraphStore", "open_sqlite_graph_store"]

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entity (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    entity_type TEXT NOT NULL,
    name_lc TEXT NOT NULL,
    type_lc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS entity_by_name ON entity (namespace, name);
CREATE TABLE IF NOT EXISTS observation (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    entity_id INTEGER NOT NULL,
    content TEXT NOT NULL,
    content_lc TEXT NOT NULL,
    agent TEXT,
    conversation_id TEXT,
    at TEXT
);
CREATE INDEX IF NOT EXISTS observation_by_entity ON observation (entity_id, id);
CREATE TABLE IF NOT EXISTS relation (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    namespace TEXT NOT NULL,
    source TEXT NOT NULL,
    target TEXT NOT NULL,
    relation_type TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS relation_by_source ON relation (namespace, source, target);
CREATE INDEX IF NOT EXISTS relation_by_target ON relation (namespace, target);
CREATE VIRTUAL TABLE IF NOT EXISTS entity_fts USING fts5 (
    name, entity_type, observations, tokenize = 'unicode61 remove_diacritics 2'
);
CREATE VIRTUAL TABLE IF NOT EXISTS relation_fts USING fts5 (
    relation_type, tokenize = 'unicode61 remove_diacritics 2'
);
"""

# Column weights for bm25: a hit in the name says more than one in the type, which says
# more than one among many observations.
_BM25_WEIGHTS = "10.0, 3.0, 1.0"
# A relation whose type matches lends its endpoints this share of its own score.
_RELATION_SHARE = 0.5
_IN_NAMES = "(SELECT value FROM json_each(?))"


def _names_param(names: Collection[str]) -> str:
    # One JSON parameter instead of one placeholder per name: no variable limit, one
    # prepared statement for every batch size.
    return json.dumps(list(names), ensure_ascii=False)


@final
class _SqliteTransaction(GraphTransaction):
    """The primitives of :class:`GraphTransaction` on one connection and namespace."""

    def __init__(self, conn: sqlite3.Connection, namespace: str) -> None:
        self._conn = conn
        self._ns = namespace
        # Entities whose search text changed; re-indexed once, just before commit.
        self.dirty: set[int] = set()

    def find_entities(self, names: Collection[str]) -> list[EntityRow]:
        rows = self._conn.execute(
            "SELECT id, name, entity_type FROM entity"
            f" WHERE namespace = ? AND name IN {_IN_NAMES} ORDER BY id",
            (self._ns, _names_param(names)),
        )
        return [EntityRow(*r) for r in rows]

    def insert_entity(self, name: str, entity_type: str) -> int:
        cur = self._conn.execute(
            "INSERT INTO entity (namespace, name, entity_type, name_lc, type_lc)"
            " VALUES (?, ?, ?, ?, ?)",
            (self._ns, name, entity_type, name.lower(), entity_type.lower()),
        )
        entity_id = cur.lastrowid
        assert entity_id is not None  # an INSERT into a rowid table always sets it
        self.dirty.add(entity_id)
        return entity_id

    def observations(self, entity_ids: Collection[int]) -> dict[int, list[str]]:
        found: dict[int, list[str]] = {i: [] for i in entity_ids}
        rows = self._conn.execute(
            "SELECT entity_id, content FROM observation"
            " WHERE entity_id IN (SELECT value FROM json_each(?)) ORDER BY entity_id, id",
            (json.dumps(list(found)),),
        )
        for entity_id, content in rows:
            found[entity_id].append(content)
        return found

    def observations_with_provenance(self, entity_id: int) -> list[Observation]:
        rows = self._conn.execute(
            "SELECT content, agent, conversation_id, at FROM observation"
            " WHERE entity_id = ? ORDER BY id",
            (entity_id,),
        )
        return [
            Observation(
                content=content,
                provenance=Provenance(
                    agent=agent,
                    conversation_id=conversation,
                    at=datetime.fromisoformat(at) if at is not None else None,
                ),
            )
            for content, agent, conversation, at in rows
        ]

    def insert_observations(
        self, entity_id: int, contents: Sequence[str], provenance: Provenance
    ) -> None:
        if not contents:
            return
        at = provenance.at.isoformat() if provenance.at is not None else None
        self._conn.executemany(
            "INSERT INTO observation (entity_id, content, content_lc, agent,"
            " conversation_id, at) VALUES (?, ?, ?, ?, ?, ?)",
            [
                (entity_id, c, c.lower(), provenance.agent, provenance.conversation_id, at)
                for c in contents
            ],
        )
        self.dirty.add(entity_id)

    def delete_observations(self, entity_id: int, contents: Collection[str]) -> None:
        cur = self._conn.execute(
            "DELETE FROM observation WHERE entity_id = ?"
            " AND content IN (SELECT value FROM json_each(?))",
            (entity_id, _names_param(contents)),
        )
        if cur.rowcount:
            self.dirty.add(entity_id)

    def delete_entities(self, names: Collection[str]) -> None:
        param = _names_param(names)
        ids = [
            r[0]
            for r in self._conn.execute(
                f"SELECT id FROM entity WHERE namespace = ? AND name IN {_IN_NAMES}",
                (self._ns, param),
            )
        ]
        if ids:
            id_param = json.dumps(ids)
            for table, column in (("observation", "entity_id"), ("entity_fts", "rowid")):
                self._conn.execute(
                    f"DELETE FROM {table} WHERE {column} IN (SELECT value FROM json_each(?))",
                    (id_param,),
                )
            self._conn.execute(
                "DELETE FROM entity WHERE id IN (SELECT value FROM json_each(?))", (id_param,)
            )
            self.dirty.difference_update(ids)
        doomed = self._conn.execute(
            "DELETE FROM relation WHERE namespace = ?"
            f" AND (source IN {_IN_NAMES} OR target IN {_IN_NAMES}) RETURNING id",
            (self._ns, param, param),
        ).fetchall()
        self._forget_relations([r[0] for r in doomed])

    def existing_relations(self, relations: Sequence[Relation]) -> set[tuple[str, str, str]]:
        wanted = {r.key for r in relations}
        rows = self._conn.execute(
            "SELECT source, target, relation_type FROM relation"
            f" WHERE namespace = ? AND source IN {_IN_NAMES}",
            (self._ns, _names_param({r.from_ for r in relations})),
        )
        return {row for row in rows if row in wanted}

    def insert_relation(self, relation: Relation) -> None:
        cur = self._conn.execute(
            "INSERT INTO relation (namespace, source, target, relation_type) VALUES (?, ?, ?, ?)",
            (self._ns, relation.from_, relation.to, relation.relation_type),
        )
        self._conn.execute(
            "INSERT INTO relation_fts (rowid, relation_type) VALUES (?, ?)",
            (cur.lastrowid, relation.relation_type),
        )

    def delete_relations(self, relations: Sequence[Relation]) -> None:
        doomed: list[int] = []
        for r in relations:
            doomed.extend(
                row[0]
                for row in self._conn.execute(
                    "DELETE FROM relation WHERE namespace = ? AND source = ? AND target = ?"
                    " AND relation_type = ? RETURNING id",
                    (self._ns, r.from_, r.to, r.relation_type),
                )
            )
        self._forget_relations(doomed)

    def _forget_relations(self, ids: list[int]) -> None:
        if ids:
            self._conn.execute(
                "DELETE FROM relation_fts WHERE rowid IN (SELECT value FROM json_each(?))",
                (json.dumps(ids),),
            )

    def count(self) -> tuple[int, int]:
        (entities,) = self._conn.execute(
            "SELECT count(*) FROM entity WHERE namespace = ?", (self._ns,)
        ).fetchone()
        (relations,) = self._conn.execute(
            "SELECT count(*) FROM relation WHERE namespace = ?", (self._ns,)
        ).fetchone()
        return entities, relations

    def entities(self, offset: int = 0, limit: int | None = None) -> list[EntityRow]:
        rows = self._conn.execute(
            "SELECT id, name, entity_type FROM entity WHERE namespace = ?"
            " ORDER BY id LIMIT ? OFFSET ?",
            (self._ns, -1 if limit is None else limit, offset),
        )
        return [EntityRow(*r) for r in rows]

    def relations(self, offset: int = 0, limit: int | None = None) -> list[Relation]:
        rows = self._conn.execute(
            "SELECT source, target, relation_type FROM relation WHERE namespace = ?"
            " ORDER BY id LIMIT ? OFFSET ?",
            (self._ns, -1 if limit is None else limit, offset),
        )
        return [Relation(from_=s, to=t, relation_type=k) for s, t, k in rows]

    def relations_touching(self, names: Collection[str]) -> list[Relation]:
        param = _names_param(names)
        # A UNION of two index lookups: with OR the planner scans the whole table.
        rows = self._conn.execute(
            "SELECT source, target, relation_type FROM relation WHERE id IN ("
            f" SELECT id FROM relation WHERE namespace = ? AND source IN {_IN_NAMES}"
            f" UNION SELECT id FROM relation WHERE namespace = ? AND target IN {_IN_NAMES}"
            ") ORDER BY id",
            (self._ns, param, self._ns, param),
        )
        return [Relation(from_=s, to=t, relation_type=k) for s, t, k in rows]

    def search_substring(self, needle: str) -> list[EntityRow]:
        rows = self._conn.execute(
            "SELECT e.id, e.name, e.entity_type FROM entity e WHERE e.namespace = ?"
            " AND (instr(e.name_lc, ?) OR instr(e.type_lc, ?) OR EXISTS ("
            "  SELECT 1 FROM observation o WHERE o.entity_id = e.id AND instr(o.content_lc, ?)"
            " )) ORDER BY e.id",
            (self._ns, needle, needle, needle),
        )
        return [EntityRow(*r) for r in rows]

    def search_ranked(self, terms: Sequence[str], limit: int | None) -> list[EntityRow]:
        if not terms:
            return []
        # Each term is a quoted prefix query, OR-ed: bm25 ranks entities matching more
        # (and rarer) terms first. Quoting makes FTS5 syntax in the query inert.
        match = " OR ".join('"' + t.replace('"', '""') + '"*' for t in terms)
        scores: dict[int, float] = {}
        rows: dict[int, EntityRow] = {}
        for entity_id, name, kind, score in self._conn.execute(
            f"SELECT e.id, e.name, e.entity_type, bm25(entity_fts, {_BM25_WEIGHTS})"
            " FROM entity_fts JOIN entity e ON e.id = entity_fts.rowid"
            " WHERE entity_fts MATCH ? AND e.namespace = ?",
            (match, self._ns),
        ):
            scores[entity_id] = score
            rows[entity_id] = EntityRow(entity_id, name, kind)
        by_name: dict[str, float] = {}
        for source, target, score in self._conn.execute(
            "SELECT r.source, r.target, bm25(relation_fts)"
            " FROM relation_fts JOIN relation r ON r.id = relation_fts.rowid"
            " WHERE relation_fts MATCH ? AND r.namespace = ?",
            (match, self._ns),
        ):
            for name in (source, target):
                by_name[name] = by_name.get(name, 0.0) + _RELATION_SHARE * score
        if by_name:
            for row in self.find_entities(by_name):
                scores[row.id] = scores.get(row.id, 0.0) + by_name[row.name]
                rows[row.id] = row
        # bm25 is negative, lower is better; ties keep graph order.
        ranked = sorted(scores, key=lambda i: (scores[i], i))
        return [rows[i] for i in ranked[:limit]]

    def clear(self) -> None:
        self._conn.execute(
            "DELETE FROM entity_fts WHERE rowid IN (SELECT id FROM entity WHERE namespace = ?)",
            (self._ns,),
        )
        self._conn.execute(
            "DELETE FROM observation WHERE entity_id IN"
            " (SELECT id FROM entity WHERE namespace = ?)",
            (self._ns,),
        )
        self._conn.execute("DELETE FROM entity WHERE namespace = ?", (self._ns,))
        self._conn.execute(
            "DELETE FROM relation_fts WHERE rowid IN (SELECT id FROM relation WHERE namespace = ?)",
            (self._ns,),
        )
        self._conn.execute("DELETE FROM relation WHERE namespace = ?", (self._ns,))
        self.dirty.clear()

    def reindex(self) -> None:
        """Rewrite the search rows of the entities touched in this transaction."""
        if not self.dirty:
            return
        ids = list(self.dirty)
        self._conn.execute(
            "DELETE FROM entity_fts WHERE rowid IN (SELECT value FROM json_each(?))",
            (json.dumps(ids),),
        )
        rows = self._conn.execute(
            "SELECT e.id, e.name, e.entity_type,"
            " (SELECT group_concat(content, char(10)) FROM"
            "   (SELECT content FROM observation o WHERE o.entity_id = e.id ORDER BY o.id))"
            " FROM entity e WHERE e.id IN (SELECT value FROM json_each(?))",
            (json.dumps(ids),),
        ).fetchall()
        self._conn.executemany(
            "INSERT INTO entity_fts (rowid, name, entity_type, observations) VALUES (?, ?, ?, ?)",
            [(i, n, k, o or "") for i, n, k, o in rows],
        )
        self.dirty.clear()


@final
class SqliteGraphStore:
    """A :class:`GraphStore` on one SQLite file (or ``":memory:"``)."""

    def __init__(self, path: str | Path, *, busy_timeout: float = 30.0) -> None:
        """Open (and create if needed) the database at ``path``.

        Args:
            path: the database file; its folder must exist.
            busy_timeout: seconds to wait for another process's write lock before the
                operation fails with ``sqlite3.OperationalError: database is locked``.
        """
        self.path = str(path)
        self._conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=busy_timeout
        )
        self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        self._prepare(busy_timeout)
        # The limiter keeps one operation in flight per store, so queued callers wait in
        # the event loop, not as blocked threads; the lock guards direct synchronous use.
        self._limiter = anyio.CapacityLimiter(1)
        self._lock = threading.Lock()
        self._closed = False

    def _prepare(self, busy_timeout: float) -> None:
        # Switching to WAL fails at once with "database is locked" while another process
        # opens the same new file (the busy handler is not consulted for it), so retry
        # within the busy timeout instead of failing the second process.
        deadline = time.monotonic() + busy_timeout
        while True:
            try:
                self._conn.execute("PRAGMA journal_mode = WAL")
                # One script: executescript would commit a transaction begun outside it.
                self._conn.executescript("BEGIN IMMEDIATE;" + _SCHEMA + "COMMIT;")
            except sqlite3.OperationalError as exc:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    self._conn.close()
                    raise
                time.sleep(0.01)
            else:
                self._conn.execute("PRAGMA synchronous = NORMAL")
                return

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
        """Run ``operation`` as one transaction in the calling thread."""
        with self._lock:
            if self._closed:
                raise RuntimeError(f"graph store {self.path!r} is closed; open a new one")
            tx = _SqliteTransaction(self._conn, namespace)
            self._conn.execute("BEGIN" if readonly else "BEGIN IMMEDIATE")
            try:
                result = operation(tx)
                tx.reindex()
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
            return result

    async def aclose(self) -> None:
        """Close the connection; idempotent."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()


@asynccontextmanager
async def open_sqlite_graph_store(
    path: str | Path, *, busy_timeout: float = 30.0
) -> AsyncIterator[SqliteGraphStore]:
    """Open a SQLite graph store for the body of an ``async with``, then close it."""
    store = SqliteGraphStore(path, busy_timeout=busy_timeout)
    try:
        yield store
    finally:
        with anyio.CancelScope(shield=True):
            await store.aclose()
