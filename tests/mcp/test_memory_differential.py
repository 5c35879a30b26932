"""The reference server and ours, same calls one at a time, same answers and same file.

Both run as real subprocesses over stdio and are driven by the official MCP SDK's stdio
client, as an MCP client would. Skipped where node/npm are missing, unless CI=true.
"""

from __future__ import annotations

import random
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mcp", reason="the mcp extra (pip install 'relaybaton[mcp]') is needed")

from mcp import ClientSession, StdioServerParameters, stdio_client

from relaybaton.cli._memory import memory_export

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
Call = tuple[str, dict[str, Any]]
SERVE = ["-m", "relaybaton", "mcp", "memory"]
OBS = ["o", "q"]


def ent(name: str, kind: str, *obs: str) -> dict[str, Any]:
    return {"name": name, "entityType": kind, "observations": list(obs)}


def rel(a: str, b: str, kind: str) -> dict[str, str]:
    return {"from": a, "to": b, "relationType": kind}


SCRIPT: list[Call] = [
    ("read_graph", {}),
    ("create_entities", {"entities": [ent("Zoë", "person", "likes tea", "likes tea", "é")]}),
    ("create_entities", {"entities": [ent("Zoë", "robot"), ent("Acme", "org"), ent("A", "x")]}),
    ("create_entities", {"entities": [ent("A", "dup"), ent("B", "t", "🙂"), ent("B", "t2")]}),
    ("create_relations", {"relations": [rel("Zoë", "Acme", "works_at"), rel("A", "Nobody", "r")]}),
    ("create_relations", {"relations": [rel("Zoë", "Acme", "works_at"), rel("A", "B", "r")] * 2}),
    ("add_observations", {"observations": [{"entityName": "Zoë", "contents": ["x", "x", "é"]}]}),
    ("add_observations", {"observations": [{"entityName": "B", "contents": ["b"]}] * 2}),
    ("add_observations", {"observations": [{"entityName": "Nobody", "contents": ["y"]}]}),
    ("search_nodes", {"query": "ZOË"}),
    ("search_nodes", {"query": ""}),
    ("search_nodes", {"query": "works_at"}),
    ("open_nodes", {"names": ["B", "Zoë", "Nobody"]}),
    ("delete_observations", {"deletions": [{"entityName": "Zoë", "observations": ["x"]}]}),
    ("delete_observations", {"deletions": [{"entityName": "Ghost", "observations": ["x"]}]}),
    ("delete_relations", {"relations": [rel("A", "B", "r"), rel("Q", "R", "s")]}),
    ("delete_entities", {"entityNames": ["A", "Ghost"]}),
    ("read_graph", {}),
    ("nope", {}),
    ("search_nodes", {}),
    ("open_nodes", {"names": "Zoë"}),
    ("create_entities", {"entities": [{"observations": "x"}]}),
    ("add_observations", {"observations": [{"entityName": "B", "contents": [1, None, True]}]}),
    ("create_relations", {"relations": [{"from": "a"}], "extra": 1}),
    ("read_graph", {"ignored": True}),
]


def random_calls(seed: int, n: int) -> list[Call]:
    """Valid calls over a small alphabet, so they collide often."""
    rng = random.Random(seed)
    names = ["a", "b", "c", "Ä"]

    def some(pool: Sequence[str], k: int = 3) -> list[str]:
        return [rng.choice(pool) for _ in range(rng.randint(0, k))]

    def relation() -> dict[str, str]:
        return rel(rng.choice(names), rng.choice(names), rng.choice(["r", "s"]))

    makers = [
        lambda: (
            "create_entities",
            {"entities": [ent(x, "t", *some(["o", "p"])) for x in some(names)]},
        ),
        lambda: ("create_relations", {"relations": [relation() for _ in range(rng.randint(0, 3))]}),
        lambda: (
            "add_observations",
            {"observations": [{"entityName": x, "contents": some(OBS)} for x in some(names)]},
        ),
        lambda: ("delete_entities", {"entityNames": some(names, 2)}),
        lambda: (
            "delete_observations",
            {"deletions": [{"entityName": x, "observations": some(OBS)} for x in some(names)]},
        ),
        lambda: ("delete_relations", {"relations": [relation() for _ in range(rng.randint(0, 2))]}),
        lambda: ("read_graph", {}),
        lambda: ("search_nodes", {"query": rng.choice(["", "a", "Ä", "ä", "O", "t"])}),
        lambda: ("open_nodes", {"names": some(names)}),
    ]
    return [rng.choice(makers)() for _ in range(n)]


@asynccontextmanager
async def session(params: StdioServerParameters) -> AsyncIterator[ClientSession]:
    async with stdio_client(params) as (read, write), ClientSession(read, write) as client:
        await client.initialize()
        yield client


async def answers(params: StdioServerParameters, calls: list[Call]) -> list[dict[str, Any]]:
    """Send each call and wait for its answer before the next: sequential by design."""
    results = []
    async with session(params) as client:
        for name, arguments in calls:
            result = await client.call_tool(name, arguments)
            results.append(result.model_dump(by_alias=True, exclude_none=True, mode="json"))
    return results


async def compare(reference_server: Path, tmp_path: Path, calls: list[Call]) -> None:
    memory_file, store = tmp_path / "memory.jsonl", tmp_path / "memory.db"
    theirs = StdioServerParameters(
        command="node", args=[str(reference_server)], env={"MEMORY_FILE_PATH": str(memory_file)}
    )
    ours = StdioServerParameters(
        command=sys.executable,
        args=[*SERVE, "--store", str(store), "--compat", "released"],
        env={"PYTHONPATH": str(ROOT)},
    )
    expected = await answers(theirs, calls)
    got = await answers(ours, calls)
    for call, want, have in zip(calls, expected, got, strict=True):
        assert have == want, f"answers differ for {call}"
    assert await memory_export(store) == memory_file.read_text(encoding="utf-8")


async def test_scripted_calls_answer_like_the_reference_server(
    reference_server: Path, tmp_path: Path
) -> None:
    await compare(reference_server, tmp_path, SCRIPT)


async def test_random_calls_answer_like_the_reference_server(
    reference_server: Path, tmp_path: Path
) -> None:
    await compare(reference_server, tmp_path, random_calls(seed=7, n=150))


async def test_tool_list_matches_the_reference_server(
    reference_server: Path, tmp_path: Path
) -> None:
    theirs = StdioServerParameters(
        command="node",
        args=[str(reference_server)],
        env={"MEMORY_FILE_PATH": str(tmp_path / "m.jsonl")},
    )
    ours = StdioServerParameters(
        command=sys.executable,
        args=["-m", "relaybaton", "mcp", "memory", "--store", str(tmp_path / "m.db")],
        env={"PYTHONPATH": str(ROOT)},
    )
    listed = []
    for params in (theirs, ours):
        async with session(params) as client:
            tools = (await client.list_tools()).tools
            listed.append(
                [
                    t.model_dump(by_alias=True, exclude_none=True, exclude={"execution"})
                    for t in tools
                ]
            )
    assert listed[1] == listed[0]


async def test_the_knowledge_graph_resource_reads_like_the_reference_servers(
    reference_server: Path, tmp_path: Path
) -> None:
    theirs = StdioServerParameters(
        command="node",
        args=[str(reference_server)],
        env={"MEMORY_FILE_PATH": str(tmp_path / "m.jsonl")},
    )
    ours = StdioServerParameters(
        command=sys.executable,
        args=[*SERVE, "--store", str(tmp_path / "m.db"), "--compat", "released"],
        env={"PYTHONPATH": str(ROOT)},
    )
    seen = []
    for params in (theirs, ours):
        async with session(params) as client:
            listed = (await client.list_resources()).resources
            await client.call_tool("create_entities", {"entities": [ent("Zoë", "person", "é")]})
            read = await client.read_resource("memory://knowledge-graph")  # type: ignore[arg-type]
            seen.append(
                (
                    [r.model_dump(by_alias=True, exclude_none=True, mode="json") for r in listed],
                    [
                        c.model_dump(by_alias=True, exclude_none=True, mode="json")
                        for c in read.contents
                    ],
                )
            )
    assert seen[1] == seen[0]
    assert "Zoë" in seen[1][1][0]["text"]
