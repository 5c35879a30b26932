"""The support flow served from a thread of its own, for clients that block (fuzzers, browsers)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from tests.service._support import Served, serving


@contextmanager
def served_in_thread(
    prepare: Callable[[Served], Any] | None = None, **options: Any
) -> Iterator[Served]:
    """Serve on 127.0.0.1 from a thread's own event loop; ``prepare`` runs there first."""
    ready: list[Served] = []
    started = threading.Event()
    failure: list[BaseException] = []
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def main() -> None:
        try:
            async with serving(**options) as served:
                if prepare is not None:
                    await prepare(served)
                ready.append(served)
                started.set()
                await stop.wait()
        except BaseException as exc:
            failure.append(exc)
            started.set()
            raise

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    started.wait(30)
    if failure:
        raise failure[0]
    try:
        yield ready[0]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        loop.close()
