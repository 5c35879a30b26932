"""Server-sent events: a bounded replay log per conversation, and the stream writer.

The hub subscribes to the runtime's event stream once and keeps, per conversation, the last
``replay_events`` events with increasing ids, so a client that reconnects with
``Last-Event-ID`` gets what it missed (or a ``gap`` event saying how many it can no longer
get). Logs of at most ``max_conversations`` conversations are kept, least recently written
first out, skipping those with a reader. Events are encoded when read, not when written, so
a conversation nobody watches costs a deque append per event.

The log is also the tracer's source (``Tracer`` reads a conversation's entries when its
trace is read): each entry carries the two clocks of its moment, and a log keeps how far
the tracer has read it, so one subscriber keeps each event once for both.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import final

import anyio
import msgspec
import structlog
from aiohttp import web

from relaybaton.runtime import Conversations

__all__ = ["EventHub", "EventLog", "LoggedEvent", "stream_events"]

_log = structlog.get_logger("relaybaton.service")

_encoder = msgspec.json.Encoder()


class LoggedEvent(msgspec.Struct, frozen=True, gc=False):
    """One event of a conversation, numbered, with the user message it belongs to ("" for
    an event outside a turn) and the runtime clock's and Unix time at its moment.

    A struct the garbage collector does not track: it refers to its event and nothing
    refers back, and every logged event would otherwise be one more object per collection.
    """

    id: int
    message_id: str
    event: msgspec.Struct
    now: float
    wall: float

    def data(self, conversation_id: str) -> dict[str, object]:
        """The event as JSON-ready data, with its id, conversation and message.

        Every id is named for what it identifies (``event_id``, as in ``Last-Event-ID``),
        and the event's own fields follow, ``kind`` first.
        """
        body: dict[str, object] = {
            "event_id": self.id,
            "conversation_id": conversation_id,
            "message_id": self.message_id,
        }
        body.update(msgspec.to_builtins(self.event))
        return body


@final
class EventLog:
    """The recent events of one conversation and the readers waiting for the next."""

    __slots__ = ("closed", "events", "live", "next_id", "readers", "traced", "waiters")

    def __init__(self, capacity: int) -> None:
        self.events: deque[LoggedEvent] = deque(maxlen=capacity)
        self.next_id = 1
        self.waiters: list[asyncio.Future[None]] = []
        self.readers = 0  # who keeps the log from being dropped
        self.live = 0  # of those, who shows the answer as it streams
        self.closed = False
        self.traced = 0  # the id of the last event the tracer built spans from

    def wake(self) -> None:
        """Wake every reader waiting in ``wait``."""
        if not self.waiters:  # the common case: nobody is reading this conversation now
            return
        waiters, self.waiters = self.waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def after(self, last_id: int) -> tuple[list[LoggedEvent], int]:
        """Events with an id above ``last_id``, and how many of those were already dropped."""
        events = self.events
        if not events or events[-1].id <= last_id:
            return [], 0
        first = events[0].id
        missed = max(0, first - last_id - 1)
        start = max(0, last_id + 1 - first)
        return [events[i] for i in range(start, len(events))], missed

    async def wait(self, timeout: float) -> None:
        """Return when an event arrives, the log closes, or ``timeout`` passes."""
        if self.closed:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        with anyio.move_on_after(timeout):
            await waiter

    def close(self) -> None:
        self.closed = True
        self.wake()


@final
class EventHub:
    """Keeps every conversation's recent events for streaming and replay."""

    def __init__(
        self,
        conversations: Conversations,
        *,
        replay_events: int = 512,
        max_conversations: int = 10_000,
    ) -> None:
        self.conversations = conversations
        self.replay_events = replay_events
        self.max_conversations = max_conversations
        self.logs: OrderedDict[str, EventLog] = OrderedDict()
        #: When set, the Unix time of each conversation's last event is noted here (the
        #: operator API's listing without a store), by the one listener that has it.
        self.touched: dict[str, float] | None = None
        self._by_id = conversations.by_id
        self._now = conversations.system.clock.now
        self.closed = False
        self._unsubscribe: Callable[[], None] | None = conversations.subscribe(self._on_event)
        conversations.stream_replies = True  # SSE clients see answers token by token
        conversations.stream_filter = self.watched  # ... in the conversations they watch

    def watched(self, conversation_id: str) -> bool:
        """Whether someone reads the conversation's events live (its deltas are wanted)."""
        log = self.logs.get(conversation_id)
        return log is not None and log.live > 0

    def _on_event(self, conversation_id: str, event: msgspec.Struct) -> None:
        # Every event of every conversation passes here: the log's append, written out.
        conversation = self._by_id.get(conversation_id)
        active = conversation.active if conversation is not None else None
        log = self.logs.get(conversation_id)
        if log is None:
            log = self.log(conversation_id)
        else:
            self.logs.move_to_end(conversation_id)
        wall = time.time()
        log.events.append(
            LoggedEvent(
                log.next_id,
                active.message_id if active is not None else "",
                event,
                self._now(),
                wall,
            )
        )
        log.next_id += 1
        if self.touched is not None:
            self.touched[conversation_id] = wall
        if log.waiters:
            log.wake()

    def log(self, conversation_id: str) -> EventLog:
        """The conversation's log, created (and the oldest unwatched one dropped) if new."""
        logs = self.logs
        log = logs.get(conversation_id)
        if log is not None:
            logs.move_to_end(conversation_id)
            return log
        log = logs[conversation_id] = EventLog(self.replay_events)
        if self.closed:
            log.closed = True
        if len(logs) > self.max_conversations:
            for key, old in logs.items():
                if old.readers == 0:
                    del logs[key]
                    break
        return log

    def end_streams(self) -> None:
        """End every stream, now and to come (the server is draining); keep logging, for
        the spans of turns that run past the drain's deadline."""
        self.closed = True
        for log in self.logs.values():
            log.close()

    def close(self) -> None:
        """End every stream and stop listening (the service is closing)."""
        self.end_streams()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None


def _frame(event: LoggedEvent, conversation_id: str) -> bytes:
    kind = getattr(event.event, "kind", None) or type(event.event).__struct_config__.tag
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (
        event.id,
        str(kind).encode(),
        _encoder.encode(event.data(conversation_id)),
    )


async def stream_events(
    request: web.Request,
    hub: EventHub,
    conversation_id: str,
    *,
    last_id: int,
    keepalive_s: float,
) -> web.StreamResponse:
    """Answer ``request`` with the conversation's events as ``text/event-stream``.

    Replays what came after ``last_id`` first, then follows live, writing a keep-alive
    comment after ``keepalive_s`` idle seconds. Ends when the client goes away or the hub
    closes; a client going away touches nothing but its own stream.
    """
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    log = hub.log(conversation_id)
    log.readers += 1
    log.live += 1
    try:
        await response.write(b"retry: 1000\n\n")
        while True:
            events, missed = log.after(last_id)
            if missed:
                gap = {
                    "kind": "gap",
                    "conversation_id": conversation_id,
                    "missed": missed,
                    "after": last_id,
                }
                await response.write(b"event: gap\ndata: %s\n\n" % _encoder.encode(gap))
            if events:
                await response.write(b"".join(_frame(e, conversation_id) for e in events))
                last_id = events[-1].id
                continue
            if log.closed:
                break
            await log.wait(keepalive_s)
            if not log.after(last_id)[0] and not log.closed:
                await response.write(b": keep-alive\n\n")
    except ConnectionError as exc:  # ConnectionResetError is one
        # The client left; its conversation goes on without it. Clients leave all the time.
        _log.debug("event_stream_closed_by_client", conversation_id=conversation_id, exc_info=exc)
    finally:
        log.readers -= 1
        log.live -= 1
    return response
