"""Retrying model calls: one policy for model slots and for adapters used on their own.

The delay before retry ``n`` (from 0) is uniform in ``[0, min(max_delay, base_delay * 2**n)]``
("full jitter": spreads a crowd of clients that failed together), but never less than the
``retry_after`` the provider sent: a server that asks for 2 s gets at least 2 s. A retry is
skipped, and the error raised at once, when the error is not retryable, the attempts are
spent, a stream already emitted text, or the wait would end past the call's deadline; in
the last case the error carries a note saying how long the server asked for and how much
of the deadline was left, rather than the call sleeping towards a deadline it would miss.

Who retries: a ``ModelSlot`` owns the retries of the calls it makes (it re-reads the slot
and may move a retry to another adapter), and marks them with ``sending_once`` so that an
HTTP adapter under it sends each call once. An adapter used without a slot retries with
its own ``RetryPolicy``. Either way nothing is retried twice.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, TypeVar, final

import msgspec
import structlog

from relaybaton.errors import ConfigError, ModelError, RateLimitedError, StreamInterruptedError

if TYPE_CHECKING:
    from relaybaton.runtime import Clock

__all__ = [
    "RetryLog",
    "RetryPolicy",
    "current_retry_log",
    "recording_retries",
    "retries_itself",
    "sending_once",
]

T = TypeVar("T")

_log = structlog.get_logger("relaybaton.adapters")


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
_caller_retries: ContextVar[bool] = ContextVar("relaybaton_caller_retries", default=False)


def current_retry_log() -> RetryLog | None:
    """Return the log of the call being measured in this context, if someone measures it."""
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


@contextmanager
def sending_once() -> Iterator[None]:
    """Make the adapters called inside the block send each call once: the caller retries.

    A ``ModelSlot`` wraps its calls in this block, so an adapter's own ``RetryPolicy``
    does not multiply the slot's attempts (three tries each, nested, would be nine sends,
    each waiting on its own backoff).
    """
    token = _caller_retries.set(True)
    try:
        yield
    finally:
        _caller_retries.reset(token)


def retries_itself(adapter: object) -> bool:
    """Whether ``adapter`` retries failed sends on its own, so a retrying caller must wrap
    its calls in ``sending_once``.

    An adapter says so with a true ``retries_itself`` attribute (``ProviderAdapter`` does
    when its policy allows more than one send; wrappers pass on their inner adapter's).
    Offline models have none: a slot then skips the marker, which is a context change per
    call that would be held for as long as the call is in flight.
    """
    return getattr(adapter, "retries_itself", False) is True


class RetryPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """When and how long to wait before sending a failed model call again.

    Attributes:
        attempts: total sends, the first included (1 disables retries).
        deadline: seconds from the first send after which no retry starts; a wait that
            would end past it (a long ``Retry-After``, say) is not slept: the error is raised.
        base_delay: the backoff cap for the first retry, doubled for each later one.
        max_delay: the largest backoff cap.
        seed: seeds the jitter for reproducible runs; ``None`` uses system randomness.
    """

    attempts: int = 3
    deadline: float = 60.0
    base_delay: float = 0.25
    max_delay: float = 8.0
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ConfigError(
                f"RetryPolicy.attempts: expected >= 1, got {self.attempts}; "
                "1 sends each call once, without retries"
            )
        for field in ("deadline", "base_delay", "max_delay"):
            value = getattr(self, field)
            if value < 0:
                raise ConfigError(f"RetryPolicy.{field}: expected seconds >= 0, got {value}")

    def in_context(self) -> RetryPolicy:
        """Return this policy, or a single send when the caller retries (``sending_once``)."""
        return _ONCE if _caller_retries.get() else self

    def delay(
        self, error: ModelError, *, retry: int, elapsed: float, rng: random.Random
    ) -> float | None:
        """Return the seconds to wait before retry number ``retry`` (0-based), or None.

        None means give up and raise ``error``. When the deadline is why, ``error`` gets a
        note saying so (``add_note``), so the traceback tells a long ``Retry-After`` apart
        from spent attempts.
        """
        if not error.retryable or retry + 1 >= self.attempts:
            return None
        if isinstance(error, StreamInterruptedError) and error.emitted:
            return None  # text already reached someone: never produce it a second time
        cap = min(self.max_delay, self.base_delay * (2.0**retry))
        wait = rng.uniform(0.0, cap)
        asked = error.retry_after if isinstance(error, RateLimitedError) else None
        if asked is not None:
            wait = max(wait, asked)
        if elapsed + wait > self.deadline:
            error.add_note(self._past_deadline(wait, asked, elapsed))
            _log.info(
                "model call not retried: the wait would pass the deadline",
                provider=error.provider,
                error=type(error).__name__,
                retry_after_s=asked,
                wait_s=round(wait, 3),
                left_s=round(max(0.0, self.deadline - elapsed), 3),
            )
            return None
        return wait

    def _past_deadline(self, wait: float, asked: float | None, elapsed: float) -> str:
        left = max(0.0, self.deadline - elapsed)
        if asked is not None and asked >= wait:
            why = f"the provider asked to wait {asked:g} s (Retry-After)"
        else:
            why = f"the backoff drew {wait:.2f} s"
        return (
            f"not retried: {why}, but only {left:.2f} s were left of the call's "
            f"{self.deadline:g} s retry deadline; raise RetryPolicy.deadline to wait it out, "
            "or give the slot a fallback model"
        )

    def rng(self) -> random.Random:
        """Return a jitter source for one call (or one slot's calls)."""
        return random.Random(self.seed)  # jitter, not cryptography

    async def call(self, send: Callable[[], Awaitable[T]], *, clock: Clock) -> T:
        """Await ``send()`` until it succeeds or the policy gives up; raise the last error.

        Inside ``sending_once`` it sends once. On cancel the pending send or sleep is
        cancelled and nothing is retried.
        """
        policy = self.in_context()
        if policy.attempts == 1:
            return await send()
        rng = policy.rng()
        started = clock.now()
        log = current_retry_log()
        retry = 0
        while True:
            try:
                return await send()
            except ModelError as error:
                wait = policy.delay(error, retry=retry, elapsed=clock.now() - started, rng=rng)
                if wait is None:
                    raise
                note_retry(log, error, retry=retry, wait=wait)
            await clock.sleep(wait)
            retry += 1


_ONCE = RetryPolicy(attempts=1)


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
