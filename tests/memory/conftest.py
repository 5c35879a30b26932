"""Fixtures for the knowledge graph tests: a fresh store and the reference server.

The ``store`` fixture (and ``strict`` and ``released`` on it) runs each test on SQLite and
on PostgreSQL. The Postgres cases talk to the server on 127.0.0.1:5432
(``RELAYBATON_TEST_POSTGRES_DSN`` overrides the address), each in a throwaway schema
dropped afterwards; where no server answers they are skipped with the reason, except
under ``CI=true``, where they fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from relaybaton.memory import Compat, GraphStore, KnowledgeGraph
from relaybaton.memory._sqlite import open_sqlite_graph_store
from tests._postgres import PG_DSN, drop_schema, require_postgres, throwaway_schema

REFERENCE_VERSION = "2026.8.31"
REFERENCE_PACKAGE = "@modelcontextprotocol/server-memory"
FIXED_TIME = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[GraphStore]:
    if request.param == "sqlite":
        async with open_sqlite_graph_store(tmp_path / "graph.db") as s:
            yield s
        return
    require_postgres()
    from relaybaton.memory._postgres import open_postgres_graph_store

    schema = throwaway_schema()
    try:
        async with open_postgres_graph_store(PG_DSN, schema=schema) as p:
            yield p
    finally:
        drop_schema(schema)


@pytest.fixture
def strict(store: GraphStore) -> KnowledgeGraph:
    return KnowledgeGraph(store, compat=Compat.STRICT, clock=lambda: FIXED_TIME)


@pytest.fixture
def released(store: GraphStore) -> KnowledgeGraph:
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
