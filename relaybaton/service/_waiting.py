"""Waiting for a turn's answer with a deadline, on the edge's hot path.

The wait owns no work: the turn runs in its conversation's actor whatever the waiter does,
so the deadline only decides when to stop waiting (and answer 202). A cancel scope is the
house's deadline for work that must stop, and it costs tens of microseconds to enter and
leave, once per request; a timer and a done-callback on the answer's future cost a
fraction of that and cannot cancel anything but this wait.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["answered_within"]


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
