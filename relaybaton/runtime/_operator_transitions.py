"""The transitions of what people do to a conversation: shared by the live path and replay.

As in ``_transitions.py``: ``Operators`` (``_operator.py``) checks the rule, calls the
function here and journals the event; the fold (``_fold.py``) calls the same function on
the event read back, so a paused, person-held or forked conversation is rebuilt as it was.
"""

from __future__ import annotations

import msgspec

from relaybaton.runtime._conversation import Conversation, ConversationStatus, OwnershipRecord
from relaybaton.runtime._operator_events import (
    BreakpointsSet,
    Control,
    Forked,
    HoldSet,
)

__all__ = [
    "baton_given",
    "baton_taken",
    "breakpoints_set",
    "checkpoint_passed",
    "control_of",
    "forked",
    "halted",
    "hold_cleared",
    "hold_set",
    "note_added",
    "notes_delivered",
]


def control_of(conversation: Conversation) -> Control:
    """The conversation's control state, made on first use."""
    control = conversation.control
    if control is None:
        control = conversation.control = Control()
    return control


def hold_set(conversation: Conversation, event: HoldSet) -> None:
    """The conversation will stop before its next model or tool call."""
    control = control_of(conversation)
    control.hold = event
    control.history.append((event.by, "pause", conversation.epoch))


def hold_cleared(conversation: Conversation, by: str) -> bool:
    """The hold is lifted; a halted owner may pass its point once. True if it had halted."""
    control = control_of(conversation)
    control.hold = None
    control.history.append((by, "resume", conversation.epoch))
    if not control.halted:
        return False
    control.released = control.halted
    control.halted = control.halted_agent = ""
    if conversation.status is ConversationStatus.PAUSED:
        conversation.status = ConversationStatus.ACTIVE
    return True


def halted(conversation: Conversation, agent: str, before: str) -> None:
    """The owner stopped before ``before``; the turn waits for a resume."""
    control = control_of(conversation)
    control.halted = before
    control.halted_agent = agent
    conversation.status = ConversationStatus.PAUSED


def checkpoint_passed(conversation: Conversation) -> None:
    """The owner went past the point a resume released."""
    control_of(conversation).released = ""


def breakpoints_set(conversation: Conversation, event: BreakpointsSet) -> None:
    """The points to halt before, replacing the earlier ones."""
    control = control_of(conversation)
    control.breakpoints = frozenset(event.breakpoints)
    control.history.append((event.by, "breakpoints", conversation.epoch))


def note_added(conversation: Conversation, by: str, item: msgspec.Struct) -> None:
    """A note waits for the next model call."""
    control = control_of(conversation)
    control.notes.append(item)
    control.history.append((by, "note", conversation.epoch))


def notes_delivered(conversation: Conversation) -> None:
    """The pending notes join the transcript, in the order they were written."""
    control = control_of(conversation)
    conversation.transcript.extend(control.notes)
    control.notes.clear()


def baton_taken(conversation: Conversation, by: str, epoch: int) -> None:
    """A person owns the conversation under ``epoch`` (invariants 1 and 4 hold: one owner,
    a grown epoch); any hold or halt ends, since the person now decides what happens."""
    control = control_of(conversation)
    control.hold = None
    control.halted = control.halted_agent = control.released = ""
    if conversation.status is ConversationStatus.PAUSED:
        conversation.status = ConversationStatus.ACTIVE
    conversation.owner = by
    conversation.epoch = epoch
    conversation.ownership.append(OwnershipRecord(owner=by, epoch=epoch))
    control.history.append((by, "take", epoch))


def baton_given(conversation: Conversation, by: str, agent: str, epoch: int) -> None:
    """The person hands the baton to ``agent`` under ``epoch``."""
    conversation.owner = agent
    conversation.epoch = epoch
    conversation.ownership.append(OwnershipRecord(owner=agent, epoch=epoch))
    control_of(conversation).history.append((by, f"give:{agent}", epoch))


def forked(conversation: Conversation, event: Forked[msgspec.Struct]) -> None:
    """A new conversation begins with a copy of another's first transcript items."""
    conversation.owner = event.owner
    conversation.epoch = 0
    conversation.ownership[:] = [OwnershipRecord(owner=event.owner, epoch=0)]
    conversation.transcript[:] = list(event.items)
    control = control_of(conversation)
    control.forked_from = event.source
    control.forked_by = event.by
    control.fork_models = dict(event.models)
    control.fork_instructions = dict(event.instructions)
    control.chose = bool(event.models or event.instructions)
    control.history.append((event.by, f"fork:{event.source}:{event.upto}", 0))
