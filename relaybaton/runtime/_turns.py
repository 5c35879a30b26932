"""User messages and turns: the inbox, delivering a turn to its owner, ending it.

A user message is accepted once per id (invariant 5 of ``docs/architecture.md``) and waits
in the conversation's inbox, one active turn at a time, so a message that arrives during a
handoff waits, in order, behind it (invariant 2). Each change is made by the transition of
``_transitions.py`` that replay uses too, then journaled.
"""

from __future__ import annotations

import asyncio
from functools import partial

import msgspec

from relaybaton.errors import ActorStoppedError, OwnershipError
from relaybaton.runtime import _transitions as transitions
from relaybaton.runtime._conversation import (
    Conversation,
    ConversationStatus,
    Turn,
    TurnResult,
    fail_waiters,
)
from relaybaton.runtime._envelope import Envelope
from relaybaton.runtime._journal_events import (
    Accepted,
    Appended,
    BatonReturned,
    Charged,
    Replied,
    TurnFailed,
    TurnStarted,
)
from relaybaton.runtime._operator_events import is_person
from relaybaton.runtime._registry import Registry
from relaybaton.runtime.messages import (
    BatonPass,
    HandoffEvent,
    KernelMessage,
    ReplyEvent,
    UserTurn,
)

__all__ = ["Turns"]


class Turns(Registry):
    """Accepts user messages, hands each turn to its owner, and ends it with one result."""

    def submit(
        self,
        conversation_id: str,
        message_id: str,
        payload: msgspec.Struct,
        *,
        user: str = "",
        reply_to: str | None = None,
    ) -> asyncio.Future[TurnResult]:
        """Accept a user message once; return a future of its one result.

        A repeated ``message_id`` queues nothing: its future gets the first one's result.
        Cancelling the returned future does not cancel the turn.
        ``user`` (when given) names whom the conversation is with, from now on.
        ``reply_to``: where the transport delivers the result (``Turn.reply_to``).
        Raises ``OwnershipError`` if the conversation is closed.
        """
        if self.admit is not None:
            self.admit(conversation_id)
        conversation = self.open(conversation_id)
        seen = conversation.seen.get(message_id)
        if seen is not None:
            self.duplicates += 1
            return seen.waiter()
        if conversation.status is ConversationStatus.CLOSED:
            raise OwnershipError(
                f"conversation {conversation_id!r} is closed; start a new one",
                conversation_id=conversation_id,
            )
        self.turns_accepted += 1
        new_user = user if user and user != conversation.user else None
        starts_now = conversation.active is None and not conversation.inbox
        turn = transitions.accepted(
            conversation, message_id, payload, starts_now, new_user, reply_to=reply_to
        )
        future = turn.waiter()
        if self.journal is not None:
            # One record for "accepted" and, in the common case, "started" (and "opened").
            self.journal.record(
                conversation,
                Accepted(
                    message_id=message_id,
                    item=payload,
                    started=starts_now,
                    opened_by=conversation.owner if conversation.seq == 0 else None,
                    user=new_user,
                    reply_to=reply_to,
                ),
            )
        if starts_now:
            self._deliver_turn(conversation, turn)
        return future

    def _dispatch_next(self, conversation: Conversation) -> None:
        while conversation.active is None and conversation.inbox:
            turn = transitions.turn_started(conversation)
            if self.journal is not None:
                self.journal.record(conversation, TurnStarted(message_id=turn.message_id))
            self._deliver_turn(conversation, turn)

    def _deliver_turn(self, conversation: Conversation, turn: Turn) -> None:
        owner = conversation.owner
        assert owner is not None  # a turn ends only with the baton held
        if is_person(owner):  # no activation runs for a person: the turn waits for them
            conversation.parked = True
            return
        message = UserTurn(conversation_id=conversation.id, message_id=turn.message_id)
        self._deliver(conversation, owner, message, conversation.epoch)

    def _deliver(
        self, conversation: Conversation, agent: str, message: KernelMessage, epoch: int
    ) -> None:
        table = self.agents[agent]
        try:
            # Kernel messages bypass the mailbox bound: the conversation's inbox is the
            # queue users fill, and refusing a baton would strand the conversation.
            table.cell_for(conversation.id).enqueue(
                Envelope(message=message, conversation_id=conversation.id, epoch=epoch),
                bounded=False,
            )
        except ActorStoppedError as exc:
            # The dead letter is logged at warning already; the turn fails with this error.
            self.system.log.info(
                "turn_undeliverable", conversation_id=conversation.id, agent=agent, exc_info=exc
            )
            if type(message) is BatonPass and conversation.in_flight is message:
                # The baton cannot reach its target (its activation is stopping): it goes
                # back to the sender under a new epoch, so the conversation keeps exactly one
                # owner and the next user message can be dispatched.
                transitions.baton_returned(conversation, message.sender, conversation.epoch + 1)
                if self.journal is not None:
                    self.journal.record(
                        conversation,
                        BatonReturned(
                            sender=message.target,
                            target=message.sender,
                            epoch=conversation.epoch,
                        ),
                    )
                if self.observed:
                    self._emit(
                        conversation,
                        HandoffEvent(
                            action="return",
                            sender=message.target,
                            target=message.sender,
                            epoch=conversation.epoch,
                            at=self.system.clock.now(),
                        ),
                    )
            self._fail(conversation, "", str(exc))

    def _resume_turn(self, conversation: Conversation) -> None:
        """Hand the active turn back to whoever holds it (after a decision or a restart)."""
        status = conversation.status
        if status is ConversationStatus.AWAITING_APPROVAL or status is ConversationStatus.PAUSED:
            conversation.parked = True  # after a restart, nothing runs until someone acts
            return
        if is_person(conversation.owner):  # held by a person: their reply ends the turn
            conversation.parked = conversation.unfinished
            return
        conversation.parked = False
        baton = conversation.in_flight
        if baton is not None:
            self._deliver(conversation, baton.target, baton, baton.epoch)
        elif conversation.active is not None and conversation.owner is not None:
            message = UserTurn(
                conversation_id=conversation.id, message_id=conversation.active.message_id
            )
            self._deliver(conversation, conversation.owner, message, conversation.epoch)
        else:
            self._dispatch_next(conversation)

    # --- the owner's writes (invariant 2) ---------------------------------------------------

    def append(
        self,
        conversation_id: str,
        agent: str,
        epoch: int,
        item: msgspec.Struct,
        charge: Charged | None = None,
    ) -> None:
        """Append to the transcript, as the owner at the current epoch.

        ``charge`` is the usage of the model call that produced ``item``, if it is one.
        """
        conversation = self.check(conversation_id, agent, epoch)
        transitions.appended(conversation, item, charge)
        if self.journal is not None:
            self.journal.record(conversation, Appended(agent=agent, item=item, charge=charge))

    def reply(self, conversation_id: str, agent: str, epoch: int, text: str) -> None:
        """Answer the user and end the active turn, as the owner at the current epoch."""
        conversation = self.check(conversation_id, agent, epoch)
        self._active(conversation)
        if self.observed:
            self._emit(
                conversation,
                ReplyEvent(agent=agent, text=text, epoch=epoch, at=self.system.clock.now()),
            )
        turn = transitions.replied(conversation, agent, text)
        event = Replied(agent=agent, text=text) if self.journal is not None else None
        self._ended(conversation, turn, agent, epoch, event)

    def _fail(self, conversation: Conversation, agent: str, error: str) -> None:
        """End the active turn with ``error`` (``agent`` empty: nobody held it)."""
        epoch = conversation.epoch
        turn = transitions.turn_failed(conversation, agent, error)
        event = TurnFailed(agent=agent, error=error) if self.journal is not None else None
        self._ended(conversation, turn, agent, epoch, event)

    def _ended(
        self,
        conversation: Conversation,
        turn: Turn | None,
        agent: str,
        epoch: int,
        event: msgspec.Struct | None,
    ) -> None:
        """After a turn ended (``turn``, or None if none was active): journal, answer, go on."""
        if turn is None:
            return
        self.turns_finished += 1
        if self.journal is not None and event is not None:
            self.journal.record(conversation, event)
        if conversation.epoch != epoch and self.observed:  # a lease ended: baton returned
            self._emit(
                conversation,
                HandoffEvent(
                    action="return",
                    sender=agent,
                    target=conversation.owner or "",
                    epoch=conversation.epoch,
                    at=self.system.clock.now(),
                ),
            )
        waiters, turn.waiters = turn.waiters, []
        if self.journal is None:
            _answer(waiters, turn.result)
        else:
            # In sync mode the user hears back only once the reply is on disk.
            self.journal.after_commit(
                partial(_answer, waiters, turn.result),
                conversation_id=conversation.id,
                refused=partial(fail_waiters, waiters),
            )
        self._dispatch_next(conversation)


def _answer(waiters: list[asyncio.Future[TurnResult]], result: TurnResult | None) -> None:
    for waiter in waiters:
        if not waiter.done():
            waiter.set_result(result)  # type: ignore[arg-type]
