"""The journal's events: every change of a conversation's state, as typed records.

A conversation's state is the fold of its journal (``_fold.py``). Records are encoded with
msgspec only when a store is attached; decoding is typed and generic over the transcript's
item type (``T``, the chat message union of the agent layer), so nothing read back from a
store can build an arbitrary type.
"""

from __future__ import annotations

from typing import Generic, TypeVar

import msgspec

from relaybaton.runtime._operator_events import (
    BatonGiven,
    BatonTaken,
    BreakpointsSet,
    CheckpointPassed,
    ControlState,
    Forked,
    Halted,
    HoldCleared,
    HoldSet,
    NoteAdded,
    NotesDelivered,
)

__all__ = [
    "Accepted",
    "Appended",
    "ApprovalDecided",
    "ApprovalRequested",
    "BatonAccepted",
    "BatonReturned",
    "Charged",
    "ClosedEvent",
    "ConversationState",
    "Feedback",
    "GuardrailTripped",
    "HandedOff",
    "JournalEvent",
    "JournalRecord",
    "LedgerRow",
    "ModelSwapped",
    "Opened",
    "Replied",
    "Snapshot",
    "ToolStarted",
    "TurnFailed",
    "TurnStarted",
    "TurnState",
]

T = TypeVar("T")


class Opened(msgspec.Struct, tag="opened", frozen=True, kw_only=True, gc=False):
    """The conversation began, owned by ``owner`` (the flow's entry agent) at epoch 0."""

    owner: str


class Accepted(msgspec.Struct, Generic[T], tag="accepted", frozen=True, kw_only=True, gc=False):
    """A user message was accepted (once per id) and queued.

    ``started``: it became the active turn at once (no ``TurnStarted`` follows);
    ``opened_by``: it opened the conversation, owned by that agent at epoch 0;
    ``user``: the conversation is with this user from now on;
    ``reply_to``: where the turn's result is to be delivered by the transport it came
    from (a NATS subject for a producer's message), kept with the message so that whoever
    finishes the turn after a crash can deliver it; None for a caller that waits itself.
    """

    message_id: str
    item: T
    started: bool = False
    opened_by: str | None = None
    user: str | None = None
    reply_to: str | None = None


class TurnStarted(msgspec.Struct, tag="turn_started", frozen=True, kw_only=True, gc=False):
    """The oldest queued message became the active turn; its item joined the transcript."""

    message_id: str


class Charged(msgspec.Struct, tag="charged", frozen=True, kw_only=True, gc=False):
    """Usage of one model call, charged to the conversation's ledger.

    ``estimated``: the server reported no token counts; they were estimated from the text.
    """

    agent: str
    model: str
    input_tokens: int
    output_tokens: int
    cost_usd: float
    estimated: bool = False


class Appended(msgspec.Struct, Generic[T], tag="appended", frozen=True, kw_only=True, gc=False):
    """The owner appended a transcript item (a model result or a tool result).

    A model result carries its usage (``charge``): one record instead of two.
    """

    agent: str
    item: T
    charge: Charged | None = None


class ToolStarted(msgspec.Struct, tag="tool_started", frozen=True, kw_only=True, gc=False):
    """A tool call with side effects began; its idempotency key is ``conversation:call``."""

    agent: str
    call_id: str
    tool: str


class HandedOff(msgspec.Struct, tag="handed_off", frozen=True, kw_only=True, gc=False):
    """The baton left ``sender`` for ``target``; ``epoch`` is the new epoch."""

    sender: str
    target: str
    epoch: int
    message_id: str
    return_to: str | None = None
    lease_turns: int = 1
    note: str = ""


class BatonAccepted(msgspec.Struct, tag="baton_accepted", frozen=True, kw_only=True, gc=False):
    """The target took the baton out of its message."""

    agent: str
    epoch: int


class BatonReturned(msgspec.Struct, tag="baton_returned", frozen=True, kw_only=True, gc=False):
    """A baton that could not be delivered went back to its sender under a new epoch."""

    sender: str
    target: str
    epoch: int


class Replied(msgspec.Struct, tag="replied", frozen=True, kw_only=True, gc=False):
    """The owner answered and the active turn ended (a lease may return the baton)."""

    agent: str
    text: str


class TurnFailed(msgspec.Struct, tag="turn_failed", frozen=True, kw_only=True, gc=False):
    """The active turn ended with an error reply."""

    agent: str
    error: str


class ApprovalRequested(
    msgspec.Struct, tag="approval_requested", frozen=True, kw_only=True, gc=False
):
    """A step waits for a person: the conversation pauses until the decision."""

    approval_id: str
    agent: str
    call_id: str
    tool: str
    arguments: str
    arguments_hash: str
    rule: str
    requested_at: float
    expires_at: float | None = None


class ApprovalDecided(msgspec.Struct, tag="approval_decided", frozen=True, kw_only=True, gc=False):
    """A decision: ``approve``, ``reject``, ``edit`` (new ``arguments``) or ``expire``."""

    approval_id: str
    decision: str
    arguments_hash: str
    arguments: str | None = None
    note: str = ""
    by: str = ""


class ModelSwapped(msgspec.Struct, tag="model_swapped", frozen=True, kw_only=True, gc=False):
    """A slot's adapter changed while the conversation ran."""

    slot: str
    previous: str
    current: str
    reason: str


class Feedback(msgspec.Struct, tag="feedback", frozen=True, kw_only=True, gc=False):
    """A user rated the conversation (1-5), or one answer of it (``message_id``)."""

    rating: int
    comment: str = ""
    message_id: str = ""
    agent: str = ""


class GuardrailTripped(
    msgspec.Struct, tag="guardrail_tripped", frozen=True, kw_only=True, gc=False
):
    """A guardrail stopped or rewrote a step (``verdict``: ``blocked`` or ``redacted``).

    Recorded for the history, like ``ModelSwapped``: what the step became is journaled by
    the step itself (the refusal reply, the error result), so it changes no state.
    """

    guardrail: str
    stage: str
    agent: str
    verdict: str
    reason: str = ""
    tool: str = ""


class ClosedEvent(msgspec.Struct, tag="closed", frozen=True, kw_only=True, gc=False):
    """The conversation takes no more messages."""


class TurnState(msgspec.Struct, Generic[T], frozen=True, kw_only=True, gc=False):
    """A queued or active turn inside a snapshot."""

    message_id: str
    item: T
    replies: list[tuple[str, str]] = msgspec.field(default_factory=list)
    handoffs: int = 0
    reply_to: str | None = None  # as ``Accepted.reply_to``


class LedgerRow(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One (agent, model) line of the usage ledger inside a snapshot."""

    agent: str
    model: str
    calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    estimated_calls: int = 0


class ConversationState(msgspec.Struct, Generic[T], frozen=True, kw_only=True, gc=False):
    """Everything a conversation is, at one sequence number: the body of a snapshot."""

    owner: str | None
    epoch: int
    status: str
    in_flight: HandedOff | None
    transcript: list[T]
    ownership: list[tuple[str | None, int]]
    ledger: list[LedgerRow]
    inbox: list[TurnState[T]]
    active: TurnState[T] | None
    finished: dict[str, tuple[list[tuple[str, str]], str | None]]
    leases: list[tuple[str, int]]
    approvals: list[ApprovalRequested]
    decisions: list[ApprovalDecided]
    tools_started: list[str]
    user: str = ""
    control: ControlState[T] | None = None  # what people set (``_operator_events.py``)


class Snapshot(msgspec.Struct, Generic[T], tag="snapshot", frozen=True, kw_only=True, gc=False):
    """The whole state at this record's sequence number; earlier records may be pruned."""

    state: ConversationState[T]


JournalEvent = (
    Opened
    | Accepted[T]
    | TurnStarted
    | Appended[T]
    | ToolStarted
    | HandedOff
    | BatonAccepted
    | BatonReturned
    | Replied
    | TurnFailed
    | Charged
    | ApprovalRequested
    | ApprovalDecided
    | ModelSwapped
    | Feedback
    | GuardrailTripped
    | ClosedEvent
    | Snapshot[T]
    # What people do (``_operator_events.py``):
    | HoldSet
    | HoldCleared
    | Halted
    | CheckpointPassed
    | BreakpointsSet
    | NoteAdded[T]
    | NotesDelivered
    | BatonTaken
    | BatonGiven
    | Forked[T]
)


class JournalRecord(msgspec.Struct, Generic[T], frozen=True, kw_only=True, gc=False):
    """One event of one conversation: ``seq`` orders them, ``epoch`` fences the writer."""

    conversation_id: str
    seq: int
    epoch: int
    at: float
    event: JournalEvent[T]
