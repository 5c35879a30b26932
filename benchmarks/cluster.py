"""Many nodes: throughput, the NATS hop, takeover after SIGKILL, a rolling restart, and loss.

Real ``relaybaton serve`` processes on examples/customer_service.toml (simulated models as
the file sets them: 40 ms and 120 ms a call), a PostgreSQL journal (127.0.0.1:5432, a
database made for each configuration and dropped after it) and, in cluster mode, the NATS
server on 127.0.0.1:4222 (a prefix of its own). The load is the fault tests' client
(tests/cluster/_load.py): seeded customer conversations of three messages (greetings,
billing questions with a handoff and a tool, refunds with an agent as a tool, refunds over
$100 that wait for a person, who decides at once), each conversation one client sending to
a node picked at random, ``--concurrency`` conversations at once. Every run's history is
checked against the journals afterwards (tests/cluster/_checker.py).

Figures, each configuration in the same run (medians of ``--repeat``):

- ``conv_per_s``, ``p50_ms``, ``p99_ms``: conversations per second and message latency for
  single-process ``serve`` on PostgreSQL (``--durability sync``, as cluster mode writes: the
  baseline), then one, two and three cluster nodes; ``x_single`` is the throughput over
  the baseline's (target for one node: >= 0.6);
- ``hop_ms``: what the trip through NATS adds at p50: two nodes, one conversation at a
  time, each message sent to its owner and, interleaved, to the other node, which forwards
  it (target: <= 2 ms);
- ``takeover_s`` p50/p95 over ``--kills`` SIGKILLs of a random node of three: from the kill
  to the first answer for one of its conversations, asked of a survivor again and again
  (target: <= lease TTL + 1 s);
- ``rolling_pause_s``: the longest any message waited (first send to answer, retries
  included) while each of three nodes was SIGTERMed and started again in turn;
- ``lost``, ``duplicated``: acknowledged messages missing from the journals and messages
  processed twice, summed over every run above (target: 0 and 0), and ``violations``:
  everything the checker found.

The machine has two cores, shared by the client, the nodes, PostgreSQL and NATS: two nodes
cannot beat one where one already fills a core; read ``x_single`` with that in mind.

Usage: ``python benchmarks/cluster.py [--json] [--quick] [--repeat N] [--conversations N]
[--concurrency N] [--kills N] [--ttl S]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import structlog

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from relaybaton.cluster import partition_of  # noqa: E402
from tests._nats import NATS_URL, throwaway_prefix  # noqa: E402
from tests._postgres import PG_DSN  # noqa: E402
from tests.cluster._harness import Cluster, Nodes, throwaway_database  # noqa: E402
from tests.cluster._history import History, HistoryRecorder, longest_wait  # noqa: E402
from tests.cluster._load import LoadStats, Workload, run_load, send_one  # noqa: E402
from tests.cluster._verdict import judge  # noqa: E402

SEED = 1207


class Tally:
    """What the checker found over every run of the benchmark."""

    def __init__(self) -> None:
        self.lost = 0
        self.duplicated = 0
        self.violations: list[str] = []
        self.messages = 0

    async def check(self, dsn: str, history: History, scenario: str, folder: Path) -> None:
        verdict = await judge(dsn, history, seed=SEED, scenario=scenario, folder=folder)
        self.lost += verdict.lost
        self.duplicated += verdict.duplicated
        self.violations += [str(v) for v in verdict.violations]
        self.messages += sum(1 for op in history.ops if op.type == "ok" and op.f == "send")


class Served:
    """What a measurement runs against: the nodes, their cluster, and the history kept."""

    def __init__(self, nodes: Nodes, cluster: Cluster | None) -> None:
        self.nodes = nodes
        self.cluster = cluster
        self.recorder = HistoryRecorder()


@asynccontextmanager
async def serving(
    folder: Path, count: int, *, cluster: bool, ttl: float, tally: Tally, scenario: str
) -> AsyncIterator[Served]:
    """``count`` nodes on a fresh database (and NATS prefix); once they stopped, the history
    recorded in ``Served.recorder`` is checked against the journals by ``tally``."""
    place = folder / scenario
    place.mkdir()
    config = Cluster(nats=NATS_URL, prefix=throwaway_prefix(), lease_ttl_s=ttl) if cluster else None
    async with throwaway_database(PG_DSN) as dsn:
        nodes = Nodes(place, dsn, cluster=config)
        served = Served(nodes, config)
        try:
            for _ in range(count):
                await nodes.add()
            if config is not None:
                await nodes.wait_placed([n.name for n in nodes.nodes], within=30, each=True)
            yield served
        finally:
            await nodes.aclose()
            if config is not None:
                await config.delete()
        await tally.check(dsn, served.recorder.history, scenario, place)


def _urls(nodes: Nodes) -> Callable[[], list[str]]:
    return lambda: [n.url for n in nodes.live()]


def _ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)


async def throughput(served: Served, args: argparse.Namespace) -> dict[str, float]:
    """Conversations per second and message latency; medians of ``--repeat`` loads."""
    rows: list[dict[str, float]] = []
    nodes, recorder = served.nodes, served.recorder
    warm = Workload(seed=SEED, conversations=args.concurrency, prefix="warm")
    await run_load(warm, _urls(nodes), recorder)
    for r in range(args.repeat):
        workload = Workload(
            seed=SEED + r,
            conversations=args.conversations,
            concurrency=args.concurrency,
            prefix=f"r{r}-",
        )
        stats = await run_load(workload, _urls(nodes), recorder)
        elapsed = stats.finished - stats.started
        rows.append(
            {
                "conv_per_s": args.conversations / elapsed,
                "p50_ms": _ms(stats.latencies, 0.5),
                "p99_ms": _ms(stats.latencies, 0.99),
            }
        )
    return {k: round(statistics.median(r[k] for r in rows), 1) for k in rows[0]}


async def hop(served: Served, args: argparse.Namespace) -> dict[str, float]:
    """p50 of messages sent to their owner and of the same sent through the other node."""
    nodes, config, recorder = served.nodes, served.cluster, served.recorder
    assert config is not None
    held = await config.holders()
    a, b = nodes.nodes
    direct: list[float] = []
    forwarded: list[float] = []
    for n in range(args.hop_messages):
        cid = f"hop{n}"
        owner = a if held[partition_of(cid, config.partitions)] == a.name else b
        other = b if owner is a else a
        for target, sink in ((owner, direct), (other, forwarded)):
            started = time.perf_counter()
            done = await send_one(target.url, recorder, cid, f"{cid}-{target.name}", "Hello")
            if done.type == "ok":
                sink.append(time.perf_counter() - started)
    return {
        "direct_p50_ms": _ms(direct, 0.5),
        "forwarded_p50_ms": _ms(forwarded, 0.5),
        "hop_ms": round(_ms(forwarded, 0.5) - _ms(direct, 0.5), 2),
    }


async def takeovers(served: Served, args: argparse.Namespace) -> dict[str, Any]:
    """Time from a node's SIGKILL to the first answer for one of its conversations."""
    rng = random.Random(SEED)
    times: list[float] = []
    nodes, config, recorder = served.nodes, served.cluster, served.recorder
    assert config is not None
    background = Workload(
        seed=SEED, conversations=10**9, concurrency=max(2, args.concurrency // 4), prefix="bg"
    )
    stop = asyncio.Event()
    load = asyncio.create_task(run_load(background, _urls(nodes), recorder, stop=stop))
    try:
        for k in range(args.kills):
            held = await config.holders()
            victim = rng.choice(nodes.nodes)
            theirs = next(
                cid
                for cid in (f"k{k}-{n}" for n in range(10_000))
                if held[partition_of(cid, config.partitions)] == victim.name
            )
            survivor = next(n for n in nodes.nodes if n is not victim)
            await victim.signal(signal.SIGKILL)
            killed = time.monotonic()
            await victim.wait()
            done = await send_one(survivor.url, recorder, theirs, f"{theirs}-m0", "Hello")
            if done.type == "ok":
                times.append(done.time - killed)
            await nodes.restart(victim)
            await nodes.wait_placed([n.name for n in nodes.nodes], within=30, each=True)
    finally:
        stop.set()
        await load
    ordered = sorted(times)
    return {
        "kills": args.kills,
        "answered": len(times),
        "takeover_p50_s": round(statistics.median(ordered), 2) if ordered else None,
        "takeover_p95_s": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 2)
        if ordered
        else None,
        "ttl_s": args.ttl,
    }


async def rolling_restart(served: Served, args: argparse.Namespace) -> dict[str, Any]:
    """The longest wait of any message while every node is SIGTERMed and started in turn."""
    nodes, recorder, stats = served.nodes, served.recorder, LoadStats()
    steady = Workload(
        seed=SEED, conversations=10**9, concurrency=max(2, args.concurrency // 2), prefix="rr"
    )
    stop = asyncio.Event()
    load = asyncio.create_task(run_load(steady, _urls(nodes), recorder, stats=stats, stop=stop))
    began = time.monotonic()
    try:
        for node in list(nodes.nodes):
            await node.signal(signal.SIGTERM)
            await node.wait()
            await nodes.restart(node)
            await nodes.wait_placed([n.name for n in nodes.nodes], within=30, each=True)
    finally:
        stop.set()
        await load
    ended = time.monotonic()
    return {
        "rolling_pause_s": round(longest_wait(recorder.history, began, ended), 2),
        "rolling_messages": stats.outcomes.get("send:ok", 0),
        "rolling_seconds": round(ended - began, 1),
    }


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    tally = Tally()
    rows: dict[str, dict[str, float]] = {}
    report: dict[str, Any] = {"throughput": rows}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)

        def serve(count: int, cluster: bool, name: str) -> Any:
            return serving(folder, count, cluster=cluster, ttl=args.ttl, tally=tally, scenario=name)

        async with serve(1, False, "single") as served:
            rows["single"] = await throughput(served, args)
        async with serve(1, True, "cluster_1") as served:
            rows["cluster_1"] = await throughput(served, args)
        async with serve(2, True, "cluster_2") as served:
            rows["cluster_2"] = await throughput(served, args)
            report["hop"] = await hop(served, args)
        async with serve(3, True, "cluster_3") as served:
            rows["cluster_3"] = await throughput(served, args)
            report["takeover"] = await takeovers(served, args)
            report["rolling"] = await rolling_restart(served, args)
        base = rows["single"]["conv_per_s"]
        for row in rows.values():
            row["x_single"] = round(row["conv_per_s"] / base, 2)
    report["checked_messages"] = tally.messages
    report["lost"] = tally.lost
    report["duplicated"] = tally.duplicated
    report["violations"] = tally.violations[:20]
    report["settings"] = {
        k: getattr(args, k)
        for k in ("conversations", "concurrency", "repeat", "kills", "ttl", "hop_messages")
    }
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quick", action="store_true", help="a smoke run for CI (< ~60 s)")
    parser.add_argument("--repeat", type=int, default=3, help="loads per throughput figure")
    parser.add_argument("--conversations", type=int, default=500, help="per load")
    parser.add_argument("--concurrency", type=int, default=64, help="conversations at once")
    parser.add_argument("--kills", type=int, default=20, help="SIGKILLs for the takeover time")
    parser.add_argument("--ttl", type=float, default=5.0, help="lease TTL in seconds")
    parser.add_argument("--hop-messages", type=int, default=200, help="messages each way")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeat, args.conversations, args.concurrency = 1, 40, 16
        args.kills, args.ttl, args.hop_messages = 2, 2.0, 30
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    started = time.perf_counter()
    report = asyncio.run(measure(args))
    report["seconds"] = round(time.perf_counter() - started, 1)
    if args.json:
        print(json.dumps(report))
        return 0
    _print(report)
    return 0


def _print(report: dict[str, Any]) -> None:
    s = report["settings"]
    print(
        f"{s['conversations']} conversations x 3 messages, {s['concurrency']} at once,"
        f" medians of {s['repeat']}; lease TTL {s['ttl']:g} s; {report['seconds']} s in all"
    )
    print(f"\n{'configuration':<14}{'conv/s':>9}{'x single':>10}{'p50 ms':>9}{'p99 ms':>9}")
    for name, row in report["throughput"].items():
        print(
            f"{name:<14}{row['conv_per_s']:>9}{row['x_single']:>10}"
            f"{row['p50_ms']:>9}{row['p99_ms']:>9}"
        )
    hop_row = report["hop"]
    print(
        f"\nNATS hop (p50): direct {hop_row['direct_p50_ms']} ms, through the other node"
        f" {hop_row['forwarded_p50_ms']} ms: +{hop_row['hop_ms']} ms"
    )
    t = report["takeover"]
    print(
        f"takeover after SIGKILL ({t['answered']}/{t['kills']} kills): p50 {t['takeover_p50_s']} s,"
        f" p95 {t['takeover_p95_s']} s (TTL {t['ttl_s']:g} s)"
    )
    r = report["rolling"]
    print(
        f"rolling restart of 3 nodes: longest wait {r['rolling_pause_s']} s"
        f" ({r['rolling_messages']} messages over {r['rolling_seconds']} s)"
    )
    print(
        f"checked {report['checked_messages']} acknowledged messages: lost {report['lost']},"
        f" duplicated {report['duplicated']}, violations {len(report['violations'])}"
    )
    for line in report["violations"]:
        print(f"  {line}")
    print(
        "\ntargets: hop <= 2 ms p50; takeover <= TTL + 1 s; 0 lost, 0 duplicated;"
        " one node >= 0.6x single; two nodes > one where the cores allow"
    )


if __name__ == "__main__":
    sys.exit(main())
