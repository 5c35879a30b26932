"""The composition root's part for memory and MCP: open the stores and servers a flow uses.

``open_flow_tools`` opens, on an exit stack the caller owns, the knowledge-graph store of
the ``[memory]`` table (when an agent uses memory) and a client session per ``[mcp.<name>]``
server an agent uses, and returns the tools they give, keyed by how the flow file names
them (``memory.search_nodes``, ``mcp.files.read_file``). The memory actors are started on
the runtime's actor system once it is up (``FlowTools.start``).
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

from relaybaton.actors import Tool
from relaybaton.errors import ConfigError
from relaybaton.flow._file import FlowFile
from relaybaton.flow._memory import memory_tools_of
from relaybaton.mcp import open_mcp_tools
from relaybaton.memory import Compat, Memory, create_memory_tools, open_graph_store
from relaybaton.memory._factory import is_postgres_url
from relaybaton.memory._mcp_tools import TOOLS, call_memory_tool
from relaybaton.runtime import ActorSystem

__all__ = ["FlowTools", "mcp_servers_of", "memory_store_path", "open_flow_tools"]


@dataclass
class FlowTools:
    """The tools a flow's memory and MCP servers give, by their flow-file names."""

    tools: dict[str, Tool] = field(default_factory=dict)
    memory: Memory | None = None

    def start(self, system: ActorSystem) -> None:
        """Start the memory actors on the runtime's actor system."""
        if self.memory is not None:
            self.memory.start(system)


def memory_store_path(flow: FlowFile) -> Path:
    """The SQLite file of the flow's memory: ``[memory].store`` against the flow's folder.

    Not for a ``postgresql://`` store (see :func:`is_postgres_url`).
    """
    path = Path(flow.memory.store).expanduser()
    return path if path.is_absolute() else flow.base_dir / path


def mcp_servers_of(flow: FlowFile) -> list[str]:
    """The MCP servers some agent uses, in ``[mcp]`` order."""
    used = {
        tool.removeprefix("mcp.").partition(".")[0]
        for agent in flow.agents
        for tool in agent.tools
        if isinstance(tool, str) and tool.startswith("mcp.")
    }
    return [name for name in flow.mcp if name in used]


async def open_flow_tools(flow: FlowFile, stack: AsyncExitStack) -> FlowTools:
    """Open what the flow's memory and MCP tools need on ``stack``; return their tools.

    Raises:
        ConfigError: an MCP server cannot be reached, or lacks a tool an agent names.
    """
    found = FlowTools()
    wanted = sorted({t for agent in flow.agents for t in memory_tools_of(agent)})
    if wanted:
        location: str | Path = flow.memory.store
        if not is_postgres_url(location) and location != ":memory:":
            location = memory_store_path(flow)
            location.parent.mkdir(parents=True, exist_ok=True)
        store = await stack.enter_async_context(open_graph_store(location))
        found.memory = Memory(store, call_memory_tool, compat=Compat(flow.memory.compat))
        declarations = {name: TOOLS[name].declaration() for name in wanted}
        for name, tool in create_memory_tools(found.memory, declarations).items():
            found.tools[f"memory.{name}"] = tool
    for server in mcp_servers_of(flow):
        config = flow.mcp[server]
        cwd = None
        if config.cwd is not None:
            cwd = str(
                Path(config.cwd) if Path(config.cwd).is_absolute() else flow.base_dir / config.cwd
            )
        tools = await stack.enter_async_context(
            open_mcp_tools(
                server,
                command=config.command,
                env=config.env,
                cwd=cwd,
                url=config.url,
                timeout=config.timeout_s,
            )
        )
        for name, tool in tools.items():
            found.tools[f"mcp.{server}.{name}"] = tool
        _check_named_tools(flow, server, tools)
    return found


def _check_named_tools(flow: FlowFile, server: str, tools: Mapping[str, object]) -> None:
    import difflib  # noqa: PLC0415 - only on this path

    for index, agent in enumerate(flow.agents):
        for i, tool in enumerate(agent.tools):
            if not isinstance(tool, str) or not tool.startswith(f"mcp.{server}."):
                continue
            name = tool.removeprefix(f"mcp.{server}.")
            if name != "*" and name not in tools:
                close = difflib.get_close_matches(name, list(tools), n=1, cutoff=0.6)
                hint = f' (did you mean "mcp.{server}.{close[0]}"?)' if close else ""
                raise ConfigError(
                    f'{flow.source}: agents[{index}].tools[{i}]: MCP server "{server}" has no '
                    f'tool "{name}"{hint}; its tools: {", ".join(sorted(tools)) or "none"}'
                )
