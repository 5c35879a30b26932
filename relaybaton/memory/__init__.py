"""Long-term memory: the knowledge graph, the actor that owns it, its stores and its tools.

The graph has the MCP memory server's nine tools and semantics. One memory actor per
namespace (a user or a tenant) serializes its writes; the graph lives in SQLite (the
embedded default) or PostgreSQL (many nodes), and imports and exports the reference's JSONL
file.

Exported are the graph and what its operations take (entities, relations, observation
changes), the store it lives in and ``open_graph_store``, the memory actor and its tools
for agents, and the JSONL import and export. Pages, views, provenance and the concrete
stores are internals.
"""

from relaybaton.memory._actor import Memory, create_memory_tools
from relaybaton.memory._factory import open_graph_store
from relaybaton.memory._graph import Compat, KnowledgeGraph
from relaybaton.memory._jsonl import export_memory_file, import_memory_file
from relaybaton.memory._store import GraphStore
from relaybaton.memory._types import Entity, ObservationAddition, ObservationDeletion, Relation

__all__ = [
    "Compat",
    "Entity",
    "GraphStore",
    "KnowledgeGraph",
    "Memory",
    "ObservationAddition",
    "ObservationDeletion",
    "Relation",
    "create_memory_tools",
    "export_memory_file",
    "import_memory_file",
    "open_graph_store",
]
