"""The seam between the knowledge graph's semantics and the database that keeps it.

A store offers small primitives inside a transaction and runs a whole graph operation
as one transaction: :meth:`GraphStore.run` takes a plain function of a
:class:`GraphTransaction`, runs it in a worker thread inside ``BEGIN IMMEDIATE`` (SQLite)
or under a per-namespace advisory lock (PostgreSQL), and commits when it returns or rolls
back when it raises. The semantics (what a duplicate is, what fails) live in
:class:`relaybaton.actors.KnowledgeGraph`; a store knows rows, order and indexes only.

Why functions and not an async transaction object: one operation reads and then writes
(skip the names that exist, then insert), and several processes may share one database.
Holding the write lock across ``await`` points would let unrelated work of the event loop
stretch the lock; a function run whole in a thread holds it exactly as long as needed.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Protocol, TypeVar

from relaybaton.memory._types import (
    Entity,
    EntityRow,
    Observation,
    Provenance,
    Relation,
)

__all__ = ["GraphStore", "GraphTransaction"]

T = TypeVar("T")


class GraphTransaction(Protocol):
    """Primitives over one namespace, valid only inside :meth:`GraphStore.run`.

    Entities and relations are ordered by insertion ("file order"); a deleted and
    re-created entity goes to the end, as in the reference server's file.
    """

    def find_entities(self, names: Collection[str]) -> list[EntityRow]:
        """Return every entity with one of these names, in graph order (duplicates too)."""
        ...

    def insert_entity(self, name: str, entity_type: str) -> int:
        """Append an entity and return its id; names are not checked for uniqueness."""
        ...

    def observations(self, entity_ids: Collection[int]) -> dict[int, list[str]]:
        """Return each entity's observations in order (an empty list for none)."""
        ...

    def observations_with_provenance(self, entity_id: int) -> list[Observation]:
        """Return one entity's observations with who wrote them and when."""
        ...

    def insert_observations(
        self, entity_id: int, contents: Sequence[str], provenance: Provenance
    ) -> None:
        """Append observations to an entity, keeping their order and duplicates."""
        ...

    def delete_observations(self, entity_id: int, contents: Collection[str]) -> None:
        """Remove every observation of the entity equal to one of ``contents``."""
        ...

    def delete_entities(self, names: Collection[str]) -> None:
        """Remove the entities with these names and every relation touching the names."""
        ...

    def existing_relations(self, relations: Sequence[Relation]) -> set[tuple[str, str, str]]:
        """Return the ``(from, to, relationType)`` keys among these that are stored."""
        ...

    def insert_relation(self, relation: Relation) -> None:
        """Append a relation; neither uniqueness nor its endpoints are checked."""
        ...

    def delete_relations(self, relations: Sequence[Relation]) -> None:
        """Remove every stored relation equal to one of these."""
        ...

    def count(self) -> tuple[int, int]:
        """Return the number of entities and of relations."""
        ...

    def entities(self, offset: int = 0, limit: int | None = None) -> list[EntityRow]:
        """Return a slice of the entities in graph order."""
        ...

    def relations(self, offset: int = 0, limit: int | None = None) -> list[Relation]:
        """Return a slice of the relations in graph order."""
        ...

    def relations_touching(self, names: Collection[str]) -> list[Relation]:
        """Return the relations with either end among ``names``, in graph order."""
        ...

    def search_substring(self, needle: str) -> list[EntityRow]:
        """Return the entities whose lower-cased name, type or an observation contains
        ``needle`` (already lower-cased with ``str.lower``), in graph order."""
        ...

    def search_ranked(self, terms: Sequence[str], limit: int | None) -> list[EntityRow]:
        """Return the entities matching any of ``terms`` (as word prefixes) in their
        name, type or observations, or touching a relation whose type matches, best
        first."""
        ...

    def clear(self) -> None:
        """Remove the whole graph of this namespace."""
        ...


class GraphStore(Protocol):
    """A database holding knowledge graphs, one per namespace."""

    async def run(
        self,
        namespace: str,
        operation: Callable[[GraphTransaction], T],
        *,
        readonly: bool = False,
    ) -> T:
        """Run ``operation`` as one transaction on ``namespace`` and return its result.

        A writing transaction takes the write lock up front, so concurrent writers (tasks
        or processes) run one after the other and none loses an update; a ``readonly``
        one reads a consistent snapshot without taking it. If ``operation`` raises,
        nothing it did is kept and the error propagates. Cancellation waits until the
        transaction has committed or rolled back in its thread, so it is never left
        half-done, and then takes effect.
        """
        ...

    async def aclose(self) -> None:
        """Close the connection; idempotent."""
        ...


def entity_from_row(row: EntityRow, observations: dict[int, list[str]]) -> Entity:
    """Build the reference-shaped entity from a row and the observations map."""
    return Entity(
        name=row.name, entity_type=row.entity_type, observations=tuple(observations[row.id])
    )
