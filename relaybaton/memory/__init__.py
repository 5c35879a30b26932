"""Long-term memory: the knowledge graph, the actor that owns it, its stores and its tools.

The graph has the MCP memory server's nine tools and semantics. One memory actor per
namespace (a user or a tenant) serializes its writes; the graph lives in SQLite (the
embedded default) or PostgreSQL (many nodes), and imports and exports the reference's JSONL
file.
"""

from relaybaton.memory._actor import Memory, create_memory_tools
from relaybaton.memory._factory import open_graph_store
from relaybaton.memory._graph import Compat, KnowledgeGraph
from relaybaton.memory._jsonl import export_memory_file, import_memory_file
from relaybaton.memory._sqlite import SqliteGraphStore, open_sqlite_graph_store
from relaybaton.memory._store import GraphStore, GraphTransaction
from relaybaton.memory._types import (
    AddedObservations,
    Entity,
    GraphPage,
    GraphView,
    Observation,
    ObservationAddition,
    ObservationDeletion,
    Provenance,
    Relation,
    to_wire,
)

__all__ = [
    "AddedObservations",
    "Compat",
    "Entity",
    "GraphPage",
    "GraphStore",
    "GraphTransaction",
    "GraphView",
    "KnowledgeGraph",
    "Memory",
    "Observation",
    "ObservationAddition",
    "ObservationDeletion",
    "Provenance",
    "Relation",
    "SqliteGraphStore",
    "create_memory_tools",
    "export_memory_file",
    "import_memory_file",
    "open_graph_store",
    "open_sqlite_graph_store",
    "to_wire",
]
