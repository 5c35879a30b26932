"""The ``memory import`` and ``memory export`` commands of the command line.

The main CLI calls :func:`add_memory_commands` with its argparse subparsers; each command
stores its function in ``func`` and returns an exit status. Errors the user can fix (a
malformed file, a missing extra, an unreadable store) print one clear line to stderr and
exit with status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import anyio
import structlog

from relaybaton.errors import RelaybatonError
from relaybaton.memory._factory import is_postgres_url, open_graph_store
from relaybaton.memory._jsonl import (
    export_memory_file,
    import_memory_file,
    write_memory_file,
)

__all__ = [
    "NAMESPACE_HELP",
    "STORE_HELP",
    "add_memory_commands",
    "memory_export",
    "memory_import",
    "run_graph_command",
]

_log = structlog.get_logger("relaybaton.cli")

USAGE_ERROR = 2
STORE_HELP = "the SQLite database (created if missing) or a postgresql:// URL"
NAMESPACE_HELP = "the graph's namespace (tenant or user), default: %(default)s"


async def memory_import(
    file: str | Path, store: str | Path, *, namespace: str = "default", replace: bool = False
) -> tuple[int, int]:
    """Import the reference's JSONL ``file`` into ``store`` (a SQLite file or a
    ``postgresql://`` URL); return counts."""
    async with open_graph_store(store) as graph_store:
        return await import_memory_file(graph_store, file, namespace=namespace, replace=replace)


async def memory_export(
    store: str | Path, out: str | Path | None = None, *, namespace: str = "default"
) -> str:
    """Export ``store`` as the reference's JSONL; write it to ``out`` (atomically) or
    return it when ``out`` is ``None``."""
    async with open_graph_store(store) as graph_store:
        text = await export_memory_file(graph_store, namespace=namespace)
    if out is not None:
        write_memory_file(out, text)
    return text


def run_graph_command(main: Callable[[], Coroutine[Any, Any, object]]) -> int:
    """Run ``main`` to the end; an error the user can fix is one line and exit status 2."""
    try:
        anyio.run(main)
    except (RelaybatonError, OSError, sqlite3.Error) as exc:
        _log.debug("command_refused", exc_info=exc)  # `--log-level debug` shows where
        print(f"relaybaton: error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    return 0


def _import_command(args: argparse.Namespace) -> int:
    async def main() -> None:
        entities, relations = await memory_import(
            args.file, args.store, namespace=args.namespace, replace=args.replace
        )
        print(f"imported {entities} entities and {relations} relations into {args.store}")

    return run_graph_command(main)


def _export_command(args: argparse.Namespace) -> int:
    async def main() -> None:
        text = await memory_export(args.store, args.output, namespace=args.namespace)
        if args.output is None:
            sys.stdout.write(text)
            sys.stdout.flush()

    return run_graph_command(main)


def _existing_store(value: str) -> str:
    if not is_postgres_url(value) and not Path(value).is_file():
        raise argparse.ArgumentTypeError(f"no store at {value!r}; import a file or serve first")
    return value


def add_memory_commands(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Register ``memory import`` and ``memory export`` on ``subparsers``.

    Each leaf parser sets ``func`` to a function of the parsed namespace that returns
    the process exit status.
    """
    memory = subparsers.add_parser("memory", help="long-term memory: the knowledge graph")
    memory_commands = memory.add_subparsers(dest="memory_command", required=True)

    imp = memory_commands.add_parser(
        "import", help="load an MCP memory server JSONL file into a store"
    )
    imp.add_argument("file", help="the JSONL file (MEMORY_FILE_PATH of the reference server)")
    imp.add_argument("--store", required=True, help=STORE_HELP)
    imp.add_argument("--namespace", default="default", help=NAMESPACE_HELP)
    imp.add_argument("--replace", action="store_true", help="overwrite a non-empty namespace")
    imp.set_defaults(func=_import_command)

    exp = memory_commands.add_parser("export", help="write a store as an MCP memory JSONL file")
    exp.add_argument("--store", required=True, type=_existing_store, help=STORE_HELP)
    exp.add_argument("-o", "--output", help="the file to write (default: standard output)")
    exp.add_argument("--namespace", default="default", help=NAMESPACE_HELP)
    exp.set_defaults(func=_export_command)
