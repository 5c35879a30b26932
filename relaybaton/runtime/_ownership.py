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
import hashlib
import json
import time
from collections.abc import Callable, Collection, Coroutine
from functools import partial
from typing import Any, final

import msgspec

from relaybaton.errors import (
    ActorStoppedError,
    ApprovalError,
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
    OwnershipRecord,
    Reply,
    Turn,
    TurnResult,
)
from relaybaton.runtime._envelope import Envelope
from relaybaton.runtime._failpoints import failpoint
from relaybaton.runtime._fold import add_charge, finish_turn
from relaybaton.runtime._journal import Journal
from relaybaton.runtime._journal_events import (
    Accepted,
    Appended,
    ApprovalDecided,
    ApprovalRequested,
    BatonAccepted,
    BatonReturned,
    Charged,
    HandedOff,
    Replied,
    ToolStarted,
    TurnFailed,
    TurnStarted,
)
from relaybaton.runtime._store import Durability
from relaybaton.runtime._system import ActorSystem
from relaybaton.runtime.messages import (
    ApprovalDecidedEvent,
    ApprovalRequestedEvent,
    BatonPass,
    HandoffEvent,
    KernelMessage,
    PausedEvent,
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
        journal: Journal[Any] | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.system = system
        self.entry = entry
        self.max_turns = max_turns
        self.max_handoffs = max_handoffs
        self.tracing = tracing
        self.journal = journal
        #: Whether events are wanted: tracing is on, or someone subscribed.
        self.observed = tracing
        #: Whether steps wait for journal commits (sync durability).
        self.sync_journal = journal is not None and journal.durability is Durability.SYNC
        # Approvals wait for people, across restarts: their times are wall-clock seconds,
        # not the runtime clock (monotonic, and per process).
        self.wall = wall
        self.approval_index: dict[str, str] = {}
        self.agents: dict[str, AgentTable] = {}
        self.edges: dict[str, frozenset[str]] = {}
        self.by_id: dict[str, Conversation] = {}
        self.listeners: list[Callable[[str, msgspec.Struct], None]] = []
        # Whether owners stream their answers as text deltas (someone shows them live, like
        # the HTTP service's SSE); otherwise a model's answer is taken whole.
        self.stream_replies = False
        self.turns_accepted = 0
        self.turns_finished = 0
        self.duplicates = 0

    def add_agent(self, name: str, table: AgentTable, handoffs: Collection[str] = ()) -> None:
        """Register an agent's activation table and its declared handoff targets."""
        self.agents[name] = table
        self.edges[name] = frozenset(handoffs)

    # --- observing --------------------------------------------------------------------------

    def _update_observed(self) -> None:
        # An attribute, not a property: it is read on every step of every turn.
        self.observed = self.tracing or bool(self.listeners)

    def subscribe(self, listener: Callable[[str, msgspec.Struct], None]) -> Callable[[], None]:
        """Call ``listener(conversation_id, event)`` for every event; return the unsubscribe.

        Listeners run synchronously in the emitting task: keep them short and non-blocking
        (put the event in a bounded queue, say). An exception in one is logged and dropped.
        """
        self.listeners.append(listener)
        self._update_observed()

        def unsubscribe() -> None:
            if listener in self.listeners:
                self.listeners.remove(listener)
            self._update_observed()

        return unsubscribe

    def _emit(self, conversation: Conversation, event: msgspec.Struct) -> None:
        if conversation.events is not None:
            conversation.events.append(event)
        for listener in self.listeners:
            try:
                listener(conversation.id, event)
            except Exception as exc:  # a broken subscriber must not break a conversation
                self.system.log.exception("event_listener_failed", error=repr(exc))

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
            # Journaled with its first message (``Accepted.opened_by``): a conversation that
            # never accepts one leaves no trace.
        return conversation

    # --- user messages (invariants 2 and 5) -------------------------------------------------

    def submit(
        self, conversation_id: str, message_id: str, payload: msgspec.Struct, *, user: str = ""
    ) -> asyncio.Future[TurnResult]:
        """Accept a user message once; return a future of its one result.

        A repeated ``message_id`` queues nothing: its future gets the first one's result.
        Cancelling the returned future does not cancel the turn.
        ``user`` (when given) names whom the conversation is with, from now on.
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
        self.turns_accepted += 1
        new_user = user if user and user != conversation.user else None
        if new_user is not None:
            conversation.user = new_user
        starts_now = conversation.active is None and not conversation.inbox
        if starts_now:
            conversation.active = turn
            conversation.transcript.append(payload)
        else:
            conversation.inbox.append(turn)
        if self.journal is not None:
            # One record for "accepted" and, in the common case, "started" (and "opened").
            self.journal.record(
                conversation,
                Accepted(
                    message_id=message_id,
                    item=payload,
                    started=starts_now,
                    opened_by=conversation.owner if conversation.seq == 0 else None,
                    user=new_user,
                ),
            )
        if starts_now:
            self._deliver_turn(conversation, turn)
        return future

    def _dispatch_next(self, conversation: Conversation) -> None:
        while conversation.active is None and conversation.inbox:
            turn = conversation.inbox.popleft()
            conversation.active = turn
            conversation.transcript.append(turn.payload)
            if self.journal is not None:
                self.journal.record(conversation, TurnStarted(message_id=turn.message_id))
            self._deliver_turn(conversation, turn)

    def _deliver_turn(self, conversation: Conversation, turn: Turn) -> None:
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
            # The dead letter is logged at warning already; the turn fails with this error.
            self.system.log.info(
                "turn_undeliverable", conversation_id=conversation.id, agent=agent, exc_info=exc
            )
            if type(message) is BatonPass and conversation.in_flight is message:
                # The baton cannot reach its target (its activation is stopping): it goes
                # back to the sender under a new epoch, so the conversation keeps exactly one
                # owner and the next user message can be dispatched.
                conversation.in_flight = None
                conversation.epoch += 1
                conversation.owner = message.sender
                conversation.ownership.append(
                    OwnershipRecord(owner=message.sender, epoch=conversation.epoch)
                )
                if self.journal is not None:
                    self.journal.record(
                        conversation,
                        BatonReturned(
                            sender=message.target,
                            target=message.sender,
                            epoch=conversation.epoch,
                        ),
                    )
                if self.observed:
                    self._emit(
                        conversation,
                        HandoffEvent(
                            action="return",
                            sender=message.target,
                            target=message.sender,
                            epoch=conversation.epoch,
                            at=self.system.clock.now(),
                        ),
                    )
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

    def append(
        self,
        conversation_id: str,
        agent: str,
        epoch: int,
        item: msgspec.Struct,
        charge: Charged | None = None,
    ) -> None:
        """Append to the transcript, as the owner at the current epoch.

        ``charge`` is the usage of the model call that produced ``item``, if it is one.
        """
        conversation = self.check(conversation_id, agent, epoch)
        conversation.transcript.append(item)
        if charge is not None:
            add_charge(conversation, charge)
        if self.journal is not None:
            self.journal.record(conversation, Appended(agent=agent, item=item, charge=charge))

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
        add_charge(conversation, charge)
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
            if self.journal is not None:
                self.journal.record(conversation, Appended(agent=sender, item=record))
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
        if self.journal is not None:
            self.journal.record(
                conversation,
                HandedOff(
                    sender=sender,
                    target=target,
                    epoch=baton.epoch,
                    message_id=baton.message_id,
                    return_to=baton.return_to,
                    lease_turns=baton.lease_turns,
                    note=note,
                ),
            )
        failpoint("mid_handoff")
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
            if current == baton.epoch:
                raise OwnershipError(
                    f"conversation {baton.conversation_id!r}: the baton of epoch {baton.epoch} "
                    "was taken already",
                    conversation_id=baton.conversation_id,
                )
            raise StaleEpochError(baton.conversation_id, baton.epoch, current)
        if baton.target != agent:
            raise NotOwnerError(baton.conversation_id, agent, None)
        conversation.in_flight = None
        conversation.owner = agent
        conversation.ownership[-1] = OwnershipRecord(owner=agent, epoch=baton.epoch)
        if baton.return_to is not None:
            conversation.leases = (
                *conversation.leases,
                Lease(return_to=baton.return_to, turns_left=baton.lease_turns),
            )
        if self.journal is not None:
            self.journal.record(conversation, BatonAccepted(agent=agent, epoch=baton.epoch))
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
        journal_event: msgspec.Struct = Replied(agent=agent, text=text)
        if self.observed:
            self._emit(
                conversation,
                ReplyEvent(agent=agent, text=text, epoch=epoch, at=self.system.clock.now()),
            )
        self._finish(conversation, agent, event=journal_event)

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
        self._finish(conversation, agent, error=error, event=TurnFailed(agent=agent, error=error))
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
        self,
        conversation: Conversation,
        agent: str | None,
        error: str | None = None,
        event: msgspec.Struct | None = None,
    ) -> None:
        epoch = conversation.epoch
        turn = finish_turn(conversation, agent, error)
        if turn is None:
            return
        self.turns_finished += 1
        if self.journal is not None:
            self.journal.record(
                conversation, event or TurnFailed(agent=agent or "", error=error or "")
            )
        if conversation.epoch != epoch and self.observed:  # a lease ended: baton returned
            self._emit(
                conversation,
                HandoffEvent(
                    action="return",
                    sender=agent or "",
                    target=conversation.owner or "",
                    epoch=conversation.epoch,
                    at=self.system.clock.now(),
                ),
            )
        waiters, turn.waiters = turn.waiters, []
        if self.journal is None:
            _deliver(waiters, turn.result)
        else:
            # In sync mode the user hears back only once the reply is on disk.
            self.journal.after_commit(partial(_deliver, waiters, turn.result))
        self._dispatch_next(conversation)

    # --- durable execution: effects, approvals, reloading ----------------------------------

    def tool_started(
        self, conversation_id: str, agent: str, epoch: int, call_id: str, tool: str
    ) -> None:
        """Record that a tool with side effects is about to run (owner only)."""
        conversation = self.check(conversation_id, agent, epoch)
        conversation.add_tool_started(call_id)
        if self.journal is not None:
            self.journal.record(conversation, ToolStarted(agent=agent, call_id=call_id, tool=tool))

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
        conversation.add_approval(request)
        conversation.status = ConversationStatus.AWAITING_APPROVAL
        self.approval_index[request.approval_id] = conversation_id
        if self.journal is not None:
            self.journal.record(conversation, request)
        if self.observed:
            self._emit(conversation, ApprovalRequestedEvent.of(request))
        if timeout is not None:
            self._schedule_expiry(request)
        return request

    def _schedule_expiry(self, request: ApprovalRequested) -> None:
        if request.expires_at is None:
            return
        delay = max(0.0, request.expires_at - self.wall())
        self.system.clock.call_later(delay, self._expire, request.approval_id)

    def _expire(self, approval_id: str) -> None:
        conversation = self.by_id.get(self.approval_index.get(approval_id, ""))
        if conversation is None or approval_id in conversation.decisions:
            return
        request = conversation.approvals[approval_id]
        self._decide(
            conversation, request, "expire", None, note="no decision in time", by="timeout"
        )

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
        """
        conversation = self.by_id.get(self.approval_index.get(approval_id, ""))
        if conversation is None:
            raise ApprovalError(
                f"no approval request {approval_id!r}; list the pending ones with "
                "`relaybaton approvals list`",
                approval_id=approval_id,
            )
        request = conversation.approvals.get(approval_id)
        expires = request.expires_at if request is not None else None
        if expires is not None and self.wall() > expires:
            self._expire(approval_id)  # the rejection is recorded; the check below refuses
        taken = check_decision(
            conversation,
            approval_id,
            decision,
            arguments_hash=arguments_hash,
            arguments=arguments,
            now=self.wall(),
        )
        if taken is not None:
            return taken
        request = conversation.approvals[approval_id]
        return self._decide(conversation, request, decision, arguments, note=note, by=by)

    def _decide(
        self,
        conversation: Conversation,
        request: ApprovalRequested,
        decision: str,
        arguments: str | None,
        *,
        note: str,
        by: str,
    ) -> ApprovalDecided:
        decided = ApprovalDecided(
            approval_id=request.approval_id,
            decision=decision,
            arguments_hash=request.arguments_hash,
            arguments=arguments,
            note=note,
            by=by,
        )
        conversation.add_decision(decided)
        if not conversation.pending_approvals:
            conversation.status = ConversationStatus.ACTIVE
        if self.journal is not None:
            self.journal.record(conversation, decided)
        if self.observed:
            self._emit(conversation, ApprovalDecidedEvent.of(decided))
        self._resume_turn(conversation)
        return decided

    def park(self, conversation_id: str, agent: str, epoch: int) -> None:
        """The owner's handler ended with the turn paused for a decision (no task runs)."""
        conversation = self.check(conversation_id, agent, epoch)
        if conversation.status is ConversationStatus.AWAITING_APPROVAL:
            conversation.parked = True
            if self.observed:
                self._emit(
                    conversation,
                    PausedEvent(agent=agent, epoch=epoch, at=self.system.clock.now()),
                )

    def _resume_turn(self, conversation: Conversation) -> None:
        """Hand the active turn back to whoever holds it (after a decision or a restart)."""
        if conversation.status is ConversationStatus.AWAITING_APPROVAL:
            conversation.parked = True  # after a restart, nothing runs until a decision
            return
        conversation.parked = False
        baton = conversation.in_flight
        if baton is not None:
            self._deliver(conversation, baton.target, baton, baton.epoch)
        elif conversation.active is not None and conversation.owner is not None:
            message = UserTurn(
                conversation_id=conversation.id, message_id=conversation.active.message_id
            )
            self._deliver(conversation, conversation.owner, message, conversation.epoch)
        else:
            self._dispatch_next(conversation)

    def restore(self, conversation: Conversation) -> None:
        """Adopt a conversation rebuilt from its journal and continue its unfinished work."""
        if self.tracing and conversation.events is None:
            conversation.events = []
        self.by_id[conversation.id] = conversation
        for request in conversation.approvals.values():
            self.approval_index[request.approval_id] = conversation.id
        for request in conversation.pending_approvals:
            self._schedule_expiry(request)
        self._resume_turn(conversation)

    async def load(self, conversation_id: str) -> Conversation | None:
        """The conversation, loaded from the journal if it is not in memory (None if new)."""
        conversation = self.by_id.get(conversation_id)
        if conversation is None and self.journal is not None:
            conversation = await self.journal.load(conversation_id, entry=self.entry)
            if conversation is not None and conversation_id not in self.by_id:
                self.restore(conversation)
            conversation = self.by_id.get(conversation_id)
        return conversation

    async def resume_all(self) -> int:
        """Load and continue every conversation a previous run left unfinished."""
        if self.journal is None:
            return 0
        heads = await self.journal.store.heads(unfinished_only=True)
        for head in heads:
            await self.load(head.conversation_id)
        return len(heads)

    # --- agents as tools (invariant 6) ------------------------------------------------------

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
    if decision not in ("approve", "reject", "edit"):
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


def _deliver(waiters: list[asyncio.Future[TurnResult]], result: TurnResult | None) -> None:
    for waiter in waiters:
        if not waiter.done():
            waiter.set_result(result)  # type: ignore[arg-type]
