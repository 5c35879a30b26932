"""Retrying model calls: exponential backoff with full jitter, Retry-After, attempts, deadline.

The delay before retry ``n`` (from 0) is uniform in ``[0, min(max_delay, base_delay * 2**n)]``
("full jitter": spreads a crowd of clients that failed together), but never less than the
``retry_after`` the provider sent. A retry is skipped, and the error raised, when the error
is not retryable, the attempts are spent, or the wait would end past the deadline.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Protocol, TypeVar, final

import msgspec
import structlog

from relaybaton.errors import ConfigError, ModelError, RateLimitedError, StreamInterruptedError

__all__ = [
    "ClockLike",
    "LoopClock",
    "RetryLog",
    "RetryPolicy",
    "current_retry_log",
    "recording_retries",
]

T = TypeVar("T")

_log = structlog.get_logger("relaybaton.adapters")


class ClockLike(Protocol):
    """The two clock methods the adapters need (``relaybaton.runtime.Clock`` has both)."""

    def now(self) -> float:
        """Return the current time in seconds, monotonic."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds``; cancellable."""
        ...


@final
class LoopClock:
    """The running event loop's clock: the default when no clock is injected."""

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@final
class RetryLog:
    """How many retries one call took and why; filled in by ``RetryPolicy``."""

    __slots__ = ("errors",)

    def __init__(self) -> None:
        self.errors: list[str] = []

    @property
    def retries(self) -> int:
        """How many times the call was sent again."""
        return len(self.errors)


_current_log: ContextVar[RetryLog | None] = ContextVar("relaybaton_retry_log", default=None)


def current_retry_log() -> RetryLog | None:
    """The log of the call being measured in this context, if someone is measuring."""
    return _current_log.get()


@contextmanager
def recording_retries() -> Iterator[RetryLog]:
    """Collect the retries of the model calls started inside the block.

    A call captures the log when it starts, so for a stream the block must cover the
    first ``__anext__``; leaving the block early does not lose later retries.
    """
    log = RetryLog()
    token = _current_log.set(log)
    try:
        yield log
    finally:
        _current_log.reset(token)


class RetryPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """When and how long to wait before sending a failed model call again.

    Attributes:
        attempts: total sends, the first included (1 disables retries).
        deadline: seconds from the first send after which no retry starts.
        base_delay: the backoff cap for the first retry, doubled for each later one.
        max_delay: the largest backoff cap.
        seed: seeds the jitter for reproducible runs; ``None`` uses system randomness.
    """

    attempts: int = 3
    deadline: float = 60.0
    base_delay: float = 0.5
    max_delay: float = 20.0
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ConfigError(f"RetryPolicy.attempts: expected >= 1, got {self.attempts}")

    def delay(
        self, error: ModelError, *, retry: int, elapsed: float, rng: random.Random
    ) -> float | None:
        """Seconds to wait before retry number ``retry`` (0-based), or None to give up."""
        if not error.retryable or retry + 1 >= self.attempts:
            return None
        if isinstance(error, StreamInterruptedError) and error.emitted:
            return None  # text already reached someone: never produce it a second time
        cap = min(self.max_delay, self.base_delay * (2.0**retry))
        wait = rng.uniform(0.0, cap)
        if isinstance(error, RateLimitedError) and error.retry_after is not None:
            wait = max(wait, error.retry_after)
        if elapsed + wait > self.deadline:
            return None
        return wait

    def rng(self) -> random.Random:
        """A jitter source for one call."""
        return random.Random(self.seed)  # jitter, not cryptography

    async def call(self, send: Callable[[], Awaitable[T]], *, clock: ClockLike) -> T:
        """Await ``send()`` until it succeeds or the policy gives up; raise the last error.

        On cancel the pending send or sleep is cancelled and nothing is retried.
        """
        rng = self.rng()
        started = clock.now()
        log = current_retry_log()
        retry = 0
        while True:
            try:
                return await send()
            except ModelError as error:
                wait = self.delay(error, retry=retry, elapsed=clock.now() - started, rng=rng)
                if wait is None:
                    raise
                note_retry(log, error, retry=retry, wait=wait)
            await clock.sleep(wait)
            retry += 1


def note_retry(log: RetryLog | None, error: ModelError, *, retry: int, wait: float) -> None:
    """Record one retry in the call's log and in the structured log."""
    if log is not None:
        log.errors.append(type(error).__name__)
    _log.info(
        "model call retried",
        provider=error.provider,
        error=type(error).__name__,
        status=error.status,
        retry=retry + 1,
        wait_s=round(wait, 3),
        exc_info=error,
    )
