"""The library edge: ``open_runtime`` deploys agents, ``Runtime.send`` talks to them."""

from __future__ import annotations

import asyncio
import itertools
import secrets
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from functools import partial
from typing import Any, final

from relaybaton.actors._agent import Agent, AgentTool
from relaybaton.actors._agent_actor import AgentActor
from relaybaton.actors._compiled import CompiledAgent, FlowContext
from relaybaton.actors._fork_models import ForkModels, ModelBuilder
from relaybaton.actors.routing._shadow import open_shadow_runner
from relaybaton.actors.routing._slot import ModelSlot
from relaybaton.adapters import ChatMessage, ImagePart, ModelAdapter, RetryPolicy, UserMessage
from relaybaton.errors import ConfigError
from relaybaton.runtime import (
    ActorSystem,
    AgentTable,
    ApprovalDecided,
    ApprovalRequested,
    Clock,
    Conversation,
    Conversations,
    Durability,
    Journal,
    MonotonicClock,
    Store,
    TurnResult,
    open_system,
)
from relaybaton.runtime._failpoints import failpoint

__all__ = ["Runtime", "collect_agents", "open_runtime"]


def collect_agents(entry: Agent, others: Sequence[Agent] = ()) -> dict[str, Agent]:
    """Every agent reachable from ``entry`` by handoffs and agent tools, by name.

    References by name are looked up among the agents found and ``others``.

    Raises:
        ConfigError: two different agents share a name, or a name refers to no agent.
    """
    found: dict[str, Agent] = {}
    named = {a.name: a for a in (entry, *others)}
    stack: list[Agent] = [entry, *others]
    while stack:
        agent = stack.pop()
        known = found.get(agent.name)
        if known is not None:
            if known is not agent:
                raise ConfigError(
                    f"two different agents are named {agent.name!r}; agent names must be "
                    "unique in a flow"
                )
            continue
        found[agent.name] = agent
        for reference in (
            *(h.agent for h in agent.handoff_edges),
            *(t.agent for t in agent.tools if isinstance(t, AgentTool)),
        ):
            if isinstance(reference, Agent):
                stack.append(reference)
            elif reference in named:
                stack.append(named[reference])
            elif reference not in found:
                raise ConfigError(
                    f"agent {agent.name!r} refers to an agent named {reference!r} that the "
                    "runtime was not given; pass it in `agents`"
                )
    return found


@final
class Runtime:
    """A deployed flow: send user messages, read conversations. Get one from ``open_runtime``."""

    def __init__(
        self, system: ActorSystem, conversations: Conversations, flow: FlowContext
    ) -> None:
        self.system = system
        self.conversations = conversations
        self.flow = flow
        self._ids = itertools.count(1)
        self._prefix = secrets.token_hex(4)

    @property
    def slots(self) -> Mapping[str, ModelSlot]:
        """The model slots by name (swap an adapter with ``slots[name].swap(...)``)."""
        return self.flow.slots

    @property
    def agents(self) -> Mapping[str, Agent]:
        """The deployed agents by name."""
        return {name: c.agent for name, c in self.flow.agents.items()}

    def submit(
        self,
        conversation_id: str,
        text: str,
        *,
        message_id: str | None = None,
        images: Sequence[ImagePart] = (),
        user: str | None = None,
        answer_schema: Mapping[str, Any] | None = None,
    ) -> asyncio.Future[TurnResult]:
        """Accept a user message and return the future of its result without waiting.

        A repeated ``message_id`` is processed once: the repeat gets the first one's future.
        ``user`` names whom the conversation is with (the namespace of their long-term
        memory); it is set when given and kept for the conversation's later turns.
        ``answer_schema``: the JSON Schema the answer must fit (checked, corrected once,
        else the turn fails), for a client that asked for structured output.
        """
        if message_id is None:
            message_id = f"{self._prefix}-{next(self._ids)}"
        payload = UserMessage(
            text=text,
            message_id=message_id,
            images=tuple(images),
            answer_schema=None if answer_schema is None else dict(answer_schema),
        )
        return self.conversations.submit(conversation_id, message_id, payload, user=user or "")

    async def send(
        self,
        conversation_id: str,
        text: str,
        *,
        message_id: str | None = None,
        images: Sequence[ImagePart] = (),
        user: str | None = None,
    ) -> TurnResult:
        """Send a user message and wait for the turn's result (``user``: see ``submit``).

        Cancelling the wait does not cancel the turn: it runs to its end, and its result is
        kept (a repeat of the same ``message_id`` gets it).
        """
        await self.conversations.load(conversation_id)  # a journaled one continues
        # The future is this caller's own waiter: cancelling it leaves the turn running.
        future = self.submit(conversation_id, text, message_id=message_id, images=images, user=user)
        failpoint("after_user_accepted")
        return await future

    async def accept(
        self,
        conversation_id: str,
        text: str,
        *,
        message_id: str | None = None,
        images: Sequence[ImagePart] = (),
        user: str = "",
    ) -> asyncio.Future[TurnResult]:
        """Accept a user message and return once the acceptance is durable (if journaled).

        For producers that acknowledge before the turn ends (HTTP 202, a broker ack): a
        message acknowledged here is never lost by a crash.

        Raises:
            FencedWriteError: the journal refused the conversation's writes (a cluster
                node whose partition another node took over): nothing was accepted, so
                the producer must not acknowledge the message.
            PartitionNotOwnedError: a cluster node that does not hold the conversation.
        """
        await self.conversations.load(conversation_id)
        future = self.submit(conversation_id, text, message_id=message_id, images=images, user=user)
        journal = self.conversations.journal
        if journal is not None:
            await journal.flush()
            refused = journal.fenced.get(conversation_id)
            if refused is not None:
                # The commit went by without this conversation's records: not durable.
                future.add_done_callback(_retrieved)  # its waiter fails the same way
                raise refused
        failpoint("after_user_accepted")
        return future

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
        """Decide on a pending approval; the conversation resumes. See ``Conversations.decide``."""
        return self.conversations.decide(
            approval_id,
            decision,
            arguments_hash=arguments_hash,
            arguments=arguments,
            note=note,
            by=by,
        )

    def approvals(self) -> list[ApprovalRequested]:
        """The approval requests waiting for a decision, oldest first."""
        return self.conversations.pending_approvals()

    async def settle(self) -> None:
        """Wait until every conversation is idle or waiting for a person's decision."""
        changed = asyncio.Event()
        unsubscribe = self.conversations.subscribe(lambda _id, _event: changed.set())
        try:
            while any(c.busy for c in self.conversations.by_id.values()):
                changed.clear()
                await changed.wait()
        finally:
            unsubscribe()
        if self.conversations.journal is not None:
            await self.conversations.journal.flush()

    def unfinished(self) -> list[asyncio.Future[TurnResult]]:
        """Futures of every turn still active or queued (what a resume must finish)."""
        futures: list[asyncio.Future[TurnResult]] = []
        for conversation in self.conversations.by_id.values():
            turns = [*([conversation.active] if conversation.active else []), *conversation.inbox]
            futures.extend(turn.waiter() for turn in turns)
        return futures

    def conversation(self, conversation_id: str) -> Conversation | None:
        """The conversation's live state, or None."""
        return self.conversations.get(conversation_id)


@asynccontextmanager
async def open_runtime(
    entry: Agent,
    *,
    models: Mapping[str, ModelAdapter | ModelSlot] | ModelAdapter,
    agents: Sequence[Agent] = (),
    clock: Clock | None = None,
    tracing: bool = True,
    max_turns: int = 10,
    max_handoffs: int = 5,
    mailbox_capacity: int = 1000,
    model_attempts: int = 3,
    gc_young_threshold: int | None = None,
    store: Store | None = None,
    durability: Durability | str = Durability.BATCHED,
    snapshot_every: int = 200,
    resume: bool = True,
    model_builder: ModelBuilder | None = None,
) -> AsyncIterator[Runtime]:
    """Deploy ``entry`` and every agent it reaches, and run them for the block.

    Args:
        entry: the agent that owns new conversations.
        agents: further agents, for references by name (cycles of handoffs).
        models: an adapter (or a ready ``ModelSlot``, with candidates and a router) per
            slot name, or one adapter for every slot.
        clock: the clock for timeouts and backoff (a ``FakeClock`` in tests).
        tracing: keep trace events per conversation.
        max_turns: model turns per user message, over all agents.
        max_handoffs: handoffs per user message.
        mailbox_capacity: bound of each activation's mailbox.
        model_attempts: tries per model call for retryable errors (the slots' ``RetryPolicy``
            for the adapters given bare; a ready ``ModelSlot`` keeps its own).
        gc_young_threshold: see ``open_system`` (the CLI sets 10,000).
        store: journal every conversation to this store (durable execution); without
            one, conversations live in memory only.
        durability: ``sync``, ``batched`` or ``off`` (see ``Durability``).
        snapshot_every: records between snapshots of a conversation.
        resume: on start, continue the conversations a previous run left unfinished.
        model_builder: builds a ``provider:model`` a fork chooses for an agent (a
            candidate of the agent's slot needs none); without one, forks choose only those.

    On exit, turns in progress get a short grace to finish, then are cancelled, and the
    journal commits what it holds.
    """
    deployed = collect_agents(entry, agents)
    clock = clock or MonotonicClock()
    slot_names = sorted({a.model for a in deployed.values()})
    if isinstance(models, Mapping):
        missing = [s for s in slot_names if s not in models]
        if missing:
            raise ConfigError(
                f"no model for slot(s) {', '.join(map(repr, missing))}; pass one in `models`"
            )
        adapters = dict(models)
    else:
        adapters = dict.fromkeys(slot_names, models)
    journal: Journal[ChatMessage] | None = None
    if store is not None:
        journal = Journal(
            store,
            ChatMessage,
            clock=clock,
            durability=Durability(durability),
            snapshot_every=snapshot_every,
        )
    if journal is not None:
        journal.start()
    try:
        async with _open_agents(
            entry,
            deployed,
            adapters,
            clock=clock,
            tracing=tracing,
            max_turns=max_turns,
            max_handoffs=max_handoffs,
            mailbox_capacity=mailbox_capacity,
            model_attempts=model_attempts,
            gc_young_threshold=gc_young_threshold,
            journal=journal,
            model_builder=model_builder,
        ) as runtime:
            if journal is not None and resume:
                await runtime.conversations.resume_all()
            yield runtime
    finally:
        if journal is not None:
            # After the agents stopped: the writer commits what is pending, then ends.
            await journal.aclose()


@asynccontextmanager
async def _open_agents(
    entry: Agent,
    deployed: dict[str, Agent],
    adapters: dict[str, ModelAdapter | ModelSlot],
    *,
    clock: Clock,
    tracing: bool,
    max_turns: int,
    max_handoffs: int,
    mailbox_capacity: int,
    model_attempts: int,
    gc_young_threshold: int | None,
    journal: Journal[ChatMessage] | None,
    model_builder: ModelBuilder | None = None,
) -> AsyncIterator[Runtime]:
    async with (
        open_system(clock=clock, gc_young_threshold=gc_young_threshold) as system,
        open_shadow_runner() as shadows,
    ):
        conversations = Conversations(
            system,
            entry=entry.name,
            max_turns=max_turns,
            max_handoffs=max_handoffs,
            tracing=tracing,
            journal=journal,
        )
        retry = RetryPolicy(attempts=max(1, model_attempts))
        slots = {
            name: adapter
            if isinstance(adapter, ModelSlot)
            else ModelSlot(name, adapter, clock=clock, retry=retry)
            for name, adapter in adapters.items()
        }
        flow = FlowContext(
            conversations=conversations,
            slots=slots,
            clock=clock,
            fork_models=ForkModels(model_builder),
        )
        for name, agent in deployed.items():
            compiled = CompiledAgent(agent, slots[agent.model])
            flow.agents[name] = compiled
            table: AgentTable = system.activations(
                name, partial(AgentActor, compiled, flow), capacity=mailbox_capacity
            )
            conversations.add_agent(name, table, handoffs=[h.target for h in agent.handoff_edges])
        # Shadow copies of a rollout's calls run in tasks this runtime owns; a slot given
        # its own runner (a test's, say) keeps it.
        lent = [slot for slot in slots.values() if slot.shadows is None]
        for slot in lent:
            slot.shadows = shadows
        try:
            yield Runtime(system, conversations, flow)
        finally:
            for slot in lent:
                slot.shadows = None
            await flow.fork_models.aclose()


def _retrieved(future: asyncio.Future[TurnResult]) -> None:
    """Mark a future nobody will await as read (no "exception never retrieved")."""
    if not future.cancelled():
        future.exception()
