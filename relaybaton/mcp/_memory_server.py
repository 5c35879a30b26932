"""The knowledge graph served over MCP stdio, in place of the reference memory server.

Built on the official ``mcp`` SDK's low-level server, imported only when a server is
made, so the rest of relaybaton works without it. Clients configure it like the
reference (a command and its arguments) and see the same nine tools, schemas, results
and error texts; the difference is underneath: a SQLite (or PostgreSQL) store,
transactions, namespaces.
"""

from __future__ import annotations

import importlib.metadata
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

from relaybaton.errors import ConfigError
from relaybaton.memory import Compat, KnowledgeGraph, open_graph_store
from relaybaton.memory._mcp_tools import TOOLS, call_memory_tool

if TYPE_CHECKING:
    from mcp.server.lowlevel import Server

__all__ = ["create_memory_server", "serve_memory_stdio"]

SERVER_NAME = "relaybaton-memory"
# The reference server's one resource: the whole graph, as read_graph answers it.
GRAPH_URI = "memory://knowledge-graph"
_MUTATIONS = frozenset(
    {
        "create_entities",
        "create_relations",
        "add_observations",
        "delete_entities",
        "delete_observations",
        "delete_relations",
    }
)


def _require_mcp() -> None:
    try:
        import mcp  # noqa: F401, PLC0415 - only looks whether the optional extra is there
    except ImportError as exc:
        raise ConfigError(
            "serving memory over MCP needs the official MCP SDK, which is not installed; "
            "install it with: pip install 'relaybaton[mcp]'"
        ) from exc


def _version() -> str:
    try:
        return importlib.metadata.version("relaybaton")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"  # run from a source tree that was never installed


def create_memory_server(graph: KnowledgeGraph) -> Server[Any]:
    """Return an MCP server exposing ``graph`` through the nine memory tools.

    Tool calls may arrive concurrently; each is one store transaction, so none loses
    another's update. A failure of the graph (a missing entity, a bad argument) is an
    ``isError`` tool result with the reference's text; anything else (the database
    failing) is also reported as an error result, with its type, and the server goes on.

    Raises:
        ConfigError: the ``mcp`` extra is not installed.
    """
    _require_mcp()
    import mcp_types as types  # noqa: PLC0415 - optional extra
    from mcp.server.context import ServerRequestContext  # noqa: PLC0415 - optional extra
    from mcp.server.lowlevel import Server  # noqa: PLC0415 - optional extra

    tools = [types.Tool.model_validate(spec.declaration()) for spec in TOOLS.values()]
    resource = types.Resource(
        name="knowledge-graph",
        title="Knowledge Graph",
        uri=GRAPH_URI,
        description="The full knowledge graph with all entities and relations",
        mime_type="application/json",
    )
    subscribed: set[str] = set()  # URIs the client asked to hear about, as the reference

    async def list_resources(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        return types.ListResourcesResult(resources=[resource])

    async def read_resource(
        ctx: ServerRequestContext[Any], params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        if str(params.uri) != GRAPH_URI:
            raise ValueError(f"Resource {params.uri} not found")
        # The read_graph tool's text: the graph as JSON, indented by two spaces.
        outcome = await call_memory_tool(graph, "read_graph", {})
        contents = types.TextResourceContents(
            uri=GRAPH_URI, mime_type="application/json", text=outcome.text
        )
        return types.ReadResourceResult(contents=[contents])

    async def subscribe(
        ctx: ServerRequestContext[Any], params: types.SubscribeRequestParams
    ) -> types.EmptyResult:
        subscribed.add(str(params.uri))
        return types.EmptyResult()

    async def unsubscribe(
        ctx: ServerRequestContext[Any], params: types.UnsubscribeRequestParams
    ) -> types.EmptyResult:
        subscribed.discard(str(params.uri))
        return types.EmptyResult()

    async def list_tools(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=tools)

    async def call_tool(
        ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        try:
            outcome = await call_memory_tool(graph, params.name, params.arguments)
        except Exception as exc:  # the client gets the error, the server lives
            text = f"{type(exc).__name__}: {exc}"
            # Straight to stderr, not through structlog: on stdio, stdout is the protocol,
            # and structlog writes to stdout until someone configures it.
            print(f"relaybaton memory: tool {params.name} failed: {text}", file=sys.stderr)
            traceback.print_exception(exc, file=sys.stderr)
            return types.CallToolResult(
                content=[types.TextContent(type="text", text=text)], is_error=True
            )
        if GRAPH_URI in subscribed and params.name in _MUTATIONS and not outcome.is_error:
            await ctx.session.send_resource_updated(GRAPH_URI)
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=outcome.text)],
            structured_content=outcome.structured,
            is_error=outcome.is_error,
        )

    return Server(
        SERVER_NAME,
        version=_version(),
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_list_resources=list_resources,
        on_read_resource=read_resource,
        on_subscribe_resource=subscribe,
        on_unsubscribe_resource=unsubscribe,
    )


async def serve_memory_stdio(
    store_path: str | Path,
    *,
    compat: Compat | str = Compat.STRICT,
    namespace: str = "default",
) -> None:
    """Serve the graph of ``namespace`` in ``store_path`` (a SQLite file or a
    ``postgresql://`` URL) over stdio.

    Returns when the client closes stdin; the store is closed on the way out, also on
    cancellation.

    Raises:
        ConfigError: the ``mcp`` extra is not installed.
    """
    _require_mcp()
    from mcp.server.stdio import stdio_server  # noqa: PLC0415 - optional extra

    async with open_graph_store(store_path) as store:
        graph = KnowledgeGraph(store, compat=Compat(compat), namespace=namespace)
        server = create_memory_server(graph)
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())
