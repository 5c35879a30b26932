"""A conversation's state: owner, epoch, transcript, turns, leases and usage ledger.

The fields are written only by the transitions of ``_transitions.py``, which
``Conversations`` (``_conversations.py``) calls after checking the baton rules and the
journal's fold calls on replay; everything else reads them.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any, final

import msgspec

from relaybaton.runtime._journal_events import ApprovalDecided, ApprovalRequested
from relaybaton.runtime._operator_events import Control, is_person
from relaybaton.runtime.messages import BatonPass

__all__ = [
    "Conversation",
    "ConversationStatus",
    "LedgerEntry",
    "Lease",
    "OwnershipRecord",
    "Reply",
    "Turn",
    "TurnResult",
]


_NO_APPROVALS: Mapping[str, ApprovalRequested] = MappingProxyType({})
_NO_DECISIONS: Mapping[str, ApprovalDecided] = MappingProxyType({})


class ConversationStatus(StrEnum):
    """Where a conversation stands."""

    ACTIVE = "active"
    AWAITING_APPROVAL = "awaiting_approval"
    PAUSED = "paused"  # a person paused it, or a breakpoint hit: it waits for a resume
    CLOSED = "closed"


class Reply(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One answer to the user."""

    agent: str
    text: str


class TurnResult(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """What one accepted user message came to: the replies, or the error that ended it."""

    conversation_id: str
    message_id: str
    replies: tuple[Reply, ...]
    owner: str | None
    epoch: int
    error: str | None = None

    @property
    def text(self) -> str:
        """All reply texts, one per line."""
        return "\n".join(r.text for r in self.replies)


class OwnershipRecord(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Who owned the conversation from which epoch on (None: a handoff in flight)."""

    owner: str | None
    epoch: int


class LedgerEntry(msgspec.Struct, kw_only=True, gc=False):
    """Usage charged to one (agent, model) pair (mutable; numbers only, so untracked by GC).

    ``estimated_calls`` counts the calls whose tokens were estimated (the server gave none).
    """

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    estimated_calls: int = 0


@final
@dataclass(slots=True)
class Lease:
    """A return address: after ``turns_left`` finished turns the baton goes to ``return_to``."""

    return_to: str
    turns_left: int


@final
@dataclass(slots=True, eq=False)
class Turn:
    """One accepted user message, from acceptance to its one result.

    Each submitter of the message gets its own waiter future, so one caller that cancels
    its wait cancels neither the turn nor another caller's wait.
    """

    message_id: str
    payload: msgspec.Struct
    waiters: list[asyncio.Future[TurnResult]] = field(default_factory=list)
    result: TurnResult | None = None
    replies: list[Reply] = field(default_factory=list)
    handoffs: int = 0
    model_turns: int = 0
    #: Where the transport that brought the message delivers its result (journaled with
    #: it, so a node that continues the turn after a crash delivers it); None: nowhere.
    reply_to: str | None = None

    def waiter(self) -> asyncio.Future[TurnResult]:
        """A new future of this turn's result (done already if the turn ended)."""
        future: asyncio.Future[TurnResult] = asyncio.get_running_loop().create_future()
        if self.result is not None:
            future.set_result(self.result)
        else:
            self.waiters.append(future)
        return future


@final
@dataclass(slots=True, eq=False)
class Conversation:
    """The state of one conversation. Read freely; write only through ``Conversations``."""

    id: str
    owner: str | None
    epoch: int = 0
    status: ConversationStatus = ConversationStatus.ACTIVE
    in_flight: BatonPass | None = None
    transcript: list[msgspec.Struct] = field(default_factory=list)
    events: list[msgspec.Struct] | None = None
    ownership: list[OwnershipRecord] = field(default_factory=list)
    ledger: dict[tuple[str, str], LedgerEntry] = field(default_factory=dict)
    inbox: deque[Turn] = field(default_factory=deque)
    active: Turn | None = None
    seen: dict[str, Turn] = field(default_factory=dict)
    leases: tuple[Lease, ...] = ()  # rare: a tuple, so none is made per conversation
    user: str = ""  # whom the conversation is with: the namespace of their long-term memory
    # Journal position and the durable-only parts (empty unless a journal is attached):
    seq: int = 0
    snapshot_seq: int = 0  # the journal position of its last snapshot
    # Shared empty views until the first write (most conversations never need them, and
    # every container made per conversation is time and memory on the hot path).
    approvals: Mapping[str, ApprovalRequested] = field(default_factory=lambda: _NO_APPROVALS)
    decisions: Mapping[str, ApprovalDecided] = field(default_factory=lambda: _NO_DECISIONS)
    tools_started: AbstractSet[str] = frozenset()
    # True while the active turn waits for a decision with no handler running (not
    # journaled: after a restart a paused conversation is parked until decided).
    parked: bool = False
    # What people set on it (pause, breakpoints, notes, a fork's origin); None until then,
    # so the turn loop's check is one attribute read (``_operator.py``).
    control: Control | None = None

    @property
    def pending_approvals(self) -> list[ApprovalRequested]:
        """Approval requests still waiting for a decision."""
        return [a for a in self.approvals.values() if a.approval_id not in self.decisions]

    def add_approval(self, request: ApprovalRequested) -> None:
        """Keep an approval request."""
        self.approvals = {**self.approvals, request.approval_id: request}

    def add_decision(self, decision: ApprovalDecided) -> None:
        """Keep a decision."""
        self.decisions = {**self.decisions, decision.approval_id: decision}

    def add_tool_started(self, call_id: str) -> None:
        """Remember that a tool call with side effects began."""
        self.tools_started = self.tools_started | {call_id}

    @property
    def waiting_for_a_person(self) -> bool:
        """Whether the active turn is parked until a person acts (no handler runs).

        A decision, a resume, or the reply of the person who holds the baton.
        """
        return (
            self.parked
            and self.active is not None
            and (self.status is not ConversationStatus.ACTIVE or is_person(self.owner))
        )

    @property
    def busy(self) -> bool:
        """Whether work is under way that will end without anyone deciding anything."""
        return self.unfinished and not self.waiting_for_a_person

    @property
    def unfinished(self) -> bool:
        """Whether a turn is active or queued (what a restart must finish)."""
        return self.active is not None or bool(self.inbox) or self.in_flight is not None

    def usage_by_agent(self) -> dict[str, LedgerEntry]:
        """The ledger summed per agent."""
        totals: dict[str, LedgerEntry] = {}
        for (agent, _model), entry in self.ledger.items():
            total = totals.setdefault(agent, LedgerEntry())
            total.calls += entry.calls
            total.input_tokens += entry.input_tokens
            total.output_tokens += entry.output_tokens
            total.cost_usd += entry.cost_usd
            total.estimated_calls += entry.estimated_calls
        return totals

    def usage_total(self) -> LedgerEntry:
        """The whole ledger summed."""
        total = LedgerEntry()
        for entry in self.ledger.values():
            total.calls += entry.calls
            total.input_tokens += entry.input_tokens
            total.output_tokens += entry.output_tokens
            total.cost_usd += entry.cost_usd
            total.estimated_calls += entry.estimated_calls
        return total


def fail_waiters(waiters: Iterable[asyncio.Future[Any]], error: BaseException) -> None:
    """Give each waiter still waiting ``error`` instead of its answer (a refused or evicted
    turn: nobody may hear a reply the journal does not hold)."""
    for waiter in waiters:
        if not waiter.done():
            waiter.set_exception(error)
