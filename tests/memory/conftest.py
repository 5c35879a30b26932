"""Fixtures for the knowledge graph tests: a fresh SQLite store and the reference server."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from relaybaton.actors._knowledge_graph import Compat, KnowledgeGraph
from relaybaton.adapters._graph_sqlite import SqliteGraphStore, open_sqlite_graph_store

REFERENCE_VERSION = "2026.8.31"
REFERENCE_PACKAGE = "@modelcontextprotocol/server-memory"
FIXED_TIME = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteGraphStore]:
    async with open_sqlite_graph_store(tmp_path / "graph.db") as s:
        yield s


@pytest.fixture
def strict(store: SqliteGraphStore) -> KnowledgeGraph:
    return KnowledgeGraph(store, compat=Compat.STRICT, clock=lambda: FIXED_TIME)


@pytest.fixture
def released(store: SqliteGraphStore) -> KnowledgeGraph:
    return KnowledgeGraph(store, compat=Compat.RELEASED, clock=lambda: FIXED_TIME)


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI=true requires the reference server", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def reference_server() -> Path:
    """Install the reference MCP memory server into a cache folder; return its entry point.

    Skipped with the reason when node or npm is missing or the install fails, unless
    ``CI=true``, where that is a failure.
    """
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        _unavailable("node and npm are needed to run the reference MCP memory server")
    cache = Path(
        os.environ.get(
            "RELAYBATON_MCP_MEMORY_CACHE",
            Path(tempfile.gettempdir()) / f"relaybaton-mcp-memory-{REFERENCE_VERSION}",
        )
    )
    entry = cache / "node_modules" / REFERENCE_PACKAGE / "dist" / "index.js"
    if not entry.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", f"{REFERENCE_PACKAGE}@{REFERENCE_VERSION}"],
            cwd=cache,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0 or not entry.is_file():
            _unavailable(f"npm install of {REFERENCE_PACKAGE} failed: {done.stderr[-500:]}")
    return entry
