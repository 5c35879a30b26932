"""Waiting for a turn's answer with a deadline, on the edge's hot path.

The wait owns no work: the turn runs in its conversation's actor whatever the waiter does,
so the deadline only decides when to stop waiting (and answer 202). A cancel scope is the
house's deadline for work that must stop, and it costs tens of microseconds to enter and
leave, once per request; a deadline and a done-callback on the answer's future cost a
fraction of that and cannot cancel anything but this wait.

The edge's waits all last as long (``wait_timeout_s``), so they end in the order they
began: ``WaitDeadlines`` keeps them in that order with one event-loop timer, for the
earliest, instead of a timer each (asyncio keeps its timers in a heap whose every push and
cancel compares handles in Python; a wait that ends first, as most do, is one dict insert
and one pop).

A turn that waits for a person answers at once (``Paused``). To notice the pause without a
listener on every conversation's events per waiting request (each event would then wake
every waiter), the wait rides on the event hub's log of its own conversation, which wakes
its waiters on each of that conversation's events only.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, final

from relaybaton.actors import Paused
from relaybaton.actors._pause import waiting_reply
from relaybaton.runtime import TurnResult
from relaybaton.service._sse import EventHub

__all__ = ["WaitDeadlines", "answered_within", "outcome_within"]


async def answered_within(future: asyncio.Future[Any], timeout: float) -> bool:
    """Whether ``future`` is done within ``timeout`` seconds; ``future`` is never touched.

    On cancellation (the client went away) the wait ends and the future is left to finish.
    """
    if future.done():
        return True
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[None] = loop.create_future()

    def wake(_: object = None) -> None:
        if not waiter.done():
            waiter.set_result(None)

    future.add_done_callback(wake)
    timer = loop.call_later(timeout, wake)
    try:
        await waiter
    finally:
        timer.cancel()
        future.remove_done_callback(wake)
    return future.done()


@final
class WaitDeadlines:
    """Deadlines of waits that all last ``timeout`` seconds, with one timer for them all."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        # By when each wait ends, and what ends it, in the order the waits began.
        self._waiting: OrderedDict[int, tuple[float, Callable[[], None]]] = OrderedDict()
        self._keys = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __len__(self) -> int:
        return len(self._waiting)

    def add(self, expire: Callable[[], None]) -> int:
        """Call ``expire()`` in ``timeout`` seconds unless ``discard`` comes first."""
        loop = asyncio.get_running_loop()
        key = next(self._keys)
        deadline = loop.time() + self.timeout
        self._waiting[key] = (deadline, expire)
        if self._timer is None or self._loop is not loop:
            self._loop = loop
            self._timer = loop.call_at(deadline, self._expire_due)
        return key

    def discard(self, key: int) -> None:
        """The wait ``key`` ended before its deadline: forget it."""
        self._waiting.pop(key, None)

    def _expire_due(self) -> None:
        self._timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        waiting = self._waiting
        while waiting:
            key, (deadline, expire) = next(iter(waiting.items()))
            if deadline > now:  # the earliest left: the one timer moves to it
                self._timer = loop.call_at(deadline, self._expire_due)
                return
            del waiting[key]
            expire()


async def outcome_within(
    hub: EventHub,
    conversation_id: str,
    future: asyncio.Future[TurnResult],
    deadlines: WaitDeadlines,
) -> TurnResult | Paused | None:
    """The turn's result, ``Paused`` once it waits for a person, or None past the deadline
    (``deadlines.timeout`` from now).

    Cancelling the wait (the client went away) leaves the turn running. One deadline and one
    done-callback serve the whole wait; each event of the conversation wakes it once.
    """
    conversations = hub.conversations
    loop = asyncio.get_running_loop()
    log = hub.log(conversation_id)
    current: list[asyncio.Future[None]] = []  # the wake-up of the step in progress
    expired = False

    def poke(_: object = None) -> None:
        if current and not current[0].done():
            current[0].set_result(None)

    def expire() -> None:
        nonlocal expired
        expired = True
        poke()

    deadline = deadlines.add(expire)
    future.add_done_callback(poke)
    log.readers += 1  # the log stays while we wait on it
    try:
        while True:
            if future.done():
                return future.result()
            conversation = conversations.get(conversation_id)
            if conversation is not None and conversation.waiting_for_a_person:
                requests = conversation.pending_approvals
                return Paused(
                    conversation_id=conversation_id,
                    approval_ids=tuple(r.approval_id for r in requests),
                    text=waiting_reply(conversation_id, requests),
                )
            if expired:
                return None
            changed: asyncio.Future[None] = loop.create_future()
            current[:] = [changed]
            log.waiters.append(changed)  # woken by the conversation's next event
            await changed
    finally:
        log.readers -= 1
        deadlines.discard(deadline)
        future.remove_done_callback(poke)
        if current and not current[0].done():
            current[0].cancel()  # the log skips a waiter that is done
            if current[0] in log.waiters:
                log.waiters.remove(current[0])
