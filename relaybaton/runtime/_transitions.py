"""The conversation's transitions: one function per journal event, shared by live and replay.

The registry (``Conversations``) checks a rule, applies the transition with the function
here, then journals the event; the fold (``_fold.py``) applies the same function to the
event read back. Live and replay cannot drift, since there is one place a change is made.

Each function takes the conversation and the event's fields, not the event itself: with no
journal attached the live path builds no event at all, and building one per step would
cost the hot path an allocation per message (``benchmarks/overhead.py``). Events that are
state themselves (an approval request, a decision, a charge) are passed whole.
"""

from __future__ import annotations

import msgspec

from relaybaton.runtime._conversation import (
    Conversation,
    ConversationStatus,
    Lease,
    LedgerEntry,
    OwnershipRecord,
    Reply,
    Turn,
    TurnResult,
)
from relaybaton.runtime._journal_events import ApprovalDecided, ApprovalRequested, Charged
from relaybaton.runtime.messages import BatonPass

__all__ = [
    "accepted",
    "add_charge",
    "appended",
    "approval_decided",
    "approval_requested",
    "baton_accepted",
    "baton_returned",
    "closed",
    "finish_turn",
    "handed_off",
    "opened",
    "replied",
    "tool_started",
    "turn_failed",
    "turn_started",
]


def opened(conversation: Conversation, owner: str) -> None:
    """The conversation begins owned by ``owner`` at epoch 0."""
    conversation.owner = owner
    conversation.ownership[:] = [OwnershipRecord(owner=owner, epoch=0)]


def accepted(
    conversation: Conversation,
    message_id: str,
    item: msgspec.Struct,
    started: bool,
    user: str | None,
    *,
    reply_to: str | None = None,
) -> Turn:
    """A user message is accepted once: it starts now, or waits in the inbox (invariant 2)."""
    if user is not None:
        conversation.user = user
    turn = Turn(message_id=message_id, payload=item, reply_to=reply_to)
    conversation.seen[message_id] = turn
    if started:
        conversation.active = turn
        conversation.transcript.append(item)
    else:
        conversation.inbox.append(turn)
    return turn


def turn_started(conversation: Conversation) -> Turn:
    """The oldest queued message becomes the active turn; its item joins the transcript."""
    turn = conversation.inbox.popleft()
    conversation.active = turn
    conversation.transcript.append(turn.payload)
    return turn


def appended(conversation: Conversation, item: msgspec.Struct, charge: Charged | None) -> None:
    """The owner appends a transcript item, with the usage of the call that made it."""
    conversation.transcript.append(item)
    if charge is not None:
        add_charge(conversation, charge)


def tool_started(conversation: Conversation, call_id: str) -> None:
    """A tool call with side effects begins (a resumed turn does not run it twice)."""
    conversation.add_tool_started(call_id)


def handed_off(
    conversation: Conversation,
    sender: str,
    target: str,
    epoch: int,
    message_id: str,
    *,
    return_to: str | None,
    lease_turns: int,
    note: str,
) -> BatonPass:
    """The baton leaves ``sender`` for ``target`` under the new ``epoch``; nobody owns it.

    Invariants 1 and 4 of ``docs/architecture.md``: while the baton is in flight the
    conversation has no owner, and the epoch has grown so the sender's writes are stale.
    """
    if conversation.active is not None:
        conversation.active.handoffs += 1
    baton = BatonPass(
        conversation_id=conversation.id,
        sender=sender,
        target=target,
        epoch=epoch,
        message_id=message_id,
        return_to=return_to,
        lease_turns=lease_turns,
        note=note,
    )
    conversation.epoch = epoch
    conversation.owner = None
    conversation.in_flight = baton
    conversation.ownership.append(OwnershipRecord(owner=None, epoch=epoch))
    return baton


def baton_accepted(conversation: Conversation, agent: str, epoch: int) -> None:
    """``agent`` takes the baton in flight; a return address gives it a lease (invariant 9)."""
    baton = conversation.in_flight
    conversation.in_flight = None
    conversation.owner = agent
    conversation.ownership[-1] = OwnershipRecord(owner=agent, epoch=epoch)
    if baton is not None and baton.return_to is not None:
        conversation.leases = (
            *conversation.leases,
            Lease(return_to=baton.return_to, turns_left=baton.lease_turns),
        )


def baton_returned(conversation: Conversation, target: str, epoch: int) -> None:
    """A baton that could not be delivered goes back to ``target`` (its sender)."""
    conversation.in_flight = None
    conversation.epoch = epoch
    conversation.owner = target
    conversation.ownership.append(OwnershipRecord(owner=target, epoch=epoch))


def replied(conversation: Conversation, agent: str, text: str) -> Turn | None:
    """The owner answers and the active turn ends; returns the finished turn."""
    if conversation.active is not None:
        conversation.active.replies.append(Reply(agent=agent, text=text))
    return finish_turn(conversation, agent, None)


def turn_failed(conversation: Conversation, agent: str, error: str) -> Turn | None:
    """The active turn ends with an error; returns the finished turn.

    ``agent`` is empty when no agent held the turn (its baton could not be delivered):
    then no lease counts down, live or replayed.
    """
    return finish_turn(conversation, agent or None, error)


def approval_requested(conversation: Conversation, request: ApprovalRequested) -> None:
    """A step waits for a person: the conversation pauses until the decision."""
    conversation.add_approval(request)
    conversation.status = ConversationStatus.AWAITING_APPROVAL


def approval_decided(conversation: Conversation, decision: ApprovalDecided) -> None:
    """A decision is kept; with none left pending the conversation is active again."""
    conversation.add_decision(decision)
    if not conversation.pending_approvals:
        conversation.status = ConversationStatus.ACTIVE


def closed(conversation: Conversation) -> None:
    """The conversation takes no more messages."""
    conversation.status = ConversationStatus.CLOSED


def add_charge(conversation: Conversation, charge: Charged) -> None:
    """Add one model call's usage to the ledger."""
    entry = conversation.ledger.get((charge.agent, charge.model))
    if entry is None:
        entry = conversation.ledger[(charge.agent, charge.model)] = LedgerEntry()
    entry.calls += 1
    entry.input_tokens += charge.input_tokens
    entry.output_tokens += charge.output_tokens
    entry.cost_usd += charge.cost_usd
    if charge.estimated:
        entry.estimated_calls += 1


def finish_turn(conversation: Conversation, agent: str | None, error: str | None) -> Turn | None:
    """End the active turn: keep its result, count down a lease (maybe return the baton)."""
    turn = conversation.active
    if turn is None:
        return None
    conversation.active = None
    if conversation.leases and agent is not None:
        lease = conversation.leases[-1]
        lease.turns_left -= 1
        if lease.turns_left <= 0:
            conversation.leases = conversation.leases[:-1]
            conversation.epoch += 1
            conversation.owner = lease.return_to
            conversation.ownership.append(
                OwnershipRecord(owner=lease.return_to, epoch=conversation.epoch)
            )
    turn.result = TurnResult(
        conversation_id=conversation.id,
        message_id=turn.message_id,
        replies=tuple(turn.replies),
        owner=conversation.owner,
        epoch=conversation.epoch,
        error=error,
    )
    return turn
