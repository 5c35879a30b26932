"""The registry's core: the flow's agents, its conversations, who listens, and the owner check.

The baton's invariants (numbered as in ``docs/architecture.md``) are enforced by the parts
built on this one (``Conversations``, in ``_conversations.py``): every write to a
conversation names its writer and the epoch it acts under, and is checked here, in the
kernel, not left to the agents. All methods are synchronous: with no await between check
and write they are atomic on the event loop, and they take no locks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from typing import Any

import msgspec

from relaybaton.errors import NotOwnerError, OwnershipError, StaleEpochError
from relaybaton.runtime._activations import ActivationTable
from relaybaton.runtime._conversation import Conversation, OwnershipRecord, Turn
from relaybaton.runtime._journal import Journal
from relaybaton.runtime._store import Durability
from relaybaton.runtime._system import ActorSystem
from relaybaton.runtime.messages import KernelMessage

__all__ = ["AgentTable", "Registry"]

AgentTable = ActivationTable[KernelMessage, object]
Listener = Callable[[str, msgspec.Struct], None]


class Registry:
    """The conversations of one flow, its agents and their declared edges, and listeners."""

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
        # Who listens, and to which kinds of event (None: every kind).
        self.listeners: list[tuple[Listener, tuple[type, ...] | None]] = []
        # The listeners of each kind of event, worked out on its first event: an event is
        # handed only to those that asked for its kind, without a test per listener.
        self._routes: dict[type, tuple[Listener, ...]] = {}
        # ``watch``: called on one conversation's events only, so many waiters (one per
        # request or reply owed) do not each hear every conversation's events.
        self.watchers: dict[str, list[Callable[[], None]]] = {}
        # Whether owners stream their answers as text deltas (someone shows them live, like
        # the HTTP service's SSE); otherwise a model's answer is taken whole.
        self.stream_replies = False
        # With ``stream_replies``, which conversations someone watches live (None: all).
        # Deltas nobody reads are a cost per token for every listener, so a watcher (an
        # SSE reader, a streaming chat request) turns them on for its conversation only.
        self.stream_filter: Callable[[str], bool] | None = None
        #: Raises for a conversation this process may not act for (a cluster node that does
        #: not hold its partition raises ``PartitionNotOwnedError``); None admits every one.
        self.admit: Callable[[str], None] | None = None
        #: Told of each conversation adopted from the journal (``Recovery.restore``) before
        #: its unfinished work continues: a transport that owes the results of its turns
        #: (``Turn.reply_to``) takes them up there, whichever process accepted them.
        self.restore_listeners: list[Callable[[Conversation], None]] = []
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
        self.observed = self.tracing or bool(self.listeners) or bool(self.watchers)

    def subscribe(
        self, listener: Listener, kinds: Collection[type[msgspec.Struct]] | None = None
    ) -> Callable[[], None]:
        """Call ``listener(conversation_id, event)`` for every event; return the unsubscribe.

        ``kinds``: only events of these types (or their subclasses); by default, every one.
        A listener that reads a few kinds says so: most of a turn's events are of kinds it
        would only test and drop, and each listener called costs every event of a turn.

        Listeners run synchronously in the emitting task: keep them short and non-blocking
        (put the event in a bounded queue, say). An exception in one is logged and dropped.
        """
        entry = (listener, None if kinds is None else tuple(kinds))
        self.listeners.append(entry)
        self._routes.clear()
        self._update_observed()

        def unsubscribe() -> None:
            if entry in self.listeners:
                self.listeners.remove(entry)
                self._routes.clear()
            self._update_observed()

        return unsubscribe

    def _route(self, kind: type) -> tuple[Listener, ...]:
        route = self._routes[kind] = tuple(
            listener
            for listener, kinds in self.listeners
            if kinds is None or issubclass(kind, kinds)
        )
        return route

    def watch(self, conversation_id: str, wake: Callable[[], None]) -> Callable[[], None]:
        """Call ``wake()`` on each event of one conversation; return the unwatch.

        For waiters: the cost of an event is one lookup, however many wait elsewhere. Like
        listeners, ``wake`` runs in the emitting task: set a flag or an event, no more.
        """
        self.watchers.setdefault(conversation_id, []).append(wake)
        self._update_observed()

        def unwatch() -> None:
            waiting = self.watchers.get(conversation_id)
            if waiting is not None and wake in waiting:
                waiting.remove(wake)
                if not waiting:
                    del self.watchers[conversation_id]
            self._update_observed()

        return unwatch

    def _emit(self, conversation: Conversation, event: msgspec.Struct) -> None:
        if conversation.events is not None:
            conversation.events.append(event)
        route = self._routes.get(type(event))
        for listener in self._route(type(event)) if route is None else route:
            try:
                listener(conversation.id, event)
            except Exception as exc:  # a broken subscriber must not break a conversation
                self.system.log.exception("event_listener_failed", error=repr(exc))
        waiting = self.watchers.get(conversation.id) if self.watchers else None
        if waiting:
            for wake in list(waiting):
                try:
                    wake()
                except Exception as exc:
                    self.system.log.exception("event_watcher_failed", error=repr(exc))

    def record(self, conversation_id: str, event: msgspec.Struct) -> None:
        """Keep a trace event when tracing is on (anyone may trace; it changes no state)."""
        conversation = self.by_id.get(conversation_id)
        if conversation is not None:
            self._emit(conversation, event)

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

    # --- the owner check (invariants 2 and 4) -----------------------------------------------

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
