"""The memory actor: one activation per namespace owns that namespace's knowledge graph.

Every tool call on a graph is a message to the activation keyed by its namespace (a user
or a tenant), so one namespace's calls run one at a time in mailbox order: a caller's
read-then-write can never interleave with another's, and nothing is lost however many
agents and conversations write at once. Namespaces run side by side. An idle activation is
passivated; the graph itself lives in the store, so nothing is lost with it either.

The actor speaks the MCP memory server's tools: a message is a tool name with its JSON
arguments (and who calls, recorded as provenance), a reply is the reference's text and
error flag. Turning a call into graph operations is the ``run_tool`` function it is given
(``call_memory_tool`` from the adapters, passed by the composition root), which keeps this
module free of any concrete adapter.

Agents reach the actor through ``create_memory_tools``: schema tools named ``memory_<tool>``
that ask the activation of the calling conversation's user (``"default"`` without one).
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from typing import Any, Protocol, cast, final

import msgspec

from relaybaton.actors import SchemaTool, ToolContext
from relaybaton.errors import ConfigError, ToolError
from relaybaton.memory._graph import Compat, KnowledgeGraph
from relaybaton.memory._store import GraphStore
from relaybaton.runtime import ActivationTable, Actor, ActorSystem

__all__ = [
    "DEFAULT_NAMESPACE",
    "Memory",
    "MemoryActor",
    "MemoryCall",
    "MemoryReply",
    "create_memory_tools",
    "memory_tool_name",
]

DEFAULT_NAMESPACE = "default"


class MemoryCall(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """One tool call on a namespace's graph (the namespace is the activation's key).

    ``arguments`` is the JSON object the model (or a client) sent, as text: it is decoded
    by the actor, so the message carries no untyped payload.
    """

    tool: str
    arguments: str = "{}"
    agent: str | None = None
    conversation_id: str | None = None


class MemoryReply(msgspec.Struct, frozen=True, kw_only=True):
    """The reference server's answer: its text, and whether it is an error."""

    text: str
    is_error: bool = False


class ToolOutcomeLike(Protocol):
    """What ``run_tool`` returns (``call_memory_tool``'s ``ToolOutcome`` fits)."""

    @property
    def text(self) -> str: ...

    @property
    def is_error(self) -> bool: ...


class RunTool(Protocol):
    """Run one memory tool call on a graph, as ``call_memory_tool`` does."""

    def __call__(
        self,
        graph: KnowledgeGraph,
        name: str,
        arguments: dict[str, Any] | None,
        *,
        agent: str | None = None,
        conversation_id: str | None = None,
    ) -> Awaitable[ToolOutcomeLike]: ...


class MemoryActor(Actor[MemoryCall, MemoryReply]):
    """Owns the graph of one namespace (its activation key); handles calls one at a time."""

    def __init__(self, store: GraphStore, run_tool: RunTool, *, compat: Compat) -> None:
        self.store = store
        self.run_tool = run_tool
        self.compat = compat
        self.graph: KnowledgeGraph | None = None

    async def on_start(self) -> None:
        namespace = self.context.key or DEFAULT_NAMESPACE
        self.graph = KnowledgeGraph(self.store, compat=self.compat, namespace=namespace)

    async def receive(self, message: MemoryCall) -> MemoryReply:
        assert self.graph is not None  # on_start ran
        try:
            arguments = msgspec.json.decode(message.arguments or "{}")
        except msgspec.DecodeError as exc:
            return MemoryReply(text=f"arguments are not valid JSON: {exc}", is_error=True)
        # A non-object goes through as it came: the tool's own check reports it in the
        # reference's words ("expected object, received array").
        outcome = await self.run_tool(
            self.graph,
            message.tool,
            cast("dict[str, Any] | None", arguments),
            agent=message.agent,
            conversation_id=message.conversation_id,
        )
        return MemoryReply(text=outcome.text, is_error=outcome.is_error)


@final
class Memory:
    """The memory actors of one actor system: ask a namespace's graph a tool call.

    Created unbound by the composition root when it builds the agents' tools, and bound with
    ``start`` once the runtime's actor system is up.
    """

    def __init__(
        self,
        store: GraphStore,
        run_tool: RunTool,
        *,
        compat: Compat = Compat.STRICT,
        name: str = "memory",
        capacity: int = 1000,
    ) -> None:
        self.store = store
        self.run_tool = run_tool
        self.compat = Compat(compat)
        self.name = name
        self.capacity = capacity
        self.table: ActivationTable[MemoryCall, MemoryReply] | None = None

    def start(self, system: ActorSystem) -> None:
        """Add the memory actors' activation table to ``system`` (once)."""
        if self.table is None:
            self.table = system.activations(
                self.name,
                lambda: MemoryActor(self.store, self.run_tool, compat=self.compat),
                capacity=self.capacity,
            )

    async def call(
        self,
        namespace: str,
        tool: str,
        arguments: str = "{}",
        *,
        agent: str | None = None,
        conversation_id: str | None = None,
        timeout: float | None = 60.0,
    ) -> MemoryReply:
        """Ask the activation of ``namespace`` to run one tool call; wait for its reply.

        Calls to one namespace run in the order they reach its mailbox. Cancelling the
        wait leaves a call already queued to run (its reply is then a dead letter).

        Raises:
            ConfigError: ``start`` was not called.
            AskTimeoutError, CalleeFailedError, ActorStoppedError: as ``ActorRef.ask``.
        """
        if self.table is None:
            raise ConfigError("the memory actors are not started; call Memory.start(system)")
        message = MemoryCall(
            tool=tool, arguments=arguments, agent=agent, conversation_id=conversation_id
        )
        ref = self.table.ref(namespace or DEFAULT_NAMESPACE)
        return await ref.ask(message, timeout=timeout, conversation_id=conversation_id)


def memory_tool_name(tool: str) -> str:
    """The name a model sees for a memory tool: ``memory_search_nodes``."""
    return f"memory_{tool}"


def create_memory_tools(
    memory: Memory, declarations: Mapping[str, Mapping[str, Any]]
) -> dict[str, SchemaTool]:
    """Schema tools for agents, one per declaration (``tools/list`` entries by tool name).

    Each asks the memory actor of the calling conversation's user; an error answer of the
    reference (a missing entity, a bad argument) reaches the model as a tool error.
    """
    tools: dict[str, SchemaTool] = {}
    for tool, declaration in declarations.items():
        exposed = memory_tool_name(tool)

        async def call(arguments: dict[str, Any], context: ToolContext, *, tool: str = tool) -> str:
            reply = await memory.call(
                context.user or DEFAULT_NAMESPACE,
                tool,
                msgspec.json.encode(arguments).decode(),
                agent=context.agent,
                conversation_id=context.conversation_id,
            )
            if reply.is_error:
                raise ToolError(reply.text, tool=memory_tool_name(tool))
            return reply.text

        # Every memory tool may run again after a crash: creates skip what exists, adds
        # skip contents already there, deletes ignore what is gone.
        tools[tool] = SchemaTool(
            exposed,
            call,
            description=str(declaration.get("description", tool)),
            parameters=_without_meta(declaration.get("inputSchema", {})),
        )
    return tools


def _without_meta(schema: object) -> dict[str, Any]:
    """The input schema as a provider's tool parameters (no ``$schema`` keyword)."""
    if not isinstance(schema, Mapping):
        return {"type": "object", "properties": {}}
    return {k: v for k, v in schema.items() if k != "$schema"}
