"""What a person does to a conversation, in the agent layer's terms.

The kernel (``relaybaton.runtime``'s ``Conversations``) enforces the rules of pausing,
notes, the person's baton and forks on transcript items it does not look into; here those
items are made: a note is a user-role message marked as the operator's, a person's reply
is an assistant message in their name, and taking the baton from an agent that stopped
before its tool calls records those calls as not run, so no provider is ever sent a tool
call without its result.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from typing import final

import msgspec

from relaybaton.actors._fork_choice import check_fork_choice
from relaybaton.actors._runtime import Runtime
from relaybaton.adapters import AssistantMessage, ToolResultMessage, UserMessage
from relaybaton.errors import ConflictError
from relaybaton.runtime import Conversation

__all__ = ["Operations", "note_text", "open_tool_calls"]


def note_text(by: str, text: str) -> str:
    """How a note reads to the model: marked as a person's, not the user's."""
    return f"[Note from operator {by}; not from the user] {text}"


def open_tool_calls(conversation: Conversation) -> list[ToolResultMessage]:
    """Results for the tool calls of the last answer that have none: marked as not run."""
    transcript = conversation.transcript
    answered: set[str] = set()
    for item in reversed(transcript):
        if isinstance(item, ToolResultMessage):
            answered.add(item.call_id)
            continue
        if isinstance(item, AssistantMessage):
            return [
                ToolResultMessage(
                    call_id=call.id,
                    name=call.name,
                    content="not run: a person took over the conversation",
                    is_error=True,
                )
                for call in item.tool_calls
                if call.id not in answered
            ]
        break
    return []


@final
class Operations:
    """A person's actions on the conversations of one ``Runtime``."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.conversations = runtime.conversations

    async def _loaded(self, conversation_id: str) -> Conversation:
        await self.conversations.load(conversation_id)  # a journaled one comes back first
        return self.conversations.require(conversation_id)

    async def pause(
        self, conversation_id: str, by: str, *, reason: str = "", epoch: int | None = None
    ) -> None:
        """Stop before the next model or tool call. See ``Conversations.pause``."""
        await self._loaded(conversation_id)
        self.conversations.pause(conversation_id, by, reason=reason, epoch=epoch)

    async def resume(self, conversation_id: str, by: str, *, epoch: int | None = None) -> None:
        """Go on from where it stopped. See ``Conversations.resume``."""
        await self._loaded(conversation_id)
        self.conversations.resume(conversation_id, by, epoch=epoch)

    async def set_breakpoints(
        self, conversation_id: str, by: str, breakpoints: Sequence[str], *, epoch: int | None = None
    ) -> list[str]:
        """Halt before these tools or agents from now on."""
        await self._loaded(conversation_id)
        return self.conversations.set_breakpoints(conversation_id, by, breakpoints, epoch=epoch)

    async def add_note(
        self, conversation_id: str, by: str, text: str, *, epoch: int | None = None
    ) -> None:
        """Leave a note the next model call sees (as a marked user-role message)."""
        await self._loaded(conversation_id)
        item = UserMessage(text=note_text(by, text), message_id=f"note-{secrets.token_hex(6)}")
        self.conversations.add_note(conversation_id, by, item, epoch=epoch)

    async def take_baton(self, conversation_id: str, by: str, *, epoch: int) -> int:
        """Become the owner (``by`` is a person's owner name); returns the new epoch."""
        await self._loaded(conversation_id)
        return self.conversations.take_baton(
            conversation_id, by, epoch=epoch, closing=open_tool_calls
        )

    async def reply(self, conversation_id: str, by: str, text: str, *, epoch: int) -> None:
        """Answer the user as the person holding the baton; ends the turn in progress."""
        conversation = await self._loaded(conversation_id)
        if conversation.owner != by or conversation.epoch != epoch:
            raise ConflictError(
                f"{by} cannot reply in conversation {conversation_id!r} at epoch {epoch}: "
                f"it is at epoch {conversation.epoch}, held by "
                f"{conversation.owner or 'a handoff in flight'}",
                conversation_id=conversation_id,
                changed=f"held by {conversation.owner} at epoch {conversation.epoch}",
            )
        if conversation.active is None:
            raise ConflictError(
                f"conversation {conversation_id!r} has no user message waiting for a reply",
                conversation_id=conversation_id,
                changed="the user's message was answered already",
            )
        self.conversations.append(conversation_id, by, epoch, AssistantMessage(text=text, agent=by))
        self.conversations.reply(conversation_id, by, epoch, text)

    async def give_baton(self, conversation_id: str, by: str, agent: str, *, epoch: int) -> int:
        """Hand the baton to ``agent``; returns the new epoch."""
        await self._loaded(conversation_id)
        return self.conversations.give_baton(conversation_id, by, agent, epoch=epoch)

    async def fork(
        self,
        source_id: str,
        by: str,
        *,
        upto: int,
        new_id: str | None = None,
        owner: str | None = None,
        models: Mapping[str, str] | None = None,
        instructions: Mapping[str, str] | None = None,
    ) -> Conversation:
        """A new conversation from ``source_id``'s first ``upto`` items (the source unchanged).

        The cut must not split a tool call from its result. ``models`` (per agent: a
        ``provider:model`` the flow can build, or a candidate of the agent's slot) and
        ``instructions`` (per agent) apply to the new conversation only.

        Raises:
            ConfigError: a chosen model cannot be built, or names no agent (``models.<agent>``).
        """
        check_fork_choice(self.runtime.flow, models or {}, instructions or {})
        source = await self._loaded(source_id)
        head = source.transcript[:upto]
        if _splits_tool_call(head):
            raise ConflictError(
                f"cannot fork {source_id!r} at item {upto}: item {upto - 1} asks for tool "
                "calls whose results come after it; fork before that answer or after its results",
                conversation_id=source_id,
                changed="the cut splits a tool call from its result",
            )
        target = new_id or f"{source_id[:100]}-fork-{secrets.token_hex(4)}"
        await self.conversations.load(target)
        return self.conversations.fork(
            source_id,
            target,
            by,
            upto=upto,
            owner=owner,
            models=models,
            instructions=instructions,
        )


def _splits_tool_call(items: Sequence[msgspec.Struct]) -> bool:
    answered = {i.call_id for i in items if isinstance(i, ToolResultMessage)}
    return any(
        call.id not in answered
        for item in items
        if isinstance(item, AssistantMessage)
        for call in item.tool_calls
    )
