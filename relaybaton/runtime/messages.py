"""The kernel's wire types: what actors send each other about conversations.

Frozen, keyword-only, tagged ``msgspec.Struct`` values gathered in ``KernelMessage``. They are
passed by reference in-process and encoded with msgspec only at a boundary; decoding is
typed, so nothing read from a journal or a broker can build an arbitrary type.
"""

from __future__ import annotations

import msgspec

from relaybaton.runtime._journal_events import ApprovalDecided, ApprovalRequested

__all__ = [
    "ApprovalDecidedEvent",
    "ApprovalRequestedEvent",
    "BatonPass",
    "HandoffEvent",
    "KernelMessage",
    "OperatorEvent",
    "PausedEvent",
    "ReplyEvent",
    "ToolRequest",
    "TraceEvent",
    "UserTurn",
]


class UserTurn(msgspec.Struct, frozen=True, kw_only=True, gc=False, tag="user_turn"):
    """To the owner: handle the conversation's active user message (the turn ``message_id``)."""

    conversation_id: str
    message_id: str


class BatonPass(msgspec.Struct, frozen=True, kw_only=True, gc=False, tag="baton_pass"):
    """A handoff in flight: while this message travels, it *is* the conversation's owner.

    ``epoch`` is the epoch the receiver will own the conversation under; ``return_to`` is
    the agent the baton goes back to after ``lease_turns`` finished turns, if any.
    """

    conversation_id: str
    sender: str
    target: str
    epoch: int
    message_id: str
    return_to: str | None = None
    lease_turns: int = 1
    note: str = ""


class ToolRequest(msgspec.Struct, frozen=True, kw_only=True, gc=False, tag="tool_request"):
    """An agent used as a tool: one request, answered by exactly one reply or typed error.

    ``chain`` lists the agents waiting up the call chain (caller first), so a request that
    would wait on itself is refused before it is sent.
    """

    conversation_id: str
    caller: str
    call_id: str
    input: str
    chain: tuple[str, ...] = ()


KernelMessage = UserTurn | BatonPass | ToolRequest


class HandoffEvent(
    msgspec.Struct, frozen=True, kw_only=True, gc=False, tag_field="kind", tag="handoff"
):
    """Ownership moved: ``action`` is ``handoff`` (sent), ``accept`` or ``return``."""

    action: str
    sender: str
    target: str
    epoch: int
    at: float


class ReplyEvent(
    msgspec.Struct, frozen=True, kw_only=True, gc=False, tag_field="kind", tag="reply"
):
    """The owner answered the user (``error`` set when the turn failed instead)."""

    agent: str
    text: str
    epoch: int
    at: float
    error: str | None = None


class PausedEvent(
    msgspec.Struct, frozen=True, kw_only=True, gc=False, tag_field="kind", tag="paused"
):
    """The owner parked the turn: it waits for a person's decision and holds no task."""

    agent: str
    epoch: int
    at: float


# The journal spells its records' tag ``type`` and cannot change it (journals on disk are
# read back); every event a listener, ``run --json`` or the service shows spells it
# ``kind``. So the approval records go out as these subclasses: the same fields and class,
# the event stream's tag field.


class ApprovalRequestedEvent(
    ApprovalRequested,
    frozen=True,
    kw_only=True,
    gc=False,
    tag_field="kind",
    tag="approval_requested",
):
    """A step waits for a person (the journal's ``ApprovalRequested``, as an event)."""

    @classmethod
    def of(cls, request: ApprovalRequested) -> ApprovalRequestedEvent:
        """The event for a journal record."""
        return cls(**msgspec.structs.asdict(request))


class ApprovalDecidedEvent(
    ApprovalDecided,
    frozen=True,
    kw_only=True,
    gc=False,
    tag_field="kind",
    tag="approval_decided",
):
    """A person decided (the journal's ``ApprovalDecided``, as an event)."""

    @classmethod
    def of(cls, decided: ApprovalDecided) -> ApprovalDecidedEvent:
        """The event for a journal record."""
        return cls(**msgspec.structs.asdict(decided))


class OperatorEvent(
    msgspec.Struct, frozen=True, kw_only=True, gc=False, tag_field="kind", tag="operator"
):
    """A person acted on the conversation, or the owner halted for one.

    ``action``: ``pause``, ``resume``, ``halt`` (``detail`` says before what),
    ``breakpoints``, ``note``, ``take``, ``give``, ``fork``; ``by`` who acted.
    """

    action: str
    by: str
    epoch: int
    detail: str
    at: float


TraceEvent = (
    HandoffEvent
    | ReplyEvent
    | PausedEvent
    | ApprovalRequestedEvent
    | ApprovalDecidedEvent
    | OperatorEvent
)
