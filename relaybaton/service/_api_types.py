"""The native API's request and answer bodies, as msgspec types.

The same types validate the requests (``decode_body``), encode the operator routes'
answers, and generate the OpenAPI document (``_openapi.py``), so the description cannot
drift from what the server accepts.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from relaybaton.runtime._message_limits import ConversationId, MessageId

__all__ = [
    "Accepted",
    "ApprovalItem",
    "ApprovalList",
    "BatonGiveIn",
    "BatonReplyIn",
    "BatonTakeIn",
    "BreakpointsIn",
    "ConversationItem",
    "ConversationList",
    "ConversationView",
    "DecisionIn",
    "DecisionOut",
    "ForkIn",
    "ImageIn",
    "MessageIn",
    "NoteIn",
    "OperatorState",
    "PauseIn",
    "ResumeIn",
]

Epoch = Annotated[int, msgspec.Meta(ge=0, description="the epoch the person saw (fencing)")]
Text = Annotated[str, msgspec.Meta(max_length=100_000)]
AgentName = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Breakpoint = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^(tool|agent):[^\s]{1,200}$",
        description="tool:<name> or agent:<name>",
    ),
]


class ImageIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """An image sent with a message."""

    url: str  # data:image/...;base64,... or http(s)://...


class MessageIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A user message, with images if the flow's models see them."""

    text: str
    message_id: MessageId | None = None
    images: list[ImageIn] = msgspec.field(default_factory=list)


class DecisionIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A decision on an approval; ``arguments_hash`` binds it to what the person read."""

    decision: Literal["approve", "reject", "edit"]
    arguments: dict[str, Any] | None = None
    reason: str = ""
    arguments_hash: str | None = None


class PauseIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Pause before the next model or tool call."""

    reason: Text = ""
    epoch: Epoch | None = None


class ResumeIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Go on from where it halted."""

    epoch: Epoch | None = None


class BreakpointsIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The points to halt before, replacing the earlier ones (empty: none)."""

    breakpoints: Annotated[list[Breakpoint], msgspec.Meta(max_length=100)]
    epoch: Epoch | None = None


class NoteIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A note the next model call sees."""

    text: Annotated[str, msgspec.Meta(min_length=1, max_length=100_000)]
    epoch: Epoch | None = None


class BatonTakeIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Take the baton as the calling person."""

    epoch: Epoch


class BatonReplyIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Answer the user as the person holding the baton."""

    epoch: Epoch
    text: Annotated[str, msgspec.Meta(min_length=1, max_length=100_000)]


class BatonGiveIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Hand the baton to an agent."""

    epoch: Epoch
    agent: AgentName


class ForkIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Start a new conversation from the first ``upto`` transcript items."""

    upto: Annotated[int, msgspec.Meta(ge=0)]
    conversation_id: ConversationId | None = None
    agent: AgentName | None = None
    # Per agent, for the new conversation only: a `provider:model` the flow can build or a
    # candidate of the agent's slot, and instructions in place of the flow's.
    models: Annotated[
        dict[AgentName, Annotated[str, msgspec.Meta(min_length=1, max_length=300)]],
        msgspec.Meta(max_length=100, description="agent -> provider:model or slot candidate"),
    ] = msgspec.field(default_factory=dict)
    instructions: Annotated[
        dict[AgentName, Annotated[str, msgspec.Meta(min_length=1, max_length=100_000)]],
        msgspec.Meta(max_length=100, description="agent -> instructions for the fork"),
    ] = msgspec.field(default_factory=dict)


class OperatorState(msgspec.Struct, kw_only=True):
    """Where a conversation stands for a person: owner, epoch, what people set on it."""

    conversation_id: str
    owner: str | None
    epoch: int
    status: str
    waiting_for_a_person: bool
    paused_by: str | None
    halted_before: str | None
    breakpoints: list[str]
    notes_pending: int
    forked_from: str | None
    pending_approvals: list[str]
    # What a fork chose for its agents instead of the flow's: agent -> model id, and the
    # agents whose instructions it replaced.
    fork_models: dict[str, str] = msgspec.field(default_factory=dict)
    fork_instructions_for: list[str] = msgspec.field(default_factory=list)


class ConversationItem(msgspec.Struct, kw_only=True):
    """One conversation in a listing; ``cost_usd`` is null when it is not in memory."""

    conversation_id: str
    flow: str
    owner: str | None
    epoch: int
    status: str
    unfinished: bool
    updated_at: float
    waiting_for_a_person: bool
    cost_usd: float | None


class ConversationList(msgspec.Struct, kw_only=True):
    """A page of conversations, newest activity first; pass ``next_cursor`` for the next."""

    object: Literal["list"]
    data: list[ConversationItem]
    next_cursor: str | None


class ConversationView(msgspec.Struct, kw_only=True):
    """A conversation: owner, epoch, status, transcript, usage."""

    conversation_id: str
    owner: str | None
    epoch: int
    status: str
    handoff_in_flight: bool
    pending_messages: int
    transcript: list[dict[str, Any]]
    ownership: list[dict[str, Any]]
    usage: dict[str, Any]


class ApprovalItem(msgspec.Struct, kw_only=True):
    """A request waiting for a decision, with its conversation, agent and rule."""

    approval_id: str
    conversation_id: str
    agent: str
    tool: str
    arguments: Any
    arguments_hash: str
    rule: str
    requested_at: float
    expires_at: float | None


class ApprovalList(msgspec.Struct, kw_only=True):
    """The approvals waiting for a decision."""

    object: Literal["list"]
    data: list[ApprovalItem]


class DecisionOut(msgspec.Struct, kw_only=True):
    """A decision taken."""

    approval_id: str
    decision: str
    status: str


class Accepted(msgspec.Struct, kw_only=True):
    """A message accepted; its turn goes on (202)."""

    conversation_id: str
    message_id: str
    status: str
    conversation: str
    events: str
