"""Fault injection around any adapter, for the demo, tests and failover drills.

``FaultyModel`` passes calls through to the adapter it wraps until told otherwise:

- ``slow(factor)``: every call takes ``factor`` × as long (the extra wait is slept after
  the inner call, on the injected clock);
- ``fail()``: every call fails at once with a retryable 503 (a fast-fail outage);
- ``blackhole()``: every call hangs until cancelled (a provider that accepts connections
  and never answers);
- ``heal()``: back to normal.

Calls already running keep the fault they started with, like a real provider's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import final

from relaybaton.adapters._chat import ModelRequest, ModelResponse, StreamDone, StreamEvent
from relaybaton.adapters._protocol import Capabilities, ModelAdapter
from relaybaton.adapters._retry import retries_itself
from relaybaton.errors import ModelOverloadedError
from relaybaton.runtime import Clock

__all__ = ["FaultyModel"]


@final
class FaultyModel:
    """An adapter with switchable faults; see the module docstring."""

    def __init__(self, inner: ModelAdapter, *, clock: Clock) -> None:
        self.inner = inner
        self.clock = clock
        self.mode = "ok"
        self.factor = 1.0
        self.calls = 0

    def __repr__(self) -> str:
        return f"FaultyModel({self.inner!r}, {self.mode})"

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def retries_itself(self) -> bool:
        """Whether the wrapped adapter retries on its own (see ``retries_itself``)."""
        return retries_itself(self.inner)

    @property
    def capabilities(self) -> Capabilities:
        return self.inner.capabilities

    def slow(self, factor: float) -> None:
        """Make calls ``factor`` × slower."""
        self.mode, self.factor = "slow", factor

    def fail(self) -> None:
        """Fail every call at once (HTTP 503)."""
        self.mode = "fail"

    def blackhole(self) -> None:
        """Hang every call until it is cancelled."""
        self.mode = "blackhole"

    def heal(self) -> None:
        """Back to normal."""
        self.mode, self.factor = "ok", 1.0

    async def complete(self, request: ModelRequest) -> ModelResponse:
        self.calls += 1
        mode, factor = self.mode, self.factor
        if mode == "fail":
            raise ModelOverloadedError(
                f"{self.name} is unavailable (injected outage)", provider="fault", status=503
            )
        if mode == "blackhole":
            while True:  # until cancelled: a hung request holds its connection forever
                await self.clock.sleep(3600.0)
        started = self.clock.now()
        response = await self.inner.complete(request)
        if mode == "slow" and factor > 1.0:
            await self.clock.sleep((self.clock.now() - started) * (factor - 1.0))
        return response

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        yield StreamDone(response=await self.complete(request))

    async def aclose(self) -> None:
        await self.inner.aclose()
