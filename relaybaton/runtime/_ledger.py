"""The usage ledger and the model-turn bound of one user message.

Bounded (invariant 7 of ``docs/architecture.md``): ``max_turns`` model turns per user
message; the ledger charges every model call, the callees' too, to the conversation.
"""

from __future__ import annotations

from relaybaton.errors import MaxTurnsExceededError
from relaybaton.runtime import _transitions as transitions
from relaybaton.runtime._journal_events import Charged
from relaybaton.runtime._turns import Turns

__all__ = ["Ledger"]


class Ledger(Turns):
    """Charges model calls to conversations and counts model turns."""

    def charge(
        self,
        conversation_id: str,
        agent: str,
        model: str,
        *,
        input_tokens: int,
        output_tokens: int,
        cost_usd: float,
    ) -> None:
        """Add one model call's usage to the conversation's ledger (a callee's, say)."""
        self.add_charge(
            conversation_id,
            Charged(
                agent=agent,
                model=model,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                cost_usd=cost_usd,
            ),
        )

    def add_charge(self, conversation_id: str, charge: Charged) -> None:
        """Add one model call's usage (as a ``Charged`` value) to the ledger."""
        conversation = self.by_id.get(conversation_id)
        if conversation is None:
            return
        transitions.add_charge(conversation, charge)
        if self.journal is not None:
            self.journal.record(conversation, charge)

    def count_model_turn(self, conversation_id: str, agent: str, epoch: int) -> None:
        """Count one model turn of the active user message; raise past ``max_turns``."""
        turn = self._active(self.check(conversation_id, agent, epoch))
        turn.model_turns += 1
        if turn.model_turns > self.max_turns:
            raise MaxTurnsExceededError(
                f"conversation {conversation_id!r}: more than {self.max_turns} model turns "
                "for one user message; raise max_turns in the flow if this is expected",
                limit=self.max_turns,
            )
