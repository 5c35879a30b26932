"""The knowledge graph's values, shaped as the MCP memory server puts them on the wire.

Field names follow the reference server's JSON (``entityType``, ``from``,
``relationType``, ``entityName``...) through msgspec renames, so
``msgspec.to_builtins(value)`` is exactly the reference's result shape while Python
code reads snake_case attributes. Everything is frozen: a value handed to a caller can
never change under the graph that returned it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

import msgspec

__all__ = [
    "AddedObservations",
    "Entity",
    "EntityRow",
    "GraphPage",
    "GraphView",
    "Observation",
    "ObservationAddition",
    "ObservationDeletion",
    "Provenance",
    "Relation",
    "to_wire",
]


class Entity(msgspec.Struct, frozen=True, kw_only=True):
    """A node: a unique-by-name thing with a type and a list of observations."""

    name: str
    entity_type: str = msgspec.field(name="entityType")
    observations: tuple[str, ...] = ()


class Relation(msgspec.Struct, frozen=True, kw_only=True):
    """A directed, typed edge between two entity names (in active voice)."""

    from_: str = msgspec.field(name="from")
    to: str
    relation_type: str = msgspec.field(name="relationType")

    @property
    def key(self) -> tuple[str, str, str]:
        """The triple that identifies the relation: ``(from, to, relationType)``."""
        return (self.from_, self.to, self.relation_type)


class ObservationAddition(msgspec.Struct, frozen=True, kw_only=True):
    """One item of ``add_observations``: contents to add to one entity."""

    entity_name: str = msgspec.field(name="entityName")
    contents: tuple[str, ...]


class AddedObservations(msgspec.Struct, frozen=True, kw_only=True):
    """One item of the ``add_observations`` result: what was actually added."""

    entity_name: str = msgspec.field(name="entityName")
    added_observations: tuple[str, ...] = msgspec.field(name="addedObservations")


class ObservationDeletion(msgspec.Struct, frozen=True, kw_only=True):
    """One item of ``delete_observations``: contents to remove from one entity."""

    entity_name: str = msgspec.field(name="entityName")
    observations: tuple[str, ...]


class GraphView(msgspec.Struct, frozen=True, kw_only=True):
    """The result of ``read_graph``, ``search_nodes``, ``open_nodes`` and ``neighbours``."""

    entities: tuple[Entity, ...] = ()
    relations: tuple[Relation, ...] = ()


class GraphPage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of ``read_graph``: a slice of the graph's lines in file order.

    The graph is read as its JSONL file would list it, entities first and then
    relations, so concatenating the pages rebuilds the whole graph exactly.
    ``next_offset`` is ``None`` on the last page.
    """

    entities: tuple[Entity, ...] = ()
    relations: tuple[Relation, ...] = ()
    next_offset: int | None = msgspec.field(default=None, name="nextOffset")
    total: int = 0


class Provenance(msgspec.Struct, frozen=True, kw_only=True):
    """Who wrote an observation, in which conversation, and when (UTC)."""

    agent: str | None = None
    conversation_id: str | None = None
    at: datetime | None = None


class Observation(msgspec.Struct, frozen=True, kw_only=True):
    """An observation with its provenance; the reference shapes show only ``content``."""

    content: str
    provenance: Provenance


class EntityRow(NamedTuple):
    """An entity as a store holds it: ``id`` orders the graph (insertion order)."""

    id: int
    name: str
    entity_type: str


def _lists(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [_lists(v) for v in value]
    if isinstance(value, dict):
        return {k: _lists(v) for k, v in value.items()}
    return value


def to_wire(value: object) -> Any:
    """Return ``value`` as the reference server's JSON shape: dicts, lists and strings."""
    return _lists(msgspec.to_builtins(value))
