"""The service's approval desk (the ``ApprovalDesk`` port) over a durable runtime: list the
requests, decide one.

Each listed request names its conversation, agent and rule. A decision is bound to the
hash of the arguments the person read (``arguments_hash``; when left out, the request's
own): if the request changed, or someone else decided first, the answer is a conflict that
says what happened, so two people deciding at once never both win. With sync durability the
answer waits for the decision's journal commit.

Given the store (a cluster node's: the nodes share it), the listing is the store's, so
that every node lists every node's approvals; otherwise it is this runtime's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Protocol, final

import msgspec

from relaybaton.actors import Runtime
from relaybaton.errors import ApprovalError, ConflictError
from relaybaton.runtime import ApprovalRequested, Store

__all__ = ["ApprovalDesk", "RuntimeApprovals"]


class ApprovalDesk(Protocol):
    """Where approvals live (the durable store's); the service lists and decides them."""

    def pending(self) -> Sequence[Mapping[str, object]]:
        """The approvals waiting for a decision here, as JSON-ready data."""
        ...

    async def listing(self) -> Sequence[Mapping[str, object]]:
        """The approvals ``GET /v1/approvals`` lists (every node's, in a cluster)."""
        ...

    async def decide(
        self,
        approval_id: str,
        decision: str,
        *,
        arguments: Mapping[str, object] | None,
        reason: str,
        arguments_hash: str | None = None,
        by: str = "api",
    ) -> Mapping[str, object]:
        """Decide, bound to ``arguments_hash`` (the request's when None); ``LookupError`` if
        unknown, ``ConflictError`` if decided already or changed since the person read it."""
        ...


@final
class RuntimeApprovals:
    """List and decide the approvals of one runtime; a decision resumes its conversation."""

    def __init__(self, runtime: Runtime, *, shared: Store | None = None) -> None:
        self.runtime = runtime
        self.shared = shared

    def pending(self) -> Sequence[Mapping[str, object]]:
        """The requests waiting here, oldest first, each with its conversation."""
        index = self.runtime.conversations.approval_index
        return [_view(r, index.get(r.approval_id, "")) for r in self.runtime.approvals()]

    async def listing(self) -> Sequence[Mapping[str, object]]:
        """The requests waiting, oldest first: every node's, with a shared store."""
        if self.shared is None:
            return self.pending()
        rows = [r for r in await self.shared.approvals(pending_only=True) if r.request]
        requests = [
            (msgspec.json.decode(r.request, type=ApprovalRequested), r.conversation_id)
            for r in rows
        ]
        return [_view(r, c) for r, c in sorted(requests, key=lambda rc: rc[0].requested_at)]

    async def decide(
        self,
        approval_id: str,
        decision: str,
        *,
        arguments: Mapping[str, object] | None,
        reason: str,
        arguments_hash: str | None = None,
        by: str = "api",
    ) -> Mapping[str, object]:
        """Decide; ``LookupError`` if unknown, ``ConflictError`` if stale or decided."""
        conversations = self.runtime.conversations
        conversation_id = conversations.approval_index.get(approval_id)
        if conversation_id is None and self.shared is not None:
            # Not in memory here: a conversation of another node (refused with
            # PartitionNotOwnedError, a 503 to retry) or one of ours not loaded yet.
            # Only a waiting request is worth loading its conversation for: a decided one
            # not in memory is unknown here, not a journal read to say "decided already".
            found = await self.shared.approval(approval_id)
            if found is not None and not found.decision:
                await conversations.load(found.conversation_id)
                conversation_id = conversations.approval_index.get(approval_id)
        conversation = conversations.get(conversation_id or "")
        if conversation is None or approval_id not in conversation.approvals:
            raise LookupError("it is unknown")
        taken = conversation.decisions.get(approval_id)
        if taken is not None:
            who = f" by {taken.by}" if taken.by else ""
            raise ConflictError(
                f"approval {approval_id!r} was decided already{who}: {taken.decision}",
                conversation_id=conversation.id,
                changed=f"{taken.decision}{who}",
            )
        request = conversation.approvals[approval_id]
        try:
            decided = self.runtime.decide(
                approval_id,
                decision,
                arguments_hash=arguments_hash or request.arguments_hash,
                arguments=json.dumps(arguments) if arguments is not None else None,
                note=reason,
                by=by,
            )
        except ApprovalError as exc:
            raise ConflictError(
                str(exc), conversation_id=conversation.id, changed=str(exc)
            ) from exc
        journal = conversations.journal
        if journal is not None:
            # Answered only once the decision is on disk (sync durability, as cluster mode
            # writes): a process killed right after must not lose a decision it confirmed.
            await journal.flushed(conversation.id)
        return {
            "approval_id": approval_id,
            "decision": decided.decision,
            "status": "decided",
        }


def _view(request: ApprovalRequested, conversation_id: str) -> dict[str, object]:
    return {
        "approval_id": request.approval_id,
        "conversation_id": conversation_id,
        "agent": request.agent,
        "tool": request.tool,
        "arguments": json.loads(request.arguments or "{}"),
        "arguments_hash": request.arguments_hash,
        "rule": request.rule,
        "requested_at": request.requested_at,
        "expires_at": request.expires_at,
    }
