"""The supervisor's utility rule: swap a slot's model when its graded quality is too low.

Grades arrive on the metrics stream as records with ``outcome == "graded"`` (see
``_grading``) and are kept per adapter in a window of their own (``utility_window_s``,
``utility_window``), apart from the calls' windows: a grade is not a call. The rule acts like
a breaker, with the same shape of hysteresis and probing as the latency and error rules:

- **trip**: when the mean grade of the adapter a slot holds is under ``utility_floor`` over
  at least ``min_graded`` grades, the slot gets the cheapest healthy candidate of a higher
  tier (``escalate``), at most once per ``cooldown_s``;
- **probe**: ``probe_after_s`` later the demoted adapter is put back on probation
  (``probe``): its grade window starts empty, so only its new answers judge it;
- **close**: once it has ``min_graded`` grades with a mean at or above ``utility_floor +
  utility_margin`` the probe ends and it stays (the margin is the hysteresis: a model hovering
  at the floor does not flap); if its mean drops under the floor first, the slot escalates
  again and the next probe waits ``probe_backoff`` times longer, up to ``max_probe_after_s``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, final

from relaybaton.actors.routing._windows import SlidingWindow
from relaybaton.adapters import ModelAdapter

if TYPE_CHECKING:
    from relaybaton.actors.routing._health import HealthBoard
    from relaybaton.actors.routing._slot import ModelSlot
    from relaybaton.actors.routing._supervisor import SupervisorPolicy

__all__ = ["UtilityRule"]


@dataclass(slots=True)
class _Demotion:
    """A slot whose model was swapped for quality: what to probe, and when."""

    demoted: ModelAdapter
    stronger: ModelAdapter
    probe_at: float
    level: int = 0
    probing: bool = False


Swap = tuple["ModelSlot", ModelAdapter, str, str]


@final
class UtilityRule:
    """Grade windows per adapter and the utility state of each slot; the supervisor asks it."""

    def __init__(self, policy: SupervisorPolicy) -> None:
        self.policy = policy
        self.windows: dict[str, SlidingWindow] = {}
        self.demotions: dict[str, _Demotion] = {}
        self._escalated_at: dict[str, float] = {}

    def window(self, adapter: str) -> SlidingWindow:
        """The adapter's grade window, created on first use."""
        window = self.windows.get(adapter)
        if window is None:
            window = self.windows[adapter] = SlidingWindow(
                horizon_s=self.policy.utility_window_s, max_count=self.policy.utility_window
            )
        return window

    def grade(self, adapter: str, now: float, utility: float) -> None:
        """Keep one grade of ``adapter``."""
        self.window(adapter).add(now, 0.0, ok=True, utility=utility)

    def check(self, slot: ModelSlot, board: HealthBoard, now: float) -> Swap | None:
        """The swap the grades of the adapter ``slot`` holds call for, if any."""
        policy = self.policy
        adapter = slot.adapter
        window = self.window(adapter.name)
        window.expire(now)
        utility = window.utility
        if utility is None or window.graded < policy.min_graded:
            return None
        demotion = self.demotions.get(slot.name)
        if demotion is not None and demotion.probing and adapter is demotion.demoted:
            if utility >= policy.utility_floor + policy.utility_margin:
                del self.demotions[slot.name]  # the probe passed: it stays
                return None
            if utility >= policy.utility_floor:
                return None  # inside the margin: keep probing
            demotion.probing = False
            demotion.level += 1
            demotion.probe_at = now + self._probe_delay(demotion.level)
            graded = window.graded
            window.clear()
            return (
                slot, demotion.stronger,
                f"probe failed: utility {utility:.2f} < {policy.utility_floor:g} over "
                f"{graded} grades; next probe in "
                f"{demotion.probe_at - now:g} s", "escalate",
            )  # fmt: skip
        if utility >= policy.utility_floor:
            return None
        if now - self._escalated_at.get(slot.name, -1e18) < policy.cooldown_s:
            return None
        current = next((c for c in slot.candidates if c.adapter is adapter), None)
        tier = current.tier if current is not None else 0
        stronger = sorted(
            (c for c in slot.candidates if c.tier > tier and board.allows(c.adapter.name)),
            key=lambda c: (c.tier, c.price()),
        )
        if not stronger:
            return None
        self._escalated_at[slot.name] = now
        target = stronger[0].adapter
        graded = window.graded
        window.clear()
        self.demotions[slot.name] = _Demotion(
            demoted=adapter, stronger=target, probe_at=now + self._probe_delay(0)
        )
        return (
            slot, target,
            f"utility {utility:.2f} < {policy.utility_floor:g} over {graded} graded calls",
            "escalate",
        )  # fmt: skip

    def probes_due(self, slots: list[ModelSlot], now: float) -> list[Swap]:
        """The probes whose time came: the demoted adapter goes back on probation."""
        due: list[Swap] = []
        for slot in slots:
            demotion = self.demotions.get(slot.name)
            if demotion is None or demotion.probing or now < demotion.probe_at:
                continue
            if slot.adapter is not demotion.stronger:
                del self.demotions[slot.name]  # something else moved the slot since
                continue
            demotion.probing = True
            self.window(demotion.demoted.name).clear()
            due.append(
                (slot, demotion.demoted, f"probing after {demotion.level + 1} demotion(s)", "probe")
            )
        return due

    def _probe_delay(self, level: int) -> float:
        policy = self.policy
        return min(policy.max_probe_after_s, policy.probe_after_s * policy.probe_backoff**level)
