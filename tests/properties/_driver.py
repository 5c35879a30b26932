"""Drive an asyncio loop from the synchronous rules of a hypothesis state machine.

Hypothesis rules are plain functions, and an anyio cancel scope (``open_system``,
``open_runtime``) must be entered and left by one task. So a ``LoopDriver`` runs one main
task that enters the context manager and then runs the rules' coroutines one at a time, in
order; ``call`` runs the loop until that coroutine is done. Everything is deterministic:
nothing waits on the wall clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

T = TypeVar("T")

_Job = tuple[Callable[[], Awaitable[Any]], asyncio.Future[Any]] | None


async def settle(rounds: int = 10) -> None:
    """Give ready tasks ``rounds`` loop iterations (to run until they wait on something)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


class LoopDriver:
    """A fresh event loop with one main task holding ``context`` open until ``close``."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._jobs: asyncio.Queue[_Job] | None = None
        self._main: asyncio.Task[None] | None = None

    def open(self, context: AbstractAsyncContextManager[T]) -> T:
        """Enter ``context`` in the main task; return what it yields."""
        ready: asyncio.Future[T] = self.loop.create_future()

        async def main() -> None:
            self._jobs = asyncio.Queue()
            async with context as value:
                ready.set_result(value)
                while (job := await self._jobs.get()) is not None:
                    make, done = job
                    try:
                        result = await make()
                    except Exception as exc:
                        done.set_exception(exc)
                    else:
                        done.set_result(result)

        self._main = self.loop.create_task(main())
        self._main.add_done_callback(lambda t: ready.done() or ready.cancel())
        return self.loop.run_until_complete(ready)

    def call(self, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run ``make()`` in the main task and the loop until it is done; return its result."""
        if self._jobs is None:
            return self.loop.run_until_complete(make())
        done: asyncio.Future[T] = self.loop.create_future()
        self._jobs.put_nowait((make, done))
        main = self._main
        assert main is not None
        self.loop.run_until_complete(asyncio.wait([done, main], return_when="FIRST_COMPLETED"))
        if not done.done():
            main.result()  # the context failed: raise its error
            raise AssertionError("the main task ended before the job ran")
        return done.result()

    def close(self) -> None:
        """Leave the context (its exit runs in the main task), then close the loop.

        Raises what the context raised on exit, if anything.
        """
        try:
            if self._main is not None and not self._main.done():
                assert self._jobs is not None
                self._jobs.put_nowait(None)
            if self._main is not None:
                self.loop.run_until_complete(asyncio.wait([self._main]))
                self._main.result()
        finally:
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()
