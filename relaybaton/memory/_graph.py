"""Long-term memory: a knowledge graph with the MCP memory server's nine operations.

The semantics are the reference server's (``@modelcontextprotocol/server-memory``
2026.8.31) on valid, sequential input, with its result shapes; :class:`Compat` chooses
between the released behaviour and the stricter one of the next release. Each operation
runs as one store transaction (see :class:`relaybaton.adapters.GraphStore`), so it is
all-or-nothing and several processes on one database lose nothing.

This class has no concurrency control of its own: a memory actor owns each graph and its
mailbox serializes the calls. Used without one, concurrent calls are still each atomic,
but a caller's read-then-write across two calls is not.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import final

from relaybaton.errors import EntityNotFoundError
from relaybaton.memory._store import GraphStore, GraphTransaction, entity_from_row
from relaybaton.memory._types import (
    AddedObservations,
    Entity,
    EntityRow,
    GraphPage,
    GraphView,
    Observation,
    ObservationAddition,
    ObservationDeletion,
    Provenance,
    Relation,
)

__all__ = ["Compat", "KnowledgeGraph"]

_WORD = re.compile(r"\w+")


class Compat(enum.StrEnum):
    """How closely to follow the reference server where its releases differ.

    ``RELEASED`` is npm 2026.8.31 exactly: duplicates within one batch are all kept
    (two entities may share a name) and relations may point at missing entities.
    ``STRICT`` (the default) drops in-batch duplicates (entity names, relation triples,
    observation contents, keeping the first) and refuses a ``create_relations`` batch
    naming a missing entity, as the next release does.
    """

    RELEASED = "released"
    STRICT = "strict"


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _view(tx: GraphTransaction, rows: Sequence[EntityRow]) -> GraphView:
    """Entities for ``rows`` and the relations with either end among their names."""
    observations = tx.observations([r.id for r in rows])
    relations = tx.relations_touching({r.name for r in rows}) if rows else []
    return GraphView(
        entities=tuple(entity_from_row(r, observations) for r in rows),
        relations=tuple(relations),
    )


@final
class KnowledgeGraph:
    """One namespace of a graph store, with the MCP memory server's operations.

    Construct it over any store: ``KnowledgeGraph(SqliteGraphStore(path))``. The store is
    the caller's to close.
    """

    def __init__(
        self,
        store: GraphStore,
        *,
        compat: Compat = Compat.STRICT,
        namespace: str = "default",
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        """Bind the graph of ``namespace`` in ``store``.

        Args:
            store: where the graph lives.
            compat: released (npm 2026.8.31) or strict (the default) semantics.
            namespace: the tenant or user whose graph this is; namespaces never mix.
            clock: the time stamped on new observations; UTC now by default.
        """
        self.store = store
        self.compat = Compat(compat)
        self.namespace = namespace
        self._clock = clock or (lambda: datetime.now(UTC))

    @property
    def _strict(self) -> bool:
        return self.compat is Compat.STRICT

    def _provenance(self, agent: str | None, conversation_id: str | None) -> Provenance:
        return Provenance(agent=agent, conversation_id=conversation_id, at=self._clock())

    # --- writes -------------------------------------------------------------------------

    async def create_entities(
        self,
        entities: Sequence[Entity],
        *,
        agent: str | None = None,
        conversation_id: str | None = None,
    ) -> list[Entity]:
        """Add the entities whose names are new; return the ones actually added.

        A name that exists already is skipped, nothing merged. ``agent`` and
        ``conversation_id`` are recorded with each observation.
        """
        provenance = self._provenance(agent, conversation_id)
        strict = self._strict

        def operation(tx: GraphTransaction) -> list[Entity]:
            taken = {r.name for r in tx.find_entities({e.name for e in entities})}
            added: list[Entity] = []
            for given in entities:
                if given.name in taken:
                    continue
                entity = given
                if strict:
                    taken.add(given.name)
                    entity = Entity(
                        name=given.name,
                        entity_type=given.entity_type,
                        observations=_unique(given.observations),
                    )
                entity_id = tx.insert_entity(entity.name, entity.entity_type)
                tx.insert_observations(entity_id, entity.observations, provenance)
                added.append(entity)
            return added

        return await self.store.run(self.namespace, operation)

    async def create_relations(self, relations: Sequence[Relation]) -> list[Relation]:
        """Add the relations not stored yet; return the ones actually added.

        Raises:
            EntityNotFoundError: strict mode only, when an end names no entity; the
                first missing name (in batch order, ``from`` before ``to``) is reported
                and nothing is added.
        """
        strict = self._strict

        def operation(tx: GraphTransaction) -> list[Relation]:
            if strict:
                names = _unique(n for r in relations for n in (r.from_, r.to))
                present = {r.name for r in tx.find_entities(names)}
                for name in names:
                    if name not in present:
                        raise EntityNotFoundError(name)
            taken = tx.existing_relations(relations) if relations else set()
            added: list[Relation] = []
            for relation in relations:
                if relation.key in taken:
                    continue
                if strict:
                    taken.add(relation.key)
                tx.insert_relation(relation)
                added.append(relation)
            return added

        return await self.store.run(self.namespace, operation)

    async def add_observations(
        self,
        additions: Sequence[ObservationAddition],
        *,
        agent: str | None = None,
        conversation_id: str | None = None,
    ) -> list[AddedObservations]:
        """Add to each named entity the contents it does not have yet.

        Items apply in order, so a later item sees what an earlier one added.

        Raises:
            EntityNotFoundError: an item names a missing entity (the first such, in
                order); nothing is added.
        """
        provenance = self._provenance(agent, conversation_id)
        strict = self._strict

        def operation(tx: GraphTransaction) -> list[AddedObservations]:
            first: dict[str, int] = {}
            for row in tx.find_entities({a.entity_name for a in additions}):
                first.setdefault(row.name, row.id)
            for addition in additions:
                if addition.entity_name not in first:
                    raise EntityNotFoundError(addition.entity_name)
            current = tx.observations(set(first.values()))
            results: list[AddedObservations] = []
            for addition in additions:
                entity_id = first[addition.entity_name]
                have = set(current[entity_id])
                new = [c for c in addition.contents if c not in have]
                if strict:
                    new = list(_unique(new))
                tx.insert_observations(entity_id, new, provenance)
                current[entity_id].extend(new)
                results.append(
                    AddedObservations(
                        entity_name=addition.entity_name, added_observations=tuple(new)
                    )
                )
            return results

        return await self.store.run(self.namespace, operation)

    async def delete_entities(self, names: Sequence[str]) -> None:
        """Remove these entities and every relation touching them; ignore unknowns."""
        await self.store.run(self.namespace, lambda tx: tx.delete_entities(set(names)))

    async def delete_observations(self, deletions: Sequence[ObservationDeletion]) -> None:
        """Remove every exact match of the contents from each entity; ignore unknowns."""

        def operation(tx: GraphTransaction) -> None:
            first: dict[str, int] = {}
            for row in tx.find_entities({d.entity_name for d in deletions}):
                first.setdefault(row.name, row.id)
            for deletion in deletions:
                if deletion.entity_name in first and deletion.observations:
                    tx.delete_observations(first[deletion.entity_name], deletion.observations)

        await self.store.run(self.namespace, operation)

    async def delete_relations(self, relations: Sequence[Relation]) -> None:
        """Remove every stored relation equal to one of these; ignore unknowns."""
        await self.store.run(self.namespace, lambda tx: tx.delete_relations(relations))

    # --- reads --------------------------------------------------------------------------

    async def read_graph(self) -> GraphView:
        """Return the whole graph in file order."""

        def operation(tx: GraphTransaction) -> GraphView:
            rows = tx.entities()
            observations = tx.observations([r.id for r in rows])
            return GraphView(
                entities=tuple(entity_from_row(r, observations) for r in rows),
                relations=tuple(tx.relations()),
            )

        return await self.store.run(self.namespace, operation, readonly=True)

    async def read_page(self, *, offset: int = 0, limit: int = 100) -> GraphPage:
        """Return ``limit`` lines of the graph from ``offset``, in file order.

        Lines are counted as in the JSONL file: entities first, then relations.
        """
        if offset < 0 or limit < 1:
            raise ValueError(f"Expected offset >= 0 and limit >= 1, got {offset} and {limit}")

        def operation(tx: GraphTransaction) -> GraphPage:
            n_entities, n_relations = tx.count()
            rows = tx.entities(offset, limit) if offset < n_entities else []
            observations = tx.observations([r.id for r in rows])
            rest = limit - len(rows)
            relations = tx.relations(max(0, offset - n_entities), rest) if rest else []
            end = offset + len(rows) + len(relations)
            total = n_entities + n_relations
            return GraphPage(
                entities=tuple(entity_from_row(r, observations) for r in rows),
                relations=tuple(relations),
                next_offset=end if end < total else None,
                total=total,
            )

        return await self.store.run(self.namespace, operation, readonly=True)

    async def search_nodes(
        self, query: str, *, ranked: bool = False, limit: int | None = None
    ) -> GraphView:
        """Find entities by text; the relations returned touch them at either end.

        By default this is the reference's search: the lower-cased ``query`` as a
        substring of the lower-cased name, type or any observation, in graph order,
        ``""`` matching everything. ``ranked=True`` splits the query into words, matches
        them as word prefixes (diacritics folded), also in relation types (an entity at
        either end of a matching relation matches), and orders by relevance.
        ``limit`` caps the number of entities in either mode.
        """
        if limit is not None and limit < 1:
            raise ValueError(f"Expected limit >= 1 or None, got {limit}")
        terms = _WORD.findall(query.lower())

        def operation(tx: GraphTransaction) -> GraphView:
            if ranked:
                rows = tx.search_ranked(terms, limit)
            else:
                rows = tx.search_substring(query.lower())[:limit]
            return _view(tx, rows)

        return await self.store.run(self.namespace, operation, readonly=True)

    async def open_nodes(self, names: Sequence[str]) -> GraphView:
        """Return the entities with exactly these names in graph order, and the
        relations touching them at either end."""
        return await self.store.run(
            self.namespace, lambda tx: _view(tx, tx.find_entities(set(names))), readonly=True
        )

    async def neighbours(self, names: Sequence[str], *, hops: int = 1) -> GraphView:
        """Return the entities within ``hops`` relations of these (either direction).

        The relations returned are those with both ends among the names reached.
        """
        if hops < 0:
            raise ValueError(f"Expected hops >= 0, got {hops}")

        def operation(tx: GraphTransaction) -> GraphView:
            reached = set(names)
            frontier = set(names)
            for _ in range(hops):
                if not frontier:
                    break
                step = {n for r in tx.relations_touching(frontier) for n in (r.from_, r.to)}
                frontier = step - reached
                reached |= step
            rows = tx.find_entities(reached)
            observations = tx.observations([r.id for r in rows])
            relations = [
                r for r in tx.relations_touching(reached) if r.from_ in reached and r.to in reached
            ]
            return GraphView(
                entities=tuple(entity_from_row(r, observations) for r in rows),
                relations=tuple(relations),
            )

        return await self.store.run(self.namespace, operation, readonly=True)

    async def observations(self, name: str) -> list[Observation]:
        """Return an entity's observations with their provenance.

        Raises:
            EntityNotFoundError: no entity has this name.
        """

        def operation(tx: GraphTransaction) -> list[Observation]:
            rows = tx.find_entities([name])
            if not rows:
                raise EntityNotFoundError(name)
            return tx.observations_with_provenance(rows[0].id)

        return await self.store.run(self.namespace, operation, readonly=True)
