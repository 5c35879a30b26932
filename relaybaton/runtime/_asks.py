"""Agents as tools: one agent asks another for an answer and keeps the baton.

Tools keep the baton (invariant 6 of ``docs/architecture.md``): ``ask_agent`` never changes
the owner, and a callee holds no owner handle, so any reply or handoff it attempts is
refused as not-owner.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from relaybaton.errors import RecursiveCallError
from relaybaton.runtime._registry import Registry
from relaybaton.runtime.messages import ToolRequest

__all__ = ["Asks"]


class Asks(Registry):
    """Sends one agent's question to another, refusing calls that would deadlock."""

    def ask_agent(
        self,
        conversation_id: str,
        caller: str,
        callee: str,
        call_id: str,
        text: str,
        *,
        chain: tuple[str, ...] = (),
        timeout: float | None = None,
    ) -> Coroutine[Any, Any, object]:
        """Ask ``callee`` for one answer (await the result); the caller keeps the baton.

        The checks run at the call; the request is queued when the returned coroutine (the
        ask itself) is awaited, so the caller waits without a frame of ours in between.

        Raises:
            RecursiveCallError: ``callee`` already waits up the call chain.
            AskTimeoutError, CalleeFailedError, ActorStoppedError: as ``ActorRef.ask``.
        """
        full_chain = (*chain, caller)
        if callee in full_chain:
            raise RecursiveCallError(
                f"agent {callee!r} is already waiting in the call chain "
                f"{' -> '.join(full_chain)}; calling it again would deadlock",
                limit=len(full_chain),
            )
        request = ToolRequest(
            conversation_id=conversation_id,
            caller=caller,
            call_id=call_id,
            input=text,
            chain=full_chain,
        )
        cell = self.agents[callee].cell_for(conversation_id)
        return cell.ask(request, timeout=timeout, sender=caller, conversation_id=conversation_id)
