"""Grades of a slot's answers, delivered where quality decides something.

A grade (a utility in 0..1: an evaluator's score, a user's rating) arrives after the call it
grades, off the call path. ``publish_grade`` delivers it to the three consumers of quality:

- the metrics stream (the slot's ``listeners``), as a ``ModelCallRecord`` whose ``outcome``
  is ``graded`` and whose ``utility`` is the grade: the model supervisor keeps these in a
  window of their own (a grade is not a call: it must not move latency or error rates);
- the slot's rollout, whose quality gate compares the arms' mean grades;
- the learned router, which learns each candidate's utility per task features, when the
  request's features are known.

The adapter graded is the one that served the conversation: the rollout arm it is pinned
to, else what the slot holds now.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from relaybaton.adapters import ModelCallRecord, ModelRequest, Usage
from relaybaton.errors import ConfigError

if TYPE_CHECKING:
    from relaybaton.actors.routing._slot import ModelSlot

__all__ = ["GRADED", "publish_grade"]

GRADED = "graded"


def _served_by(slot: ModelSlot, conversation_id: str) -> str:
    rollout = slot.rollout
    if rollout is not None and rollout.running:
        arm = rollout.rollout.arm(conversation_id)
        if arm == rollout.candidate.name or slot.adapter is rollout.incumbent:
            return arm
    return slot.adapter.name


def publish_grade(
    slot: ModelSlot,
    conversation_id: str,
    utility: float,
    *,
    agent: str = "",
    adapter: str | None = None,
    request: ModelRequest | None = None,
) -> ModelCallRecord:
    """Deliver one grade of the slot's answer in ``conversation_id``; return its record."""
    if not 0.0 <= utility <= 1.0:  # NaN fails the comparison too
        raise ConfigError(f"a grade is a utility in 0..1, got {utility!r}")
    name = adapter or _served_by(slot, conversation_id)
    now = slot.clock.now()
    record = ModelCallRecord(
        adapter=name,
        model=name,
        agent=agent,
        conversation_id=conversation_id,
        started_at=now,
        latency_s=0.0,
        ttft_s=None,
        outcome=GRADED,
        usage=Usage(),
        retries=0,
        utility=utility,
        slot=slot.name,
    )
    for listener in slot.listeners:
        listener(record)
    rollout = slot.rollout
    if rollout is not None:
        event = rollout.grade(name, now, utility)
        if event is not None:
            slot.rollout_moved(event)
    router, classifier = slot.router, slot.classifier
    learned = router.learned if router is not None else None
    if learned is not None and classifier is not None and request is not None:
        candidate = next((c.name for c in slot.candidates if c.adapter.name == name), None)
        if candidate is not None:
            learned.record(classifier.classify(request), candidate, utility)
    return record
