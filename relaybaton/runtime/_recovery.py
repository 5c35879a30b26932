"""Durable execution: marking effects, reloading conversations from the journal, resuming.

A conversation rebuilt from its journal (``_fold.py``) is adopted here and its unfinished
work continues: a baton in flight is delivered again, an active turn goes back to its
owner, and a turn paused for a person stays parked until the decision.
"""

from __future__ import annotations

from relaybaton.runtime import _transitions as transitions
from relaybaton.runtime._approvals import Approvals
from relaybaton.runtime._conversation import Conversation, fail_waiters
from relaybaton.runtime._journal_events import ToolStarted

__all__ = ["Recovery"]


class Recovery(Approvals):
    """Records effects, and loads and continues conversations a previous run left."""

    def tool_started(
        self, conversation_id: str, agent: str, epoch: int, call_id: str, tool: str
    ) -> None:
        """Record that a tool with side effects is about to run (owner only)."""
        conversation = self.check(conversation_id, agent, epoch)
        transitions.tool_started(conversation, call_id)
        if self.journal is not None:
            self.journal.record(conversation, ToolStarted(agent=agent, call_id=call_id, tool=tool))

    def restore(self, conversation: Conversation) -> None:
        """Adopt a conversation rebuilt from its journal and continue its unfinished work."""
        if self.tracing and conversation.events is None:
            conversation.events = []
        self.by_id[conversation.id] = conversation
        for request in conversation.approvals.values():
            self.approval_index[request.approval_id] = conversation.id
        for request in conversation.pending_approvals:
            self._schedule_expiry(request)
        for listener in self.restore_listeners:
            try:
                listener(conversation)
            except Exception as exc:  # a broken listener must not stop the recovery
                self.system.log.exception("restore_listener_failed", error=repr(exc))
        self._resume_turn(conversation)

    async def load(self, conversation_id: str) -> Conversation | None:
        """The conversation, loaded from the journal if it is not in memory (None if new)."""
        if self.admit is not None:  # even in memory: a partition being handed over
            self.admit(conversation_id)
        conversation = self.by_id.get(conversation_id)
        if conversation is None and self.journal is not None:
            conversation = await self.journal.load(conversation_id, entry=self.entry)
            if conversation is not None and conversation_id not in self.by_id:
                if self.admit is not None:  # the partition may have moved while reading
                    self.admit(conversation_id)
                self.restore(conversation)
            conversation = self.by_id.get(conversation_id)
        return conversation

    async def recover(self, conversation_ids: list[str]) -> int:
        """Load and continue these conversations (a cluster node that gained their
        partition: what the store holds is the truth). The caller has dropped what was in
        memory of them and forgotten the refusals met for them (``Journal.forget_fenced``),
        once for the partitions it gained."""
        if self.journal is None:
            return 0
        for conversation_id in conversation_ids:
            await self.load(conversation_id)
        return len(conversation_ids)

    def evict(self, conversation_id: str, error: Exception) -> bool:
        """Stop acting for a conversation at once and forget it, writing nothing more.

        For a cluster node that lost the conversation's partition: its activations are
        terminated, every caller waiting on one of its turns gets ``error``, and a later
        ``load`` reads it from the store again. False if it was not in memory.
        """
        conversation = self.by_id.pop(conversation_id, None)
        for table in self.agents.values():
            cell = table.live.get(conversation_id)
            if cell is not None:
                cell.terminate("partition_lost")
        if conversation is None:
            return False
        for approval_id in list(conversation.approvals):
            self.approval_index.pop(approval_id, None)
        turns = [*([conversation.active] if conversation.active else []), *conversation.inbox]
        for turn in turns:
            waiters, turn.waiters = turn.waiters, []
            fail_waiters(waiters, error)
        return True

    async def resume_all(self) -> int:
        """Load and continue every conversation a previous run left unfinished."""
        if self.journal is None:
            return 0
        heads = await self.journal.store.heads(unfinished_only=True)
        for head in heads:
            await self.load(head.conversation_id)
        return len(heads)
