"""A seeded load of customer conversations over HTTP, recorded as a history.

Each conversation is one client task sending its messages one after the other, each to a
node picked at random among those alive (a load balancer that knows nothing of owners).
Messages are drawn from what the example flow does: greetings (no tool), billing questions
(a handoff and a tool), small refunds (a handoff, an agent as a tool, a refund that goes
through) and large ones (a refund over $100, which waits for a person). The client is that
person too: it decides a waiting approval after a short random delay, through a random node,
so faults land while approvals wait.

A request that ends without an answer (a reset, a timeout, a 5xx) is ``unknown``, and the
client sends the same message id again through another node, up to ``retries`` times:
exactly-once must then keep one copy. A connection refused never reached a server: ``fail``.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

import aiohttp

from tests.cluster._history import Completion, HistoryRecorder, Kind, Op, ReplySeen

__all__ = ["MESSAGES", "LoadStats", "Workload", "run_load", "send_one"]

MESSAGES: tuple[str, ...] = (
    "Hello",
    "I was charged twice on my card for one purchase",
    "Can you explain my latest invoice?",
    "I want a refund of $42 for order AB-1234, it arrived damaged",
    "I want a refund of $389 for order CD-5678, the desk arrived damaged",
    "What are your opening hours?",
)

NODE_HEADER = "X-Relaybaton-Node"

# Process numbers for lone senders, far above a load's (one per conversation).
_solo_processes = itertools.count(1_000_000)


@dataclass
class Workload:
    """What the clients do: ``conversations`` of ``messages`` each, ``concurrency`` at once."""

    seed: int
    conversations: int
    messages: int = 3
    concurrency: int = 32
    timeout_s: float = 15.0
    retries: int = 3
    unreachable_s: float = 30.0
    approve_ratio: float = 0.8
    decide_delay_s: tuple[float, float] = (0.0, 0.3)
    prefix: str = "c"


@dataclass
class LoadStats:
    """What the load measured: latencies of acknowledged sends and how many of each kind."""

    latencies: list[float] = field(default_factory=list)
    outcomes: dict[str, int] = field(default_factory=dict)
    started: float = 0.0
    finished: float = 0.0
    # Per conversation: (monotonic time of each acknowledged answer): gaps show pauses.
    answered_at: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)  # one example per kind

    def count(self, kind: str) -> None:
        self.outcomes[kind] = self.outcomes.get(kind, 0) + 1


async def run_load(
    workload: Workload,
    urls: Callable[[], Sequence[str]],
    recorder: HistoryRecorder,
    *,
    stats: LoadStats | None = None,
    on_progress: Callable[[int], None] | None = None,
    stop: asyncio.Event | None = None,
) -> LoadStats:
    """Run the conversations of ``workload`` against the nodes ``urls()`` names now: all
    of them, or (with ``stop``) until it is set, when each client ends its conversation."""
    stats = stats or LoadStats()
    next_conversation = itertools.count()
    done = 0
    timeout = aiohttp.ClientTimeout(total=workload.timeout_s)
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    stats.started = time.monotonic()
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        client = _Client(session, workload, urls, recorder, stats)

        async def worker() -> None:
            nonlocal done
            while stop is None or not stop.is_set():
                number = next(next_conversation)
                if number >= workload.conversations:
                    return
                # Each conversation's own generator: the same script whatever the timing.
                rng = random.Random(f"{workload.seed}/{number}")
                texts = [rng.choice(MESSAGES) for _ in range(workload.messages)]
                await client.conversation(number, f"{workload.prefix}{number}", texts, rng)
                done += 1
                if on_progress is not None:
                    on_progress(done)

        await asyncio.gather(*(worker() for _ in range(workload.concurrency)))
    stats.finished = time.monotonic()
    return stats


async def send_one(
    url: str,
    recorder: HistoryRecorder,
    conversation_id: str,
    message_id: str,
    text: str,
    *,
    others: Callable[[], Sequence[str]] | None = None,
) -> Op:
    """Send one message to ``url`` (recorded) and return its completion; it is sent again
    like the load's, to one of ``others()`` when given, else to ``url``."""
    # A lone sender rides out a whole takeover, and the paused node's partitions moving back
    # to it once it rejoins: each move may answer 503 for up to the lease TTL + 1 s.
    workload = Workload(seed=0, conversations=1, retries=10)
    process = next(_solo_processes)  # each concurrent sender is a process of its own
    first = [True]

    def pick() -> Sequence[str]:
        if first[0] or others is None:
            first[0] = False
            return [url]
        return others()

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        client = _Client(session, workload, pick, recorder, LoadStats())
        op = Op(
            process=process,
            type="invoke",
            f="send",
            conversation_id=conversation_id,
            time=0.0,
            message_id=message_id,
            text=text,
        )
        return await client.attempt(process, op, random.Random(process), client.send)


class _Client:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        workload: Workload,
        urls: Callable[[], Sequence[str]],
        recorder: HistoryRecorder,
        stats: LoadStats,
    ) -> None:
        self.session = session
        self.workload = workload
        self.urls = urls
        self.recorder = recorder
        self.stats = stats

    def pick(self, rng: random.Random) -> str:
        live = list(self.urls())
        return rng.choice(live) if live else ""

    async def conversation(
        self, process: int, cid: str, texts: list[str], rng: random.Random
    ) -> None:
        for number, text in enumerate(texts):
            mid = f"{cid}-m{number}"
            op = Op(
                process=process,
                type="invoke",
                f="send",
                conversation_id=cid,
                time=0.0,
                message_id=mid,
                text=text,
            )
            done = await self.attempt(process, op, rng, self.send)
            for approval_id in done.approval_ids if done.type == "ok" else ():
                await asyncio.sleep(rng.uniform(*self.workload.decide_delay_s))
                decision = "approve" if rng.random() < self.workload.approve_ratio else "reject"
                decide = Op(
                    process=process,
                    type="invoke",
                    f="decide",
                    conversation_id=cid,
                    time=0.0,
                    approval_id=approval_id,
                    decision=decision,
                )
                await self.attempt(process, decide, rng, self.decide)

    async def attempt(self, process: int, op: Op, rng: random.Random, call: _Call) -> Op:
        """Invoke ``op``; on ``unknown``, again (same ids) through another node."""
        done = op
        unknowns = 0
        # While no node answers at all (every one down or restarting), keep trying until
        # the deadline: those attempts reached nobody, so they cost no retry.
        deadline = time.monotonic() + self.workload.unreachable_s
        while True:
            invoke = self.recorder.invoke(process, op)
            started = time.monotonic()
            completion = await call(self.pick(rng), invoke)
            done = self.recorder.complete(invoke, completion)
            self.stats.count(f"{op.f}:{completion.type}")
            if completion.type == "ok":
                if op.f == "send":
                    now = time.monotonic()
                    self.stats.latencies.append(now - started)
                    self.stats.answered_at.setdefault(op.conversation_id, []).append(now)
                return done
            self.stats.errors.setdefault(f"{op.f}:{completion.type}", completion.error[:160])
            if completion.type == "fail" and not completion.error.startswith("connection refused"):
                return done
            if completion.type == "unknown":
                unknowns += 1
            if unknowns > self.workload.retries or time.monotonic() > deadline:
                return done
            await asyncio.sleep(rng.uniform(0.05, 0.25))  # let a restart or takeover happen

    async def send(self, url: str, op: Op) -> Completion:
        path = f"{url}/v1/conversations/{op.conversation_id}/messages"
        body = {"text": op.text, "message_id": op.message_id}
        return await self.post(path, body, _send_completion)

    async def decide(self, url: str, op: Op) -> Completion:
        path = f"{url}/v1/approvals/{op.approval_id}"
        return await self.post(path, {"decision": op.decision}, _decide_completion)

    async def post(
        self,
        path: str,
        body: Mapping[str, object],
        read: Callable[[int, dict[str, object], str], Completion],
    ) -> Completion:
        if path.startswith("/"):
            return Completion(type="fail", error="connection refused: no node alive")
        try:
            async with self.session.post(path, json=body) as response:
                node = response.headers.get(NODE_HEADER, "")
                try:
                    data = await response.json(content_type=None)
                except ValueError:
                    data = {}
                return read(response.status, data if isinstance(data, dict) else {}, node)
        except aiohttp.ClientConnectorError as exc:
            # Never reached a server: nothing was accepted.
            return Completion(type="fail", error=f"connection refused: {exc}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            return Completion(type="unknown", error=repr(exc)[:200])


_Call = Callable[[str, Op], Awaitable[Completion]]


def _send_completion(status: int, data: dict[str, object], node: str) -> Completion:
    if status == 200:
        replies = data.get("replies")
        seen = tuple(
            ReplySeen(agent=str(r.get("agent", "")), text=str(r.get("text", "")))
            for r in (replies if isinstance(replies, list) else [])
            if isinstance(r, dict)
        )
        error = data.get("error")
        if error:
            seen += (ReplySeen(agent="!", text=str(error)),)
        epoch = data.get("epoch")
        return Completion(
            type="ok",
            status="completed",
            replies=seen,
            epoch=epoch if isinstance(epoch, int) else None,
            node=node,
        )
    if status == 202:
        state = str(data.get("status", "accepted"))
        ids = data.get("approval_ids") or []
        return Completion(
            type="ok",
            status=state,
            approval_ids=tuple(str(i) for i in ids) if isinstance(ids, list) else (),
            node=node,
        )
    return _refusal(status, data, node)


def _decide_completion(status: int, data: dict[str, object], node: str) -> Completion:
    if status == 200:
        return Completion(type="ok", status=str(data.get("status", "decided")), node=node)
    return _refusal(status, data, node)


def _refusal(status: int, data: dict[str, object], node: str) -> Completion:
    error = data.get("error")
    message = str(error.get("message", "")) if isinstance(error, dict) else str(data)[:200]
    # A 4xx is a refusal before anything was accepted; a 5xx (a 503 while draining or
    # moving, a 500) may come after acceptance: unknown is the honest reading.
    kind: Kind = "fail" if 400 <= status < 500 else "unknown"
    return Completion(type=kind, status=str(status), error=f"{status} {message}", node=node)
