"""The ``serve`` options of an A/B of two flow versions (``--ab FLOW2`` and its rules)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from relaybaton.actors.routing import RolloutPolicy
from relaybaton.cli._serve_ab import serve_ab
from relaybaton.errors import ConfigError
from relaybaton.flow._file import load_flow
from relaybaton.flow._variants import variant_of
from relaybaton.service._auth import TokenTable
from relaybaton.service._limits import ServiceLimits

__all__ = ["add_ab_options", "serve_ab_command"]


def add_ab_options(command: argparse.ArgumentParser) -> None:
    """Add the A/B options to ``serve``."""
    group = command.add_argument_group("A/B of two flow versions")
    group.add_argument("--ab", metavar="FLOW2", help="serve FLOW (A) and FLOW2 (B) as one")
    group.add_argument(
        "--ab-variant", metavar="NAME", help="B is the flow's [variants.NAME] (instead of --ab)"
    )
    group.add_argument(
        "--ab-stages",
        default="5,50,100",
        help="percent of new conversations on B, stage by stage (default 5,50,100)",
    )
    group.add_argument("--ab-window-s", type=float, default=300.0, help="seconds per stage")
    group.add_argument("--ab-min-calls", type=int, default=50, help="B's calls per stage")
    group.add_argument("--ab-min-graded", type=int, default=0, help="B's grades per stage")
    group.add_argument(
        "--ab-quality-margin", type=float, default=0.05, help="roll back below A's grade - this"
    )


def _stages(text: str) -> tuple[float, ...]:
    try:
        stages = tuple(float(s) / 100 for s in text.split(","))
    except ValueError:
        stages = ()
    if not stages or any(not 0 <= s <= 1 for s in stages) or list(stages) != sorted(stages):
        raise ConfigError(f"--ab-stages {text!r}: write rising percents 0-100, e.g. 5,50,100")
    return stages


def serve_ab_command(args: argparse.Namespace) -> int:
    """Run ``serve FLOW --ab FLOW2``."""
    if args.store or args.model:
        raise ConfigError("--ab serves both flows in memory: drop --store and --model")
    if args.ab and args.ab_variant:
        raise ConfigError("give --ab FLOW2 or --ab-variant NAME, not both")
    flow = load_flow(args.flow)
    overrides: tuple[dict[str, str], dict[str, str]]
    if args.ab_variant:
        variant, models = variant_of(flow, args.ab_variant)
        flows, overrides = (flow, variant), ({}, models)
    else:
        flows, overrides = (flow, load_flow(args.ab)), ({}, {})
    policy = RolloutPolicy(
        stages=_stages(args.ab_stages), window_s=args.ab_window_s, min_calls=args.ab_min_calls,
        min_graded=args.ab_min_graded, quality_margin=args.ab_quality_margin,
    )  # fmt: skip
    limits = ServiceLimits(
        max_body_bytes=args.max_body_bytes, rate_per_s=args.rate,
        burst=max(1, int(args.rate * 2)), max_concurrent=args.max_concurrent,
        drain_timeout_s=args.drain_timeout,
    )  # fmt: skip
    tokens = TokenTable.from_environment(os.environ, args.tokens_file)
    status: int = asyncio.run(
        serve_ab(flows, host=args.host, port=args.port, tokens=tokens, limits=limits,
                 policy=policy, overrides=overrides, out=sys.stdout)
    )  # fmt: skip
    return status
