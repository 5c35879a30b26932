"""The baton's invariants (docs/architecture.md 1-7, 9) under random interleavings, for real.

Four agents run on one ``ScriptedModel`` whose script is a function: each model call takes
the next decision from a per-conversation plan that hypothesis chose (reply, hand off along
a declared or an undeclared edge, call an agent as a tool, run a function tool that fails
or waits on a gate, crash). Rules submit user messages (new and repeated ids), run the loop
one step or until it settles, release gates, hold every model call at the model's gate,
move the fake clock (ask timeouts), stop activations, and try stale and undeclared writes
directly on the registry. After every step the invariants are checked on
``Runtime.conversations``; at teardown everything is released and every submitted message
must have exactly one result.

The flow::

    triage --handoff--> billing --handoff--> triage
    triage --handoff (return to sender, lease of 2 turns)--> tech
    triage, billing, tech --tool--> research      (research has `meddle` and `wait`)
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter, defaultdict, deque

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from relaybaton.actors import (
    Agent,
    Runtime,
    ToolCallEvent,
    ToolContext,
    function_tool,
    handoff,
    open_runtime,
)
from relaybaton.adapters import (
    AssistantMessage,
    ModelRequest,
    ToolResultMessage,
    UserMessage,
)
from relaybaton.errors import NotOwnerError, StaleEpochError, UndeclaredHandoffError
from relaybaton.runtime import TurnResult
from relaybaton.runtime.messages import HandoffEvent, ReplyEvent
from relaybaton.testing import FakeClock, ScriptedModel, tool_call
from tests.properties._driver import LoopDriver, settle
from tests.properties._profile import machine_settings

CONVERSATIONS = ("c0", "c1", "c2")
OWNERS = ("triage", "billing", "tech")
EDGES = {"triage": {"billing", "tech"}, "billing": {"triage"}, "tech": set(), "research": set()}
LEASE_TURNS = 2
MAX_TURNS = 4
MAX_HANDOFFS = 2
ASK_TIMEOUT = 5.0
MODEL = "scripted"

DECISIONS = (
    "reply",
    "to_billing",
    "to_tech",
    "to_triage",
    "research",
    "wait",
    "explode",
    "crash",
    "research_and_wait",
    "meddle",
    "ask_billing",
)


class ModelCrashError(Exception):
    """A model adapter failing with something that is not a ``ModelError``: the turn crashes."""


class BatonMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.driver = LoopDriver()
        self.clock = FakeClock()
        self.call_ids = itertools.count()
        self.message_ids = itertools.count()
        self.plan: defaultdict[str, deque[str]] = defaultdict(deque)
        self.gates: list[asyncio.Event] = []
        self.model_gate = asyncio.Event()
        self.model_gate.set()
        self.accepted: defaultdict[str, list[str]] = defaultdict(list)
        self.futures: dict[str, asyncio.Future[TurnResult]] = {}
        self.duplicates: list[tuple[str, asyncio.Future[TurnResult]]] = []
        self.model_calls: Counter[tuple[str, str]] = Counter()
        self.owner_calls: Counter[tuple[str, str]] = Counter()
        # Agent-tool calls made by owners: call id -> (caller, epoch when it asked).
        self.asked: dict[str, tuple[str, int]] = {}
        self.meddled = 0
        self.violations: list[str] = []
        self.stops: list[asyncio.Task[None]] = []
        self.runtime: Runtime | None = None

    # --- the flow -----------------------------------------------------------------------

    def script(self, request: ModelRequest) -> object:
        agent = request.metadata.agent
        cid = request.metadata.conversation_id
        conversation = self.runtime.conversation(cid) if self.runtime else None
        if conversation is None:
            self.violations.append(f"model called for unknown conversation {cid!r}")
            return "?"
        # A callee's request starts from the caller's input, not from the transcript (whose
        # user messages carry their ids).
        first = request.messages[0] if request.messages else None
        as_callee = isinstance(first, UserMessage) and not first.message_id
        owning = conversation.owner == agent
        if not as_callee and not owning:
            self.violations.append(
                f"{agent} called its model for {cid} as owner while {conversation.owner} owns it"
            )
        if not as_callee and conversation.active is not None:
            self.owner_calls[(cid, conversation.active.message_id)] += 1
        decision = self.plan[cid].popleft() if self.plan[cid] else "reply"
        if decision == "crash":
            return ModelCrashError(f"{agent} crashes in {cid}")
        self.model_calls[(agent, cid)] += 1
        call_id = f"call-{next(self.call_ids)}"
        if decision == "reply":
            return f"{agent} answers in {cid}"
        if decision.startswith("to_"):
            return tool_call(f"transfer_to_{decision[3:]}", call_id, reason="plan")
        if decision in {"research", "research_and_wait"}:
            if not as_callee:
                self.asked[call_id] = (agent, conversation.epoch)
            ask = tool_call("research", call_id, input="look it up")
            if decision == "research":
                return ask
            return [ask, tool_call("wait", f"{call_id}-w")]
        if decision == "ask_billing":
            if not as_callee:
                self.asked[call_id] = (agent, conversation.epoch)
            return tool_call("billing", call_id, input="a second opinion")
        return tool_call(decision, call_id)

    def build_agents(self) -> Agent:
        gates = self.gates

        @function_tool
        async def wait(context: ToolContext) -> str:
            """Wait until the test releases this call."""
            gate = asyncio.Event()
            gates.append(gate)
            await gate.wait()
            return "released"

        @function_tool
        def explode() -> str:
            """Fail, as user code does."""
            raise RuntimeError("the tool exploded")

        @function_tool
        def meddle(context: ToolContext) -> str:
            """As a callee, try to act for the caller's conversation."""
            assert self.runtime is not None
            conversations = self.runtime.conversations
            conversation = conversations.get(context.conversation_id)
            assert conversation is not None
            for attempt in (
                lambda: conversations.reply(
                    context.conversation_id, context.agent, conversation.epoch, "hijacked"
                ),
                lambda: conversations.handoff(
                    context.conversation_id, context.agent, conversation.epoch, "triage"
                ),
            ):
                try:
                    attempt()
                except NotOwnerError:
                    continue
                self.violations.append(f"callee {context.agent} acted for the conversation")
            self.meddled += 1
            return "refused, as it should be"

        research = Agent(name="research", tools=(wait, meddle))
        ask = research.as_tool(timeout=ASK_TIMEOUT)
        tools = (ask, wait, explode)
        tech = Agent(name="tech", tools=tools)
        billing = Agent(name="billing", tools=tools, handoffs=("triage",))
        return Agent(
            name="triage",
            # billing is both a handoff target and a tool of triage: a tool call that timed
            # out leaves it busy while triage may hand the conversation to it.
            tools=(*tools, billing.as_tool(timeout=ASK_TIMEOUT)),
            handoffs=(
                handoff(billing),
                handoff(tech, return_to_sender=True, lease_turns=LEASE_TURNS),
            ),
        ), billing

    @initialize()
    def open(self) -> None:
        model = ScriptedModel(self.script, name=MODEL, gate=self.model_gate)
        triage, billing = self.build_agents()
        self.runtime = self.driver.open(
            open_runtime(
                triage,
                agents=[billing],
                models=model,
                clock=self.clock,
                max_turns=MAX_TURNS,
                max_handoffs=MAX_HANDOFFS,
            )
        )

    def teardown(self) -> None:
        try:
            if self.runtime is not None:
                self.release_everything()
                self.check_final_state()
        finally:
            self.driver.close()

    # --- rules ----------------------------------------------------------------------------

    @rule(
        cid=st.sampled_from(CONVERSATIONS),
        decisions=st.lists(st.sampled_from(DECISIONS), max_size=4),
    )
    def submit(self, cid: str, decisions: list[str]) -> None:
        message_id = f"m{next(self.message_ids)}"
        self.plan[cid].extend(decisions)

        async def submit() -> asyncio.Future[TurnResult]:
            assert self.runtime is not None
            return self.runtime.submit(cid, f"user says {message_id}", message_id=message_id)

        self.futures[message_id] = self.driver.call(submit)
        self.accepted[cid].append(message_id)

    @precondition(lambda self: self.futures)
    @rule(data=st.data())
    def submit_a_duplicate(self, data: st.DataObject) -> None:
        cid = data.draw(st.sampled_from([c for c in CONVERSATIONS if self.accepted[c]]))
        message_id = data.draw(st.sampled_from(self.accepted[cid]))

        async def submit() -> asyncio.Future[TurnResult]:
            assert self.runtime is not None
            return self.runtime.submit(cid, "the same again", message_id=message_id)

        before = self.runtime.conversations.turns_accepted
        self.duplicates.append((message_id, self.driver.call(submit)))
        assert self.runtime.conversations.turns_accepted == before, "a repeat was accepted"

    @rule()
    def run_one_step(self) -> None:
        self.driver.call(lambda: asyncio.sleep(0))

    @rule()
    def run_until_settled(self) -> None:
        self.driver.call(settle)

    @precondition(lambda self: any(not g.is_set() for g in self.gates))
    @rule(data=st.data())
    def release_a_tool_gate(self, data: st.DataObject) -> None:
        waiting = [g for g in self.gates if not g.is_set()]
        data.draw(st.sampled_from(waiting)).set()
        self.driver.call(settle)

    @rule(hold=st.booleans())
    def hold_or_release_model_calls(self, hold: bool) -> None:
        if hold:
            self.model_gate.clear()
        else:
            self.model_gate.set()
            self.driver.call(settle)

    @rule(seconds=st.sampled_from([1.0, 3.0, ASK_TIMEOUT + 1]))
    def advance_clock(self, seconds: float) -> None:
        self.driver.call(lambda: self.clock.advance(seconds))

    @rule(agent=st.sampled_from([*OWNERS, "research"]), cid=st.sampled_from(CONVERSATIONS))
    def stop_an_activation(self, agent: str, cid: str) -> None:
        assert self.runtime is not None
        table = self.runtime.conversations.agents[agent]

        async def stop() -> None:
            # Not awaited here: the activation may be waiting on a gate; teardown waits.
            self.stops.append(asyncio.ensure_future(table.ref(cid).stop()))

        self.driver.call(stop)

    @rule(cid=st.sampled_from(CONVERSATIONS))
    def stale_epochs_are_refused(self, cid: str) -> None:
        assert self.runtime is not None
        conversations = self.runtime.conversations
        conversation = conversations.get(cid)
        if conversation is None or conversation.epoch == 0:
            return
        before = (conversation.owner, conversation.epoch, len(conversation.transcript))
        stale = conversation.epoch - 1
        for agent in OWNERS:
            with pytest.raises(StaleEpochError):
                conversations.reply(cid, agent, stale, "late")
            with pytest.raises(StaleEpochError):
                conversations.append(cid, agent, stale, UserMessage(text="late"))
            with pytest.raises(StaleEpochError):
                conversations.handoff(cid, agent, stale, "billing")
        after = (conversation.owner, conversation.epoch, len(conversation.transcript))
        assert after == before

    @rule(cid=st.sampled_from(CONVERSATIONS))
    def undeclared_handoffs_are_refused(self, cid: str) -> None:
        assert self.runtime is not None
        conversations = self.runtime.conversations
        conversation = conversations.get(cid)
        if conversation is None or conversation.owner is None or conversation.active is None:
            return
        owner = conversation.owner
        before = (owner, conversation.epoch, len(conversation.transcript))
        for target in sorted({*OWNERS, "research", "nobody"} - EDGES[owner]):
            with pytest.raises(UndeclaredHandoffError):
                conversations.handoff(cid, owner, conversation.epoch, target)
        after = (conversation.owner, conversation.epoch, len(conversation.transcript))
        assert after == before

    # --- invariants -----------------------------------------------------------------------

    @invariant()
    def nothing_broke_a_rule_inside_a_turn(self) -> None:
        assert self.violations == []

    @invariant()
    def one_owner_and_growing_epochs(self) -> None:
        for conversation in self.opened():
            # Invariant 1: the baton is held by an agent or by the handoff message, not both.
            assert (conversation.owner is None) != (conversation.in_flight is None)
            if conversation.in_flight is not None:
                assert conversation.in_flight.epoch == conversation.epoch
            # Invariant 4: epochs only grow, and the record ends at the current one.
            epochs = [r.epoch for r in conversation.ownership]
            assert epochs == sorted(set(epochs)), epochs
            assert epochs[-1] == conversation.epoch
            assert conversation.ownership[-1].owner == conversation.owner

    @invariant()
    def history_moves_along_declared_edges_and_only_the_owner_speaks(self) -> None:
        for conversation in self.opened():
            replay_events(conversation, self.asked)

    @invariant()
    def user_messages_are_taken_once_in_acceptance_order(self) -> None:
        for conversation in self.opened():
            ids = [m.message_id for m in conversation.transcript if isinstance(m, UserMessage)]
            accepted = self.accepted[conversation.id]
            assert ids == accepted[: len(ids)]
            # Results come in acceptance order too: a later turn never overtakes.
            done = [self.futures[m].done() for m in accepted]
            assert done == sorted(done, reverse=True)

    @invariant()
    def tool_results_answer_earlier_calls_once(self) -> None:
        for conversation in self.opened():
            check_tool_pairs(conversation.transcript, complete=False)

    @invariant()
    def every_model_call_is_charged_to_the_conversation(self) -> None:
        for conversation in self.opened():
            for agent in [*OWNERS, "research"]:
                entry = conversation.ledger.get((agent, MODEL))
                charged = entry.calls if entry else 0
                assert charged == self.model_calls[(agent, conversation.id)], agent

    @invariant()
    def turns_stay_within_their_bounds(self) -> None:
        assert all(count <= MAX_TURNS for count in self.owner_calls.values())
        for conversation in self.opened():
            handoffs = 0
            for item in conversation.transcript:
                if isinstance(item, UserMessage):
                    handoffs = 0
                elif isinstance(item, ToolResultMessage) and item.content.startswith(
                    "Transferred to"
                ):
                    handoffs += 1
                    assert handoffs <= MAX_HANDOFFS

    @invariant()
    def results_are_one_reply_or_one_error(self) -> None:
        for message_id, future in self.futures.items():
            if future.done():
                check_result(future.result(), message_id)
        for message_id, future in self.duplicates:
            original = self.futures[message_id]
            if future.done():
                assert original.done()
                assert future.result() == original.result()

    # --- helpers --------------------------------------------------------------------------

    def opened(self):  # type: ignore[no-untyped-def]
        assert self.runtime is not None
        return [c for cid in CONVERSATIONS if (c := self.runtime.conversation(cid)) is not None]

    def release_everything(self) -> None:
        self.plan.clear()  # from now on every model call answers
        self.model_gate.set()
        for _ in range(50):
            for gate in self.gates:
                gate.set()
            self.driver.call(lambda: self.clock.advance(ASK_TIMEOUT + 1))
            self.driver.call(settle)
            if all(f.done() for f in self.futures.values()) and all(g.is_set() for g in self.gates):
                break

    def check_final_state(self) -> None:
        # Invariant 7: never a hang. Invariant 5: each accepted message got one result and
        # sits once in the transcript; a repeat got the same result.
        pending = [m for m, f in self.futures.items() if not f.done()]
        assert pending == [], f"turns that never ended: {pending}"
        self.results_are_one_reply_or_one_error()
        for cid in CONVERSATIONS:
            conversation = self.runtime.conversation(cid) if self.runtime else None
            if conversation is None:
                assert not self.accepted[cid]
                continue
            ids = [m.message_id for m in conversation.transcript if isinstance(m, UserMessage)]
            assert ids == self.accepted[cid]
            assert conversation.active is None
            assert not conversation.inbox
            check_tool_pairs(conversation.transcript, complete=True)
        assert self.violations == []


def check_result(result: TurnResult, message_id: str) -> None:
    assert result.message_id == message_id
    if result.error is None:
        assert len(result.replies) == 1, result
    else:
        assert result.replies == (), result


def check_tool_pairs(transcript: list[object], *, complete: bool) -> None:
    """Every result answers an earlier call, once; when complete, every call is answered."""
    open_calls: set[str] = set()
    answered: set[str] = set()
    for item in transcript:
        if isinstance(item, AssistantMessage):
            for call in item.tool_calls:
                assert call.id not in open_calls, call.id
                assert call.id not in answered, call.id
                open_calls.add(call.id)
        elif isinstance(item, ToolResultMessage):
            assert item.call_id in open_calls, f"result for unknown call {item.call_id}"
            open_calls.discard(item.call_id)
            answered.add(item.call_id)
        elif complete:
            # A provider rejects a history where a call's result does not follow it before
            # the next user or assistant turn.
            assert not open_calls, f"calls without results before {item!r}: {open_calls}"
    if complete:
        assert not open_calls, f"calls without results: {open_calls}"


def replay_events(conversation, asked: dict[str, tuple[str, int]]) -> None:  # type: ignore[no-untyped-def]
    """Replay the trace: invariants 2 (only the owner speaks), 3 (edges), 6 and 9.

    Invariant 6: when an agent-tool call asked by the owner comes back (its tool event is
    recorded), the caller still owns the conversation at the epoch it asked under.
    """
    owner: str | None = "triage"
    epoch = 0
    pending: HandoffEvent | None = None
    lease: int | None = None
    expect_return: str | None = None
    for event in conversation.events or ():
        if isinstance(event, HandoffEvent):
            if event.action == "handoff":
                assert expect_return is None, "a lease ended but the baton did not go back"
                assert event.sender == owner
                assert event.target in EDGES[event.sender], f"undeclared edge {event}"
                assert event.epoch == epoch + 1
                owner, epoch, pending = None, event.epoch, event
            elif event.action == "accept":
                assert pending is not None
                assert (event.sender, event.target, event.epoch) == (
                    pending.sender,
                    pending.target,
                    pending.epoch,
                )
                owner, pending = event.target, None
                if (event.sender, event.target) == ("triage", "tech"):
                    lease = LEASE_TURNS
            elif pending is not None:
                # A baton its target could not take (stopping) bounces back to the sender.
                assert event.action == "return"
                assert (event.sender, event.target) == (pending.target, pending.sender)
                assert event.epoch == epoch + 1
                owner, epoch, pending = event.target, event.epoch, None
            else:
                assert event.action == "return"
                assert event.target == expect_return, f"unexpected return {event}"
                assert event.sender == owner
                assert event.epoch == epoch + 1
                owner, epoch, lease, expect_return = event.target, event.epoch, None, None
        elif isinstance(event, ToolCallEvent) and event.call_id in asked:
            caller, asked_epoch = asked[event.call_id]
            assert event.agent == caller
            assert (owner, epoch) == (caller, asked_epoch), (
                f"{caller} asked {event.tool} at epoch {asked_epoch}; at the answer "
                f"{owner} owns it at epoch {epoch}"
            )
        elif isinstance(event, ReplyEvent):
            assert expect_return is None, "a lease ended but the baton did not go back"
            assert event.agent == owner, f"{event.agent} spoke while {owner} owns it"
            assert event.epoch == epoch
            if lease is not None:
                lease -= 1
                if lease == 0:
                    expect_return = "triage"
    assert expect_return is None, "a lease ended but the baton did not go back"
    assert (owner, epoch) == (conversation.owner, conversation.epoch)


BatonMachine.TestCase.settings = machine_settings(max_examples=400, steps=60)
TestBaton = BatonMachine.TestCase
