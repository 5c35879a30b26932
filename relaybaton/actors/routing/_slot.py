"""Model slots: the name an agent binds to, and the adapter behind it right now.

A slot is the seam of hot-swap (invariant 8 of docs/architecture.md): ``call`` reads the
adapter once, at the start of an attempt, so a call begun on the old adapter finishes there
while calls that start after ``swap`` go to the new one; nothing is dropped or sent twice.

A slot may also hold several candidates and a router: then each attempt asks the router
(once, at its start) which candidate takes it, the call's task features are classified once
per call, and a retry avoids the adapter that just failed when another can take it. With a
health board, every attempt is counted in flight on its adapter's breaker, so a provider
that hangs calls is noticed before any of them ends; while the current adapter's breaker is
half-open, single calls probe it.

A slot may run a rollout (``start_rollout``): a new adapter takes the calls of the one it
replaces for the conversations on the new arm, and in the shadow stage every call the old
one answered is copied to the new one in the background. A shadow copy runs in the
runtime's ``ShadowRunner`` (never on the caller's path), at most ``shadow_limit`` at once
(more are dropped and counted, so a slow candidate cannot pile up tasks); its answer is
dropped unread, so it reaches no conversation and runs no tool; its usage goes to the
metrics stream marked ``shadow`` (spend is visible) and never to a conversation's ledger
or budget.

With ``routes`` (a list the caller passes), each attempt appends the ``Decision`` that sent
it where it went, so the conversation's trace can say why.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, final

import anyio
import msgspec
import structlog

from relaybaton.actors.routing._attempts import (
    failed_attempt,
    mark_failed,
    refuse_without_vision,
)
from relaybaton.actors.routing._grading import publish_grade
from relaybaton.actors.routing._rollout import Rollout, RolloutPolicy
from relaybaton.actors.routing._router import Decision
from relaybaton.actors.routing._slot_rollout import RolloutEvent, SlotRollout
from relaybaton.actors.routing._slot_stream import stream_routed
from relaybaton.adapters import (
    ModelAdapter,
    ModelCallRecord,
    ModelRequest,
    ModelResponse,
    RetryPolicy,
    StreamDone,
    TextDelta,
    Usage,
    retries_itself,
    sending_once,
)
from relaybaton.errors import (
    ConfigError,
    ModelError,
    ModelTimeoutError,
    StreamInterruptedError,
)
from relaybaton.runtime import Clock

if TYPE_CHECKING:
    from relaybaton.actors.routing._features import Classifier, TaskFeatures
    from relaybaton.actors.routing._health import HealthBoard
    from relaybaton.actors.routing._router import Candidate, Router
    from relaybaton.actors.routing._shadow import ShadowRunner

__all__ = ["ModelSlot"]

_AS_IS = contextlib.nullcontext()  # reusable: it keeps no state

# Retried attempts are expected and already published (ModelCallRecord, the metrics):
# their tracebacks go to debug, not to every operator's screen.
_log = structlog.get_logger("relaybaton.routing")


@final
class ModelSlot:
    """A named place for a model adapter, with retries of retryable failures.

    Retries follow ``retry`` (a ``RetryPolicy``), for ``call`` and ``stream`` alike: up to
    ``retry.attempts`` tries, waiting a full-jitter backoff under ``base_delay * 2**n``
    (capped at ``max_delay``) between them, but at least the provider's ``Retry-After``;
    when that wait would end past ``retry.deadline`` (from the call's start) the error is
    raised at once, with a note saying why. Waits are slept on the injected clock. The slot
    owns the retries: an adapter that retries on its own sends each call once (``_send``).
    A retry reads
    the slot again, so it goes to a swapped-in adapter if there is one. Every attempt is
    published to ``listeners`` (the metrics stream) as a ``ModelCallRecord``; ``retries``
    counts the attempts before it.
    """

    def __init__(
        self,
        name: str,
        adapter: ModelAdapter,
        *,
        clock: Clock,
        retry: RetryPolicy | None = None,
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
        self.retry = retry or RetryPolicy()
        self.in_flight: dict[str, int] = {}
        self.calls: dict[str, int] = {}
        self.listeners: list[Callable[[ModelCallRecord], None]] = []
        self.rollout: SlotRollout | None = None
        self.rollout_listeners: list[Callable[[RolloutEvent], None]] = []
        self.shadows: ShadowRunner | None = None  # the runtime sets it while it runs
        # One jitter source for all the slot's calls: seeded, a fresh source per call
        # would give every call that failed together the same wait.
        self._random = self.retry.rng()

    def __repr__(self) -> str:
        return f"ModelSlot({self.name!r}, {self.adapter.name!r})"

    def swap(self, adapter: ModelAdapter) -> ModelAdapter:
        """Put ``adapter`` in the slot for every call that starts from now; return the old one."""
        previous, self.adapter = self.adapter, adapter
        return previous

    def start_rollout(
        self,
        candidate: ModelAdapter,
        *,
        replaces: ModelAdapter | None = None,
        policy: RolloutPolicy | None = None,
        shadow_limit: int = 8,
        shadow_timeout_s: float = 60.0,
    ) -> SlotRollout:
        """Roll ``candidate`` out in place of ``replaces`` (the slot's primary by default).

        The rollout starts at its first stage (shadow with the default policy) and moves on
        with the outcomes of the slot's calls; its moves go to ``rollout_listeners``. On
        promotion the candidate takes the old adapter's place for good (as primary, as a
        routing candidate, and in the slot if it held it); on rollback it takes no more
        calls. Neither adapter is closed here: whoever made them closes them.

        Raises:
            ConfigError: a rollout is already running, or both adapters have one name.
        """
        incumbent = replaces or self.primary
        if self.rollout is not None and self.rollout.running:
            raise ConfigError(
                f"slot {self.name!r} already runs a rollout of {self.rollout.candidate.name!r}; "
                "wait for it to be promoted or rolled back"
            )
        if candidate.name == incumbent.name:
            raise ConfigError(
                f"the new model {candidate.name!r} has the name of the one it replaces; "
                "a rollout tells them apart by name"
            )
        rollout = Rollout(incumbent.name, candidate.name, policy=policy, start=self.clock.now())
        self.rollout = SlotRollout(
            self.name,
            incumbent,
            candidate,
            rollout,
            shadow_limit=shadow_limit,
            shadow_timeout_s=shadow_timeout_s,
        )
        return self.rollout

    async def call(
        self, request: ModelRequest, *, agent: str = "", routes: list[Decision] | None = None
    ) -> ModelResponse:
        """Call the slot's model, retrying retryable errors; raise the last ``ModelError``.

        Raises ``NoCapableModelError`` or ``BudgetExceededError`` (not retried) when the
        slot's router refuses the call.
        """
        if self.router is not None or self.board is not None or self.rollout is not None:
            return await self._call_routed(request, agent, routes)
        began = self.clock.now()
        attempt = 0
        timed = bool(self.listeners) or routes is not None
        while True:
            adapter = self.adapter
            refuse_without_vision(self.name, adapter, request)
            name = adapter.name
            started = self.clock.now() if timed else 0.0
            in_flight = self.in_flight
            in_flight[name] = in_flight.get(name, 0) + 1
            self.calls[name] = self.calls.get(name, 0) + 1
            try:
                response = await _send(adapter, request)
            except ModelError as exc:
                self._publish(request, agent, name, started, None, type(exc).__name__, attempt)
                if routes is not None:
                    routes.append(failed_attempt(name, exc, self.clock.now() - started))
                attempt += 1
                if not await self._back_off(exc, name, attempt, began):
                    raise
                continue
            finally:
                in_flight[name] -= 1
            if self.listeners:
                self._publish(request, agent, name, started, response, "ok", attempt)
            if routes:
                routes.append(Decision(candidate=name, reason=f"retry {attempt}", policy="retry"))
            return response

    async def _back_off(self, error: ModelError, adapter: str, failed: int, began: float) -> bool:
        """Wait before the next attempt after ``failed`` ones; False when ``error`` must raise.

        The one retry rule of the slot, for calls, routed calls and streams: the policy says
        how long (at least a provider's Retry-After) or that the deadline forbids a retry.
        """
        elapsed = self.clock.now() - began
        wait = self.retry.delay(error, retry=failed - 1, elapsed=elapsed, rng=self._random)
        if wait is None:
            _log.warning("model_attempt_failed", slot=self.name, model=adapter, error=str(error))
            return False
        # Never silent: a retry or a failover to another model is news for the operator
        # (the traceback is at debug, for whoever digs).
        _log.warning(
            "model_attempt_retried", slot=self.name, model=adapter, error=str(error), wait_s=wait
        )
        _log.debug("slot_attempt_retried", slot=self.name, model=adapter, exc_info=error)
        await self.clock.sleep(wait)
        return True

    def _publish(  # noqa: PLR0917 - private, and every caller passes all of them
        self,
        request: ModelRequest,
        agent: str,
        adapter: str,
        started: float,
        response: ModelResponse | None,
        outcome: str,
        retries: int,
        *,
        shadow: bool = False,
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
            shadow=shadow,
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
        self,
        request: ModelRequest,
        agent: str,
        features: TaskFeatures | None,
        avoid: list[str],
        trace: bool,
    ) -> tuple[ModelAdapter, bool, Decision | None]:
        """The adapter for one attempt, read once; whether it is a probe; and why (if traced)."""
        router = self.router
        decision: Decision | None = None
        probe = False
        if router is not None and features is not None:
            decision = router.choose(
                features,
                conversation_id=request.metadata.conversation_id,
                agent=agent,
                exclude=avoid,
            )
            for listener in self.decision_listeners:
                listener(request.metadata.conversation_id, agent, decision)
            adapter = router.by_name[decision.candidate].adapter
            if avoid and trace:
                decision = msgspec.structs.replace(
                    decision, reason=f"{decision.reason}; retry after {', '.join(avoid)} failed"
                )
        else:
            adapter, probe, policy = self._held(avoid)
            if trace:
                decision = Decision(
                    candidate=adapter.name, reason=self._why(policy, adapter, avoid), policy=policy
                )
        rollout = self.rollout
        if rollout is not None and not probe:
            new = rollout.substitute(adapter, request.metadata.conversation_id, avoid)
            if new is not None:
                if decision is not None:
                    decision = Decision(
                        candidate=new.name,
                        reason=f"rollout: the conversation is on the new arm ({new.name} in "
                        f"place of {adapter.name}, share {rollout.rollout.share:.0%}); "
                        f"{decision.reason}",
                        stepped_down=decision.stepped_down,
                        policy="rollout",
                    )
                return new, False, decision
        return adapter, probe, decision

    def _held(self, avoid: list[str]) -> tuple[ModelAdapter, bool, str]:
        """Without a router: the adapter the slot holds, a probe of its primary, or a retry's."""
        board = self.board
        adapter = self.adapter
        primary = self.primary
        if board is not None and adapter is not primary and board.take_probe(primary.name):
            return primary, True, "probe"
        if adapter.name in avoid:
            for candidate in self.candidates:
                other = candidate.adapter
                if other.name not in avoid and (board is None or board.allows(other.name)):
                    return other, False, "retry"
        if avoid:
            return adapter, False, "retry"
        return adapter, False, "primary" if adapter is primary else "failover"

    def _why(self, policy: str, adapter: ModelAdapter, avoid: list[str]) -> str:
        primary = self.primary.name
        if policy == "probe":
            return f"probe: {primary}'s breaker is half-open; this call tests it"
        if policy == "retry":
            return f"retry: {', '.join(avoid)} failed; {adapter.name} takes the retry"
        if policy == "failover":
            return f"failover: the supervisor swapped {primary} out; {adapter.name} holds the slot"
        return f"the slot's model {adapter.name}"

    async def _call_routed(
        self, request: ModelRequest, agent: str, routes: list[Decision] | None
    ) -> ModelResponse:
        began = self.clock.now()
        features = await self._features(request)
        board = self.board
        avoid: list[str] = []
        attempt = 0
        while True:
            adapter, probe, decision = self._choose(
                request, agent, features, avoid, routes is not None
            )
            refuse_without_vision(self.name, adapter, request)
            if routes is not None and decision is not None:
                routes.append(decision)
            name = adapter.name
            started = self.clock.now()
            in_flight = self.in_flight
            in_flight[name] = in_flight.get(name, 0) + 1
            self.calls[name] = self.calls.get(name, 0) + 1
            token = board.started(name, probe=probe) if board is not None else 0
            ok = False
            try:
                last = attempt + 1 >= self.retry.attempts
                response = await self._attempt(adapter, request, last=last)
                ok = True
            except ModelError as exc:
                self._publish(request, agent, name, started, None, type(exc).__name__, attempt)
                if routes is not None:
                    mark_failed(routes, name, exc, self.clock.now() - started)
                if self.rollout is not None:
                    self._observe(self.rollout, name, started, ok=False)
                attempt += 1
                avoid.append(name)
                if not await self._back_off(exc, name, attempt, began):
                    raise
                continue
            finally:
                in_flight[name] -= 1
                if board is not None:
                    board.finished(name, token, ok=ok)
            if self.router is not None and features is not None:
                self.router.charge(request.metadata.conversation_id, agent, response.usage)
            if self.listeners:
                self._publish(request, agent, name, started, response, "ok", attempt)
            rollout = self.rollout
            if rollout is not None:
                self._observe(rollout, name, started, ok=True)
                if rollout.wants_shadow(adapter):
                    self._send_shadow(rollout, request, agent)
            return response

    # --- rollouts -------------------------------------------------------------------------------

    def grade(
        self,
        conversation_id: str,
        utility: float,
        *,
        agent: str = "",
        adapter: str | None = None,
        request: ModelRequest | None = None,
    ) -> ModelCallRecord:
        """Report a grade (0..1) of this slot's answer in a conversation; see ``_grading``."""
        return publish_grade(
            self, conversation_id, utility, agent=agent, adapter=adapter, request=request
        )

    def _observe(self, rollout: SlotRollout, adapter: str, started: float, *, ok: bool) -> None:
        now = self.clock.now()
        event = rollout.observe(adapter, now, now - started, ok=ok)
        if event is not None:
            self.rollout_moved(event)

    def rollout_moved(self, event: RolloutEvent) -> None:
        """Act on a rollout's move (install a promoted adapter) and tell the listeners."""
        rollout = self.rollout
        if event.action == "promote" and rollout is not None:
            self._install(rollout.incumbent, rollout.candidate)
        for listener in self.rollout_listeners:
            listener(event)

    def _install(self, old: ModelAdapter, new: ModelAdapter) -> None:
        """Put a promoted adapter wherever the one it replaces was."""
        for candidate in self.candidates:
            if candidate.adapter is old:
                candidate.adapter = new  # the router's tables hold the same Candidate objects
        if self.primary is old:
            self.primary = new
        if self.adapter is old:
            self.swap(new)

    def _send_shadow(self, rollout: SlotRollout, request: ModelRequest, agent: str) -> None:
        runner = self.shadows
        if runner is None or runner.closed:
            rollout.shadow_dropped += 1  # no runtime to own the task: nothing to run it in
            return
        if rollout.take_shadow():
            runner.start_soon(partial(self._shadow_call, rollout, request, agent))

    async def _shadow_call(self, rollout: SlotRollout, request: ModelRequest, agent: str) -> None:
        """Send the copy, drop the answer, count the outcome; never raise but cancellation."""
        adapter = rollout.candidate
        started = self.clock.now()
        response: ModelResponse | None = None
        try:
            # Sent once, like every call the slot makes (``_send``): a shadow is never retried.
            response = await self._complete_within(adapter, request, rollout.shadow_timeout_s)
            outcome = "ok" if response is not None else ModelTimeoutError.__name__
        except Exception as exc:
            outcome = type(exc).__name__
            # The candidate's model errors are what the rollout measures; anything else is
            # a bug worth a look.
            (_log.debug if isinstance(exc, ModelError) else _log.warning)(
                "shadow_call_failed", slot=self.name, model=adapter.name, exc_info=exc
            )
        finally:
            rollout.shadow_in_flight -= 1
        if response is not None:
            rollout.shadow_cost_usd += response.usage.cost_usd
        self._publish(request, agent, adapter.name, started, response, outcome, 0, shadow=True)
        self._observe(rollout, adapter.name, started, ok=response is not None)

    async def _attempt(
        self, adapter: ModelAdapter, request: ModelRequest, *, last: bool
    ) -> ModelResponse:
        multiple = self.attempt_timeout_multiple
        board = self.board
        normal = None
        if not last and multiple is not None and board is not None:
            normal = board.breaker(adapter.name).normal_p95
        if normal is None:
            return await _send(adapter, request)
        limit = multiple * normal  # type: ignore[operator]
        response = await self._complete_within(adapter, request, limit)
        if response is not None:
            return response
        raise ModelTimeoutError(
            f"{adapter.name} took longer than {limit:.2f} s ({multiple:g} x its normal p95); "
            "retrying on another model",
            provider=adapter.name.partition(":")[0],
        )

    async def _complete_within(
        self, adapter: ModelAdapter, request: ModelRequest, limit: float
    ) -> ModelResponse | None:
        """``adapter``'s answer, or None if it takes longer than ``limit`` seconds."""
        with anyio.CancelScope() as scope:
            # The deadline is a timer on the slot's clock (a FakeClock in tests), not the
            # event loop's, so simulated time and real time behave the same.
            timer = self.clock.call_later(limit, scope.cancel)
            try:
                return await _send(adapter, request)
            finally:
                timer.cancel()
        return None

    async def stream(
        self,
        request: ModelRequest,
        *,
        agent: str = "",
        on_text: Callable[[str], None],
        routes: list[Decision] | None = None,
    ) -> ModelResponse:
        """Call the slot's model streaming; ``on_text`` gets each text delta as it arrives.

        Retries like ``call``, through the same policy, but only before the first delta:
        once text has gone to ``on_text``, a failure is raised, since sending the request
        again would show the user the same text twice. Returns the assembled answer of the
        stream's end. A routed slot (router, breakers or a rollout) streams too, with its
        routing, health checks, failover and rollouts (``_slot_stream.stream_routed``).
        """
        if self.router is not None or self.board is not None or self.rollout is not None:
            return await stream_routed(self, request, agent=agent, on_text=on_text, routes=routes)
        began = self.clock.now()
        attempt = 0
        timed = bool(self.listeners) or routes is not None
        while True:
            adapter = self.adapter
            refuse_without_vision(self.name, adapter, request)
            name = adapter.name
            started = self.clock.now() if timed else 0.0
            in_flight = self.in_flight
            in_flight[name] = in_flight.get(name, 0) + 1
            self.calls[name] = self.calls.get(name, 0) + 1
            emitted = False
            response: ModelResponse | None = None
            try:
                with sending_once() if retries_itself(adapter) else _AS_IS:
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
                if routes is not None:
                    routes.append(failed_attempt(name, exc, self.clock.now() - started))
                attempt += 1
                # Text already shown is never asked for again, whatever the error says.
                if emitted or not await self._back_off(exc, name, attempt, began):
                    raise
                continue
            finally:
                in_flight[name] -= 1
            if self.listeners:
                self._publish(request, agent, name, started, response, "ok", attempt)
            if routes:
                routes.append(Decision(candidate=name, reason=f"retry {attempt}", policy="retry"))
            return response


def _send(adapter: ModelAdapter, request: ModelRequest) -> Awaitable[ModelResponse]:
    """Send ``request`` to ``adapter`` once: the slot, not the adapter, retries it.

    Every whole-answer send of the slot (held, routed, timed, shadow) goes through here,
    and ``stream`` marks its streams by the same test: ``sending_once`` only for an adapter
    that retries on its own, since the marker is a context change held for as long as the
    call is in flight, a cost per live conversation that offline models need not pay.
    Returning the adapter's own awaitable otherwise keeps the hot path free of a frame.
    """
    if retries_itself(adapter):
        return _complete_once(adapter, request)
    return adapter.complete(request)


async def _complete_once(adapter: ModelAdapter, request: ModelRequest) -> ModelResponse:
    with sending_once():
        return await adapter.complete(request)
