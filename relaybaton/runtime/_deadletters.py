"""Dead letters: messages that reached no handler are counted and logged, never silent."""

from __future__ import annotations

from collections import Counter, deque
from typing import final

import msgspec
import structlog

__all__ = ["DeadLetter", "DeadLetters"]

_log = structlog.get_logger("relaybaton.deadletters")


class DeadLetter(msgspec.Struct, frozen=True, kw_only=True):
    """One message that was not handled, and why."""

    actor: str
    reason: str
    message_type: str
    at: float


@final
class DeadLetters:
    """Counts dead letters by reason and keeps the most recent ones for inspection.

    Reasons: ``stopped`` (sent to a stopped actor), ``crashed`` (its handler raised and
    nobody was waiting for a reply), ``orphan_reply`` (the asker had gone when the reply
    came), ``shutdown`` (still queued when the system closed), ``restarted`` (in progress
    when a supervisor restarted the actor).
    """

    def __init__(self, keep: int = 1000) -> None:
        self.counts: Counter[str] = Counter()
        self.recent: deque[DeadLetter] = deque(maxlen=keep)

    @property
    def total(self) -> int:
        """How many dead letters there were, over all reasons."""
        return self.counts.total()

    def record(self, actor: str, message: object, reason: str, at: float) -> None:
        """Count one dead letter and log it at warning level."""
        self.counts[reason] += 1
        letter = DeadLetter(actor=actor, reason=reason, message_type=type(message).__name__, at=at)
        self.recent.append(letter)
        _log.warning("dead_letter", actor=actor, reason=reason, message_type=letter.message_type)
