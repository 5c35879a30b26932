"""What does the HTTP edge cost per request, next to an aiohttp handler that does nothing?

Workload: ``POST /v1/conversations/{id}/messages`` with ``{"text": "Hello"}`` on the
customer-service flow (examples/customer_service.toml) whose models are scripted to answer
at once, so a request is: auth and limits, body read and validation, one turn through the
runtime (triage answers), the JSON answer, metrics, spans and the event log. Every client
talks in its own conversation, one request after another.

The baseline, in the same run and the same process, is a bare aiohttp application with the
same route whose handler reads the body and answers ``{}``.

Load comes from a separate process on loopback (this file run with ``--client``): N
aiohttp clients, each with its own connection, for a fixed number of requests. Figures, for
100 and 1,000 concurrent clients, medians of ``--repeat`` runs:

- ``rps``: requests per second;
- ``p50_ms``, ``p99_ms``: request latency as the client saw it;
- ``cost_ratio``: the edge's per-request cost (1/rps) over the bare handler's
  (target: ≤ 2), the median of the ratios of runs made back to back (in alternating
  order), like ``cpu_ratio``;
- ``cpu_us``: the server process's CPU time per request (the client runs in another
  process), and ``cpu_ratio``, the edge's over the bare handler's: the same question as
  ``cost_ratio`` asked of the CPU the server spent, which other work on a shared machine
  disturbs far less than wall-clock throughput;
- ``p99_ratio``: the edge's p99 over the bare handler's p99 at the same concurrency
  (target at 1,000 clients: ≤ 3).

Read the ratios, not the absolute figures: the machine is shared and noisy. Where the
process may run on two CPUs or more, the server keeps to the first and the client process
to the second, so that neither is moved onto the other's CPU in the middle of a run (on
two cores, unpinned, the pairs' ratios spread wider). ``--console`` also measures the
edge with the console served beside the API, as ``relaybaton serve`` does, interleaved with
the others (``console_cost_ratio``: its per-request cost over the edge's without it; 1.0
means the console adds nothing to the message path).
Usage: ``python benchmarks/http_edge.py [--json] [--repeat N] [--requests N] [--console]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from relaybaton.actors import open_runtime  # noqa: E402
from relaybaton.cli._logging import configure_logging  # noqa: E402
from relaybaton.flow import load_flow  # noqa: E402
from relaybaton.flow._compose import build_agents  # noqa: E402
from relaybaton.service import ServiceLimits, create_service  # noqa: E402
from relaybaton.service._server import ConsoleOptions  # noqa: E402
from relaybaton.testing import ScriptedModel  # noqa: E402

BODY = b'{"text": "Hello"}'


# --- the client process ---------------------------------------------------------------------


async def _client(url: str, concurrency: int, requests: int) -> dict[str, float]:
    latencies: list[float] = []
    per_client = max(1, requests // concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:

        async def one(n: int) -> None:
            target = f"{url}/v1/conversations/bench-{n}-{time.monotonic_ns()}/messages"
            for _ in range(per_client):
                started = time.perf_counter()
                async with http.post(
                    target, data=BODY, headers={"Content-Type": "application/json"}
                ) as answer:
                    await answer.read()
                    if answer.status != 200:
                        raise RuntimeError(f"status {answer.status}")
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(one(n) for n in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        "requests": len(latencies),
    }


# The CPU the load client keeps to (None: where it likes); set by ``main`` as it pins itself.
_client_cpu: int | None = None


def _pin_server() -> None:
    """Keep this process to its first CPU, and the clients it starts to its second."""
    global _client_cpu  # noqa: PLW0603 - set once, before the loop starts
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_setaffinity") else []
    if len(cpus) >= 2:  # one for the server, one for the client
        os.sched_setaffinity(0, {cpus[0]})
        _client_cpu = cpus[1]


async def _load(url: str, concurrency: int, requests: int) -> dict[str, float]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--client", url,
        "--concurrency", str(concurrency), "--requests", str(requests),
        *(() if _client_cpu is None else ("--cpu", str(_client_cpu))),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"load client failed with status {process.returncode}")
    figures: dict[str, float] = json.loads(out)
    return figures


# --- the servers ----------------------------------------------------------------------------


@asynccontextmanager
async def _serve(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=4096)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


def _bare_app() -> web.Application:
    async def handler(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=b"{}", content_type="application/json")

    app = web.Application()
    app.router.add_post("/v1/conversations/{conversation_id}/messages", handler)
    return app


@asynccontextmanager
async def _edge(console: bool) -> AsyncIterator[str]:
    flow = load_flow(ROOT / "examples" / "customer_service.toml")
    agents = build_agents(flow)
    model = ScriptedModel(lambda _request: "Hello! How can I help?", keep_requests=False)
    async with open_runtime(
        agents[flow.entry],
        agents=list(agents.values()),
        models=model,
        tracing=False,
        gc_young_threshold=10_000,
    ) as runtime:
        # One client principal sends all the load: lift the rate limit, keep the others.
        limits = ServiceLimits(rate_per_s=1e9, burst=1_000_000_000, max_concurrent=100_000)
        service = create_service(
            runtime,
            flow_name=flow.flow.name,
            limits=limits,
            console=ConsoleOptions() if console else None,
        )
        try:
            async with _serve(service.app) as url:
                yield url
        finally:
            service.close()


async def _timed_load(url: str, concurrency: int, requests: int) -> dict[str, float]:
    """``_load``, plus the CPU this (the server's) process spent per request meanwhile."""
    cpu = time.process_time()
    figures = await _load(url, concurrency, requests)
    figures["cpu_us"] = (time.process_time() - cpu) / figures["requests"] * 1e6
    return figures


async def _measure(repeat: int, requests: int, console: bool) -> dict[str, dict[str, float]]:
    rows: dict[str, dict[str, float]] = {}
    for concurrency in (100, 1000):
        runs: dict[str, list[dict[str, float]]] = {"bare": [], "edge": []}
        if console:
            runs["console"] = []
        for turn in range(repeat):
            # Each repeat measures both, back to back, in alternating order: a drift of the
            # machine's speed over the run weighs on both sides of a pair alike.
            for name in ("bare", "edge") if turn % 2 == 0 else ("edge", "bare"):
                async with _serve(_bare_app()) if name == "bare" else _edge(False) as url:
                    await _load(url, concurrency, concurrency)  # warm-up
                    runs[name].append(await _timed_load(url, concurrency, requests))
            if console:  # interleaved with the others: the same noise for all three
                async with _edge(True) as url:
                    await _load(url, concurrency, concurrency)
                    runs["console"].append(await _timed_load(url, concurrency, requests))
        for name, results in runs.items():
            rows[f"{name}_{concurrency}"] = {
                key: statistics.median(r[key] for r in results)
                for key in ("rps", "p50_ms", "p99_ms", "cpu_us")
            }
        bare, edge = rows[f"bare_{concurrency}"], rows[f"edge_{concurrency}"]
        pairs = list(zip(runs["bare"], runs["edge"], strict=True))
        rows[f"ratio_{concurrency}"] = {
            # The median of each pair's ratio: the bare side (bound by the client process on
            # a small machine) moves by a quarter between runs, and a ratio of medians taken
            # from different moments carries that whole.
            "cost_ratio": statistics.median(b["rps"] / e["rps"] for b, e in pairs),
            "cost_ratio_min": min(b["rps"] / e["rps"] for b, e in pairs),
            "cost_ratio_max": max(b["rps"] / e["rps"] for b, e in pairs),
            "cpu_ratio": statistics.median(e["cpu_us"] / b["cpu_us"] for b, e in pairs),
            "p50_ratio": edge["p50_ms"] / bare["p50_ms"],
            "p99_ratio": edge["p99_ms"] / bare["p99_ms"],
        }
        if console:  # the console's cost on the message path: edge with it over edge without
            with_console = rows[f"console_{concurrency}"]
            rows[f"ratio_{concurrency}"]["console_cost_ratio"] = edge["rps"] / with_console["rps"]
            rows[f"ratio_{concurrency}"]["console_p99_ratio"] = (
                with_console["p99_ms"] / edge["p99_ms"]
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--requests", type=int, default=20_000, help="requests per run")
    parser.add_argument(
        "--console", action="store_true", help="serve the console too (as `relaybaton serve`)"
    )
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--cpu", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", type=int, default=100, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        if args.cpu is not None:
            os.sched_setaffinity(0, {args.cpu})
        print(json.dumps(asyncio.run(_client(args.client, args.concurrency, args.requests))))
        return
    configure_logging("warning")  # as `relaybaton serve` runs by default
    _pin_server()
    rows = asyncio.run(_measure(args.repeat, args.requests, args.console))
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'row':<12} {'rps':>9} {'p50 ms':>8} {'p99 ms':>8} {'cpu µs':>8}")
    for name, row in rows.items():
        if name.startswith("ratio"):
            print(
                f"{name:<12} cost x{row['cost_ratio']:.2f} (target ≤ 2; pairs "
                f"x{row['cost_ratio_min']:.2f}-x{row['cost_ratio_max']:.2f})  "
                f"cpu x{row['cpu_ratio']:.2f}  "
                f"p50 x{row['p50_ratio']:.2f}  p99 x{row['p99_ratio']:.2f}"
                + ("  (target ≤ 3)" if name.endswith("1000") else "")
                + (
                    f"  console cost x{row['console_cost_ratio']:.2f}"
                    f" p99 x{row['console_p99_ratio']:.2f}"
                    if "console_cost_ratio" in row
                    else ""
                )
            )
        else:
            print(
                f"{name:<12} {row['rps']:>9.0f} {row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f} "
                f"{row['cpu_us']:>8.0f}"
            )


if __name__ == "__main__":
    main()
