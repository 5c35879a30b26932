"""How fast is the knowledge graph next to the reference MCP memory server?

Measures operations per second of four tools, create_entities (one new entity per call),
add_observations (one observation), search_nodes (a substring that matches about ten
entities) and open_nodes (one name), on graphs of 1k, 10k and 100k entities, each entity
with two observations and every tenth with a relation. Three contenders run the same
call sequence in the same run, each on its own copy of the same starting graph:

* ``graph``: :class:`KnowledgeGraph` on SQLite, called in-process (what the memory actor
  does);
* ``ours/mcp``: ``relaybaton mcp memory`` over stdio, driven by the MCP SDK's client;
* ``reference``: ``@modelcontextprotocol/server-memory`` 2026.8.31 under node, over stdio
  by the same client. It reads and parses its whole file on every call and rewrites it on
  every write, so it gets fewer calls (``--reference-ops``) and sizes only up to
  ``--reference-max`` (10k by default) to finish in a few minutes; skipped without node.

How to read it: absolute figures are noise on shared machines; compare the ratios in one
run. ``x ref`` is ours/mcp divided by the reference at the same size and operation (both
pay the same stdio and JSON-RPC cost). ``search growth`` is the mean search latency at
the largest size divided by the one at 1k: 100 would mean linear in the graph's size.

Run: ``python benchmarks/memory_graph.py [--sizes 1000,10000,100000] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio

ROOT = Path(__file__).resolve().parents[1]
# The benchmark runs from a checkout, so the imports below follow this line (E402).
sys.path.insert(0, str(ROOT))

from relaybaton.memory import (  # noqa: E402  # noqa: E402
    Compat,
    Entity,
    KnowledgeGraph,
    Relation,
    import_memory_file,
)
from relaybaton.memory._jsonl import dumps_memory_file  # noqa: E402
from relaybaton.memory._mcp_tools import call_memory_tool  # noqa: E402
from relaybaton.memory._sqlite import SqliteGraphStore  # noqa: E402

PACKAGE = "@modelcontextprotocol/server-memory"
VERSION = "2026.8.31"
OPS = ("create", "add", "search", "open")


def starting_graph(size: int) -> str:
    """The JSONL text of a graph of ``size`` entities; every contender starts from it."""
    entities = [
        Entity(
            name=f"entity-{i}",
            entity_type=f"type-{i % 50}",
            observations=(f"observation {i} about topic {i % 997}", f"fact-{i}"),
        )
        for i in range(size)
    ]
    relations = [
        Relation(from_=f"entity-{i}", to=f"entity-{(i * 7) % size}", relation_type="links")
        for i in range(0, size, 10)
    ]
    return dumps_memory_file(entities, relations)


def calls(size: int, n: int) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """``n`` tool calls per operation, as MCP arguments."""
    return {
        "create": [
            (
                "create_entities",
                {"entities": [{"name": f"new-{k}", "entityType": "t", "observations": ["fresh"]}]},
            )
            for k in range(n)
        ],
        "add": [
            (
                "add_observations",
                {
                    "observations": [
                        {"entityName": f"entity-{(k * 31) % size}", "contents": [f"added {k}"]}
                    ]
                },
            )
            for k in range(n)
        ],
        # A name prefix two digits shorter than the largest name matches 11 entities at
        # every size (entity-15, entity-150..159 at 1k), so growth is the scan's alone.
        "search": [
            ("search_nodes", {"query": f"entity-{(10 + k % 90) * 10 ** (len(str(size)) - 4)}"})
            for k in range(n)
        ],
        "open": [("open_nodes", {"names": [f"entity-{(k * 13) % size}"]}) for k in range(n)],
    }


async def timed(
    run: Callable[[str, dict[str, Any]], Awaitable[object]],
    sequence: list[tuple[str, dict[str, Any]]],
) -> float:
    start = time.perf_counter()
    for name, arguments in sequence:
        await run(name, arguments)
    return time.perf_counter() - start


async def bench_graph(folder: Path, text: str, plan: dict[str, list[Any]]) -> dict[str, float]:
    source = folder / "start.jsonl"
    source.write_text(text, encoding="utf-8")
    store = SqliteGraphStore(folder / "graph.db")
    await import_memory_file(store, source)
    graph = KnowledgeGraph(store, compat=Compat.RELEASED)

    async def run(name: str, arguments: dict[str, Any]) -> object:
        return await call_memory_tool(graph, name, arguments)

    seconds = {op: await timed(run, plan[op]) for op in OPS}
    await store.aclose()
    return seconds


async def bench_stdio(
    command: list[str], env: dict[str, str], plan: dict[str, list[Any]]
) -> dict[str, float]:
    # The mcp extra is optional; only this contender needs it.
    from mcp import ClientSession, StdioServerParameters, stdio_client  # noqa: PLC0415

    params = StdioServerParameters(command=command[0], args=command[1:], env=env)
    with open(os.devnull, "w") as quiet:  # noqa: ASYNC230 - opening /dev/null never blocks
        async with stdio_client(params, errlog=quiet) as (r, w), ClientSession(r, w) as client:
            await client.initialize()

            async def run(name: str, arguments: dict[str, Any]) -> object:
                result = await client.call_tool(name, arguments)
                if result.is_error:
                    raise RuntimeError(f"{name} failed: {result.content}")
                return result

            return {op: await timed(run, plan[op]) for op in OPS}


def reference_entry() -> Path | None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        return None
    cache = Path(tempfile.gettempdir()) / f"relaybaton-mcp-memory-{VERSION}"
    entry = cache / "node_modules" / PACKAGE / "dist" / "index.js"
    if not entry.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", f"{PACKAGE}@{VERSION}"],
            cwd=cache,
            capture_output=True,
            check=False,
        )
    return entry if entry.is_file() else None


async def main(args: argparse.Namespace) -> dict[str, Any]:
    sizes = [int(s) for s in args.sizes.split(",")]
    entry = reference_entry()
    report: dict[str, Any] = {
        "sizes": sizes,
        "ops": args.ops,
        "reference_ops": args.reference_ops,
        "results": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            text = starting_graph(size)
            row: dict[str, Any] = {}
            folder = Path(tmp) / str(size)
            for name in ("graph", "ours/mcp", "reference"):
                (folder / name.replace("/", "-")).mkdir(parents=True)
            plan = calls(size, args.ops)
            row["graph"] = await bench_graph(folder / "graph", text, plan)
            mine = folder / "ours-mcp"
            (mine / "start.jsonl").write_text(text, encoding="utf-8")
            store = SqliteGraphStore(mine / "graph.db")
            await import_memory_file(store, mine / "start.jsonl")
            await store.aclose()
            row["ours/mcp"] = await bench_stdio(
                [
                    sys.executable,
                    "-m",
                    "relaybaton",
                    "mcp",
                    "memory",
                    "--store",
                    str(mine / "graph.db"),
                    "--compat",
                    "released",
                ],
                {"PYTHONPATH": str(ROOT)},
                plan,
            )
            if entry is not None and size <= args.reference_max:
                ref_file = folder / "reference" / "memory.jsonl"
                ref_file.write_text(text, encoding="utf-8")
                row["reference"] = await bench_stdio(
                    ["node", str(entry)],
                    {"MEMORY_FILE_PATH": str(ref_file)},
                    calls(size, args.reference_ops),
                )
            report["results"][size] = {
                who: {
                    op: len(plan[op] if who != "reference" else calls(size, args.reference_ops)[op])
                    / secs
                    for op, secs in times.items()
                }
                for who, times in row.items()
            }
            print(f"... {size} entities done", file=sys.stderr)
    first, last = sizes[0], sizes[-1]
    growth: dict[str, float] = {}
    for who in ("graph", "ours/mcp", "reference"):
        a, b = report["results"][first].get(who), report["results"][last].get(who)
        if a and b:
            growth[who] = a["search"] / b["search"]
    report["search_growth"] = {"from": first, "to": last, "latency_ratio": growth}
    report["reference_available"] = entry is not None
    return report


def show(report: dict[str, Any]) -> None:
    print(f"ops/s ({report['ops']} calls per op; reference {report['reference_ops']})")
    print(
        f"{'entities':>9} {'contender':>10} "
        + " ".join(f"{op:>9}" for op in OPS)
        + "   x ref (ours/mcp / reference)"
    )
    for size, row in report["results"].items():
        for who, rates in row.items():
            ratio = ""
            if who == "ours/mcp" and "reference" in row:
                ratio = "   " + " ".join(f"{rates[op] / row['reference'][op]:>7.1f}x" for op in OPS)
            print(f"{size:>9} {who:>10} " + " ".join(f"{rates[op]:>9.0f}" for op in OPS) + ratio)
    g = report["search_growth"]
    print(
        f"search latency growth {g['from']} -> {g['to']} entities: "
        + ", ".join(f"{who} {r:.1f}x" for who, r in g["latency_ratio"].items())
    )
    if not report["reference_available"]:
        print("reference server not run: node/npm missing or the install failed")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--ops", type=int, default=200, help="calls per operation (ours)")
    parser.add_argument(
        "--reference-ops", type=int, default=20, help="calls per operation for the reference server"
    )
    parser.add_argument(
        "--reference-max",
        type=int,
        default=10000,
        help="largest graph given to the reference server",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    options = parser.parse_args()
    result = anyio.run(main, options)
    if options.json:
        print(json.dumps(result, indent=2))
    else:
        show(result)
