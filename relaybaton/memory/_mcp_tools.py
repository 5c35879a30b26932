"""The nine MCP memory tools as the reference server declares and answers them.

This module knows no MCP SDK: it holds the tool declarations (input and output schemas,
annotations), checks arguments the way the reference's validator reports them, calls a
:class:`~relaybaton.actors.KnowledgeGraph` and shapes the answer. A result is
``(structured, text, is_error)``; the SDK glue in ``_mcp_memory_server`` puts it on the
wire. Keeping this apart lets the tests check every message without a subprocess.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from relaybaton.errors import GraphError
from relaybaton.memory._graph import KnowledgeGraph
from relaybaton.memory._types import (
    Entity,
    ObservationAddition,
    ObservationDeletion,
    Relation,
    to_wire,
)

__all__ = ["TOOLS", "ToolOutcome", "ToolSpec", "call_memory_tool", "js_json"]

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")

# --- schemas --------------------------------------------------------------------------
# A compact notation for the reference's zod shapes: "string", ["string"] (array of),
# or a dict of fields (in declaration order) to (shape, description or None).
Shape = str | list[Any] | dict[str, tuple[Any, str | None]]

_ENTITY: Shape = {
    "name": ("string", "The name of the entity"),
    "entityType": ("string", "The type of the entity"),
    "observations": (["string"], "An array of observation contents associated with the entity"),
}
_RELATION: Shape = {
    "from": ("string", "The name of the entity where the relation starts"),
    "to": ("string", "The name of the entity where the relation ends"),
    "relationType": ("string", "The type of the relation"),
}
_DONE: Shape = {"success": ("boolean", None), "message": ("string", None)}
_GRAPH: Shape = {"entities": ([_ENTITY], None), "relations": ([_RELATION], None)}


def _schema(shape: Shape, *, closed: bool) -> dict[str, Any]:
    if isinstance(shape, str):
        return {"type": shape}
    if isinstance(shape, list):
        return {"type": "array", "items": _schema(shape[0], closed=closed)}
    properties: dict[str, Any] = {}
    for key, (sub, description) in shape.items():
        properties[key] = _schema(sub, closed=closed)
        if description is not None:
            properties[key]["description"] = description
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if shape:
        schema["required"] = list(shape)
    if closed:
        # Output schemas are strict objects in the reference; input schemas are not.
        schema["additionalProperties"] = False
    return schema


def _root(shape: Shape, *, closed: bool) -> dict[str, Any]:
    return {"$schema": "http://json-schema.org/draft-07/schema#", **_schema(shape, closed=closed)}


class ToolSpec(NamedTuple):
    """One tool's declaration, as ``tools/list`` shows it."""

    name: str
    title: str
    description: str
    input_shape: Shape
    output_shape: Shape
    read_only: bool
    destructive: bool
    idempotent: bool

    def declaration(self) -> dict[str, Any]:
        """Return the tool as the JSON of a ``tools/list`` entry."""
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "inputSchema": _root(self.input_shape, closed=False),
            "outputSchema": _root(self.output_shape, closed=True),
            "annotations": {
                "readOnlyHint": self.read_only,
                "destructiveHint": self.destructive,
                "idempotentHint": self.idempotent,
                "openWorldHint": False,
            },
        }


def _names(description: str) -> tuple[Any, str]:
    return (["string"], description)


_OBS_ADD: Shape = {
    "entityName": ("string", "The name of the entity to add the observations to"),
    "contents": (["string"], "An array of observation contents to add"),
}
_OBS_DEL: Shape = {
    "entityName": ("string", "The name of the entity containing the observations"),
    "observations": (["string"], "An array of observations to delete"),
}
_ADDED: Shape = {"entityName": ("string", None), "addedObservations": (["string"], None)}
_QUERY = "The search query to match against entity names, types, and observation content"

TOOLS: dict[str, ToolSpec] = {
    t.name: t
    for t in (
        ToolSpec(
            "create_entities",
            "Create Entities",
            "Create multiple new entities in the knowledge graph",
            {"entities": ([_ENTITY], None)},
            {"entities": ([_ENTITY], None)},
            read_only=False,
            destructive=False,
            idempotent=False,
        ),
        ToolSpec(
            "create_relations",
            "Create Relations",
            "Create multiple new relations between entities in the knowledge graph. "
            "Relations should be in active voice",
            {"relations": ([_RELATION], None)},
            {"relations": ([_RELATION], None)},
            read_only=False,
            destructive=False,
            idempotent=False,
        ),
        ToolSpec(
            "add_observations",
            "Add Observations",
            "Add new observations to existing entities in the knowledge graph",
            {"observations": ([_OBS_ADD], None)},
            {"results": ([_ADDED], None)},
            read_only=False,
            destructive=False,
            idempotent=False,
        ),
        ToolSpec(
            "delete_entities",
            "Delete Entities",
            "Delete multiple entities and their associated relations from the knowledge graph",
            {"entityNames": _names("An array of entity names to delete")},
            _DONE,
            read_only=False,
            destructive=True,
            idempotent=True,
        ),
        ToolSpec(
            "delete_observations",
            "Delete Observations",
            "Delete specific observations from entities in the knowledge graph",
            {"deletions": ([_OBS_DEL], None)},
            _DONE,
            read_only=False,
            destructive=True,
            idempotent=True,
        ),
        ToolSpec(
            "delete_relations",
            "Delete Relations",
            "Delete multiple relations from the knowledge graph",
            {"relations": ([_RELATION], "An array of relations to delete")},
            _DONE,
            read_only=False,
            destructive=True,
            idempotent=True,
        ),
        ToolSpec(
            "read_graph",
            "Read Graph",
            "Read the entire knowledge graph",
            {},
            _GRAPH,
            read_only=True,
            destructive=False,
            idempotent=True,
        ),
        ToolSpec(
            "search_nodes",
            "Search Nodes",
            "Search for nodes in the knowledge graph based on a query",
            {"query": ("string", _QUERY)},
            _GRAPH,
            read_only=True,
            destructive=False,
            idempotent=True,
        ),
        ToolSpec(
            "open_nodes",
            "Open Nodes",
            "Open specific nodes in the knowledge graph by their names",
            {"names": _names("An array of entity names to retrieve")},
            _GRAPH,
            read_only=True,
            destructive=False,
            idempotent=True,
        ),
    )
}

# --- validation -----------------------------------------------------------------------

_MISSING = object()


def _js_type(value: object) -> str:
    if value is _MISSING:
        return "undefined"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _check(value: object, shape: Shape, path: str, issues: list[str]) -> None:
    """Collect the issues of ``value`` against ``shape`` in the reference's words."""
    expected = shape if isinstance(shape, str) else "array" if isinstance(shape, list) else "object"
    if _js_type(value) != expected:
        where = f" at {path}" if path else ""
        issues.append(f"Invalid input: expected {expected}, received {_js_type(value)}{where}")
        return
    if isinstance(shape, list):
        assert isinstance(value, list)
        for i, item in enumerate(value):
            _check(item, shape[0], f"{path}[{i}]", issues)
    elif isinstance(shape, dict):
        assert isinstance(value, dict)
        for key, (sub, _) in shape.items():
            _check(value.get(key, _MISSING), sub, f"{path}.{key}" if path else key, issues)


# --- answers --------------------------------------------------------------------------


class ToolOutcome(NamedTuple):
    """A tool's answer: structured content (``None`` on error), text, error flag."""

    structured: dict[str, Any] | None
    text: str
    is_error: bool


def js_json(value: object, *, indent: int | None = None) -> str:
    """Encode as ``JSON.stringify`` does: non-ASCII raw, lone surrogates escaped."""
    separators = (",", ": ") if indent is not None else (",", ":")
    text = json.dumps(value, ensure_ascii=False, indent=indent, separators=separators)
    return _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _answer(key: str, value: object) -> ToolOutcome:
    builtins = to_wire(value)
    return ToolOutcome({key: builtins}, js_json(builtins, indent=2), is_error=False)


def _graph(value: object) -> ToolOutcome:
    builtins = to_wire(value)
    return ToolOutcome(builtins, js_json(builtins, indent=2), is_error=False)


def _done(message: str) -> ToolOutcome:
    return ToolOutcome({"success": True, "message": message}, message, is_error=False)


def _relations(items: list[dict[str, str]]) -> list[Relation]:
    return [Relation(from_=r["from"], to=r["to"], relation_type=r["relationType"]) for r in items]


class _Who(NamedTuple):
    """Who writes: recorded with each new observation (provenance)."""

    agent: str | None = None
    conversation_id: str | None = None


_Handler = Callable[[KnowledgeGraph, dict[str, Any], _Who], Awaitable[ToolOutcome]]


async def _create_entities(graph: KnowledgeGraph, args: dict[str, Any], who: _Who) -> ToolOutcome:
    entities = [
        Entity(name=e["name"], entity_type=e["entityType"], observations=tuple(e["observations"]))
        for e in args["entities"]
    ]
    return _answer(
        "entities",
        await graph.create_entities(entities, agent=who.agent, conversation_id=who.conversation_id),
    )


async def _create_relations(graph: KnowledgeGraph, args: dict[str, Any], who: _Who) -> ToolOutcome:
    return _answer("relations", await graph.create_relations(_relations(args["relations"])))


async def _add_observations(graph: KnowledgeGraph, args: dict[str, Any], who: _Who) -> ToolOutcome:
    additions = [
        ObservationAddition(entity_name=o["entityName"], contents=tuple(o["contents"]))
        for o in args["observations"]
    ]
    return _answer(
        "results",
        await graph.add_observations(
            additions, agent=who.agent, conversation_id=who.conversation_id
        ),
    )


async def _delete_entities(graph: KnowledgeGraph, args: dict[str, Any], who: _Who) -> ToolOutcome:
    await graph.delete_entities(args["entityNames"])
    return _done("Entities deleted successfully")


async def _delete_observations(
    graph: KnowledgeGraph, args: dict[str, Any], who: _Who
) -> ToolOutcome:
    deletions = [
        ObservationDeletion(entity_name=d["entityName"], observations=tuple(d["observations"]))
        for d in args["deletions"]
    ]
    await graph.delete_observations(deletions)
    return _done("Observations deleted successfully")


async def _delete_relations(graph: KnowledgeGraph, args: dict[str, Any], who: _Who) -> ToolOutcome:
    await graph.delete_relations(_relations(args["relations"]))
    return _done("Relations deleted successfully")


async def _read_graph(graph: KnowledgeGraph, args: dict[str, Any], who: _Who) -> ToolOutcome:
    return _graph(await graph.read_graph())


async def _search_nodes(graph: KnowledgeGraph, args: dict[str, Any], who: _Who) -> ToolOutcome:
    return _graph(await graph.search_nodes(args["query"]))


async def _open_nodes(graph: KnowledgeGraph, args: dict[str, Any], who: _Who) -> ToolOutcome:
    return _graph(await graph.open_nodes(args["names"]))


_HANDLERS: dict[str, _Handler] = {
    "create_entities": _create_entities,
    "create_relations": _create_relations,
    "add_observations": _add_observations,
    "delete_entities": _delete_entities,
    "delete_observations": _delete_observations,
    "delete_relations": _delete_relations,
    "read_graph": _read_graph,
    "search_nodes": _search_nodes,
    "open_nodes": _open_nodes,
}


async def call_memory_tool(
    graph: KnowledgeGraph,
    name: str,
    arguments: dict[str, Any] | None,
    *,
    agent: str | None = None,
    conversation_id: str | None = None,
) -> ToolOutcome:
    """Run one tool call and answer it as the reference server does.

    ``agent`` and ``conversation_id`` (optional) are recorded as the provenance of the
    observations the call adds.

    Unknown tools, arguments that fail the schema and graph errors (a missing entity)
    become error outcomes with the reference's text; other exceptions propagate.
    """
    spec = TOOLS.get(name)
    if spec is None:
        return ToolOutcome(None, f"MCP error -32602: Tool {name} not found", is_error=True)
    args: dict[str, Any] = arguments or {}
    issues: list[str] = []
    _check(args, spec.input_shape, "", issues)
    if issues:
        text = "\n".join(issues)
        return ToolOutcome(
            None,
            f"MCP error -32602: Input validation error: Invalid arguments for tool {name}: {text}",
            is_error=True,
        )
    try:
        return await _HANDLERS[name](graph, args, _Who(agent, conversation_id))
    except GraphError as exc:
        return ToolOutcome(None, str(exc), is_error=True)
