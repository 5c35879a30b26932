"""Each producer's turn's events, published on ``<prefix>.events.<conversation_id>``.

The owner publishes the events of the turns that came in over NATS (those with a
``reply_to``): the ones the HTTP edge's event stream shows (model and tool calls,
handoffs, approvals, guardrails, the reply, what people do), as JSON: the conversation,
the user message the event belongs to (its id, "" between turns) and the event's own
fields, ``kind`` first. Not the reply's text deltas: those are made only for conversations
someone watches live on the HTTP edge.

Nothing is published before the journal holds it: events wait for the commit of what
was recorded when they were emitted (the records of the step that made them, in the
same loop iteration), so a node fenced out of a partition publishes none of its late
events, as it delivers none of its late replies. Core NATS, at most once: whoever listens
now gets them, in order per conversation; a reader that must not miss the outcome takes
the reply (``<prefix>.out.<conversation_id>``), which is published at least once.

Events wait in a bounded queue for the one task that publishes them; when NATS cannot
keep up, the oldest are dropped and counted (``relaybaton_nats_events_dropped``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import final

import msgspec
import structlog
from nats.aio.client import Client

from relaybaton.actors import ReplyDeltaEvent
from relaybaton.cluster._producer_counters import ProducerCounters
from relaybaton.cluster._subjects import ProducerSubjects
from relaybaton.errors import FencedWriteError
from relaybaton.runtime import Conversations

__all__ = ["DEFAULT_EVENT_QUEUE", "EventPublisher"]

_log = structlog.get_logger("relaybaton.cluster")

DEFAULT_EVENT_QUEUE = 10_000
"""Events waiting to be published, over all conversations, before the oldest are dropped."""

_encoder = msgspec.json.Encoder()

Pending = tuple[str, str, msgspec.Struct]  # conversation id, message id, event


@final
class EventPublisher:
    """Follows the runtime's events and publishes those of producers' turns."""

    def __init__(
        self,
        nc: Client,
        conversations: Conversations,
        subjects: ProducerSubjects,
        counters: ProducerCounters,
        *,
        capacity: int = DEFAULT_EVENT_QUEUE,
    ) -> None:
        self.nc = nc
        self.conversations = conversations
        self.subjects = subjects
        self.counters = counters
        self.capacity = capacity
        self._emitted: dict[str, list[Pending]] = {}  # this loop iteration's, per conversation
        self._ready: deque[Pending] = deque()  # committed, to publish
        self._wake = asyncio.Event()
        self._scheduled = False
        self._unsubscribe: Callable[[], None] | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Subscribe to the runtime's events and start publishing."""
        self._unsubscribe = self.conversations.subscribe(self._on_event)
        self._task = asyncio.get_running_loop().create_task(
            self._publish_loop(), name="relaybaton-nats-events"
        )

    async def aclose(self) -> None:
        """Stop following; publish what is ready (NATS flushes it on close), then stop."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._task is not None:
            await self._publish_ready()
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _on_event(self, conversation_id: str, event: msgspec.Struct) -> None:
        # Synchronous, in the emitting step: a lookup and an append.
        if type(event) is ReplyDeltaEvent:
            return
        conversation = self.conversations.get(conversation_id)
        turn = conversation.active if conversation is not None else None
        if turn is None or turn.reply_to is None:
            return  # not a producer's turn (HTTP callers have the event stream)
        self._emitted.setdefault(conversation_id, []).append(
            (conversation_id, turn.message_id, event)
        )
        if not self._scheduled:
            # Once the emitting step is done (its records are recorded by then), wait for
            # their commit: one callback per conversation per loop iteration.
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._after_commit)

    def _after_commit(self) -> None:
        self._scheduled = False
        emitted, self._emitted = self._emitted, {}
        journal = self.conversations.journal
        for conversation_id, events in emitted.items():
            if journal is None:
                self._enqueue(events)
            else:
                journal.after_commit(
                    partial(self._enqueue, events),
                    conversation_id=conversation_id,
                    refused=partial(self._refused, events),
                )

    def _refused(self, events: list[Pending], _error: FencedWriteError) -> None:
        self.counters.events_refused += len(events)

    def _enqueue(self, events: list[Pending]) -> None:
        ready = self._ready
        ready.extend(events)
        overflow = len(ready) - self.capacity
        if overflow > 0:
            for _ in range(overflow):
                ready.popleft()
            self.counters.events_dropped += overflow
        self._wake.set()

    async def _publish_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._publish_ready()
            except Exception:
                # NATS away or closing: these events are lost (at most once), not the node.
                _log.exception("nats_events_not_published", dropped=len(self._ready))
                self.counters.events_dropped += len(self._ready)
                self._ready.clear()

    async def _publish_ready(self) -> None:
        ready = self._ready
        publish = self.nc.publish
        subject = self.subjects.events
        while ready:
            conversation_id, message_id, event = ready.popleft()
            body: dict[str, object] = {
                "conversation_id": conversation_id,
                "message_id": message_id,
            }
            body.update(msgspec.to_builtins(event))
            await publish(subject(conversation_id), _encoder.encode(body))
            self.counters.events += 1
