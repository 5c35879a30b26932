"""Rebuilding a conversation from its journal: the fold, and snapshots.

``apply`` does to a ``Conversation`` exactly what the live registry did when it wrote the
event, by calling the same transition (``_transitions.py``), so that a conversation
restored after a crash is the one that was running (a property test compares the two on
random runs). Snapshots carry the whole state, so the
fold starts from the newest one and older records can be pruned.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from relaybaton.runtime import _operator_transitions as operated
from relaybaton.runtime import _transitions as transitions
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
from relaybaton.runtime._journal_events import (
    Accepted,
    Appended,
    ApprovalDecided,
    ApprovalRequested,
    BatonAccepted,
    BatonReturned,
    Charged,
    ClosedEvent,
    ConversationState,
    Feedback,
    GuardrailTripped,
    HandedOff,
    JournalRecord,
    LedgerRow,
    ModelSwapped,
    Opened,
    Replied,
    Snapshot,
    ToolStarted,
    TurnFailed,
    TurnStarted,
    TurnState,
)
from relaybaton.runtime._operator_events import (
    BatonGiven,
    BatonTaken,
    BreakpointsSet,
    CheckpointPassed,
    Forked,
    Halted,
    HoldCleared,
    HoldSet,
    NoteAdded,
    NotesDelivered,
    control_of,
    control_state,
)
from relaybaton.runtime.messages import BatonPass

__all__ = ["apply", "replay", "restore", "snapshot_state"]


def replay(
    conversation_id: str, records: Iterable[JournalRecord[Any]], *, entry: str
) -> Conversation:
    """Fold records (oldest first; a snapshot may lead) into a conversation."""
    conversation = Conversation(id=conversation_id, owner=entry)
    conversation.ownership.append(OwnershipRecord(owner=entry, epoch=0))
    for record in records:
        if isinstance(record.event, Snapshot):
            conversation = restore(conversation_id, record.event.state)
            conversation.seq = record.seq
            continue
        apply(conversation, record)
    return conversation


def apply(conversation: Conversation, record: JournalRecord[Any]) -> None:
    """Apply one record to the conversation with the transition the live registry used."""
    conversation.seq = record.seq
    event = record.event
    match event:
        case Accepted():
            if event.opened_by is not None:
                transitions.opened(conversation, event.opened_by)
            transitions.accepted(
                conversation,
                event.message_id,
                event.item,
                event.started,
                event.user,
                reply_to=event.reply_to,
            )
        case TurnStarted():
            transitions.turn_started(conversation)
        case Appended():
            transitions.appended(conversation, event.item, event.charge)
        case ToolStarted():
            transitions.tool_started(conversation, event.call_id)
        case HandedOff():
            transitions.handed_off(
                conversation,
                event.sender,
                event.target,
                event.epoch,
                event.message_id,
                return_to=event.return_to,
                lease_turns=event.lease_turns,
                note=event.note,
            )
        case BatonAccepted():
            transitions.baton_accepted(conversation, event.agent, event.epoch)
        case BatonReturned():
            transitions.baton_returned(conversation, event.target, event.epoch)
        case Replied():
            transitions.replied(conversation, event.agent, event.text)
        case TurnFailed():
            transitions.turn_failed(conversation, event.agent, event.error)
        case Charged():
            transitions.add_charge(conversation, event)
        case ApprovalRequested():
            transitions.approval_requested(conversation, event)
        case ApprovalDecided():
            transitions.approval_decided(conversation, event)
        case ClosedEvent():
            transitions.closed(conversation)
        case Opened():  # written by older journals only: now ``Accepted.opened_by``
            transitions.opened(conversation, event.owner)
        case ModelSwapped() | GuardrailTripped() | Feedback():
            pass  # recorded for the history; it changes no conversation state
        case _:
            _apply_operated(conversation, event)


def _apply_operated(conversation: Conversation, event: object) -> None:
    """What people did (``_operator_events.py``), with the live path's transitions."""
    match event:
        case HoldSet():
            operated.hold_set(conversation, event)
        case HoldCleared():
            operated.hold_cleared(conversation, event.by)
        case Halted():
            operated.halted(conversation, event.agent, event.before)
        case CheckpointPassed():
            operated.checkpoint_passed(conversation)
        case BreakpointsSet():
            operated.breakpoints_set(conversation, event)
        case NoteAdded():
            operated.note_added(conversation, event.by, event.item)
        case NotesDelivered():
            operated.notes_delivered(conversation)
        case BatonTaken():
            operated.baton_taken(conversation, event.by, event.epoch)
        case BatonGiven():
            operated.baton_given(conversation, event.by, event.agent, event.epoch)
        case Forked():
            operated.forked(conversation, event)


def snapshot_state(conversation: Conversation) -> ConversationState[msgspec.Struct]:
    """The conversation's whole state, for a snapshot record."""

    def turn_state(turn: Turn) -> TurnState[msgspec.Struct]:
        return TurnState(
            message_id=turn.message_id,
            item=turn.payload,
            replies=[(r.agent, r.text) for r in turn.replies],
            handoffs=turn.handoffs,
            reply_to=turn.reply_to,
        )

    baton = conversation.in_flight
    return ConversationState(
        owner=conversation.owner,
        epoch=conversation.epoch,
        status=conversation.status.value,
        in_flight=None
        if baton is None
        else HandedOff(
            sender=baton.sender,
            target=baton.target,
            epoch=baton.epoch,
            message_id=baton.message_id,
            return_to=baton.return_to,
            lease_turns=baton.lease_turns,
            note=baton.note,
        ),
        transcript=list(conversation.transcript),
        ownership=[(r.owner, r.epoch) for r in conversation.ownership],
        ledger=[
            LedgerRow(
                agent=agent,
                model=model,
                calls=e.calls,
                input_tokens=e.input_tokens,
                output_tokens=e.output_tokens,
                cost_usd=e.cost_usd,
                estimated_calls=e.estimated_calls,
            )
            for (agent, model), e in conversation.ledger.items()
        ],
        inbox=[turn_state(t) for t in conversation.inbox],
        active=turn_state(conversation.active) if conversation.active else None,
        finished={
            mid: ([(r.agent, r.text) for r in t.result.replies], t.result.error)
            for mid, t in conversation.seen.items()
            if t.result is not None
        },
        leases=[(lease.return_to, lease.turns_left) for lease in conversation.leases],
        approvals=list(conversation.approvals.values()),
        decisions=list(conversation.decisions.values()),
        tools_started=sorted(conversation.tools_started),
        user=conversation.user,
        control=control_state(conversation.control),
    )


def restore(conversation_id: str, state: ConversationState[Any]) -> Conversation:
    """A conversation from a snapshot's state."""
    conversation = Conversation(
        id=conversation_id,
        owner=state.owner,
        epoch=state.epoch,
        status=ConversationStatus(state.status),
    )
    if state.in_flight is not None:
        h = state.in_flight
        conversation.in_flight = BatonPass(
            conversation_id=conversation_id,
            sender=h.sender,
            target=h.target,
            epoch=h.epoch,
            message_id=h.message_id,
            return_to=h.return_to,
            lease_turns=h.lease_turns,
            note=h.note,
        )
    conversation.transcript = list(state.transcript)
    conversation.ownership = [OwnershipRecord(owner=o, epoch=e) for o, e in state.ownership]
    for row in state.ledger:
        conversation.ledger[(row.agent, row.model)] = LedgerEntry(
            calls=row.calls,
            input_tokens=row.input_tokens,
            output_tokens=row.output_tokens,
            cost_usd=row.cost_usd,
            estimated_calls=row.estimated_calls,
        )

    def turn_of(ts: TurnState[Any]) -> Turn:
        turn = Turn(
            message_id=ts.message_id, payload=ts.item, handoffs=ts.handoffs, reply_to=ts.reply_to
        )
        turn.replies = [Reply(agent=a, text=t) for a, t in ts.replies]
        conversation.seen[ts.message_id] = turn
        return turn

    for mid, (replies, error) in state.finished.items():
        turn = Turn(message_id=mid, payload=msgspec.Struct())
        turn.result = TurnResult(
            conversation_id=conversation_id,
            message_id=mid,
            replies=tuple(Reply(agent=a, text=t) for a, t in replies),
            owner=state.owner,
            epoch=state.epoch,
            error=error,
        )
        conversation.seen[mid] = turn
    conversation.inbox.extend(turn_of(t) for t in state.inbox)
    conversation.active = turn_of(state.active) if state.active is not None else None
    conversation.leases = tuple(Lease(return_to=r, turns_left=n) for r, n in state.leases)
    conversation.approvals = {a.approval_id: a for a in state.approvals}
    conversation.decisions = {d.approval_id: d for d in state.decisions}
    conversation.tools_started = frozenset(state.tools_started)
    conversation.user = state.user
    conversation.control = control_of(state.control)
    return conversation
