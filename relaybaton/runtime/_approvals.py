"""Approvals: a step waits for a person, who approves, rejects or edits that exact call.

The rule lives here, once, for a live runtime and for an offline store alike: a decision is
bound to the hash of the exact arguments it was asked about, it is single-use (the same
decision repeated returns the first one and changes nothing), and a request past its
deadline is rejected (an ``expire`` decision). ``decide_on`` checks a decision and builds
and applies its ``ApprovalDecided`` record; the registry (``Approvals``), the CLI (over a
store) and the HTTP service (through the runtime) all decide through it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable

from relaybaton.errors import ApprovalError
from relaybaton.runtime import _transitions as transitions
from relaybaton.runtime._conversation import Conversation, ConversationStatus
from relaybaton.runtime._journal_events import ApprovalDecided, ApprovalRequested
from relaybaton.runtime._turns import Turns
from relaybaton.runtime.messages import (
    ApprovalDecidedEvent,
    ApprovalRequestedEvent,
    PausedEvent,
)

__all__ = [
    "Approvals",
    "approval_id_for",
    "arguments_hash",
    "check_decision",
    "decide_on",
    "expire_on",
    "pending_of",
]

DECISIONS = ("approve", "reject", "edit")
# A turn that ends its handler in one of these states waits for a person, with no task.
_PARKING = frozenset({ConversationStatus.AWAITING_APPROVAL, ConversationStatus.PAUSED})


class Approvals(Turns):
    """Pauses conversations for people's decisions, and resumes them once decided."""

    def request_approval(
        self,
        conversation_id: str,
        agent: str,
        epoch: int,
        *,
        call_id: str,
        tool: str,
        arguments: str,
        rule: str,
        timeout: float | None = None,
    ) -> ApprovalRequested:
        """Pause the conversation until a person decides on this exact call.

        The request is bound to a hash of ``arguments``; it expires (a rejection) after
        ``timeout`` seconds on the runtime's clock, if given.
        """
        conversation = self.check(conversation_id, agent, epoch)
        nth = sum(1 for a in conversation.approvals.values() if a.call_id == call_id) + 1
        now = self.wall()
        request = ApprovalRequested(
            approval_id=approval_id_for(conversation_id, call_id, nth),
            agent=agent,
            call_id=call_id,
            tool=tool,
            arguments=arguments,
            arguments_hash=arguments_hash(arguments),
            rule=rule,
            requested_at=now,
            expires_at=None if timeout is None else now + timeout,
        )
        transitions.approval_requested(conversation, request)
        self.approval_index[request.approval_id] = conversation_id
        if self.journal is not None:
            self.journal.record(conversation, request)
        if self.observed:
            self._emit(conversation, ApprovalRequestedEvent.of(request))
        if timeout is not None:
            self._schedule_expiry(request)
        return request

    def pending_approvals(self) -> list[ApprovalRequested]:
        """The approval requests waiting for a decision, oldest first."""
        return pending_of(self.by_id.values())

    def pending_approval(self, approval_id: str) -> ApprovalRequested | None:
        """The request ``approval_id`` if it still waits for a decision, else None."""
        conversation = self.by_id.get(self.approval_index.get(approval_id, ""))
        if conversation is None or approval_id in conversation.decisions:
            return None
        return conversation.approvals.get(approval_id)

    def decide(
        self,
        approval_id: str,
        decision: str,
        *,
        arguments_hash: str,
        arguments: str | None = None,
        note: str = "",
        by: str = "",
    ) -> ApprovalDecided:
        """Take a decision (``approve``, ``reject`` or ``edit``) on a pending request.

        Decisions are single-use and bound to the arguments' hash; repeating the same
        decision returns the first one and changes nothing.

        Raises:
            ApprovalError: unknown or expired request, another decision taken already, a
                hash that does not match the request, or an edit without arguments.
            PartitionNotOwnedError: a cluster node that does not hold the conversation.
        """
        conversation = self.by_id.get(self.approval_index.get(approval_id, ""))
        if conversation is None:
            raise ApprovalError(
                f"no approval request {approval_id!r}; list the pending ones with "
                "`relaybaton approvals list`",
                approval_id=approval_id,
            )
        if self.admit is not None:  # a cluster node decides for its partitions only
            self.admit(conversation.id)
        request = conversation.approvals.get(approval_id)
        expires = request.expires_at if request is not None else None
        if expires is not None and self.wall() > expires:
            self._expire(approval_id)  # the rejection is recorded; the check below refuses
        decided, fresh = decide_on(
            conversation,
            approval_id,
            decision,
            arguments_hash=arguments_hash,
            arguments=arguments,
            note=note,
            by=by,
            now=self.wall(),
        )
        if fresh:
            self._decided(conversation, decided)
        return decided

    def park(self, conversation_id: str, agent: str, epoch: int) -> None:
        """The owner's handler ended with the turn paused for a decision (no task runs)."""
        conversation = self.check(conversation_id, agent, epoch)
        if conversation.status in _PARKING:
            conversation.parked = True
            if self.observed:
                self._emit(
                    conversation,
                    PausedEvent(agent=agent, epoch=epoch, at=self.system.clock.now()),
                )

    def _schedule_expiry(self, request: ApprovalRequested) -> None:
        if request.expires_at is None:
            return
        delay = max(0.0, request.expires_at - self.wall())
        self.system.clock.call_later(delay, self._expire, request.approval_id)

    def _expire(self, approval_id: str) -> None:
        conversation = self.by_id.get(self.approval_index.get(approval_id, ""))
        if conversation is None or approval_id in conversation.decisions:
            return
        self._decided(conversation, expire_on(conversation, approval_id))

    def _decided(self, conversation: Conversation, decided: ApprovalDecided) -> None:
        """After a decision was applied: journal it, show it, and continue the turn."""
        if self.journal is not None:
            self.journal.record(conversation, decided)
        if self.observed:
            self._emit(conversation, ApprovalDecidedEvent.of(decided))
        self._resume_turn(conversation)


def arguments_hash(arguments: str) -> str:
    """The hash a decision is bound to: the canonical JSON of the arguments."""
    try:
        canonical = json.dumps(json.loads(arguments), sort_keys=True, separators=(",", ":"))
    except ValueError:
        canonical = arguments
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def approval_id_for(conversation_id: str, call_id: str, nth: int) -> str:
    """A short, stable id: the same request gets the same id after a restart."""
    digest = hashlib.sha256(f"{conversation_id}\x00{call_id}\x00{nth}".encode()).hexdigest()
    return f"ap-{digest[:12]}"


def pending_of(conversations: Iterable[Conversation]) -> list[ApprovalRequested]:
    """The requests of ``conversations`` still waiting for a decision, oldest first."""
    pending = [request for c in conversations for request in c.pending_approvals]
    return sorted(pending, key=lambda r: r.requested_at)


def decide_on(
    conversation: Conversation,
    approval_id: str,
    decision: str,
    *,
    arguments_hash: str,
    arguments: str | None,
    note: str,
    by: str,
    now: float,
) -> tuple[ApprovalDecided, bool]:
    """Check a decision on one of the conversation's requests and apply it.

    Returns the decision and whether it is new: a new one was applied to ``conversation``
    and is for the caller to journal; a repeat of the decision taken already returns that
    one, and nothing changed.

    Raises:
        ApprovalError: as ``check_decision``.
    """
    taken = check_decision(
        conversation,
        approval_id,
        decision,
        arguments_hash=arguments_hash,
        arguments=arguments,
        now=now,
    )
    if taken is not None:
        return taken, False
    request = conversation.approvals[approval_id]
    decided = ApprovalDecided(
        approval_id=approval_id,
        decision=decision,
        arguments_hash=request.arguments_hash,
        arguments=arguments,
        note=note,
        by=by,
    )
    transitions.approval_decided(conversation, decided)
    return decided, True


def expire_on(conversation: Conversation, approval_id: str) -> ApprovalDecided:
    """Reject a request nobody decided on in time, and apply that; returns the record."""
    request = conversation.approvals[approval_id]
    decided = ApprovalDecided(
        approval_id=approval_id,
        decision="expire",
        arguments_hash=request.arguments_hash,
        arguments=None,
        note="no decision in time",
        by="timeout",
    )
    transitions.approval_decided(conversation, decided)
    return decided


def check_decision(
    conversation: Conversation,
    approval_id: str,
    decision: str,
    *,
    arguments_hash: str,
    arguments: str | None,
    now: float,
) -> ApprovalDecided | None:
    """Check a decision against the request; the earlier decision if it repeats one.

    Returns None when the decision may be recorded.

    Raises:
        ApprovalError: unknown or expired request, another decision taken already, a hash
            that does not match the request, an unknown decision, or an edit without
            arguments.
    """
    request = conversation.approvals.get(approval_id)
    if request is None:
        raise ApprovalError(
            f"no approval request {approval_id!r}; list the pending ones with "
            "`relaybaton approvals list`",
            approval_id=approval_id,
        )
    taken = conversation.decisions.get(approval_id)
    if taken is not None:
        if taken.decision == decision and taken.arguments == arguments:
            return taken
        raise ApprovalError(
            f"approval {approval_id!r} was decided already ({taken.decision}); "
            "a decision is single-use",
            approval_id=approval_id,
        )
    if arguments_hash != request.arguments_hash:
        raise ApprovalError(
            f"approval {approval_id!r} is for arguments with hash {request.arguments_hash}, "
            f"not {arguments_hash}: the request changed; read it again before deciding",
            approval_id=approval_id,
        )
    if request.expires_at is not None and now > request.expires_at:
        raise ApprovalError(
            f"approval {approval_id!r} expired and was rejected", approval_id=approval_id
        )
    if decision not in DECISIONS:
        raise ApprovalError(
            f"decision {decision!r} is not one of approve, reject, edit", approval_id=approval_id
        )
    if decision == "edit":
        try:
            parsed = json.loads(arguments or "")
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            raise ApprovalError(
                "an edit needs the new arguments as a JSON object, e.g. --edit '{\"amount\": 90}'",
                approval_id=approval_id,
            )
    return None
