"""The service's approval desk over a durable runtime: list the requests, decide one.

Each listed request names its conversation, agent and rule. A decision is bound to the
hash of the arguments the person read (``arguments_hash``; when left out, the request's
own): if the request changed, or someone else decided first, the answer is a conflict that
says what happened, so two people deciding at once never both win. With sync durability the
answer waits for the decision's journal commit.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import final

from relaybaton.actors import Runtime
from relaybaton.errors import ApprovalError, ConflictError

__all__ = ["RuntimeApprovals"]


@final
class RuntimeApprovals:
    """List and decide the approvals of one runtime; a decision resumes its conversation."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def pending(self) -> Sequence[Mapping[str, object]]:
        """The requests waiting, oldest first, each with its conversation."""
        index = self.runtime.conversations.approval_index
        return [
            {
                "approval_id": r.approval_id,
                "conversation_id": index.get(r.approval_id, ""),
                "agent": r.agent,
                "tool": r.tool,
                "arguments": json.loads(r.arguments or "{}"),
                "arguments_hash": r.arguments_hash,
                "rule": r.rule,
                "requested_at": r.requested_at,
                "expires_at": r.expires_at,
            }
            for r in self.runtime.approvals()
        ]

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
