"""What does the kernel cost next to the plainest asyncio program doing the same work?

Workload "handoff-tool": a user message enters triage, whose model hands off to a refund
expert; the expert's model calls a policy agent as a tool (a fixed text), then answers. One
handoff, one agent-as-tool call, four model calls per conversation; models are scripted and
answer at once, so what is measured is the runtime, not a model.

The floor runs the same message pattern with bare asyncio: one ``asyncio.Queue`` mailbox
and one task per (agent, conversation), and a future for each request/reply. It has none
of relaybaton's guarantees (ownership, fencing, dedup, supervision, bounded mailboxes), so
it is a floor, not a competitor.

Figures, each for relaybaton (tracing off), relaybaton with tracing events on, and the floor:

- ``us_per_conv_seq``: µs per conversation, one at a time (median of the repetitions);
- ``conv_per_s_concurrent``: conversations per second with 1,000 in flight (ten waves
  of 1,000, timed together);
- ``conv_per_s_10k``: the same with 10,000 in flight (one wave of 10,000);
- ``mb_per_10k_live``: RSS growth with 10,000 conversations parked inside the policy
  agent's model call (each system measured in a fresh process).

Both programs run with CPython's collector set as the relaybaton CLI sets it for a
long-running process (young-generation threshold 10,000, middle 100; see ``open_system``);
the row ``relaybaton_gc_default`` repeats relaybaton at the interpreter's defaults (700, 10),
to show what that setting buys at 10,000 conversations in flight.

With ``--guardrails KIND,...`` (``pii``, ``length``, ``deny``, ``patterns``,
``json_schema``, or ``all``), relaybaton (tracing off) also runs with one input and one
output guardrail of each kind on every agent, none of which trips (the message and the
answers are JSON strings, so the schema check has work to do); ``all`` puts one of each
kind at both stages. Each configuration and a runtime without guardrails are open side by
side and timed in turns, repetition after repetition (µs per conversation, one at a time),
so a shared machine's drift falls on all of them alike; ``guardrails_<kind>_time_vs_none``
is the ratio of the medians.

Read the ratios, not the absolute times: these machines are shared and noisy, and every
figure here comes from the same run. Usage: ``python benchmarks/overhead.py [--json]
[--repeat N] [--quick] [--guardrails KIND,...]``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass

from relaybaton.actors import Agent, Guardrail, create_guardrail, handoff, open_runtime
from relaybaton.adapters import (
    AssistantMessage,
    ChatMessage,
    ModelRequest,
    RequestMetadata,
    ToolResultMessage,
    ToolSpec,
    UserMessage,
)
from relaybaton.runtime._system import GC_MIDDLE_THRESHOLD
from relaybaton.testing import ScriptedModel, tool_call

# --- relaybaton ---------------------------------------------------------------------------


def _scripts(gate: asyncio.Event | None = None) -> dict[str, ScriptedModel]:
    def triage(_: ModelRequest) -> AssistantMessage:
        return AssistantMessage(tool_calls=(tool_call("transfer_to_refund", "h1"),))

    def refund(request: ModelRequest) -> AssistantMessage:
        if (
            isinstance(request.messages[-1], ToolResultMessage)
            and request.messages[-1].name == "policy"
        ):
            return AssistantMessage(text='"Your refund is approved under the 30-day policy."')
        return AssistantMessage(tool_calls=(tool_call("policy", "t1", input="refund rules?"),))

    def policy(_: ModelRequest) -> AssistantMessage:
        return AssistantMessage(text="Refunds are allowed within 30 days of delivery.")

    return {
        "triage": ScriptedModel(triage, keep_requests=False),
        "refund": ScriptedModel(refund, keep_requests=False),
        "policy": ScriptedModel(policy, keep_requests=False, gate=gate),
    }


# The user's message and the answers are JSON strings, so a json_schema guardrail has a
# value to check rather than a parse error to report; the other kinds read the same text.
MESSAGE = '"I want my money back for order AB-1234, it cost $42"'
GUARDRAIL_KINDS: dict[str, dict[str, object]] = {
    "pii": {"pii": ["card", "email"], "action": "redact"},
    "length": {"max_length": 4000, "min_length": 1},
    "deny": {"deny": ["password", "social security number", "wire transfer"]},
    "patterns": {"patterns": [r"(?i)ignore (all|previous) instructions", r"\b\d{3}-\d{2}-\d{4}\b"]},
    "json_schema": {"json_schema": {"type": "string", "maxLength": 4000}},
}


def _guardrails(kind: str) -> tuple[Guardrail, ...]:
    kinds = list(GUARDRAIL_KINDS) if kind == "all" else [kind]
    return tuple(
        create_guardrail(f"{name}_{stage}", on=[stage], **GUARDRAIL_KINDS[name])  # type: ignore[arg-type]
        for name in kinds
        for stage in ("input", "output")
    )


async def _bench_guardrails(kinds: list[str], repeat: int, seq_n: int) -> dict[str, float]:
    """Median µs per conversation for no guardrails and for each kind, timed in turns."""
    async with AsyncExitStack() as stack:
        runtimes = {
            name: await stack.enter_async_context(
                open_runtime(
                    _agents(() if name == "none" else _guardrails(name)),
                    models=_scripts(),
                    tracing=False,
                    gc_young_threshold=GC_YOUNG,
                )
            )
            for name in ["none", *kinds]
        }

        async def one(name: str, conversation_id: str) -> None:
            conversations = runtimes[name].conversations
            await runtimes[name].submit(conversation_id, MESSAGE)
            conversations.by_id.pop(conversation_id)

        for name in runtimes:
            for i in range(200):  # warm up
                await one(name, f"warm-{i}")
        times: dict[str, list[float]] = {name: [] for name in runtimes}
        for r in range(max(3, repeat)):
            for name in runtimes:
                gc.collect()
                start = time.perf_counter()
                for i in range(seq_n):
                    await one(name, f"g{r}-{i}")
                times[name].append((time.perf_counter() - start) / seq_n * 1e6)
    return {name: round(statistics.median(values), 2) for name, values in times.items()}


def _agents(guardrails: tuple[Guardrail, ...] = ()) -> Agent:
    policy = Agent(name="policy", model="policy", description="Refund policy")
    refund = Agent(
        name="refund", model="refund", tools=(policy.as_tool("policy"),), guardrails=guardrails
    )
    return Agent(name="triage", model="triage", handoffs=(handoff(refund),), guardrails=guardrails)


@dataclass
class System:
    """``start_one`` submits one conversation and returns the future of its end."""

    name: str
    start_one: Callable[[str], asyncio.Future[object]]

    async def run_one(self, conversation_id: str) -> object:
        return await self.start_one(conversation_id)

    async def run_many(self, prefix: str, n: int) -> None:
        # Futures, not a task per conversation: the driver should cost next to nothing.
        futures = [self.start_one(f"{prefix}-{i}") for i in range(n)]
        await asyncio.gather(*futures)
        futures.clear()


async def _measure(system: System, repeat: int, seq_n: int, quick: bool) -> dict[str, float]:
    for i in range(200):  # warm up
        await system.run_one(f"warm-{i}")
    seq = []
    for r in range(repeat):
        gc.collect()
        start = time.perf_counter()
        for i in range(seq_n):
            await system.run_one(f"s{r}-{i}")
        seq.append((time.perf_counter() - start) / seq_n * 1e6)
    # Both concurrent figures time the same 10,000 conversations: ten waves of 1,000, or
    # one of 10,000. Timing a single wave of 1,000 after an untimed gc.collect() would let
    # the 1,000 figure dodge the collector's work that the 10,000 one pays (CPython's older
    # generations are collected only after enough young collections), flattering it.
    conc = []
    for r in range(repeat):
        gc.collect()
        start = time.perf_counter()
        for wave in range(10):
            await system.run_many(f"c{r}-{wave}", 1000)
        conc.append(10_000 / (time.perf_counter() - start))
    big = []
    for r in range(max(1, repeat // 2) if quick else max(3, repeat // 2)):
        gc.collect()
        start = time.perf_counter()
        await system.run_many(f"k{r}", 10_000)
        big.append(10_000 / (time.perf_counter() - start))
    return {
        "us_per_conv_seq": round(statistics.median(seq), 2),
        "conv_per_s_concurrent": round(statistics.median(conc), 1),
        "conv_per_s_10k": round(statistics.median(big), 1),
    }


GC_YOUNG = 10_000  # what the CLI sets for a long-running process; see open_system


async def _bench_relaybaton(
    tracing: bool, repeat: int, seq_n: int, quick: bool, gc_young: int | None = GC_YOUNG
) -> dict[str, float]:
    async with open_runtime(
        _agents(), models=_scripts(), tracing=tracing, gc_young_threshold=gc_young
    ) as runtime:
        conversations = runtime.conversations

        def start_one(conversation_id: str) -> asyncio.Future[object]:
            future = runtime.submit(conversation_id, MESSAGE)
            # Finished conversations leave the registry, as a store-backed runtime would
            # passivate them; otherwise the benchmark measures its own leftovers.
            future.add_done_callback(lambda _: conversations.by_id.pop(conversation_id))
            return future  # type: ignore[return-value]

        return await _measure(System("relaybaton", start_one), repeat, seq_n, quick)


# --- the asyncio floor ---------------------------------------------------------------------


class _FloorRuntime:
    """One queue and one task per (agent, conversation); futures for request/reply.

    It calls the same scripted models with the same requests (instructions, the history,
    the tools), as a hand-written asyncio agent program would, so that the difference
    between the two is the runtime and nothing else.
    """

    def __init__(self, gate: asyncio.Event | None = None) -> None:
        self.queues: dict[tuple[str, str], asyncio.Queue[tuple[object, ...]]] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.models = _scripts(gate)
        self.tools = {
            "triage": (ToolSpec(name="transfer_to_refund", description="refunds"),),
            "refund": (ToolSpec(name="policy", description="policy"),),
            "policy": (),
        }

    async def model(self, agent: str, history: list[ChatMessage], conv: str) -> AssistantMessage:
        request = ModelRequest(
            instructions="",
            messages=tuple(history),
            tools=self.tools[agent],
            metadata=RequestMetadata(agent=agent, conversation_id=conv),
        )
        return (await self.models[agent].complete(request)).message

    def mailbox(self, agent: str, conv: str) -> asyncio.Queue[tuple[object, ...]]:
        queue = self.queues.get((agent, conv))
        if queue is None:
            queue = self.queues[(agent, conv)] = asyncio.Queue()
            task = asyncio.get_running_loop().create_task(self.loop(agent, conv, queue))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        return queue

    async def loop(self, agent: str, conv: str, queue: asyncio.Queue[tuple[object, ...]]) -> None:
        while True:
            kind, history, reply = await queue.get()
            if kind == "stop":
                return
            assert isinstance(reply, asyncio.Future)
            assert isinstance(history, list)
            if agent == "triage":
                answer = await self.model(agent, history, conv)
                history.append(answer)
                call = answer.tool_calls[0]
                history.append(ToolResultMessage(call_id=call.id, name=call.name, content="ok"))
                self.mailbox("refund", conv).put_nowait(("handoff", history, reply))
            elif agent == "refund":
                answer = await self.model(agent, history, conv)
                history.append(answer)
                call = answer.tool_calls[0]
                future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
                request = [UserMessage(text="refund rules?")]
                self.mailbox("policy", conv).put_nowait(("ask", request, future))
                result = await future
                history.append(
                    ToolResultMessage(call_id=call.id, name=call.name, content=str(result))
                )
                answer = await self.model(agent, history, conv)
                history.append(answer)
                reply.set_result(answer.text)
            else:
                reply.set_result((await self.model(agent, history, conv)).text)

    def start_one(self, conv: str) -> asyncio.Future[object]:
        reply: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        history: list[ChatMessage] = [UserMessage(text="I want my money back")]
        self.mailbox("triage", conv).put_nowait(("user", history, reply))
        reply.add_done_callback(lambda _: self.stop(conv))
        return reply

    def stop(self, conv: str) -> None:
        for agent in ("triage", "refund", "policy"):
            self.queues.pop((agent, conv)).put_nowait(("stop", None, None))


async def _bench_floor(repeat: int, seq_n: int, quick: bool) -> dict[str, float]:
    # The floor gets the same process-wide collector setting as relaybaton, so that the
    # comparison is of the two programs and not of two garbage collector settings.
    saved = gc.get_threshold()
    gc.set_threshold(GC_YOUNG, max(saved[1], GC_MIDDLE_THRESHOLD), *saved[2:])
    try:
        floor = _FloorRuntime()
        return await _measure(System("floor", floor.start_one), repeat, seq_n, quick)
    finally:
        gc.set_threshold(*saved)


# --- memory, each in its own process -------------------------------------------------------


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


async def _memory_child(which: str, live: int) -> float:
    gate = asyncio.Event()
    gc.collect()
    if which == "floor":
        floor = _FloorRuntime(gate)
        before = _rss_mb()
        futures = [floor.start_one(f"m{i}") for i in range(live)]
        while len(floor.queues) < 3 * live:  # noqa: ASYNC110 - polling a benchmark's own state
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        gc.collect()
        grown = _rss_mb() - before
        gate.set()
        await asyncio.gather(*futures)
        return grown
    async with open_runtime(_agents(), models=_scripts(gate), tracing=False) as runtime:
        before = _rss_mb()
        futures = [runtime.submit(f"m{i}", "I want my money back") for i in range(live)]
        policy = runtime.system.root.children
        while sum(len(getattr(t, "live", ())) for t in policy) < live:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        gc.collect()
        grown = _rss_mb() - before
        gate.set()
        await asyncio.gather(*futures)
        return grown


def _memory(which: str, live: int) -> float:
    out = subprocess.run(
        [sys.executable, __file__, "--memory-child", which, "--live", str(live)],
        check=True,
        capture_output=True,
        text=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


# --- main ---------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--repeat", type=int, default=5, help="repetitions (median is kept)")
    parser.add_argument("--quick", action="store_true", help="fewer conversations (CI smoke)")
    parser.add_argument("--memory-child", choices=["floor", "relaybaton"])
    parser.add_argument("--live", type=int, default=10_000)
    parser.add_argument(
        "--guardrails",
        default="",
        help=f"comma-separated guardrail kinds to measure: {', '.join(GUARDRAIL_KINDS)} or all",
    )
    args = parser.parse_args()
    kinds = [k for k in args.guardrails.split(",") if k]
    unknown = [k for k in kinds if k not in GUARDRAIL_KINDS and k != "all"]
    if unknown:
        parser.error(f"--guardrails: unknown kind(s) {unknown}; use {', '.join(GUARDRAIL_KINDS)}")
    if args.memory_child:
        print(asyncio.run(_memory_child(args.memory_child, args.live)))
        return
    seq_n = 300 if args.quick else 2000
    repeat = max(1, args.repeat)
    results: dict[str, dict[str, float]] = {
        "relaybaton": asyncio.run(_bench_relaybaton(False, repeat, seq_n, args.quick)),
        "relaybaton_tracing": asyncio.run(_bench_relaybaton(True, repeat, seq_n, args.quick)),
        "floor": asyncio.run(_bench_floor(repeat, seq_n, args.quick)),
        "relaybaton_gc_default": asyncio.run(
            _bench_relaybaton(False, repeat, seq_n, args.quick, gc_young=None)
        ),
    }
    live = 2000 if args.quick else 10_000
    for name in ("relaybaton", "floor"):
        results[name]["mb_per_10k_live"] = round(_memory(name, live) * 10_000 / live, 1)
    for name in ("relaybaton_tracing", "relaybaton_gc_default"):
        results[name]["mb_per_10k_live"] = results["relaybaton"]["mb_per_10k_live"]
    guarded = asyncio.run(_bench_guardrails(kinds, repeat, seq_n)) if kinds else {}
    rb, tr, fl = results["relaybaton"], results["relaybaton_tracing"], results["floor"]
    ratios = {
        "seq_time_vs_floor": round(rb["us_per_conv_seq"] / fl["us_per_conv_seq"], 2),
        "concurrent_throughput_vs_floor": round(
            rb["conv_per_s_concurrent"] / fl["conv_per_s_concurrent"], 2
        ),
        "throughput_10k_vs_1k": round(rb["conv_per_s_10k"] / rb["conv_per_s_concurrent"], 2),
        "memory_vs_floor": round(rb["mb_per_10k_live"] / fl["mb_per_10k_live"], 2),
        "tracing_time_vs_off": round(tr["us_per_conv_seq"] / rb["us_per_conv_seq"], 2),
    }
    for kind in kinds:
        ratios[f"guardrails_{kind}_time_vs_none"] = round(guarded[kind] / guarded["none"], 2)
    if args.json:
        print(json.dumps({**results, "guardrails_us_per_conv_seq": guarded, "ratios": ratios}))
        return
    print(
        f"{'system':<20}{'us/conv seq':>14}{'conv/s @1k':>14}{'conv/s @10k':>14}{'MB/10k live':>14}"
    )
    for name, row in results.items():
        print(
            f"{name:<20}{row['us_per_conv_seq']:>14}{row['conv_per_s_concurrent']:>14}"
            f"{row['conv_per_s_10k']:>14}{row['mb_per_10k_live']:>14}"
        )
    for name, value in guarded.items():
        print(f"{'guardrails_' + name:<20}{value:>14}")
    print()
    targets = {
        "seq_time_vs_floor": "<= 2.0",
        "concurrent_throughput_vs_floor": ">= 0.5",
        "throughput_10k_vs_1k": ">= 0.8",
        "memory_vs_floor": "<= 1.0",
        "tracing_time_vs_off": "<= 1.3",
    }
    for key, value in ratios.items():
        print(f"{key:<34}{value:>8}   target {targets.get(key, '(measured)')}")


if __name__ == "__main__":
    main()
