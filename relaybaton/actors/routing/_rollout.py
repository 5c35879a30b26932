"""Progressive rollout of a new model (or agent version) with automatic rollback.

A rollout walks ``stages`` of traffic shares for the new arm (``0.0`` is shadow: it gets a
copy of calls whose answers are discarded, so users see only the incumbent), moving up one
stage after each clean analysis window and rolling back as soon as the new arm is worse
than the incumbent by more than a margin:

- errors: the new arm's error rate is significantly above the incumbent's plus
  ``error_margin`` (the lower Wilson bound at ``z`` exceeds it);
- latency: its p95 is above ``p95_margin`` × the incumbent's;
- quality: its mean grade is below the incumbent's by more than ``quality_margin`` (over
  ``min_graded`` grades of each arm, ``min_calls`` when unset). Grades arrive after their
  calls (``grade``): from ``relaybaton eval``'s graders on live traffic, or from users'
  feedback. With ``min_graded`` set, a stage also needs that many grades of each arm before
  it steps up, so a rollout cannot be promoted on calls alone.

Arms are sticky: a conversation's first arm is a hash of its id against the share of the
moment, and the rollout remembers it, so a conversation keeps its arm for its whole life
while the rollout runs, even as shares grow (a conversation begun on the incumbent is not
moved mid-way to a model it never spoke with). Rollback moves everyone back and promotion
moves everyone on, which is the point of them. The memory is bounded (``max_pinned``
conversations, least recently seen forgotten first); a forgotten conversation's arm is
drawn again from the hash, the same in every process.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from collections.abc import Sequence
from enum import StrEnum
from typing import final

import msgspec

from relaybaton.actors.routing._windows import SlidingWindow

__all__ = ["Rollout", "RolloutPolicy", "RolloutState", "arm_point"]


class RolloutState(StrEnum):
    """Where a rollout is."""

    RUNNING = "running"
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"


class RolloutPolicy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Stages, analysis windows and the margins that trigger a rollback."""

    stages: tuple[float, ...] = (0.0, 0.05, 0.5, 1.0)
    window_s: float = 60.0
    min_calls: int = 50
    error_margin: float = 0.01
    p95_margin: float = 1.5
    quality_margin: float = 0.05
    min_graded: int = 0
    z: float = 3.0


def arm_point(conversation_id: str) -> float:
    """A stable point in [0, 1) for a conversation id (the same in every process)."""
    digest = hashlib.blake2b(conversation_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def _wilson_low(errors: int, n: int, z: float) -> float:
    if n == 0:
        return 0.0
    p = errors / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - spread) / (1 + z * z / n)


@final
class Rollout:
    """One rollout of ``candidate`` against ``incumbent``; feed it outcomes, ask it arms."""

    def __init__(
        self,
        incumbent: str,
        candidate: str,
        *,
        policy: RolloutPolicy | None = None,
        start: float = 0.0,
        stages: Sequence[float] | None = None,
        max_pinned: int = 100_000,
    ) -> None:
        self.incumbent = incumbent
        self.candidate = candidate
        self.policy = policy = policy or RolloutPolicy()
        self.stages = tuple(stages) if stages is not None else policy.stages
        self.stage = 0
        self.state = RolloutState.RUNNING
        self.reason = ""
        self.changed_at = start
        self.history: list[tuple[float, str]] = []
        self._pinned: OrderedDict[str, bool] = OrderedDict()
        self._max_pinned = max_pinned
        self._reset(start)

    def _reset(self, now: float) -> None:
        self.window_started = now
        self.arms = {
            name: SlidingWindow(horizon_s=1e12, max_count=1_000_000)
            for name in (self.incumbent, self.candidate)
        }

    @property
    def share(self) -> float:
        """The new arm's share of conversations now."""
        if self.state is RolloutState.PROMOTED:
            return 1.0
        if self.state is RolloutState.ROLLED_BACK:
            return 0.0
        return self.stages[self.stage]

    def arm(self, conversation_id: str) -> str:
        """The arm that serves this conversation (the same one for its whole life)."""
        if self.state is not RolloutState.RUNNING:
            return self.candidate if self.state is RolloutState.PROMOTED else self.incumbent
        pinned = self._pinned
        new = pinned.get(conversation_id)
        if new is None:
            new = pinned[conversation_id] = arm_point(conversation_id) < self.share
            if len(pinned) > self._max_pinned:
                pinned.popitem(last=False)
        else:
            pinned.move_to_end(conversation_id)
        return self.candidate if new else self.incumbent

    @property
    def in_shadow_stage(self) -> bool:
        """Whether calls are copied to the new arm (running, at a share of 0)."""
        return self.state is RolloutState.RUNNING and self.share == 0.0

    def record(
        self, arm: str, now: float, latency: float, *, ok: bool, utility: float | None = None
    ) -> str | None:
        """Count one outcome of ``arm``; return the decision it caused (``promote``, ...)."""
        window = self.arms.get(arm)
        if window is None or self.state is not RolloutState.RUNNING:
            return None
        window.add(now, latency, ok=ok, utility=utility)
        return self.analyse(now)

    def grade(self, arm: str, now: float, utility: float) -> str | None:
        """Count a grade of a call ``arm`` answered earlier; return the decision it caused."""
        window = self.arms.get(arm)
        if window is None or self.state is not RolloutState.RUNNING:
            return None
        window.grade(utility)
        return self.analyse(now)

    def analyse(self, now: float) -> str | None:
        """Roll back as soon as the new arm is worse; step up after a clean window."""
        policy = self.policy
        new, old = self.arms[self.candidate], self.arms[self.incumbent]
        why = self._worse(new, old)
        if why is not None:
            self.state = RolloutState.ROLLED_BACK
            self._pinned.clear()
            return self._decide(now, "rollback", why)
        if now - self.window_started < policy.window_s or new.count < policy.min_calls:
            return None
        if new.graded < policy.min_graded or old.graded < policy.min_graded:
            # Quality is part of the gate: wait for grades of both arms, or the comparison
            # that would roll a worse model back never had the evidence to run.
            return None
        self.stage += 1
        if self.stage >= len(self.stages) or self.stages[self.stage] >= 1.0:
            self.state = RolloutState.PROMOTED
            self._pinned.clear()
            return self._decide(now, "promote", f"clean over {new.count} calls")
        decision = self._decide(now, "step", f"share {self.stages[self.stage]:.0%}")
        self._reset(now)
        return decision

    def _worse(self, new: SlidingWindow, old: SlidingWindow) -> str | None:
        policy = self.policy
        if new.count < max(1, policy.min_calls // 2):
            return None  # a handful of calls proves nothing either way
        baseline = old.error_rate if old.count >= policy.min_calls else 0.0
        low = _wilson_low(new.errors, new.count, policy.z)
        if low > baseline + policy.error_margin:
            return (
                f"error rate {new.error_rate:.1%} ({new.errors}/{new.count}) > incumbent "
                f"{baseline:.1%} + {policy.error_margin:.1%}"
            )
        if new.successes >= policy.min_calls and old.successes >= policy.min_calls:
            p_new, p_old = new.quantile(0.95) or 0.0, old.quantile(0.95) or 0.0
            if p_old and p_new > policy.p95_margin * p_old:
                return f"p95 {p_new:.2f} s > {policy.p95_margin:g} x incumbent {p_old:.2f} s"
        graded = policy.min_graded or policy.min_calls
        if new.graded >= graded and old.graded >= graded:
            q_new, q_old = new.utility or 0.0, old.utility or 0.0
            if q_new < q_old - policy.quality_margin:
                return f"quality {q_new:.2f} < incumbent {q_old:.2f} - {policy.quality_margin:g}"
        return None

    def _decide(self, now: float, action: str, reason: str) -> str:
        self.reason = reason
        self.changed_at = now
        self.history.append((now, f"{action}: {reason}"))
        return action
