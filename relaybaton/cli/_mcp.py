"""The ``mcp memory`` command of the command line: the knowledge graph over MCP stdio.

The main CLI calls :func:`add_mcp_commands` with its argparse subparsers. The command
shares the memory commands' store and namespace options and their error handling: an
error the user can fix (a missing extra, an unreadable store) prints one line to stderr
and exits with status 2, never a traceback.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from relaybaton.cli._memory import NAMESPACE_HELP, STORE_HELP, run_graph_command
from relaybaton.memory._graph import Compat

__all__ = ["add_mcp_commands", "mcp_memory"]


async def mcp_memory(
    store: str | Path, compat: Compat | str = Compat.STRICT, namespace: str = "default"
) -> None:
    """Serve the graph in ``store`` over MCP stdio until the client hangs up."""
    # Imported here so the other commands work without the optional mcp extra.
    from relaybaton.mcp._memory_server import serve_memory_stdio  # noqa: PLC0415

    await serve_memory_stdio(store, compat=compat, namespace=namespace)


def _mcp_memory_command(args: argparse.Namespace) -> int:
    return run_graph_command(lambda: mcp_memory(args.store, args.compat, args.namespace))


def add_mcp_commands(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Register ``mcp memory`` on ``subparsers``.

    The leaf parser sets ``func`` to a function of the parsed namespace that returns the
    process exit status.
    """
    mcp = subparsers.add_parser("mcp", help="serve relaybaton pieces over MCP")
    mcp_commands = mcp.add_subparsers(dest="mcp_command", required=True)
    serve = mcp_commands.add_parser(
        "memory", help="serve the knowledge graph over stdio, like the MCP memory server"
    )
    serve.add_argument("--store", required=True, help=STORE_HELP)
    serve.add_argument(
        "--compat",
        choices=[c.value for c in Compat],
        default=Compat.STRICT.value,
        help="released: npm 2026.8.31 exactly; strict: the next release (default)",
    )
    serve.add_argument("--namespace", default="default", help=NAMESPACE_HELP)
    serve.set_defaults(func=_mcp_memory_command)
