"""Model slots: the name an agent binds to, and the adapter behind it right now.

A slot is the seam of hot-swap (DESIGN.md invariant 8): ``call`` reads the adapter once, at
the start of an attempt, so a call begun on the old adapter finishes there while calls that
start after ``swap`` go to the new one; nothing is dropped or sent twice.

A slot may also hold several candidates and a router: then each attempt asks the router
(once, at its start) which candidate takes it, the call's task features are classified once
per call, and a retry avoids the adapter that just failed when another can take it. With a
health board, every attempt is counted in flight on its adapter's breaker, so a provider
that hangs calls is noticed before any of them ends; while the current adapter's breaker is
half-open, single calls probe it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, final

import anyio

from relaybaton.adapters import (
    ModelAdapter,
    ModelCallRecord,
    ModelRequest,
    ModelResponse,
    StreamDone,
    TextDelta,
    Usage,
)
from relaybaton.errors import (
    ModelError,
    ModelTimeoutError,
    RateLimitedError,
    StreamInterruptedError,
)
from relaybaton.runtime import Clock

if TYPE_CHECKING:
    from relaybaton.actors._features import Classifier, TaskFeatures
    from relaybaton.actors._health import HealthBoard
    from relaybaton.actors._routing import Candidate, Decision, Router

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
        candidates: Sequence[Candidate] = (),
        router: Router | None = None,
        classifier: Classifier | None = None,
        board: HealthBoard | None = None,
        attempt_timeout_multiple: float | None = None,
    ) -> None:
        self.name = name
        self.adapter = adapter
        self.primary = adapter
        self.candidates = tuple(candidates)
        self.router = router
        self.classifier = classifier
        self.board = board
        # With a retry left, an attempt slower than this x the adapter's normal p95 is
        # abandoned and retried elsewhere: a hung provider then costs seconds, not the deadline.
        self.attempt_timeout_multiple = attempt_timeout_multiple
        self.decision_listeners: list[Callable[[str, str, Decision], None]] = []
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
        """Call the slot's model, retrying retryable errors; raise the last ``ModelError``.

        Raises ``NoCapableModelError`` or ``BudgetExceededError`` (not retried) when the
        slot's router refuses the call.
        """
        if self.router is not None or self.board is not None:
            return await self._call_routed(request, agent)
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

    # --- routed calls ---------------------------------------------------------------------------

    async def _features(self, request: ModelRequest) -> TaskFeatures | None:
        classifier = self.classifier
        if self.router is None or classifier is None:
            return None
        aclassify = getattr(classifier, "aclassify", None)
        if aclassify is not None:
            features: TaskFeatures = await aclassify(request)
            return features
        return classifier.classify(request)

    def _choose(
        self, request: ModelRequest, agent: str, features: TaskFeatures | None, avoid: list[str]
    ) -> tuple[ModelAdapter, bool]:
        """The adapter for one attempt, read once; and whether the attempt is a probe."""
        board = self.board
        router = self.router
        if router is not None and features is not None:
            decision = router.choose(
                features,
                conversation_id=request.metadata.conversation_id,
                agent=agent,
                exclude=avoid,
            )
            for listener in self.decision_listeners:
                listener(request.metadata.conversation_id, agent, decision)
            return router.by_name[decision.candidate].adapter, False
        adapter = self.adapter
        primary = self.primary
        if board is not None and adapter is not primary and board.take_probe(primary.name):
            return primary, True
        if adapter.name in avoid:
            for candidate in self.candidates:
                other = candidate.adapter
                if other.name not in avoid and (board is None or board.allows(other.name)):
                    return other, False
        return adapter, False

    async def _call_routed(self, request: ModelRequest, agent: str) -> ModelResponse:
        features = await self._features(request)
        board = self.board
        avoid: list[str] = []
        attempt = 0
        while True:
            adapter, probe = self._choose(request, agent, features, avoid)
            name = adapter.name
            started = self.clock.now()
            in_flight = self.in_flight
            in_flight[name] = in_flight.get(name, 0) + 1
            self.calls[name] = self.calls.get(name, 0) + 1
            token = board.started(name, probe=probe) if board is not None else 0
            ok = False
            try:
                response = await self._attempt(adapter, request, last=attempt + 1 >= self.attempts)
                ok = True
            except ModelError as exc:
                self._publish(request, agent, name, started, None, type(exc).__name__, attempt)
                attempt += 1
                if not exc.retryable or attempt >= self.attempts:
                    raise
                avoid.append(name)
                await self.clock.sleep(self._delay(exc, attempt))
                continue
            finally:
                in_flight[name] -= 1
                if board is not None:
                    board.finished(name, token, ok=ok)
            if self.router is not None and features is not None:
                self.router.charge(request.metadata.conversation_id, agent, response.usage)
            if self.listeners:
                self._publish(request, agent, name, started, response, "ok", attempt)
            return response

    async def _attempt(
        self, adapter: ModelAdapter, request: ModelRequest, *, last: bool
    ) -> ModelResponse:
        multiple = self.attempt_timeout_multiple
        board = self.board
        normal = None
        if not last and multiple is not None and board is not None:
            normal = board.breaker(adapter.name).normal_p95
        if normal is None:
            return await adapter.complete(request)
        limit = multiple * normal  # type: ignore[operator]
        with anyio.CancelScope() as scope:
            # The deadline is a timer on the slot's clock (a FakeClock in tests), not the
            # event loop's, so simulated time and real time behave the same.
            timer = self.clock.call_later(limit, scope.cancel)
            try:
                return await adapter.complete(request)
            finally:
                timer.cancel()
        raise ModelTimeoutError(
            f"{adapter.name} took longer than {limit:.2f} s ({multiple:g} x its normal p95); "
            "retrying on another model",
            provider=adapter.name.partition(":")[0],
        )

    async def stream(
        self, request: ModelRequest, *, agent: str = "", on_text: Callable[[str], None]
    ) -> ModelResponse:
        """Call the slot's model streaming; ``on_text`` gets each text delta as it arrives.

        Retries like ``call``, but only before the first delta: once text has gone to
        ``on_text``, a failure is raised, since sending the request again would show the
        user the same text twice. Returns the assembled answer of the stream's end.
        A routed slot (router or breakers) answers whole, through ``call``: routing and
        health checks apply to every call, streamed or not.
        """
        if self.router is not None or self.board is not None:
            whole = await self.call(request, agent=agent)
            if whole.message.text:
                on_text(whole.message.text)
            return whole
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
