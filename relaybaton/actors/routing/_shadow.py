"""Background model calls the runtime owns: shadow copies of a rollout's traffic.

A shadow call must never hold up the call it copies, so it runs in a task of its own; and
every task has an owner, so the runtime opens one ``ShadowRunner`` for its lifetime and
hands it to its slots. When the runtime stops, shadow calls still running are cancelled and
awaited, not waited for: their answers would be thrown away anyway, and a hung candidate
must not hold up a shutdown.

The runner keeps plain tasks rather than an anyio task group around the runtime's block:
a task group there would wrap any error of the code using the runtime in an exception
group, and a shadow call has no error to give anyone (it handles its own; one that escapes
is logged).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, final

import anyio
import structlog

__all__ = ["ShadowRunner", "open_shadow_runner"]

_log = structlog.get_logger("relaybaton.shadow")


@final
class ShadowRunner:
    """Starts background calls and, on ``aclose``, cancels and awaits those still running."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()
        self.closed = False
        self.started = 0

    def start_soon(self, func: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run ``func`` in the background (the runner must be open: check ``closed``).

        ``func`` must handle its own errors: one that escapes is logged and goes no further.
        """
        if self.closed:
            raise RuntimeError("the shadow runner is closed; check ShadowRunner.closed first")
        self.started += 1
        task = asyncio.get_running_loop().create_task(func())
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        error = None if task.cancelled() else task.exception()
        if error is not None:
            _log.error("shadow_call_failed", error=repr(error), exc_info=error)

    async def aclose(self) -> None:
        """Refuse new calls, cancel the running ones and wait until they have ended."""
        self.closed = True
        tasks = set(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)


@asynccontextmanager
async def open_shadow_runner() -> AsyncIterator[ShadowRunner]:
    """Own a runner for the block; on exit, cancel what it still runs and wait for that."""
    runner = ShadowRunner()
    try:
        yield runner
    finally:
        with anyio.CancelScope(shield=True):
            await runner.aclose()
