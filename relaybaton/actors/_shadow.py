"""Background model calls the runtime owns: shadow copies of a rollout's traffic.

A shadow call must never hold up the call it copies, so it runs in a task of its own; and
structured concurrency says every task has an owner, so the runtime opens one
``ShadowRunner`` (an anyio task group) for its lifetime and hands it to its slots. When the
runtime stops, shadow calls still running are cancelled, not awaited: their answers would be
thrown away anyway, and a hung candidate must not hold up a shutdown.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, final

import anyio
from anyio.abc import TaskGroup

__all__ = ["ShadowRunner", "open_shadow_runner"]


@final
class ShadowRunner:
    """Starts background calls in a task group someone else opened and will close."""

    def __init__(self, group: TaskGroup) -> None:
        self._group = group
        self.closed = False
        self.started = 0

    def start_soon(self, func: Callable[[], Coroutine[Any, Any, None]]) -> bool:
        """Run ``func`` in the background; False (and nothing runs) once the runner closed.

        ``func`` must handle its own errors: one that escapes cancels the runner's owner.
        """
        if self.closed:
            return False
        self.started += 1
        self._group.start_soon(func)
        return True


@asynccontextmanager
async def open_shadow_runner() -> AsyncIterator[ShadowRunner]:
    """Own a runner for the block; on exit, cancel what it still runs and wait for that."""
    async with anyio.create_task_group() as group:
        runner = ShadowRunner(group)
        try:
            yield runner
        finally:
            runner.closed = True
            group.cancel_scope.cancel()
