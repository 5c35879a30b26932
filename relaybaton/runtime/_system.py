"""The actor system: the clock, the root supervisor, dead letters, and every task.

``open_system`` is the only way to get one. Every task the runtime starts belongs to the
system, which cancels and awaits them all when the ``async with`` block ends; no task
outlives its system.

Drain tasks are plain asyncio tasks tracked in a set the system owns, not children of an
anyio task group: ``TaskGroup.start_soon`` costs about 3.5× ``loop.create_task`` (31 µs
against 9 µs measured here with 50,000 tasks), which would be most of the kernel's budget
per conversation. The ownership rules are the same: the system starts them, watches them,
and waits for every one of them before it exits.
"""

from __future__ import annotations

import asyncio
import gc
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar, final

import anyio
import structlog

from relaybaton.runtime._activations import ActivationTable
from relaybaton.runtime._actor import Actor, ActorRef
from relaybaton.runtime._clock import Clock, MonotonicClock
from relaybaton.runtime._deadletters import DeadLetters
from relaybaton.runtime._deadlines import Deadlines
from relaybaton.runtime._supervision import Strategy, SupervisionEvent, Supervisor

__all__ = ["GC_MIDDLE_THRESHOLD", "ActorSystem", "open_system"]

GC_MIDDLE_THRESHOLD = 100  # with gc_young_threshold; see open_system

M = TypeVar("M")
R = TypeVar("R")


@final
class ActorSystem:
    """Owns the actors, their tasks and the supervision tree. Use ``open_system``."""

    def __init__(
        self,
        *,
        clock: Clock,
        name: str = "system",
        max_restarts: int = 3,
        within: float = 5.0,
    ) -> None:
        self.clock = clock
        self.name = name
        self.log = structlog.get_logger("relaybaton.runtime")
        self.dead_letters = DeadLetters()
        self.supervision_events: deque[SupervisionEvent] = deque(maxlen=10_000)
        self.supervision_listeners: list[Callable[[SupervisionEvent], None]] = []
        self.root = Supervisor(
            self, name, strategy=Strategy.ONE_FOR_ONE, max_restarts=max_restarts, within=within
        )
        self.failure: BaseException | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.deadlines = Deadlines(clock)
        self._scope: anyio.CancelScope | None = None
        self._closing = False

    # --- building ---------------------------------------------------------------------------

    async def spawn(
        self, factory: Callable[[], Actor[M, R]], *, name: str, capacity: int = 1000
    ) -> ActorRef[M, R]:
        """Start an actor under the root supervisor; see ``Supervisor.spawn``."""
        return await self.root.spawn(factory, name=name, capacity=capacity)

    def spawn_supervisor(
        self,
        name: str,
        *,
        strategy: Strategy = Strategy.ONE_FOR_ONE,
        max_restarts: int = 3,
        within: float = 5.0,
    ) -> Supervisor:
        """Add a supervisor under the root."""
        return self.root.spawn_supervisor(
            name, strategy=strategy, max_restarts=max_restarts, within=within
        )

    def activations(
        self,
        name: str,
        factory: Callable[[], Actor[M, R]],
        *,
        capacity: int = 1000,
        max_restarts: int = 10,
        within: float = 10.0,
    ) -> ActivationTable[M, R]:
        """Add an activation table under the root; see ``Supervisor.activations``."""
        return self.root.activations(
            name, factory, capacity=capacity, max_restarts=max_restarts, within=within
        )

    # --- tasks and failure ------------------------------------------------------------------

    def start_task(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Start a task the system owns; it must call ``forget_task`` with itself as it ends.

        The bookkeeping runs inside the task rather than in a done callback: a callback
        costs one more trip through the event loop per task, on the hot path.
        """
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        return task

    def forget_task(self, task: asyncio.Task[None]) -> None:
        """Forget ``task``: called by the task as it ends, or when it is done if it may not run."""
        self._tasks.discard(task)

    def fail(self, error: BaseException) -> None:
        """Fail the system: the ``open_system`` block is cancelled and raises ``error``."""
        if self.failure is None:
            self.failure = error
            if self._scope is not None:
                self._scope.cancel()

    def record_supervision(self, event: SupervisionEvent) -> None:
        """Keep and publish one supervision decision."""
        self.supervision_events.append(event)
        self.log.info(
            "supervision",
            kind=event.kind,
            supervisor=event.supervisor,
            child=event.child,
            error=event.error,
        )
        for listener in self.supervision_listeners:
            listener(event)

    @property
    def task_count(self) -> int:
        """How many tasks the system owns right now."""
        return len(self._tasks)

    async def aclose(self, grace: float = 5.0) -> None:
        """Stop everything: let queued messages drain for ``grace`` seconds, then cancel.

        Shielded from the caller's cancellation, so clean-up always completes. Idempotent.
        """
        if self._closing:
            return
        self._closing = True
        with anyio.CancelScope(shield=True):
            self.root.close()
            with anyio.move_on_after(grace):
                while self._tasks:
                    await asyncio.wait(set(self._tasks))
            self.root.terminate("shutdown")
            if self._tasks:
                await asyncio.wait(set(self._tasks))
            self.deadlines.close()


@asynccontextmanager
async def open_system(
    *,
    clock: Clock | None = None,
    name: str = "system",
    max_restarts: int = 3,
    within: float = 5.0,
    shutdown_grace: float = 5.0,
    gc_young_threshold: int | None = None,
) -> AsyncIterator[ActorSystem]:
    """Open an actor system for the duration of the block.

    On exit, queued messages drain for up to ``shutdown_grace`` seconds and the rest is
    cancelled (dead letters are counted). If the root supervisor escalates, the block is
    cancelled and ``EscalationError`` is raised from it.

    ``gc_young_threshold`` sets CPython's young-generation threshold while the system is
    open (restored on exit). CPython walks every live object at each full collection and,
    at its default of 700, runs one every ~70,000 allocations; with thousands of
    conversations in flight that makes a burst of n conversations cost O(n²). 10,000, as
    long-running servers commonly use, keeps the cost linear (``benchmarks/overhead.py``).
    With it, the middle generation is collected after 100 young collections instead of 10
    (``GC_MIDDLE_THRESHOLD``): every object of a conversation in flight survives a young
    collection, and at 10 the middle one re-walked them all several times per 10,000
    conversations; at 100 most have finished (and been freed) before it runs. The runtime
    makes no reference cycles per conversation, so garbage does not wait there for long.
    It is a process-wide setting, so it is off unless the embedding process asks.
    """
    system = ActorSystem(
        clock=clock or MonotonicClock(), name=name, max_restarts=max_restarts, within=within
    )
    saved_threshold = gc.get_threshold()
    if gc_young_threshold is not None:
        middle = max(saved_threshold[1], GC_MIDDLE_THRESHOLD)
        gc.set_threshold(gc_young_threshold, middle, *saved_threshold[2:])
    try:
        with anyio.CancelScope() as scope:
            system._scope = scope
            yield system
    finally:
        await system.aclose(shutdown_grace)
        if gc_young_threshold is not None:
            gc.set_threshold(*saved_threshold)
    if system.failure is not None:
        raise system.failure
