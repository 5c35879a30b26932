"""``relaybaton demo``: the customer-service flow under load, a fault, and the supervisor.

It runs the runtime embedded, on simulated models, offline. A producer replays the arrival
times of the Azure LLM inference conversation trace (compressed to fit ``--duration`` at
``--rate`` conversations per second; a Poisson stream when the trace is not there). At 30%
of the run the ``general`` model slows down 8×, at 50% it fails every call, at 75% it heals;
the supervisor fails the slot over to its fallback and later restores it. A live status
line (plain lines when stdout is not a terminal) shows conversations/s, handoffs, p95,
spend and each slot's current model; the run ends with a summary table, or with one JSON
object under ``--json``.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import random
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec

from relaybaton.actors import open_runtime
from relaybaton.actors.routing import ModelSlot
from relaybaton.actors.routing._breaker import BreakerPolicy
from relaybaton.actors.routing._health import HealthBoard
from relaybaton.actors.routing._router import Candidate
from relaybaton.actors.routing._supervisor import SwapEvent, open_model_supervisor
from relaybaton.adapters import ModelAdapter, RetryPolicy, SimulatedModel
from relaybaton.adapters._faulty import FaultyModel
from relaybaton.flow._compose import build_agents, create_adapters
from relaybaton.flow._file import load_flow
from relaybaton.runtime import MonotonicClock
from relaybaton.runtime.messages import HandoffEvent

__all__ = ["add_demo_command"]

_ROOT = Path(__file__).resolve().parents[2]
_CLEAR = "\r" + " " * 100 + "\r"  # wipe the live status line before a permanent line
_MESSAGES = (
    "I was charged twice for order AB-1234, can you check my invoice?",
    "My order AB-1234 arrived damaged, I want a refund of $40.",
    "Hello! What are your opening hours?",
    "Please refund order CD-9921, it came late and broken.",
    "Why is there an extra charge on my card this month?",
)
# The demo's models answer in tens of milliseconds, so the breaker is scaled to match.
_POLICY = BreakerPolicy(
    error_rate=0.3, min_calls=10, window_s=5.0, window_calls=30, consecutive_failures=3,
    p95_s=None, p95_ratio=3.0, stuck_multiple=3.0, stuck_calls=3, open_s=1.0, backoff=2.0,
    max_open_s=3.0, probes=3, cooldown_s=5.0,
)  # fmt: skip


def add_demo_command(commands: Any) -> None:
    """Add ``demo`` to the CLI's subcommands."""
    demo = commands.add_parser("demo", help="watch the supervisor fail over under live load")
    demo.add_argument("--duration", type=float, default=15.0, help="seconds (default 15)")
    demo.add_argument("--rate", type=float, default=25.0, help="conversations/s (default 25)")
    demo.add_argument(
        "--fault",
        choices=["both", "latency", "outage", "blackhole", "none"],
        default="both",
        help="what happens to the general model midway (default: 8x latency, then an outage)",
    )
    demo.add_argument("--data", type=Path, default=_ROOT.parent / "shared" / "data")
    demo.add_argument("--flow", type=Path, default=_ROOT / "examples" / "customer_service.toml")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    demo.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    summary = asyncio.run(_run(args))
    if args.json:
        sys.stdout.write(msgspec.json.encode(summary).decode() + "\n")
    else:
        _print_summary(summary)
    return 0


def _arrivals(data: Path, duration: float, rate: float, rng: random.Random) -> list[float]:
    trace = data / "azure_llm_inference_trace_2023" / "AzureLLMInferenceTrace_conv.csv"
    count = max(1, int(duration * rate))
    if trace.exists():
        with trace.open() as handle:
            stamps = [
                datetime.fromisoformat(row["TIMESTAMP"][:26])
                for _, row in zip(range(count), csv.DictReader(handle), strict=False)
            ]
        times = [(s - stamps[0]).total_seconds() for s in stamps]
        span = times[-1] or 1.0
        return [t * (count / rate) / span for t in times]  # compressed to the asked rate
    out, now = [], 0.0
    for _ in range(count):
        now += rng.expovariate(rate)
        out.append(now)
    return out


def _slots(flow_adapters: dict[str, ModelAdapter], clock: MonotonicClock, board: HealthBoard):  # type: ignore[no-untyped-def]
    faulty: dict[str, FaultyModel] = {}
    slots: dict[str, ModelSlot] = {}
    for name, adapter in flow_adapters.items():
        primary = FaultyModel(adapter, clock=clock)
        latency = getattr(adapter, "latency_p50_s", 0.05)
        fallback = SimulatedModel(
            f"simulated:{name}-fallback",
            latency_p50_s=latency * 1.2,
            price_in_per_1k=getattr(adapter, "price_in_per_1k", 0.0005) * 1.5,
            price_out_per_1k=getattr(adapter, "price_out_per_1k", 0.0015) * 1.5,
            clock=clock,
            seed=7,
        )
        faulty[name] = primary
        slots[name] = ModelSlot(
            name, primary, clock=clock, retry=RetryPolicy(attempts=2, base_delay=0.01), board=board,
            candidates=[Candidate(primary, tier=2), Candidate(fallback, tier=2)],
            attempt_timeout_multiple=3.0,
        )  # fmt: skip
    return faulty, slots


async def _run(args: argparse.Namespace) -> dict[str, object]:
    rng = random.Random(args.seed)
    flow = load_flow(args.flow)
    clock = MonotonicClock()
    agents = build_agents(flow)
    board = HealthBoard(clock, _POLICY)
    faulty, slots = _slots(create_adapters(flow, clock=clock), clock, board)
    arrivals = _arrivals(args.data, args.duration, args.rate, rng)
    duration = max(args.duration, arrivals[-1])
    handoffs = 0
    latencies: list[float] = []
    failures = 0
    samples: dict[str, str] = {}
    live = sys.stdout.isatty() and not args.json
    swaps: list[SwapEvent] = []

    def on_swap(event: SwapEvent) -> None:
        swaps.append(event)
        if not args.json:
            t = event.at - started
            sys.stdout.write(
                f"{_CLEAR if live else ''}[{t:5.1f}s] supervisor {event.action}: {event.slot} "
                f"{event.source} → {event.target} ({event.reason})\n"
            )

    async with open_runtime(
        agents[flow.entry], agents=list(agents.values()), models=slots, clock=clock,
        tracing=False, max_turns=flow.flow.max_turns, max_handoffs=flow.flow.max_handoffs,
    ) as runtime:  # fmt: skip

        def on_event(conversation_id: str, event: msgspec.Struct) -> None:
            nonlocal handoffs
            if isinstance(event, HandoffEvent) and event.action == "handoff":
                handoffs += 1

        runtime.conversations.subscribe(on_event)
        async with open_model_supervisor(runtime.system, slots, board) as supervisor:
            supervisor.state.swap_listeners.append(on_swap)
            started = clock.now()
            faults = _fault_plan(args.fault, duration)
            pending: set[asyncio.Future[None]] = set()

            async def converse(i: int) -> None:
                nonlocal failures
                begin = clock.now()
                message = rng.choice(_MESSAGES)
                result = await runtime.send(f"demo-{i}", message)
                latencies.append(clock.now() - begin)
                if result.error:
                    failures += 1
                else:  # the first answer to each message: what a customer reads
                    samples.setdefault(message, result.text)

            last_print = 0.0
            index = 0
            while index < len(arrivals) or pending:
                now = clock.now() - started
                while faults and faults[0][0] <= now:
                    _, action = faults.pop(0)
                    _inject(faulty.get("general") or next(iter(faulty.values())), action)
                    if not args.json:
                        sys.stdout.write(
                            f"{_CLEAR if live else ''}[{now:5.1f}s] fault: general model {action}\n"
                        )
                while index < len(arrivals) and arrivals[index] <= now:
                    task = asyncio.ensure_future(converse(index))
                    pending.add(task)
                    task.add_done_callback(pending.discard)
                    index += 1
                if not args.json and now - last_print >= (0.25 if live else 1.0):
                    last_print = now
                    line = _status(now, latencies, handoffs, supervisor.state, slots)
                    sys.stdout.write(f"\r{line:<100}" if live else f"{line}\n")
                    sys.stdout.flush()
                if now > duration + 30:
                    break
                await asyncio.sleep(0.02)
            if live:
                sys.stdout.write("\n")
            state = supervisor.state
            owners: dict[str, int] = {}
            for i in range(len(arrivals)):
                conversation = runtime.conversation(f"demo-{i}")
                if conversation is not None:
                    owner = conversation.owner or "?"
                    owners[owner] = owners.get(owner, 0) + 1
            elapsed = clock.now() - started
            return {
                "conversations": len(latencies),
                "failed": failures,
                "handoffs": handoffs,
                "p95_s": round(_p95(latencies), 4),
                "cost_usd": round(sum(state.spend_by_model.values()), 6),
                "conversations_per_s": round(len(latencies) / max(elapsed, 1e-9), 2),
                "spend_by_agent": {k: round(v, 6) for k, v in state.spend_by_agent.items()},
                "spend_by_model": {k: round(v, 6) for k, v in state.spend_by_model.items()},
                "calls_by_model": dict(state.calls_by_model),
                "owners": owners,
                "swaps": [
                    {
                        "at_s": round(s.at - started, 3),
                        "slot": s.slot,
                        "from": s.source,
                        "to": s.target,
                        "reason": s.reason,
                    }
                    for s in swaps
                ],
                "duration_s": round(elapsed, 2),
                "sample_replies": [
                    {"message": m, "reply": samples[m]} for m in _MESSAGES if m in samples
                ],
            }
    raise AssertionError("unreachable")  # pragma: no cover


def _fault_plan(fault: str, duration: float) -> list[tuple[float, str]]:
    plan = {
        "both": [(0.3, "slow"), (0.5, "fail"), (0.75, "heal")],
        "latency": [(0.3, "slow"), (0.75, "heal")],
        "outage": [(0.5, "fail"), (0.75, "heal")],
        "blackhole": [(0.5, "blackhole"), (0.75, "heal")],
        "none": [],
    }[fault]
    return [(share * duration, action) for share, action in plan]


def _inject(model: FaultyModel, action: str) -> None:
    if action == "slow":
        model.slow(8.0)
    elif action == "fail":
        model.fail()
    elif action == "blackhole":
        model.blackhole()
    else:
        model.heal()


def _p95(values: list[float]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[int(0.95 * (len(ordered) - 1))]


def _status(
    now: float, latencies: list[float], handoffs: int, state: Any, slots: dict[str, ModelSlot]
) -> str:
    done = len(latencies)
    recent = latencies[-200:]
    spend = sum(state.spend_by_model.values())
    models = " ".join(f"{n}={s.adapter.name.partition(':')[2]}" for n, s in slots.items())
    return (
        f"[{now:5.1f}s] {done / max(now, 1e-9):5.1f} conv/s · {done} done · {handoffs} handoffs"
        f" · p95 {_p95(recent) * 1000:5.0f} ms · ${spend:.4f} · {models}"
    )


def _print_summary(summary: dict[str, Any]) -> None:
    print("\nsummary")
    print(f"  conversations   {summary['conversations']} ({summary['failed']} failed), "
          f"{summary['conversations_per_s']}/s")  # fmt: skip
    print(f"  handoffs        {summary['handoffs']}")
    print(f"  p95             {summary['p95_s'] * 1000:.0f} ms")
    print(f"  spend           ${summary['cost_usd']:.6f}")
    print(f"  owners at end   {summary['owners']}")
    print("  spend by agent")
    for agent, usd in sorted(summary["spend_by_agent"].items()):
        print(f"    {agent:<12} ${usd:.6f}")
    print("  model calls and spend")
    for model, calls in sorted(summary["calls_by_model"].items()):
        print(f"    {model:<30} {calls:>6} calls  ${summary['spend_by_model'].get(model, 0):.6f}")
    print("  what customers read")
    for sample in summary["sample_replies"]:
        print(f"    > {sample['message']}\n      {sample['reply']}")
    print("  supervisor swaps")
    for swap in summary["swaps"]:
        where = f"{swap['at_s']:6.1f}s {swap['slot']}"
        print(f"    {where}: {swap['from']} → {swap['to']} ({swap['reason']})")
