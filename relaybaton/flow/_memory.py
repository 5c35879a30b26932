"""Flow-file checks for long-term memory and MCP servers (``[memory]``, ``[mcp.<name>]``).

Agents name memory tools as ``memory.<tool>`` (or take a set with ``memory = "read"`` or
``"read-write"``) and the tools of an MCP server as ``mcp.<server>.<tool>`` or
``mcp.<server>.*``. Which tools an MCP server has is known only once it is reached, so
here only the server's name is checked; ``open_flow`` reports an unknown tool.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from relaybaton.errors import FlowProblem

if TYPE_CHECKING:
    from relaybaton.flow._file import AgentConfig, FlowFile

__all__ = [
    "MEMORY_ACCESS",
    "MEMORY_READ_TOOLS",
    "MEMORY_TOOLS",
    "check_memory_and_mcp",
    "memory_tools_of",
]

# The nine tools of the MCP memory server, in its declaration order.
MEMORY_TOOLS = (
    "create_entities",
    "create_relations",
    "add_observations",
    "delete_entities",
    "delete_observations",
    "delete_relations",
    "read_graph",
    "search_nodes",
    "open_nodes",
)
MEMORY_READ_TOOLS = ("read_graph", "search_nodes", "open_nodes")
MEMORY_ACCESS = {"read": MEMORY_READ_TOOLS, "read-write": MEMORY_TOOLS}
_COMPAT = ("strict", "released")
_Add = Callable[[FlowProblem], None]


def _suggest(name: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""


def memory_tools_of(agent: AgentConfig) -> list[str]:
    """The memory tools an agent gets, by tool name, in a stable order without repeats."""
    chosen: list[str] = list(MEMORY_ACCESS.get(agent.memory or "", ()))
    for tool in agent.tools:
        if isinstance(tool, str) and tool.startswith("memory."):
            chosen.append(tool.removeprefix("memory."))
    return [t for t in MEMORY_TOOLS if t in chosen]


def uses_memory(flow: FlowFile) -> bool:
    """Whether any agent of the flow has a memory tool."""
    return any(memory_tools_of(agent) for agent in flow.agents)


def check_memory_and_mcp(flow: FlowFile) -> list[FlowProblem]:
    """Every problem in the memory and MCP parts of a decoded flow."""
    problems: list[FlowProblem] = []
    add = problems.append
    if flow.memory.compat not in _COMPAT:
        add(
            FlowProblem(
                "memory.compat",
                f'"{flow.memory.compat}" is not a compatibility mode; use one of '
                f"{', '.join(_COMPAT)}{_suggest(flow.memory.compat, _COMPAT)}",
            )
        )
    if not flow.memory.store:
        add(FlowProblem("memory.store", "give the path of the SQLite file"))
    for name, server in flow.mcp.items():
        at = f"mcp.{name}"
        if (server.command is None) == (server.url is None):
            add(
                FlowProblem(
                    at,
                    'give either command = ["program", "arg", ...] (stdio) or '
                    'url = "http://host:port/mcp" (streamable HTTP)',
                )
            )
        elif server.command is not None and not server.command:
            add(FlowProblem(f"{at}.command", "must name the program to run"))
        elif server.url is not None and not server.url.startswith(("http://", "https://")):
            add(FlowProblem(f"{at}.url", f'"{server.url}" is not an http:// or https:// URL'))
        if server.timeout_s <= 0:
            add(FlowProblem(f"{at}.timeout_s", "must be positive"))
    for index, agent in enumerate(flow.agents):
        _check_agent(agent, f"agents[{index}]", flow, add)
    return problems


def _check_agent(agent: AgentConfig, at: str, flow: FlowFile, add: _Add) -> None:
    if agent.memory is not None and agent.memory not in MEMORY_ACCESS:
        add(
            FlowProblem(
                f"{at}.memory",
                f'"{agent.memory}" is not a memory access; use "read" or "read-write"'
                f"{_suggest(agent.memory, MEMORY_ACCESS)}",
            )
        )
    for i, tool in enumerate(agent.tools):
        if not isinstance(tool, str):
            continue
        path = f"{at}.tools[{i}]"
        if tool.startswith("memory."):
            name = tool.removeprefix("memory.")
            if name not in MEMORY_TOOLS:
                hint = _suggest(tool, [f"memory.{t}" for t in MEMORY_TOOLS])
                add(FlowProblem(path, f'no memory tool "{tool}"{hint}'))
        elif tool.startswith("mcp."):
            server, sep, name = tool.removeprefix("mcp.").partition(".")
            if not sep or not server or not name:
                add(
                    FlowProblem(
                        path,
                        f'"{tool}" should be "mcp.<server>.<tool>" or "mcp.<server>.*"',
                    )
                )
            elif server not in flow.mcp:
                hint = _suggest(server, flow.mcp)
                add(
                    FlowProblem(
                        path,
                        f'no MCP server named "{server}"{hint}; add an [mcp.{server}] table',
                    )
                )
