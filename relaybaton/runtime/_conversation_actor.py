"""The kernel side of an agent: an activation that acts for conversations under the rules.

``ConversationActor`` turns kernel messages into calls of three hooks, each with a handle
that carries exactly the powers the message grants:

- ``on_user_turn(owner)`` and ``on_handoff(owner, baton)``: an ``OwnerHandle`` bound to the
  agent's name and the epoch it owns the conversation under; every write is fenced;
- ``on_tool_request(scope, request)``: a ``ToolScope``, which can charge usage to the
  caller's ledger and trace, but cannot reply to the user or hand off (invariant 6).

After an owner hook returns, or crashes, the kernel checks the turn ended (a reply, a
handoff or an error); if not, it ends it with an error reply, so no user waits forever.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, final

import msgspec

from relaybaton.errors import OwnershipError
from relaybaton.runtime._actor import Actor
from relaybaton.runtime._conversation import Conversation
from relaybaton.runtime._conversations import Conversations
from relaybaton.runtime._envelope import Envelope
from relaybaton.runtime._journal_events import ApprovalRequested, Charged
from relaybaton.runtime.messages import BatonPass, KernelMessage, ToolRequest, UserTurn

__all__ = ["ConversationActor", "OwnerHandle", "ToolScope"]


@final
class OwnerHandle:
    """What the owner of a conversation may do, at the epoch it owns it under."""

    __slots__ = ("_conversations", "agent", "conversation", "epoch", "message_id", "paused")

    def __init__(
        self,
        conversations: Conversations,
        conversation: Conversation,
        agent: str,
        epoch: int,
        message_id: str,
    ) -> None:
        self._conversations = conversations
        self.conversation = conversation
        self.agent = agent
        self.epoch = epoch
        self.message_id = message_id
        self.paused = False  # set when the turn waits for a person: no reply is due now

    @property
    def conversation_id(self) -> str:
        """The conversation's id."""
        return self.conversation.id

    @property
    def holds(self) -> bool:
        """Whether this handle still owns the turn (no handoff, reply or newer epoch since)."""
        return self._conversations.holds_turn(
            self.conversation.id, self.agent, self.epoch, self.message_id
        )

    def append(self, item: msgspec.Struct, charge: Charged | None = None) -> None:
        """Append to the transcript (fenced); ``charge`` is the usage that produced it."""
        self._conversations.append(self.conversation.id, self.agent, self.epoch, item, charge)

    def record(self, event: msgspec.Struct) -> None:
        """Keep a trace event (when tracing is on)."""
        self._conversations.record(self.conversation.id, event)

    def charge(
        self, agent: str, model: str, *, input_tokens: int, output_tokens: int, cost_usd: float
    ) -> None:
        """Add usage to the conversation's ledger."""
        self._conversations.charge(
            self.conversation.id,
            agent,
            model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=cost_usd,
        )

    def count_model_turn(self) -> None:
        """Count a model turn; raises ``MaxTurnsExceededError`` past the limit."""
        self._conversations.count_model_turn(self.conversation.id, self.agent, self.epoch)

    def handoff(
        self,
        target: str,
        *,
        return_to_sender: bool = False,
        lease_turns: int = 1,
        note: str = "",
        record: msgspec.Struct | None = None,
    ) -> BatonPass:
        """Pass the baton; this handle is stale afterwards. See ``Conversations.handoff``."""
        return self._conversations.handoff(
            self.conversation.id,
            self.agent,
            self.epoch,
            target,
            return_to_sender=return_to_sender,
            lease_turns=lease_turns,
            note=note,
            record=record,
        )

    def tool_started(self, call_id: str, tool: str) -> None:
        """Record that a tool with side effects is about to run."""
        self._conversations.tool_started(
            self.conversation.id, self.agent, self.epoch, call_id, tool
        )

    def halts_before(self, *points: str) -> bool:
        """Whether a person wants the turn stopped before ``points`` (see ``_operator.py``).

        True: the turn halted and is paused (return from the hook); False: go on.
        """
        if self.conversation.control is None:
            return False
        halted = self._conversations.halts_before(self.conversation, self.agent, self.epoch, points)
        self.paused = self.paused or halted
        return halted

    def request_approval(
        self, *, call_id: str, tool: str, arguments: str, rule: str, timeout: float | None
    ) -> ApprovalRequested:
        """Pause the conversation until a person decides on this call."""
        self.paused = True
        return self._conversations.request_approval(
            self.conversation.id,
            self.agent,
            self.epoch,
            call_id=call_id,
            tool=tool,
            arguments=arguments,
            rule=rule,
            timeout=timeout,
        )

    @property
    def must_flush(self) -> bool:
        """Whether steps wait for commits (sync durability): else ``flushed`` is a no-op."""
        return self._conversations.sync_journal

    async def flushed(self) -> None:
        """In sync durability, wait until what was recorded so far is committed."""
        journal = self._conversations.journal
        if journal is not None:
            await journal.flushed(self.conversation.id)

    def reply(self, text: str) -> None:
        """Answer the user and end the turn."""
        self._conversations.reply(self.conversation.id, self.agent, self.epoch, text)

    def fail(self, error: str) -> bool:
        """End the turn with an error reply; False if the turn was no longer ours."""
        return self._conversations.fail_turn(self.conversation.id, self.agent, self.epoch, error)


@final
class ToolScope:
    """What an agent called as a tool may do: answer its caller, charge, trace. No baton."""

    __slots__ = ("_conversations", "request")

    def __init__(self, conversations: Conversations, request: ToolRequest) -> None:
        self._conversations = conversations
        self.request = request

    @property
    def conversation_id(self) -> str:
        """The caller's conversation."""
        return self.request.conversation_id

    @property
    def chain(self) -> tuple[str, ...]:
        """The agents waiting up the call chain, caller last."""
        return self.request.chain

    def record(self, event: msgspec.Struct) -> None:
        """Keep a trace event in the caller's conversation."""
        self._conversations.record(self.request.conversation_id, event)

    def add_charge(self, charge: Charged) -> None:
        """Charge one model call's usage to the caller's conversation ledger (invariant 6)."""
        self._conversations.add_charge(self.request.conversation_id, charge)

    def charge(
        self, agent: str, model: str, *, input_tokens: int, output_tokens: int, cost_usd: float
    ) -> None:
        """Charge usage to the caller's conversation ledger (invariant 6)."""
        self._conversations.charge(
            self.request.conversation_id,
            agent,
            model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=cost_usd,
        )


class ConversationActor(Actor[KernelMessage, object]):
    """An activation, keyed by conversation id, that acts for one agent of a flow.

    Subclasses implement the hooks; the routing, fencing and turn-end checks are here.
    """

    agent_name: str
    conversations: Conversations

    def receive(self, message: KernelMessage) -> Coroutine[Any, Any, object]:
        # Returns the coroutine to await rather than awaiting it: a request is answered by
        # ``on_tool_request`` without a frame of ours in between (one coroutine less per
        # conversation parked in a tool call).
        if type(message) is ToolRequest:
            return self.on_tool_request(ToolScope(self.conversations, message), message)
        envelope = self.context.envelope
        return self._owner_turn(message, envelope.epoch if envelope is not None else 0)

    async def _owner_turn(self, message: KernelMessage, epoch: int) -> object:
        conversations = self.conversations
        if type(message) is UserTurn:
            conversation = conversations.get(message.conversation_id)
            if conversation is None or not conversations.holds_turn(
                message.conversation_id, self.agent_name, epoch, message.message_id
            ):
                self._stale(message)
                return None
            handle = OwnerHandle(
                conversations, conversation, self.agent_name, epoch, message.message_id
            )
            await self.on_user_turn(handle)
        elif type(message) is BatonPass:
            try:
                conversation = conversations.accept(message, self.agent_name)
            except OwnershipError as exc:
                # Fencing at work, not a fault: the dead letter is counted at warning level.
                self.context.system.log.debug(
                    "baton_refused", conversation_id=message.conversation_id, exc_info=exc
                )
                self._stale(message)
                return None
            handle = OwnerHandle(
                conversations, conversation, self.agent_name, message.epoch, message.message_id
            )
            await self.on_handoff(handle, message)
        else:  # pragma: no cover - the union is closed
            raise TypeError(f"unexpected message {type(message).__name__}")
        if handle.holds:
            if handle.paused:
                conversations.park(handle.conversation_id, self.agent_name, handle.epoch)
            else:
                handle.fail(
                    f"agent {self.agent_name!r} ended its turn without replying or handing off"
                )
        return None

    def _stale(self, message: KernelMessage) -> None:
        # A message overtaken by a newer epoch (fencing, invariant 4): never acted on.
        system = self.context.system
        system.dead_letters.record(self.context.name, message, "stale", system.clock.now())

    async def on_failure(self, error: Exception, envelope: Envelope[KernelMessage] | None) -> None:
        if envelope is None:
            return
        message = envelope.message
        if isinstance(message, UserTurn | BatonPass):
            epoch = message.epoch if isinstance(message, BatonPass) else envelope.epoch
            self.conversations.fail_turn(
                message.conversation_id,
                self.agent_name,
                epoch,
                f"agent {self.agent_name!r} failed: {type(error).__name__}: {error}",
            )

    def on_user_turn(self, owner: OwnerHandle) -> Coroutine[Any, Any, None]:
        """Handle the active user message; end with ``owner.reply`` or ``owner.handoff``.

        The hooks return a coroutine: an ``async def`` override is the usual way.
        """
        raise NotImplementedError

    def on_handoff(self, owner: OwnerHandle, baton: BatonPass) -> Coroutine[Any, Any, None]:
        """Continue the user message the baton came with."""
        raise NotImplementedError

    def on_tool_request(self, scope: ToolScope, request: ToolRequest) -> Coroutine[Any, Any, str]:
        """Answer one request from another agent; the answer is its tool result."""
        raise NotImplementedError
