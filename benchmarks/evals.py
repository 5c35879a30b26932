"""Evaluations: what running a dataset costs, what online grading costs, how fast grades decide.

1. ``eval_items_per_s``: items per second of ``run_dataset`` (what ``relaybaton eval`` runs)
   on a one-agent flow whose simulated model answers with no latency, so the figure is the
   runtime's and the runner's own overhead, at concurrency 1 and 64. Each item is one user
   message graded by three graders (a regex, a model-call limit, no tool error). The
   baseline in the same run is the same messages sent through ``Runtime.send`` with no
   runner and no graders: ``runner_cost`` is the runner's time per item over the bare send's.
2. ``online_grading``: messages per second of the HTTP edge (``create_service`` on loopback,
   a client in the same process, 32 concurrent conversations of one message each) with
   online grading of 0%, 10% and 100% of conversations, in ``--rounds`` short rounds of all
   three (rotated); ``loss`` is 1 - the median over rounds of the round's throughput over
   that round's no-grading throughput (target: at most 5% at 10%). The graders run in the
   same event loop as the replies, so this is their whole cost, not only the hot path's hash
   and append.
3. ``rollout_on_grades``: on RouteLLM's per-prompt correctness (MMLU, contaminated prompts
   dropped), a rollout fed one grade per call (1 if the answering model was right on the
   prompt) decides between gpt-4-1106-preview (80.6% right) and a model worse by ``--gap``
   points (default 10): on each prompt it answers as Mixtral-8x7B did (68.1% right) with the
   probability that gives that gap, else as gpt-4 did. Rolled out in place of gpt-4 the worse
   model should be rolled back; rolled out in place of the worse one gpt-4 should be
   promoted. Per direction:
   the graded calls until the decision (median and range over 20 seeds) and the false
   decisions. Policy: stages 5%, 50%, 100%; min_calls 100; quality_margin 0.05;
   min_graded 100; no time window (decisions on evidence only).

Timings are medians of ``--repeat`` runs; read the ratios (the machine is shared). Usage:
``python benchmarks/evals.py [--data DIR] [--repeat N] [--items N] [--json]``; ``--data``
defaults to ``$RELAYBATON_DATA``.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import random
import statistics
import time
from pathlib import Path

import aiohttp
from aiohttp import web

from relaybaton.actors.routing import Rollout, RolloutPolicy
from relaybaton.cli._logging import configure_logging
from relaybaton.evals import (
    EvalItem,
    LimitGrader,
    NoToolErrorGrader,
    StringGrader,
    open_online_grading,
    run_dataset,
)
from relaybaton.flow import open_flow, parse_flow
from relaybaton.service import ServiceLimits, create_service

FLOW = """
[flow]
name = "bench"

[models.m]
model = "simulated:general"
latency_ms = 0
latency_sigma = 0

[[agents]]
name = "helper"
model = "m"
instructions = "Knowledge: our shop opens at nine."
"""

GRADERS = [
    StringGrader("answers", "regex", value=r"\S"),
    LimitGrader("calls", "max_model_calls", 3),
    NoToolErrorGrader("no_tool_error"),
]

csv.field_size_limit(10**8)


# --- 1. items per second ------------------------------------------------------------------


async def _items_per_s(items: int, concurrency: int) -> tuple[float, float]:
    dataset = [EvalItem(id=f"i{n}", messages=(f"when do you open? ({n})",)) for n in range(items)]
    async with open_flow(parse_flow(FLOW)) as runtime:
        began = time.perf_counter()
        result = await run_dataset(runtime, dataset, GRADERS, concurrency=concurrency)
        runner = items / (time.perf_counter() - began)
        assert all(r.passed for r in result.runs)
        limiter = asyncio.Semaphore(concurrency)

        async def bare(n: int) -> None:
            async with limiter:
                await runtime.send(f"bare-{n}", f"when do you open? ({n})")

        began = time.perf_counter()
        await asyncio.gather(*(bare(n) for n in range(items)))
        baseline = items / (time.perf_counter() - began)
    return runner, baseline


# --- 2. online grading on the HTTP edge -------------------------------------------------------


async def _edge_throughput(messages: int, share: float | None) -> float:
    async with open_flow(parse_flow(FLOW), tracing=False) as runtime:
        # No rate limit: the figure is the edge's throughput, not the limiter's.
        limits = ServiceLimits(rate_per_s=1e6, burst=10**6, max_concurrent=10_000)
        service = create_service(runtime, flow_name="bench", limits=limits)
        runner = web.AppRunner(service.app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        url = f"http://{host}:{port}/v1/conversations"
        try:
            if share is None:
                return await _load(url, messages)
            async with open_online_grading(runtime, GRADERS, sample=share, queue=100_000):
                return await _load(url, messages)
        finally:
            await runner.cleanup()
            service.close()


async def _load(url: str, messages: int, clients: int = 32) -> float:
    counter = iter(range(messages))

    async def client(session: aiohttp.ClientSession) -> None:
        for n in counter:
            async with session.post(f"{url}/c{n}/messages", json={"text": "hello"}) as r:
                assert r.status == 200, await r.text()
                await r.read()

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        began = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(clients)))
        return messages / (time.perf_counter() - began)


# --- 3. a rollout decided by grades ---------------------------------------------------------


def _mmlu(data: Path) -> list[tuple[bool, bool]]:
    base = data / "routellm" / "routellm" / "evals" / "mmlu"
    drop = {
        json.loads(line)["eval_prompt"].strip()
        for line in (base / "contaminated_prompts.jsonl").read_text().splitlines()
        if line.strip()
    }
    rows: list[tuple[bool, bool]] = []
    for file in sorted((base / "responses").glob("*.csv")):
        with file.open(newline="") as handle:
            for record in csv.DictReader(handle):
                if record["prompt"].strip() not in drop:
                    strong = record["gpt-4-1106-preview"] == "True"
                    weak = record["mistralai/Mixtral-8x7B-Instruct-v0.1"] == "True"
                    rows.append((strong, weak))
    return rows


POLICY = RolloutPolicy(
    stages=(0.05, 0.5, 1.0), window_s=0.0, min_calls=100, quality_margin=0.05, min_graded=100
)


def _decide(
    rows: list[tuple[bool, bool]], seed: int, candidate_is_strong: bool, mix: float
) -> tuple[str, int]:
    """Run one rollout on prompts drawn at random; the decision and the grades it took."""
    rng = random.Random(seed)
    rollout = Rollout("old", "new", policy=POLICY)
    graded = 0
    for call in range(1_000_000):
        strong, weak = rows[rng.randrange(len(rows))]
        worse = weak if rng.random() < mix else strong
        arm = rollout.arm(f"s{seed}-c{call}")
        right = (
            (strong if candidate_is_strong else worse)
            if arm == "new"
            else (worse if candidate_is_strong else strong)
        )
        now = float(call)
        rollout.record(arm, now, 1.0, ok=True)
        graded += 1
        decision = rollout.grade(arm, now, 1.0 if right else 0.0)
        if decision in {"promote", "rollback"}:
            return decision, graded
        if rollout.state.value != "running":
            return rollout.state.value, graded
    return "undecided", graded


def rollout_on_grades(data: Path, seeds: int = 20, gap: float = 10.0) -> dict[str, object]:
    rows = _mmlu(data)
    strong = sum(s for s, _ in rows) / len(rows)
    weak = sum(w for _, w in rows) / len(rows)
    mix = min(1.0, gap / 100 / (strong - weak))
    report: dict[str, object] = {
        "prompts": len(rows), "strong_accuracy": round(strong, 4),
        "weak_accuracy": round(weak, 4), "gap_points": round(100 * mix * (strong - weak), 1),
        "answers_as_mixtral": round(mix, 3),
    }  # fmt: skip
    for label, better, wanted in (("worse_candidate", False, "rollback"),
                                  ("better_candidate", True, "promote")):  # fmt: skip
        outcomes = [_decide(rows, seed, better, mix) for seed in range(seeds)]
        right = [n for decision, n in outcomes if decision == wanted]
        report[label] = {
            "wanted": wanted,
            "graded_calls_median": statistics.median(right) if right else None,
            "graded_calls_range": [min(right), max(right)] if right else None,
            "false_decisions": sum(1 for decision, _ in outcomes if decision != wanted),
            "seeds": seeds,
        }
    return report


# --- main -------------------------------------------------------------------------------------


async def _measure(args: argparse.Namespace) -> dict[str, object]:
    throughput: dict[str, object] = {}
    for concurrency in (1, 64):
        runs = [await _items_per_s(args.items, concurrency) for _ in range(args.repeat)]
        runner = statistics.median(r for r, _ in runs)
        bare = statistics.median(b for _, b in runs)
        throughput[f"concurrency_{concurrency}"] = {
            "eval_items_per_s": round(runner, 1),
            "bare_send_items_per_s": round(bare, 1),
            "runner_cost": round(bare / runner, 2),
        }
    samples: dict[str, list[float]] = {"none": [], "10%": [], "100%": []}
    ratios: dict[str, list[float]] = {"10%": [], "100%": []}
    order: list[tuple[str, float | None]] = [("none", None), ("10%", 0.1), ("100%", 1.0)]
    # Short rounds of all three, each rotated: the machine is shared, and its load drifts
    # over seconds, so each round's ratios are taken against that round's own baseline.
    for round_ in range(args.rounds):
        measured: dict[str, float] = {}
        for label, share in order[round_ % 3 :] + order[: round_ % 3]:
            measured[label] = await _edge_throughput(args.messages, share)
            samples[label].append(measured[label])
        for label, values in ratios.items():
            values.append(measured[label] / measured["none"])
    online: dict[str, object] = {
        label: {
            "messages_per_s": round(statistics.median(values), 1),
            "loss": round(1 - statistics.median(ratios[label]), 3) if label in ratios else 0.0,
        }
        for label, values in samples.items()
    }
    online["rounds"] = args.rounds
    return {"eval_throughput": throughput, "online_grading": online}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=os.environ.get("RELAYBATON_DATA"),
        help="the folder that holds routellm/ (default: $RELAYBATON_DATA)",
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--messages", type=int, default=600, help="per round of the edge test")
    parser.add_argument("--rounds", type=int, default=15, help="rounds of the edge test")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--gap", type=float, default=10.0, help="quality gap in points")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    configure_logging("warning")  # a debug line per turn would be most of the work measured
    report = asyncio.run(_measure(args))
    if args.data is not None and (args.data / "routellm").is_dir():
        report["rollout_on_grades"] = rollout_on_grades(args.data, args.seeds, args.gap)
    else:
        report["rollout_on_grades"] = f"no RouteLLM data under {args.data}; pass --data DIR"
    if args.json:
        print(json.dumps(report))
        return
    for section, figures in report.items():
        print(section)
        if isinstance(figures, dict):
            for key, value in figures.items():
                print(f"  {key}: {value}")
        else:
            print(f"  {figures}")


if __name__ == "__main__":
    main()
