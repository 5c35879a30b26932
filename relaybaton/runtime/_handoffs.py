"""The baton's moves: handing off, taking the baton, and ending a turn that failed.

Invariants of ``docs/architecture.md``: one owner (1) while the baton is in flight nobody
owns the conversation; declared edges only (3); fencing (4), the epoch grows with every
pass; bounded (7), ``max_handoffs`` per user message; return address (9), a handoff with a
return gives a lease, and when it ends the baton goes back.
"""

from __future__ import annotations

import msgspec

from relaybaton.errors import (
    MaxHandoffsExceededError,
    NotOwnerError,
    OwnershipError,
    StaleEpochError,
    UndeclaredHandoffError,
)
from relaybaton.runtime import _transitions as transitions
from relaybaton.runtime._conversation import Conversation
from relaybaton.runtime._failpoints import failpoint
from relaybaton.runtime._journal_events import Appended, BatonAccepted, HandedOff
from relaybaton.runtime._turns import Turns
from relaybaton.runtime.messages import BatonPass, HandoffEvent, ReplyEvent

__all__ = ["Handoffs"]


class Handoffs(Turns):
    """Passes the baton along declared edges, fenced by epochs."""

    def handoff(
        self,
        conversation_id: str,
        sender: str,
        epoch: int,
        target: str,
        *,
        return_to_sender: bool = False,
        lease_turns: int = 1,
        note: str = "",
        record: msgspec.Struct | None = None,
    ) -> BatonPass:
        """Pass the baton to ``target``; the conversation's epoch grows by one.

        ``record`` is appended to the transcript if, and only if, the handoff happens (the
        sender's tool result for its handoff call, written while it still owns it).

        Raises:
            NotOwnerError, StaleEpochError: ``sender`` does not hold the baton at ``epoch``.
            UndeclaredHandoffError: ``target`` is not among ``sender``'s handoffs.
            MaxHandoffsExceededError: the user message already had ``max_handoffs``.
        """
        conversation = self.check(conversation_id, sender, epoch)
        allowed = self.edges.get(sender, frozenset())
        if target not in allowed or target not in self.agents:
            raise UndeclaredHandoffError(conversation_id, sender, target, allowed)
        turn = self._active(conversation)
        if turn.handoffs >= self.max_handoffs:
            raise MaxHandoffsExceededError(
                f"conversation {conversation_id!r}: more than {self.max_handoffs} handoffs "
                "for one user message; the agents may be passing the baton in a loop",
                limit=self.max_handoffs,
            )
        if record is not None:
            transitions.appended(conversation, record, None)
            if self.journal is not None:
                self.journal.record(conversation, Appended(agent=sender, item=record))
        baton = transitions.handed_off(
            conversation,
            sender,
            target,
            conversation.epoch + 1,
            turn.message_id,
            return_to=sender if return_to_sender else None,
            lease_turns=max(1, lease_turns),
            note=note,
        )
        if self.journal is not None:
            self.journal.record(
                conversation,
                HandedOff(
                    sender=sender,
                    target=target,
                    epoch=baton.epoch,
                    message_id=baton.message_id,
                    return_to=baton.return_to,
                    lease_turns=baton.lease_turns,
                    note=note,
                ),
            )
        failpoint("mid_handoff")
        if self.observed:
            self._emit(
                conversation,
                HandoffEvent(
                    action="handoff",
                    sender=sender,
                    target=target,
                    epoch=baton.epoch,
                    at=self.system.clock.now(),
                ),
            )
        self._deliver(conversation, target, baton, baton.epoch)
        return baton

    def accept(self, baton: BatonPass, agent: str) -> Conversation:
        """Take the baton out of its message: ``agent`` owns the conversation from now on."""
        conversation = self.by_id.get(baton.conversation_id)
        if conversation is None or conversation.in_flight != baton:
            current = conversation.epoch if conversation else 0
            if current == baton.epoch:
                raise OwnershipError(
                    f"conversation {baton.conversation_id!r}: the baton of epoch {baton.epoch} "
                    "was taken already",
                    conversation_id=baton.conversation_id,
                )
            raise StaleEpochError(baton.conversation_id, baton.epoch, current)
        if baton.target != agent:
            raise NotOwnerError(baton.conversation_id, agent, None)
        transitions.baton_accepted(conversation, agent, baton.epoch)
        if self.journal is not None:
            self.journal.record(conversation, BatonAccepted(agent=agent, epoch=baton.epoch))
        if self.observed:
            self._emit(
                conversation,
                HandoffEvent(
                    action="accept",
                    sender=baton.sender,
                    target=agent,
                    epoch=baton.epoch,
                    at=self.system.clock.now(),
                ),
            )
        return conversation

    def fail_turn(self, conversation_id: str, agent: str, epoch: int, error: str) -> bool:
        """End the active turn with an error reply, if ``agent`` still holds it at ``epoch``.

        Returns whether it did. Used when a turn crashed or broke a limit: the user always
        hears back, and the next message is dispatched (never a hang).
        """
        conversation = self.by_id.get(conversation_id)
        if conversation is None or conversation.active is None:
            return False
        baton = conversation.in_flight
        if baton is not None and baton.target == agent and baton.epoch == epoch:
            # The baton was addressed to this agent and it failed before taking it.
            self.accept(baton, agent)
        if conversation.owner != agent or conversation.epoch != epoch:
            return False
        if self.observed:
            self._emit(
                conversation,
                ReplyEvent(
                    agent=agent, text="", epoch=epoch, at=self.system.clock.now(), error=error
                ),
            )
        self._fail(conversation, agent, error)
        return True
