"""The model supervisor: an actor that watches the metrics stream and changes what slots hold.

It is fed, always by ``tell`` so that no model call ever waits on it:

- a ``ModelCallRecord`` per attempt, from every slot's ``listeners`` (the metrics stream),
  kept per adapter in sliding windows (p50/p95, error rate, spend rate, utility) and per
  agent (spend);
- a ``BreakerTransition`` whenever an adapter's breaker moves (``HealthBoard.listeners``);
- a ``SupervisionEvent`` per restart or escalation of the actor kernel, counted too;
- a ``Tick`` every ``tick_s`` seconds of the runtime's clock, on which it checks breakers
  for calls stuck in flight and for open times that ended;
- a ``RolloutEvent`` whenever a slot's rollout steps up, is promoted or rolled back (the
  slot decides on its own calls' outcomes, so a rollout needs no supervisor to run); each is
  logged and kept, and a promotion is kept as a swap too.

A rollout's shadow calls arrive as records marked ``shadow``: they count in their adapter's
window and in the spend by model (they cost money) and in ``shadow_spend_by_model``, never
in the spend by agent (no agent asked for them).

Its decisions are ``SwapEvent``s: when the breaker of the adapter a slot uses opens, the
slot gets the best healthy other candidate (``failover``); when the slot's primary closes
again after its probes, the primary goes back (``restore``); when graded utility of a slot's
adapter stays below ``utility_floor`` (with ``min_graded`` grades and a ``cooldown_s``
between escalations), the slot gets a stronger-tier candidate (``escalate``), and the
weaker one is probed again later (``probe``; see ``_utility_rule``). Each swap is
logged, kept in ``SupervisorState.swaps`` and handed to ``swap_listeners``. Swaps go
through ``ModelSlot.swap``, so a call begun on the old adapter finishes there (invariant 8).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import final

import msgspec
import structlog

from relaybaton.actors.routing._breaker import BreakerState, BreakerTransition
from relaybaton.actors.routing._grading import GRADED
from relaybaton.actors.routing._health import HealthBoard
from relaybaton.actors.routing._slot import ModelSlot
from relaybaton.actors.routing._slot_rollout import RolloutEvent
from relaybaton.actors.routing._utility_rule import UtilityRule
from relaybaton.actors.routing._windows import SlidingWindow
from relaybaton.adapters import ModelAdapter, ModelCallRecord
from relaybaton.errors import ActorStoppedError, MailboxFullError
from relaybaton.runtime import Actor, ActorRef, ActorSystem, SupervisionEvent, TimerHandle

__all__ = [
    "ModelSupervisor",
    "SupervisorHandle",
    "SupervisorPolicy",
    "SupervisorState",
    "SwapEvent",
    "Tick",
    "open_model_supervisor",
]

_log = structlog.get_logger("relaybaton.supervisor")


class Tick(msgspec.Struct, frozen=True, kw_only=True, tag="tick"):
    """Time to look at the breakers again."""


class SwapEvent(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    rename={"source": "from", "target": "to"},
    tag_field="kind",
    tag="swap",
):
    """The supervisor changed what a slot holds."""

    at: float
    slot: str
    source: str
    target: str
    reason: str
    action: str = "failover"


class SupervisorPolicy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How the supervisor acts beyond the breakers (see ``BreakerPolicy`` for those)."""

    utility_floor: float = 0.8
    min_graded: int = 20
    cooldown_s: float = 60.0
    window_s: float = 60.0
    window_calls: int = 500
    tick_s: float = 0.25
    utility_margin: float = 0.05
    utility_window_s: float = 600.0
    utility_window: int = 200
    probe_after_s: float = 300.0
    probe_backoff: float = 2.0
    max_probe_after_s: float = 3600.0


SupervisorMessage = ModelCallRecord | BreakerTransition | SupervisionEvent | RolloutEvent | Tick


@final
class SupervisorState:
    """What the supervisor knows; read it, do not write it (the actor does)."""

    def __init__(self, policy: SupervisorPolicy) -> None:
        self.policy = policy
        self.windows: dict[str, SlidingWindow] = {}
        self.spend_by_agent: dict[str, float] = {}
        self.spend_by_model: dict[str, float] = {}
        self.calls_by_model: dict[str, int] = {}
        self.shadow_spend_by_model: dict[str, float] = {}
        self.rollouts: list[RolloutEvent] = []
        self.swaps: list[SwapEvent] = []
        self.restarts = 0
        self.escalations = 0
        self.crashes_by_child: dict[str, int] = {}
        self.transitions: list[BreakerTransition] = []
        self.swap_listeners: list[Callable[[SwapEvent], None]] = []
        self.utility = UtilityRule(policy)
        self.grades = 0

    def window(self, adapter: str) -> SlidingWindow:
        """The adapter's window, created on first use."""
        window = self.windows.get(adapter)
        if window is None:
            window = self.windows[adapter] = SlidingWindow(
                horizon_s=self.policy.window_s, max_count=self.policy.window_calls
            )
        return window


@final
class ModelSupervisor(Actor[SupervisorMessage, None]):
    """The actor behind ``open_model_supervisor``; see the module docstring."""

    def __init__(
        self, slots: Mapping[str, ModelSlot], board: HealthBoard, state: SupervisorState
    ) -> None:
        self.slots = slots
        self.board = board
        self.state = state

    async def receive(self, message: SupervisorMessage) -> None:
        if isinstance(message, ModelCallRecord):
            self._count(message)
        elif isinstance(message, BreakerTransition):
            self._react(message)
        elif isinstance(message, SupervisionEvent):
            self._supervision(message)
        elif isinstance(message, RolloutEvent):
            self._rollout(message)
        else:
            self.board.evaluate()
            for slot, adapter, reason, action in self.state.utility.probes_due(
                list(self.slots.values()), self._now()
            ):
                self._swap(slot, adapter, reason, action)

    def _now(self) -> float:
        return self.board.clock.now()

    def _count(self, record: ModelCallRecord) -> None:
        state = self.state
        now = self._now()
        if record.outcome == GRADED:
            if record.utility is not None:
                state.grades += 1
                state.utility.grade(record.adapter, now, record.utility)
                self._check_utility(record.adapter, now)
            return
        cost = record.usage.cost_usd
        state.window(record.adapter).add(
            now,
            record.latency_s,
            ok=record.outcome == "ok",
            cost=cost,
            tokens=record.usage.input_tokens + record.usage.output_tokens,
            utility=record.utility,
        )
        if record.shadow:
            shadow = state.shadow_spend_by_model
            shadow[record.adapter] = shadow.get(record.adapter, 0.0) + cost
        elif record.agent:
            state.spend_by_agent[record.agent] = state.spend_by_agent.get(record.agent, 0.0) + cost
        state.spend_by_model[record.adapter] = state.spend_by_model.get(record.adapter, 0.0) + cost
        state.calls_by_model[record.adapter] = state.calls_by_model.get(record.adapter, 0) + 1
        if record.utility is not None:  # a grade carried by the call's own record
            state.utility.grade(record.adapter, now, record.utility)
            self._check_utility(record.adapter, now)

    def _check_utility(self, adapter: str, now: float) -> None:
        for slot in self.slots.values():
            if slot.adapter.name != adapter:
                continue
            swap = self.state.utility.check(slot, self.board, now)
            if swap is not None:
                self._swap(*swap)

    def _react(self, transition: BreakerTransition) -> None:
        self.state.transitions.append(transition)
        _log.info(
            "breaker",
            adapter=transition.adapter,
            source=transition.source.value,
            target=transition.target.value,
            reason=transition.reason,
        )
        adapter = transition.adapter
        for slot in self.slots.values():
            if transition.target is BreakerState.OPEN and slot.adapter.name == adapter:
                others = [
                    c
                    for c in slot.candidates
                    if c.adapter.name != adapter and self.board.allows(c.adapter.name)
                ]
                if others:
                    best = min(
                        others,
                        key=lambda c: (
                            c is not slot.candidates[0],
                            self.board.latency(c.adapter.name) or 0.0,
                        ),
                    )
                    self._swap(slot, best.adapter, f"breaker open: {transition.reason}", "failover")
            elif (
                transition.target is BreakerState.CLOSED
                and slot.primary.name == adapter
                and slot.adapter is not slot.primary
            ):
                self._swap(slot, slot.primary, f"recovered: {transition.reason}", "restore")

    def _swap(self, slot: ModelSlot, adapter: ModelAdapter, reason: str, action: str) -> None:
        previous = slot.swap(adapter)
        event = SwapEvent(
            at=self._now(),
            slot=slot.name,
            source=previous.name,
            target=adapter.name,
            reason=reason,
            action=action,
        )
        self.state.swaps.append(event)
        # A failover is news for whoever runs the flow: at warning, on screen by default.
        (_log.warning if action == "failover" else _log.info)(
            "model swap", slot=slot.name, source=previous.name, target=adapter.name,
            reason=reason, action=action,
        )  # fmt: skip
        for listener in self.state.swap_listeners:
            listener(event)

    def _rollout(self, event: RolloutEvent) -> None:
        state = self.state
        state.rollouts.append(event)
        _log.info(
            "rollout", slot=event.slot, action=event.action, incumbent=event.incumbent,
            candidate=event.candidate, share=event.share, reason=event.reason,
        )  # fmt: skip
        if event.action == "promote":
            swap = SwapEvent(
                at=event.at,
                slot=event.slot,
                source=event.incumbent,
                target=event.candidate,
                reason=f"rollout promoted: {event.reason}",
                action="promote",
            )
            state.swaps.append(swap)
            for listener in state.swap_listeners:
                listener(swap)

    def _supervision(self, event: SupervisionEvent) -> None:
        state = self.state
        if event.kind == "restart":
            state.restarts += 1
        elif event.kind == "escalate":
            state.escalations += 1
        state.crashes_by_child[event.child] = state.crashes_by_child.get(event.child, 0) + 1


@final
class SupervisorHandle:
    """A running supervisor: its ref, its state (read-only), and the board it watches."""

    def __init__(
        self, ref: ActorRef[SupervisorMessage, None], state: SupervisorState, board: HealthBoard
    ) -> None:
        self.ref = ref
        self.state = state
        self.board = board


@asynccontextmanager
async def open_model_supervisor(
    system: ActorSystem,
    slots: Mapping[str, ModelSlot],
    board: HealthBoard,
    *,
    policy: SupervisorPolicy | None = None,
    name: str = "model-supervisor",
) -> AsyncIterator[SupervisorHandle]:
    """Start the supervisor for ``slots`` and wire the streams into it for the block.

    On exit the listeners are removed, the ticker stops and the actor stops after the
    messages already queued.
    """
    policy = policy or SupervisorPolicy()
    state = SupervisorState(policy)
    ref: ActorRef[SupervisorMessage, None] = await system.spawn(
        lambda: ModelSupervisor(slots, board, state), name=name, capacity=100_000
    )

    def tell(message: SupervisorMessage) -> None:
        # A full or stopped mailbox drops the metric: the call path must never wait or fail
        # for the supervisor's sake.
        with contextlib.suppress(MailboxFullError, ActorStoppedError):
            ref.tell(message)

    for slot in slots.values():
        slot.listeners.append(tell)
        slot.rollout_listeners.append(tell)
        if slot.board is None:
            slot.board = board
    board.listeners.append(tell)
    system.supervision_listeners.append(tell)
    clock = system.clock
    timer: list[TimerHandle] = []

    def tick() -> None:
        tell(Tick())
        timer[:] = [clock.call_later(policy.tick_s, tick)]

    timer.append(clock.call_later(policy.tick_s, tick))
    try:
        yield SupervisorHandle(ref, state, board)
    finally:
        for handle in timer:
            handle.cancel()
        for slot in slots.values():
            if tell in slot.listeners:
                slot.listeners.remove(tell)
            if tell in slot.rollout_listeners:
                slot.rollout_listeners.remove(tell)
        if tell in board.listeners:
            board.listeners.remove(tell)
        if tell in system.supervision_listeners:
            system.supervision_listeners.remove(tell)
        await ref.stop()
