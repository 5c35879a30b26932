"""A rollout running in a slot: the adapter it replaces, the new one, and what it decided.

``ModelSlot.start_rollout`` makes one. The slot asks it, per attempt, whether the adapter it
chose is the incumbent and the conversation is on the new arm (then the new adapter takes
the attempt instead), and tells it every outcome of either adapter, so the analysis of
``Rollout`` runs on live traffic. In the shadow stage the slot also sends a copy of every
call the incumbent answered to the new adapter, in the background (see ``ModelSlot``); the
copies' outcomes feed the analysis like any other, which is what lets a shadow stage end in
a first share or a rollback on evidence.

Only calls the slot would have sent to the incumbent take part: in a routed slot the
rollout replaces one candidate, and the router's other choices are left alone.
"""

from __future__ import annotations

from typing import final

import msgspec

from relaybaton.actors.routing._rollout import Rollout, RolloutState
from relaybaton.adapters import ModelAdapter
from relaybaton.errors import ConfigError

__all__ = ["RolloutEvent", "SlotRollout"]


class RolloutEvent(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind", tag="rollout"):
    """A rollout moved: ``step`` (a larger share), ``promote`` or ``rollback``."""

    at: float
    slot: str
    action: str
    reason: str
    incumbent: str
    candidate: str
    share: float


@final
class SlotRollout:
    """One slot's rollout of ``candidate`` in place of ``incumbent``; the slot drives it."""

    def __init__(
        self,
        slot: str,
        incumbent: ModelAdapter,
        candidate: ModelAdapter,
        rollout: Rollout,
        *,
        shadow_limit: int = 8,
        shadow_timeout_s: float = 60.0,
    ) -> None:
        if shadow_limit < 1:
            raise ConfigError(f"shadow_limit must be at least 1, got {shadow_limit}")
        self.slot = slot
        self.incumbent = incumbent
        self.candidate = candidate
        self.rollout = rollout
        self.shadow_limit = shadow_limit
        self.shadow_timeout_s = shadow_timeout_s
        self.shadow_in_flight = 0
        self.shadow_calls = 0
        self.shadow_dropped = 0
        self.shadow_cost_usd = 0.0
        self.events: list[RolloutEvent] = []

    def __repr__(self) -> str:
        rollout = self.rollout
        return (
            f"SlotRollout({self.slot!r}, {self.incumbent.name!r} -> {self.candidate.name!r}, "
            f"{rollout.state.value}, share {rollout.share:.0%})"
        )

    @property
    def running(self) -> bool:
        """Whether the rollout still decides (neither promoted nor rolled back)."""
        return self.rollout.state is RolloutState.RUNNING

    def substitute(
        self, adapter: ModelAdapter, conversation_id: str, avoid: list[str]
    ) -> ModelAdapter | None:
        """The new adapter, if it takes this attempt in place of ``adapter``; else None.

        A retry after the new adapter failed goes to the incumbent: users on the new arm
        are not made to pay twice for a model under trial.
        """
        if adapter is not self.incumbent or not self.running or self.candidate.name in avoid:
            return None
        if self.rollout.arm(conversation_id) != self.rollout.candidate:
            return None
        return self.candidate

    def wants_shadow(self, adapter: ModelAdapter) -> bool:
        """Whether a call ``adapter`` just answered is copied to the new adapter now."""
        return adapter is self.incumbent and self.rollout.in_shadow_stage

    def take_shadow(self) -> bool:
        """Count a shadow call in flight, or a dropped one when ``shadow_limit`` are."""
        if self.shadow_in_flight >= self.shadow_limit:
            self.shadow_dropped += 1
            return False
        self.shadow_in_flight += 1
        self.shadow_calls += 1
        return True

    def observe(self, adapter: str, now: float, latency: float, *, ok: bool) -> RolloutEvent | None:
        """Count one outcome of either arm; return the event when it moved the rollout."""
        if adapter == self.candidate.name:
            arm = self.rollout.candidate
        elif adapter == self.incumbent.name:
            arm = self.rollout.incumbent
        else:
            return None
        return self._event(now, self.rollout.record(arm, now, latency, ok=ok))

    def grade(self, adapter: str, now: float, utility: float) -> RolloutEvent | None:
        """Count a grade of an earlier call of either arm; the event when it moved the rollout."""
        if adapter == self.candidate.name:
            arm = self.rollout.candidate
        elif adapter == self.incumbent.name:
            arm = self.rollout.incumbent
        else:
            return None
        return self._event(now, self.rollout.grade(arm, now, utility))

    def _event(self, now: float, action: str | None) -> RolloutEvent | None:
        if action is None:
            return None
        event = RolloutEvent(
            at=now,
            slot=self.slot,
            action=action,
            reason=self.rollout.reason,
            incumbent=self.incumbent.name,
            candidate=self.candidate.name,
            share=self.rollout.share,
        )
        self.events.append(event)
        return event
