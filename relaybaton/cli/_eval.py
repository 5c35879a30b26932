"""``relaybaton eval FLOW DATASET``: run a dataset through a flow and grade every item.

The flow is opened with ``open_flow``, as ``run`` and ``serve`` open it, and the items go
through the runtime's accept path. ``--compare FLOW2`` or ``--variant SLOT=provider:model``
(repeatable) runs a second variant (B) on the same items and prints the paired differences;
``--fail-under`` gates on the last variant (the candidate, B, when there are two): the
exit status is 1 when a pass rate is under its threshold, 2 on bad input.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
from collections.abc import Sequence
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from relaybaton.cli._conversations import open_store_path
from relaybaton.errors import ConfigError
from relaybaton.evals import (
    EvalItem,
    GraderSpec,
    Progress,
    Summary,
    VariantRun,
    compare,
    dataset_from_store,
    format_comparison,
    format_summary,
    html_report,
    json_report,
    junit_report,
    load_dataset,
    load_graders_file,
    run_dataset,
    summarize,
)
from relaybaton.flow._compose import open_flow, parse_model_overrides
from relaybaton.flow._file import FlowFile, load_flow
from relaybaton.flow._graders import create_flow_graders
from relaybaton.flow._variants import variant_of

__all__ = ["add_eval_command"]

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def add_eval_command(commands: Any) -> None:
    """Register ``eval`` on the CLI's subparsers."""
    command = commands.add_parser("eval", help="run a dataset through a flow and grade every item")
    command.add_argument("flow", help="the flow file (TOML); its [evals] table has the graders")
    command.add_argument("dataset", nargs="?", help="a .jsonl, .json or .csv dataset")
    command.add_argument("--graders", help="a TOML file of [[graders]] (added to the flow's)")
    store = command.add_argument_group("a dataset from stored conversations")
    store.add_argument("--from-store", metavar="STORE", help="SQLite file or PostgreSQL URL")
    store.add_argument("--since", help="last written at or after (ISO time, or 24h, 7d ago)")
    store.add_argument("--until", help="last written before (ISO time, or 1h, 2d ago)")
    store.add_argument("--agent", action="append", default=[], help="held by this agent")
    store.add_argument("--status", choices=["active", "awaiting_approval", "closed"])
    store.add_argument("--limit", type=int, help="at most this many conversations")
    command.add_argument("--concurrency", type=int, default=8, help="items at once (default 8)")
    command.add_argument("--repeat", type=int, default=1, help="runs per item (default 1)")
    command.add_argument("--compare", metavar="FLOW2", help="run this flow too, as variant B")
    command.add_argument(
        "--compare-variant",
        metavar="NAME",
        help="run the flow's [variants.NAME] too, as variant B",
    )
    command.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="SLOT=PROVIDER:MODEL",
        help="variant B uses this model in SLOT (repeatable)",
    )
    command.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="SLOT=PROVIDER:MODEL",
        help="use another model for a slot in every variant ('*=...' for every slot)",
    )
    command.add_argument(
        "--approvals",
        choices=["approve", "reject", "wait"],
        default="approve",
        help="how tool calls that wait for a person are decided (default: approve)",
    )
    command.add_argument(
        "--fail-under",
        action="append",
        default=[],
        metavar="RATE|GRADER=RATE",
        help="exit 1 when the overall (or GRADER's) pass rate is under RATE (0..1)",
    )
    command.add_argument("--json", action="store_true", help="print one JSON document")
    command.add_argument("--junit", metavar="PATH", help="write JUnit XML here")
    command.add_argument("--html", metavar="PATH", help="write a self-contained HTML report")
    command.set_defaults(func=_eval)


def _moment(value: str | None, option: str) -> float | None:
    if value is None:
        return None
    relative = _RELATIVE.match(value.strip())
    if relative:
        return time.time() - float(relative.group(1)) * _UNIT_S[relative.group(2)]
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        raise ConfigError(
            f"{option} {value!r}: write an ISO time (2026-01-31T09:00) or an age (90m, 24h, 7d)"
        ) from None


def _gates(values: Sequence[str]) -> dict[str, float]:
    gates: dict[str, float] = {}
    for value in values:
        name, sep, rate = value.rpartition("=")
        try:
            threshold = float(rate)
        except ValueError:
            threshold = -1.0
        if not 0.0 <= threshold <= 1.0:
            raise ConfigError(
                f"--fail-under {value!r}: write a pass rate in 0..1 (0.9) or GRADER=RATE"
            )
        gates[name if sep else "overall"] = threshold
    return gates


def _check_gates(summary: Summary, gates: dict[str, float]) -> dict[str, object]:
    results: dict[str, object] = {}
    for name, threshold in gates.items():
        found = summary.grader(name)
        if found is None:
            known = ", ".join(["overall", *(g.grader for g in summary.graders)])
            raise ConfigError(f"--fail-under {name}=...: no grader {name!r}; graders: {known}")
        rate = found.pass_rate.value
        results[name] = {"threshold": threshold, "pass_rate": rate, "met": rate >= threshold}
    return results


async def _items(args: argparse.Namespace) -> list[EvalItem]:
    if args.from_store:
        if args.dataset:
            raise ConfigError("give a DATASET or --from-store, not both")
        async with open_store_path(args.from_store) as store:
            return await dataset_from_store(
                store,
                since=_moment(args.since, "--since"),
                until=_moment(args.until, "--until"),
                agents=args.agent,
                status=args.status,
                limit=args.limit,
            )
    if not args.dataset:
        raise ConfigError("give a DATASET file (.jsonl, .json, .csv) or --from-store STORE")
    return load_dataset(args.dataset)


async def _evaluate(
    args: argparse.Namespace, flow: FlowFile, variants: list[tuple[str, FlowFile, dict[str, str]]]
) -> list[VariantRun]:
    items = await _items(args)
    extra: list[GraderSpec] = load_graders_file(args.graders) if args.graders else []
    runs: list[VariantRun] = []
    async with AsyncExitStack() as stack:
        runtimes = [
            await stack.enter_async_context(open_flow(file, model_overrides=overrides))
            for _, file, overrides in variants
        ]
        # One set of graders for every variant (a model judge on variant A's slots), so the
        # variants are graded alike.
        graders = create_flow_graders(flow, runtimes[0], extra)
        if not graders:
            raise ConfigError(
                f"{args.flow} declares no [[evals.graders]] and no --graders file was given"
            )
        for (name, _, _), runtime in zip(variants, runtimes, strict=True):
            progress = Progress(sys.stderr, len(items) * args.repeat)
            runs.append(
                await run_dataset(
                    runtime,
                    items,
                    graders,
                    variant=name,
                    concurrency=args.concurrency,
                    repeat=args.repeat,
                    approvals=args.approvals,
                    on_run=progress,
                )
            )
    return runs


def _eval(args: argparse.Namespace) -> int:
    flow = load_flow(args.flow)
    slots = sorted(flow.models)
    common = parse_model_overrides(args.model, slots)
    variants: list[tuple[str, FlowFile, dict[str, str]]] = [("A", flow, common)]
    if args.compare and args.compare_variant:
        raise ConfigError("give --compare FLOW2 or --compare-variant NAME, not both")
    if args.compare or args.compare_variant or args.variant:
        other, table = flow, dict[str, str]()
        if args.compare:
            other = load_flow(args.compare)
        elif args.compare_variant:
            other, table = variant_of(flow, args.compare_variant)
        changed = parse_model_overrides(args.variant, sorted(other.models))
        variants.append(("B", other, {**common, **table, **changed}))
    gates = _gates(args.fail_under)
    runs = asyncio.run(_evaluate(args, flow, variants))
    summaries = [summarize(r) for r in runs]
    comparison = compare(runs[0], runs[1]) if len(runs) == 2 else None
    gate = _check_gates(summaries[-1], gates)
    if args.junit:
        Path(args.junit).write_bytes(junit_report(runs))
    if args.html:
        title = f"relaybaton eval {Path(args.flow).name}"
        Path(args.html).write_text(html_report(title, runs, summaries, comparison), "utf-8")
    if args.json:
        about = {
            "flow": args.flow,
            "dataset": args.dataset or f"store {args.from_store}",
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        report = json_report(runs, summaries, comparison, gate=gate, about=about)
        sys.stdout.write(report.decode() + "\n")
    else:
        print("\n\n".join(format_summary(s) for s in summaries))
        if comparison is not None:
            print()
            print(format_comparison(comparison, summaries[0], summaries[1]))
        for name, verdict in gate.items():
            assert isinstance(verdict, dict)
            state = "met" if verdict["met"] else "MISSED"
            print(
                f"gate {name}: pass rate {verdict['pass_rate']:.1%} vs "
                f"{verdict['threshold']:.1%} — {state}"
            )
    missed = [name for name, v in gate.items() if isinstance(v, dict) and not v["met"]]
    return 1 if missed else 0
