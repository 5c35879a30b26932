"""What does durable execution cost? The overhead workload with the SQLite journal on.

The workload is the one of ``benchmarks/overhead.py`` ("handoff-tool": one handoff, one
agent-as-tool call, four scripted model calls per conversation). It runs with the journal
off, then with a SQLite journal (a file in a temporary folder, WAL) in each durability mode:

- ``us_per_conv_seq``: µs per conversation, one at a time (median of the repetitions);
- ``conv_per_s_concurrent``: conversations per second with 1,000 in flight;
- ``ratio_seq`` / ``ratio_concurrent``: against the journal off, in the same run.

Then the journal's size: bytes per conversation of this workload, and how one
conversation's stored journal grows over 100 user turns with snapshots and retention on
(snapshot every 200 records, records a snapshot covers pruned) and off.

Read the ratios: absolute times move with the machine's load. Usage:
``python benchmarks/journal.py [--json] [--repeat N] [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from overhead import _agents, _scripts

from relaybaton.actors import open_runtime
from relaybaton.runtime import Durability
from relaybaton.stores import SqliteStore


async def _measure(
    store: SqliteStore | None, mode: str, repeat: int, seq_n: int
) -> dict[str, float]:
    async with open_runtime(
        _agents(),
        models=_scripts(),
        tracing=False,
        store=store,
        durability=mode,
        gc_young_threshold=10_000,
    ) as runtime:
        conversations = runtime.conversations

        def start(conversation_id: str) -> asyncio.Future[Any]:
            future = runtime.submit(conversation_id, "I want my money back")
            future.add_done_callback(lambda _: conversations.by_id.pop(conversation_id))
            return future

        for i in range(100):
            await start(f"warm-{i}")
        seq = []
        for r in range(repeat):
            gc.collect()
            begin = time.perf_counter()
            for i in range(seq_n):
                await start(f"s{r}-{i}")
            seq.append((time.perf_counter() - begin) / seq_n * 1e6)
        concurrent = []
        for r in range(repeat):
            gc.collect()
            begin = time.perf_counter()
            futures = [start(f"c{r}-{i}") for i in range(1000)]
            await asyncio.gather(*futures)
            concurrent.append(1000 / (time.perf_counter() - begin))
        if runtime.conversations.journal is not None:
            await runtime.conversations.journal.flush()
    return {
        "us_per_conv_seq": round(statistics.median(seq), 2),
        "conv_per_s_concurrent": round(statistics.median(concurrent), 1),
    }


async def _size_per_conversation(folder: Path) -> float:
    store = SqliteStore(folder / "size.db", durability=Durability.BATCHED)
    async with open_runtime(_agents(), models=_scripts(), store=store, tracing=False) as runtime:
        for i in range(200):
            await runtime.send(f"z{i}", "I want my money back")
        journal = runtime.conversations.journal
        assert journal is not None
        await journal.flush()
        written = journal.bytes_written
    await store.aclose()
    return written / 200


async def _growth(folder: Path, retention: bool, turns: int = 100) -> list[int]:
    """Stored bytes of one conversation after every 10 turns."""
    name = "growth-retained.db" if retention else "growth-all.db"
    store = SqliteStore(folder / name, durability=Durability.BATCHED)
    sizes = []
    async with open_runtime(_agents(), models=_scripts(), store=store, tracing=False) as runtime:
        journal = runtime.conversations.journal
        assert journal is not None
        journal.retention = retention
        for turn in range(1, turns + 1):
            await runtime.send("long", f"message {turn}")
            if turn % 10 == 0:
                await journal.flush()
                sizes.append(sum(len(body) for body in await store.read("long")))
    await store.aclose()
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    seq_n = 300 if args.quick else 1500
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        results["off"] = asyncio.run(_measure(None, "batched", args.repeat, seq_n))
        for mode in ("batched", "sync", "off"):
            store = SqliteStore(folder / f"{mode}.db", durability=Durability(mode))
            row = asyncio.run(_measure(store, mode, args.repeat, seq_n))
            asyncio.run(store.aclose())
            row["ratio_seq"] = round(row["us_per_conv_seq"] / results["off"]["us_per_conv_seq"], 2)
            row["ratio_concurrent"] = round(
                row["conv_per_s_concurrent"] / results["off"]["conv_per_s_concurrent"], 2
            )
            results[f"sqlite_{mode}"] = row
        results["bytes_per_conversation"] = round(asyncio.run(_size_per_conversation(folder)))
        results["growth_100_turns_retention"] = asyncio.run(_growth(folder, True))
        results["growth_100_turns_no_retention"] = asyncio.run(_growth(folder, False))
    if args.json:
        print(json.dumps(results))
        return
    print(f"{'journal':<16}{'us/conv seq':>14}{'x off':>8}{'conv/s @1k':>14}{'x off':>8}")
    for name in ("off", "sqlite_batched", "sqlite_sync", "sqlite_off"):
        row = results[name]
        print(
            f"{name:<16}{row['us_per_conv_seq']:>14}{row.get('ratio_seq', 1.0):>8}"
            f"{row['conv_per_s_concurrent']:>14}{row.get('ratio_concurrent', 1.0):>8}"
        )
    print(f"\nbytes journaled per conversation: {results['bytes_per_conversation']}")
    print("one conversation's stored bytes every 10 turns (100 turns):")
    print(f"  snapshots + retention: {results['growth_100_turns_retention']}")
    print(f"  no retention:          {results['growth_100_turns_no_retention']}")
    print("\ntargets: batched <= 1.5x the journal-off time; >= 3,000 conv/s with 1,000 in flight")


if __name__ == "__main__":
    main()
