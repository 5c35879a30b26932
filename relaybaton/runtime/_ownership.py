"""The baton: the registry that enforces the ownership invariants of DESIGN.md.

Every write to a conversation goes through ``Conversations`` with the writer's name and the
epoch it acts under, and is checked here, in the kernel, not left to the agents:

1. one owner: ``owner`` is set, or ``in_flight`` holds the ``BatonPass`` message, never both;
2. only the owner speaks: replies and transcript writes need ownership and the current epoch,
   and user messages queue in the conversation's inbox, one active turn at a time, so a
   message that arrives during a handoff waits, in order, behind it;
3. declared edges only: ``handoff`` refuses a target not in the sender's handoffs;
4. fencing: epochs only grow, and a stale epoch is refused;
5. exactly once: a message id is accepted once per conversation; a repeat gets the same
   result and is not processed again;
6. tools keep the baton: ``ask_agent`` never changes the owner, and a callee holds no owner
   handle (any reply or handoff it attempts is refused as not-owner);
7. bounded: ``max_turns`` model turns and ``max_handoffs`` handoffs per user message;
9. return address: a handoff with a return gives a lease; when it ends the baton goes back.

All methods are synchronous: with no await between check and write they are atomic on the
event loop, and they take no locks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection
from typing import final

import msgspec

from relaybaton.errors import (
    ActorStoppedError,
    MaxHandoffsExceededError,
    MaxTurnsExceededError,
    NotOwnerError,
    OwnershipError,
    RecursiveCallError,
    StaleEpochError,
    UndeclaredHandoffError,
)
from relaybaton.runtime._activations import ActivationTable
from relaybaton.runtime._conversation import (
    Conversation,
    ConversationStatus,
    Lease,
    LedgerEntry,
    OwnershipRecord,
    Reply,
    Turn,
    TurnResult,
)
from relaybaton.runtime._envelope import Envelope
from relaybaton.runtime._system import ActorSystem
from relaybaton.runtime.messages import (
    BatonPass,
    HandoffEvent,
    KernelMessage,
    ReplyEvent,
    ToolRequest,
    UserTurn,
)

__all__ = ["AgentTable", "Conversations"]

AgentTable = ActivationTable[KernelMessage, object]


@final
class Conversations:
    """Owns every conversation of one flow and routes its messages to the right agent."""

    def __init__(
        self,
        system: ActorSystem,
        *,
        entry: str,
        max_turns: int = 10,
        max_handoffs: int = 5,
        tracing: bool = True,
    ) -> None:
        self.system = system
        self.entry = entry
        self.max_turns = max_turns
        self.max_handoffs = max_handoffs
        self.tracing = tracing
        self.agents: dict[str, AgentTable] = {}
        self.edges: dict[str, frozenset[str]] = {}
        self.by_id: dict[str, Conversation] = {}
        self.listeners: list[Callable[[str, msgspec.Struct], None]] = []
        self.turns_accepted = 0
        self.turns_finished = 0
        self.duplicates = 0

    def add_agent(self, name: str, table: AgentTable, handoffs: Collection[str] = ()) -> None:
        """Register an agent's activation table and its declared handoff targets."""
        self.agents[name] = table
        self.edges[name] = frozenset(handoffs)

    # --- observing --------------------------------------------------------------------------

    @property
    def observed(self) -> bool:
        """Whether events are wanted: tracing is on, or someone subscribed."""
        return self.tracing or bool(self.listeners)

    def subscribe(self, listener: Callable[[str, msgspec.Struct], None]) -> Callable[[], None]:
        """Call ``listener(conversation_id, event)`` for every event; return the unsubscribe.

        Listeners run synchronously in the emitting task: keep them short and non-blocking
        (put the event in a bounded queue, say). An exception in one is logged and dropped.
        """
        self.listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self.listeners:
                self.listeners.remove(listener)

        return unsubscribe

    def _emit(self, conversation: Conversation, event: msgspec.Struct) -> None:
        if conversation.events is not None:
            conversation.events.append(event)
        for listener in self.listeners:
            try:
                listener(conversation.id, event)
            except Exception as exc:  # a broken subscriber must not break a conversation
                self.system.log.error("event_listener_failed", error=repr(exc))

    # --- reading ----------------------------------------------------------------------------

    def get(self, conversation_id: str) -> Conversation | None:
        """The conversation, or None if it was never opened."""
        return self.by_id.get(conversation_id)

    def open(self, conversation_id: str, *, owner: str | None = None) -> Conversation:
        """The conversation, created (owned at epoch 0 by ``owner``, by default the entry
        agent) if it is new; an existing one is returned unchanged.
        """
        conversation = self.by_id.get(conversation_id)
        if conversation is None:
            first = owner or self.entry
            if owner is not None and owner not in self.agents:
                raise OwnershipError(
                    f"cannot open conversation {conversation_id!r} at agent {first!r}: no "
                    f"such agent; the flow's agents: {', '.join(sorted(self.agents))}",
                    conversation_id=conversation_id,
                )
            conversation = Conversation(
                id=conversation_id,
                owner=first,
                events=[] if self.tracing else None,
            )
            conversation.ownership.append(OwnershipRecord(owner=first, epoch=0))
            self.by_id[conversation_id] = conversation
        return conversation

    # --- user messages (invariants 2 and 5) -------------------------------------------------

    def submit(
        self, conversation_id: str, message_id: str, payload: msgspec.Struct
    ) -> asyncio.Future[TurnResult]:
        """Accept a user message once; return a future of its one result.

        A repeated ``message_id`` queues nothing: its future gets the first one's result.
        Cancelling the returned future does not cancel the turn.
        Raises ``OwnershipError`` if the conversation is closed.
        """
        conversation = self.open(conversation_id)
        seen = conversation.seen.get(message_id)
        if seen is not None:
            self.duplicates += 1
            return seen.waiter()
        if conversation.status is ConversationStatus.CLOSED:
            raise OwnershipError(
                f"conversation {conversation_id!r} is closed; start a new one",
                conversation_id=conversation_id,
            )
        turn = Turn(message_id=message_id, payload=payload)
        future = turn.waiter()
        conversation.seen[message_id] = turn
        conversation.inbox.append(turn)
        self.turns_accepted += 1
        if conversation.active is None:
            self._dispatch_next(conversation)
        return future

    def _dispatch_next(self, conversation: Conversation) -> None:
        while conversation.active is None and conversation.inbox:
            turn = conversation.inbox.popleft()
            conversation.active = turn
            conversation.transcript.append(turn.payload)
            owner = conversation.owner
            assert owner is not None  # a turn ends only with the baton held
            message = UserTurn(conversation_id=conversation.id, message_id=turn.message_id)
            self._deliver(conversation, owner, message, conversation.epoch)

    def _deliver(
        self, conversation: Conversation, agent: str, message: KernelMessage, epoch: int
    ) -> None:
        table = self.agents[agent]
        try:
            # Kernel messages bypass the mailbox bound: the conversation's inbox is the
            # queue users fill, and refusing a baton would strand the conversation.
            table.cell_for(conversation.id).enqueue(
                Envelope(message=message, conversation_id=conversation.id, epoch=epoch),
                bounded=False,
            )
        except ActorStoppedError as exc:
            self._finish(conversation, None, error=str(exc))

    # --- owner operations (invariants 1-4, 7, 9) --------------------------------------------

    def check(self, conversation_id: str, agent: str, epoch: int) -> Conversation:
        """Return the conversation if ``agent`` owns it at ``epoch``; raise otherwise."""
        conversation = self.by_id.get(conversation_id)
        if conversation is None:
            raise OwnershipError(
                f"no conversation {conversation_id!r}", conversation_id=conversation_id
            )
        if epoch != conversation.epoch:
            raise StaleEpochError(conversation_id, epoch, conversation.epoch)
        if conversation.owner != agent:
            raise NotOwnerError(conversation_id, agent, conversation.owner)
        return conversation

    def append(self, conversation_id: str, agent: str, epoch: int, item: msgspec.Struct) -> None:
        """Append to the transcript, as the owner at the current epoch."""
        self.check(conversation_id, agent, epoch).transcript.append(item)

    def record(self, conversation_id: str, event: msgspec.Struct) -> None:
        """Keep a trace event when tracing is on (anyone may trace; it changes no state)."""
        conversation = self.by_id.get(conversation_id)
        if conversation is not None:
            self._emit(conversation, event)

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
        """Add one model call's usage to the conversation's ledger."""
        conversation = self.by_id.get(conversation_id)
        if conversation is None:
            return
        entry = conversation.ledger.get((agent, model))
        if entry is None:
            entry = conversation.ledger[(agent, model)] = LedgerEntry()
        entry.calls += 1
        entry.input_tokens += input_tokens
        entry.output_tokens += output_tokens
        entry.cost_usd += cost_usd

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

    def handoff(
        self,
        conversation_id: str,
        sender: str,
        epoch: int,
        target: str,
        *,
        return_to_sender: bool = False,
        lease_turns: int = 1,
        note: str = "",
        record: msgspec.Struct | None = None,
    ) -> BatonPass:
        """Pass the baton to ``target``; the conversation's epoch grows by one.

        ``record`` is appended to the transcript if, and only if, the handoff happens (the
        sender's tool result for its handoff call, written while it still owns it).

        Raises:
            NotOwnerError, StaleEpochError: ``sender`` does not hold the baton at ``epoch``.
            UndeclaredHandoffError: ``target`` is not among ``sender``'s handoffs.
            MaxHandoffsExceededError: the user message already had ``max_handoffs``.
        """
        conversation = self.check(conversation_id, sender, epoch)
        allowed = self.edges.get(sender, frozenset())
        if target not in allowed or target not in self.agents:
            raise UndeclaredHandoffError(conversation_id, sender, target, allowed)
        turn = self._active(conversation)
        if turn.handoffs >= self.max_handoffs:
            raise MaxHandoffsExceededError(
                f"conversation {conversation_id!r}: more than {self.max_handoffs} handoffs "
                "for one user message; the agents may be passing the baton in a loop",
                limit=self.max_handoffs,
            )
        turn.handoffs += 1
        if record is not None:
            conversation.transcript.append(record)
        conversation.epoch += 1
        baton = BatonPass(
            conversation_id=conversation_id,
            sender=sender,
            target=target,
            epoch=conversation.epoch,
            message_id=turn.message_id,
            return_to=sender if return_to_sender else None,
            lease_turns=max(1, lease_turns),
            note=note,
        )
        conversation.owner = None
        conversation.in_flight = baton
        conversation.ownership.append(OwnershipRecord(owner=None, epoch=conversation.epoch))
        if self.observed:
            self._emit(
                conversation,
                HandoffEvent(
                    action="handoff",
                    sender=sender,
                    target=target,
                    epoch=conversation.epoch,
                    at=self.system.clock.now(),
                ),
            )
        self._deliver(conversation, target, baton, conversation.epoch)
        return baton

    def accept(self, baton: BatonPass, agent: str) -> Conversation:
        """Take the baton out of its message: ``agent`` owns the conversation from now on."""
        conversation = self.by_id.get(baton.conversation_id)
        if conversation is None or conversation.in_flight != baton:
            current = conversation.epoch if conversation else 0
            raise StaleEpochError(baton.conversation_id, baton.epoch, current)
        if baton.target != agent:
            raise NotOwnerError(baton.conversation_id, agent, None)
        conversation.in_flight = None
        conversation.owner = agent
        conversation.ownership[-1] = OwnershipRecord(owner=agent, epoch=baton.epoch)
        if baton.return_to is not None:
            conversation.leases.append(
                Lease(return_to=baton.return_to, turns_left=baton.lease_turns)
            )
        if self.observed:
            self._emit(
                conversation,
                HandoffEvent(
                    action="accept",
                    sender=baton.sender,
                    target=agent,
                    epoch=baton.epoch,
                    at=self.system.clock.now(),
                ),
            )
        return conversation

    def reply(self, conversation_id: str, agent: str, epoch: int, text: str) -> None:
        """Answer the user and end the active turn, as the owner at the current epoch."""
        conversation = self.check(conversation_id, agent, epoch)
        turn = self._active(conversation)
        turn.replies.append(Reply(agent=agent, text=text))
        if self.observed:
            self._emit(
                conversation,
                ReplyEvent(agent=agent, text=text, epoch=epoch, at=self.system.clock.now()),
            )
        self._finish(conversation, agent)

    def fail_turn(self, conversation_id: str, agent: str, epoch: int, error: str) -> bool:
        """End the active turn with an error reply, if ``agent`` still holds it at ``epoch``.

        Returns whether it did. Used when a turn crashed or broke a limit: the user always
        hears back, and the next message is dispatched (never a hang).
        """
        conversation = self.by_id.get(conversation_id)
        if conversation is None or conversation.active is None:
            return False
        baton = conversation.in_flight
        if baton is not None and baton.target == agent and baton.epoch == epoch:
            # The baton was addressed to this agent and it failed before taking it.
            self.accept(baton, agent)
        if conversation.owner != agent or conversation.epoch != epoch:
            return False
        if self.observed:
            self._emit(
                conversation,
                ReplyEvent(
                    agent=agent, text="", epoch=epoch, at=self.system.clock.now(), error=error
                ),
            )
        self._finish(conversation, agent, error=error)
        return True

    def holds_turn(self, conversation_id: str, agent: str, epoch: int, message_id: str) -> bool:
        """Whether ``agent`` still owns the turn ``message_id`` at ``epoch``, unfinished."""
        conversation = self.by_id.get(conversation_id)
        return (
            conversation is not None
            and conversation.owner == agent
            and conversation.epoch == epoch
            and conversation.active is not None
            and conversation.active.message_id == message_id
        )

    def _active(self, conversation: Conversation) -> Turn:
        turn = conversation.active
        if turn is None:
            raise OwnershipError(
                f"conversation {conversation.id!r} has no user message in progress",
                conversation_id=conversation.id,
            )
        return turn

    def _finish(
        self, conversation: Conversation, agent: str | None, error: str | None = None
    ) -> None:
        turn = conversation.active
        if turn is None:
            return
        conversation.active = None
        self.turns_finished += 1
        if conversation.leases and agent is not None:
            lease = conversation.leases[-1]
            lease.turns_left -= 1
            if lease.turns_left <= 0:
                conversation.leases.pop()
                self._return_baton(conversation, agent, lease.return_to)
        turn.result = result = TurnResult(
            conversation_id=conversation.id,
            message_id=turn.message_id,
            replies=tuple(turn.replies),
            owner=conversation.owner,
            epoch=conversation.epoch,
            error=error,
        )
        for waiter in turn.waiters:
            if not waiter.done():
                waiter.set_result(result)
        turn.waiters.clear()
        self._dispatch_next(conversation)

    def _return_baton(self, conversation: Conversation, sender: str, target: str) -> None:
        conversation.epoch += 1
        conversation.owner = target
        conversation.ownership.append(OwnershipRecord(owner=target, epoch=conversation.epoch))
        if self.observed:
            self._emit(
                conversation,
                HandoffEvent(
                    action="return",
                    sender=sender,
                    target=target,
                    epoch=conversation.epoch,
                    at=self.system.clock.now(),
                ),
            )

    # --- agents as tools (invariant 6) ------------------------------------------------------

    async def ask_agent(
        self,
        conversation_id: str,
        caller: str,
        callee: str,
        call_id: str,
        text: str,
        *,
        chain: tuple[str, ...] = (),
        timeout: float | None = None,
    ) -> str:
        """Ask ``callee`` for one answer; the caller keeps the baton.

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
        result = await cell.ask(
            request, timeout=timeout, sender=caller, conversation_id=conversation_id
        )
        return str(result)
