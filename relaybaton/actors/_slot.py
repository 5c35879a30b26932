"""Model slots: the name an agent binds to, and the adapter behind it right now.

A slot is the seam of hot-swap (DESIGN.md invariant 8): ``call`` reads the adapter once, at
the start of an attempt, so a call begun on the old adapter finishes there while calls that
start after ``swap`` go to the new one; nothing is dropped or sent twice.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import final

from relaybaton.adapters import (
    ModelAdapter,
    ModelCallRecord,
    ModelRequest,
    ModelResponse,
    StreamDone,
    TextDelta,
    Usage,
)
from relaybaton.errors import ModelError, RateLimitedError, StreamInterruptedError
from relaybaton.runtime import Clock

__all__ = ["ModelSlot"]


@final
class ModelSlot:
    """A named place for a model adapter, with retries of retryable failures.

    Retries: up to ``attempts`` tries, sleeping ``backoff * 2**n`` seconds with full jitter
    between them (or the provider's ``Retry-After`` when it gave one), on the injected
    clock. A retry reads the slot again, so it goes to a swapped-in adapter if there is one.
    Every attempt is published to ``listeners`` (the metrics stream) as a
    ``ModelCallRecord``; ``retries`` counts the attempts before it.
    """

    def __init__(
        self,
        name: str,
        adapter: ModelAdapter,
        *,
        clock: Clock,
        attempts: int = 3,
        backoff: float = 0.25,
        max_backoff: float = 8.0,
        seed: int | None = None,
    ) -> None:
        self.name = name
        self.adapter = adapter
        self.clock = clock
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.in_flight: dict[str, int] = {}
        self.calls: dict[str, int] = {}
        self.listeners: list[Callable[[ModelCallRecord], None]] = []
        self._random = random.Random(seed)

    def __repr__(self) -> str:
        return f"ModelSlot({self.name!r}, {self.adapter.name!r})"

    def swap(self, adapter: ModelAdapter) -> ModelAdapter:
        """Put ``adapter`` in the slot for every call that starts from now; return the old one."""
        previous, self.adapter = self.adapter, adapter
        return previous

    async def call(self, request: ModelRequest, *, agent: str = "") -> ModelResponse:
        """Call the slot's model, retrying retryable errors; raise the last ``ModelError``."""
        attempt = 0
        while True:
            adapter = self.adapter
            name = adapter.name
            started = self.clock.now() if self.listeners else 0.0
            in_flight = self.in_flight
            in_flight[name] = in_flight.get(name, 0) + 1
            self.calls[name] = self.calls.get(name, 0) + 1
            try:
                response = await adapter.complete(request)
            except ModelError as exc:
                self._publish(request, agent, name, started, None, type(exc).__name__, attempt)
                attempt += 1
                if not exc.retryable or attempt >= self.attempts:
                    raise
                await self.clock.sleep(self._delay(exc, attempt))
                continue
            finally:
                in_flight[name] -= 1
            if self.listeners:
                self._publish(request, agent, name, started, response, "ok", attempt)
            return response

    def _delay(self, error: ModelError, attempt: int) -> float:
        if isinstance(error, RateLimitedError) and error.retry_after is not None:
            return min(error.retry_after, self.max_backoff * 4)
        ceiling = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
        return self._random.uniform(0, ceiling)

    def _publish(  # noqa: PLR0917 - private, and every caller passes all of them
        self,
        request: ModelRequest,
        agent: str,
        adapter: str,
        started: float,
        response: ModelResponse | None,
        outcome: str,
        retries: int,
    ) -> None:
        if not self.listeners:
            return
        record = ModelCallRecord(
            adapter=adapter,
            model=(response.model if response is not None else "") or adapter,
            agent=agent,
            conversation_id=request.metadata.conversation_id,
            started_at=started,
            latency_s=self.clock.now() - started,
            ttft_s=None,
            outcome=outcome,
            usage=response.usage if response is not None else Usage(),
            retries=retries,
            slot=self.name,
        )
        for listener in self.listeners:
            listener(record)

    async def stream(
        self, request: ModelRequest, *, agent: str = "", on_text: Callable[[str], None]
    ) -> ModelResponse:
        """Call the slot's model streaming; ``on_text`` gets each text delta as it arrives.

        Retries like ``call``, but only before the first delta: once text has gone to
        ``on_text``, a failure is raised, since sending the request again would show the
        user the same text twice. Returns the assembled answer of the stream's end.
        """
        attempt = 0
        while True:
            adapter = self.adapter
            name = adapter.name
            started = self.clock.now() if self.listeners else 0.0
            in_flight = self.in_flight
            in_flight[name] = in_flight.get(name, 0) + 1
            self.calls[name] = self.calls.get(name, 0) + 1
            emitted = False
            response: ModelResponse | None = None
            try:
                async for event in adapter.stream(request):
                    if isinstance(event, TextDelta):
                        if event.text:
                            emitted = True
                            on_text(event.text)
                    elif isinstance(event, StreamDone):
                        response = event.response
                if response is None:
                    raise StreamInterruptedError(
                        f"the stream of {name!r} ended without its final answer",
                        emitted=emitted,
                    )
            except ModelError as exc:
                self._publish(request, agent, name, started, None, type(exc).__name__, attempt)
                attempt += 1
                if emitted or not exc.retryable or attempt >= self.attempts:
                    raise
                await self.clock.sleep(self._delay(exc, attempt))
                continue
            finally:
                in_flight[name] -= 1
            if self.listeners:
                self._publish(request, agent, name, started, response, "ok", attempt)
            return response
