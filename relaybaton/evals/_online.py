"""Online grading: the same graders on a sampled share of live conversations, off the hot path.

``open_online_grading`` subscribes to the runtime's events. For a conversation in the sample
(a stable hash of its id under ``sample``, so a conversation is either always graded or
never) it keeps the events it sees, in a bounded table; when an owner replies it puts the
conversation in a bounded queue and returns — the reply is not delayed by anything but a
hash and an append. A worker task grades queued conversations with the graders that need no
expected values, and hands the mean score to the replying agent's slot as a grade
(``ModelSlot.grade``): onto the metrics stream as the call's utility, into the supervisor's
utility rule, a rollout's quality gate and the learned router. A full queue drops the
grade (counted in ``dropped``), never the reply.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import final

import anyio
import msgspec
import structlog
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from relaybaton.actors import Runtime
from relaybaton.adapters import ModelRequest
from relaybaton.errors import ConfigError
from relaybaton.evals._dataset import EvalItem
from relaybaton.evals._grade import Grade, Grader, Sample
from relaybaton.evals._runner import grade_sample
from relaybaton.evals._trace import live_trace
from relaybaton.runtime.messages import ReplyEvent

__all__ = ["OnlineGrading", "in_sample", "open_online_grading"]

_log = structlog.get_logger("relaybaton.evals")

GradeListener = Callable[[str, str, tuple[Grade, ...]], None]


def in_sample(conversation_id: str, share: float) -> bool:
    """Whether a conversation is in a sample of ``share`` (stable across processes)."""
    if share <= 0.0:
        return False
    if share >= 1.0:
        return True
    digest = hashlib.blake2b(conversation_id.encode(), digest_size=8, person=b"rb-grade").digest()
    return int.from_bytes(digest, "big") / 2**64 < share


@final
class OnlineGrading:
    """The online grader of one runtime; read its counters, add ``listeners``."""

    def __init__(
        self,
        runtime: Runtime,
        graders: Sequence[Grader],
        send: MemoryObjectSendStream[tuple[str, str]],
        *,
        sample: float,
        max_conversations: int,
        max_events: int,
    ) -> None:
        self.runtime = runtime
        self.graders = [g for g in graders if not g.needs_expected]
        self.sample = sample
        self.max_conversations = max_conversations
        self.max_events = max_events
        self.listeners: list[GradeListener] = []
        self.seen: OrderedDict[str, list[msgspec.Struct]] = OrderedDict()
        self.queued = self.graded = self.dropped = self.failed = 0
        self.by_grader: dict[str, list[float]] = {}  # name -> [count, score sum, passed]
        self._send = send
        self._sampled: OrderedDict[str, bool] = OrderedDict()

    def _in_sample(self, conversation_id: str) -> bool:
        known = self._sampled.get(conversation_id)
        if known is None:
            known = self._sampled[conversation_id] = in_sample(conversation_id, self.sample)
            if len(self._sampled) > self.max_conversations:
                self._sampled.popitem(last=False)
        return known

    def on_event(self, conversation_id: str, event: msgspec.Struct) -> None:
        """The runtime's listener: remember a sampled conversation's events, queue on reply."""
        if not self._in_sample(conversation_id):
            return
        events = self.seen.get(conversation_id)
        if events is None:
            events = self.seen[conversation_id] = []
            if len(self.seen) > self.max_conversations:
                self.seen.popitem(last=False)
        if len(events) < self.max_events:
            events.append(event)
        if isinstance(event, ReplyEvent) and event.error is None:
            try:
                self._send.send_nowait((conversation_id, event.agent))
                self.queued += 1
            except anyio.WouldBlock:
                self.dropped += 1

    async def grade(self, conversation_id: str, agent: str) -> tuple[Grade, ...]:
        """Grade the conversation now and deliver the grade to the agent's slot."""
        conversation = self.runtime.conversation(conversation_id)
        if conversation is None:
            return ()
        trace = live_trace(conversation, self.seen.get(conversation_id, ()))
        messages = tuple(t.user for t in trace.turns) or ("",)
        item = EvalItem(id=conversation_id, messages=messages)
        grades = await grade_sample(self.graders, Sample(item=item, trace=trace))
        if not grades:
            return grades
        self.graded += 1
        for grade in grades:
            stats = self.by_grader.setdefault(grade.grader, [0.0, 0.0, 0.0])
            stats[0] += 1
            stats[1] += grade.score
            stats[2] += grade.passed
        utility = sum(g.score for g in grades) / len(grades)
        deployed = self.runtime.agents.get(agent)
        if deployed is not None:
            request = ModelRequest(messages=tuple(conversation.transcript))  # type: ignore[arg-type]
            self.runtime.slots[deployed.model].grade(
                conversation_id, utility, agent=agent, request=request
            )
        for listener in self.listeners:
            listener(conversation_id, agent, grades)
        return grades

    async def run(self, receive: MemoryObjectReceiveStream[tuple[str, str]]) -> None:
        """Grade queued conversations one at a time until the stream closes."""
        async with receive:
            async for conversation_id, agent in receive:
                try:
                    await self.grade(conversation_id, agent)
                except Exception as exc:  # one conversation's grading must not stop the rest
                    self.failed += 1
                    _log.warning(
                        "online_grading_failed", conversation=conversation_id, exc_info=exc
                    )


@asynccontextmanager
async def open_online_grading(
    runtime: Runtime,
    graders: Sequence[Grader],
    *,
    sample: float,
    queue: int = 1000,
    max_conversations: int = 10_000,
    max_events: int = 1000,
) -> AsyncIterator[OnlineGrading]:
    """Grade ``sample`` (0..1) of the runtime's conversations for the block.

    On exit the subscription ends first, then the grades already queued are finished.
    Cancelling the block cancels the worker with it.
    """
    if not 0.0 <= sample <= 1.0:
        raise ConfigError(f"the graded share must be within 0..1, got {sample}")
    if queue < 1:
        raise ConfigError(f"the grading queue must hold at least 1, got {queue}")
    send, receive = anyio.create_memory_object_stream[tuple[str, str]](queue)
    grading = OnlineGrading(
        runtime, graders, send, sample=sample, max_conversations=max_conversations,
        max_events=max_events,
    )  # fmt: skip
    unsubscribe = runtime.conversations.subscribe(grading.on_event)
    async with anyio.create_task_group() as group:
        group.start_soon(grading.run, receive)
        try:
            yield grading
        finally:
            unsubscribe()
            send.close()
