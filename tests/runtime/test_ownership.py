"""The baton registry: each invariant of docs/architecture.md, one focused example at a time.

The agents here are small ``ConversationActor`` subclasses whose behaviour each test writes
out, so every interleaving is explicit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
import msgspec
import pytest

from relaybaton.errors import (
    MaxTurnsExceededError,
    NotOwnerError,
    OwnershipError,
    RecursiveCallError,
    StaleEpochError,
    UndeclaredHandoffError,
)
from relaybaton.runtime import ConversationActor, Conversations, OwnerHandle, ToolScope, open_system
from relaybaton.runtime._conversation import OwnershipRecord
from relaybaton.runtime.messages import BatonPass, HandoffEvent, ReplyEvent, ToolRequest
from relaybaton.testing import FakeClock

pytestmark = pytest.mark.anyio

Behaviour = Callable[[OwnerHandle, BatonPass | None], Awaitable[None]]
ToolBehaviour = Callable[[ToolScope, ToolRequest], Awaitable[str]]


class Text(msgspec.Struct, frozen=True):
    text: str


@dataclass
class Flow:
    conversations: Conversations
    behaviours: dict[str, Behaviour]
    tools: dict[str, ToolBehaviour] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)
    errors: list[Exception] = field(default_factory=list)

    def submit(self, message_id: str, text: str = "hi", conversation_id: str = "c1"):  # type: ignore[no-untyped-def]
        return self.conversations.submit(conversation_id, message_id, Text(text))


class Scripted(ConversationActor):
    def __init__(self, name: str, flow: Flow) -> None:
        self.agent_name = name
        self.conversations = flow.conversations
        self.flow = flow

    async def on_user_turn(self, owner: OwnerHandle) -> None:
        self.flow.log.append(f"{self.agent_name} turn {owner.message_id} e{owner.epoch}")
        await self.flow.behaviours[self.agent_name](owner, None)

    async def on_handoff(self, owner: OwnerHandle, baton: BatonPass) -> None:
        self.flow.log.append(f"{self.agent_name} baton {baton.message_id} e{owner.epoch}")
        await self.flow.behaviours[self.agent_name](owner, baton)

    async def on_tool_request(self, scope: ToolScope, request: ToolRequest) -> str:
        self.flow.log.append(f"{self.agent_name} tool {request.input}")
        return await self.flow.tools[self.agent_name](scope, request)


@asynccontextmanager
async def deploy(
    edges: dict[str, list[str]],
    *,
    entry: str = "triage",
    max_turns: int = 10,
    max_handoffs: int = 5,
) -> AsyncIterator[Flow]:
    async with open_system(clock=FakeClock()) as system:
        conversations = Conversations(
            system, entry=entry, max_turns=max_turns, max_handoffs=max_handoffs
        )
        flow = Flow(conversations, {})
        for name, targets in edges.items():
            table = system.activations(name, lambda name=name: Scripted(name, flow))  # type: ignore[misc]
            conversations.add_agent(name, table, handoffs=targets)
        yield flow


def replies(text: str) -> Behaviour:
    async def behave(owner: OwnerHandle, baton: BatonPass | None) -> None:
        owner.reply(text)

    return behave


def hands_to(target: str, **options: object) -> Behaviour:
    async def behave(owner: OwnerHandle, baton: BatonPass | None) -> None:
        owner.handoff(target, **options)  # type: ignore[arg-type]

    return behave


EDGES = {"triage": ["refund", "billing"], "refund": ["triage"], "billing": []}


async def test_a_handoff_moves_the_baton_and_grows_the_epoch_by_one() -> None:
    async with deploy(EDGES) as flow:
        flow.behaviours.update(triage=hands_to("refund"), refund=replies("refunded"))
        result = await flow.submit("m1")
        conversation = flow.conversations.get("c1")
        assert conversation is not None
        assert (result.owner, result.epoch, result.text, result.error) == (
            "refund",
            1,
            "refunded",
            None,
        )
        assert conversation.ownership == [
            OwnershipRecord(owner="triage", epoch=0),
            OwnershipRecord(owner="refund", epoch=1),
        ]
        assert conversation.in_flight is None
        events = conversation.events or []
        assert [(type(e).__name__, getattr(e, "action", None)) for e in events] == [
            ("HandoffEvent", "handoff"),
            ("HandoffEvent", "accept"),
            ("ReplyEvent", None),
        ]
        assert flow.log == ["triage turn m1 e0", "refund baton m1 e1"]


async def test_a_write_with_a_stale_epoch_is_refused() -> None:
    async with deploy(EDGES) as flow:

        async def triage(owner: OwnerHandle, baton: BatonPass | None) -> None:
            owner.handoff("refund")
            for attempt in (lambda: owner.reply("too late"), lambda: owner.append(Text("x"))):
                try:
                    attempt()
                except StaleEpochError as exc:
                    flow.errors.append(exc)

        flow.behaviours.update(triage=triage, refund=replies("refunded"))
        result = await flow.submit("m1")
        assert [str(e) for e in flow.errors] == [
            "conversation 'c1': epoch 0 is stale, current is 1",
            "conversation 'c1': epoch 0 is stale, current is 1",
        ]
        assert result.replies[0].agent == "refund"
        conversation = flow.conversations.get("c1")
        assert conversation is not None
        assert Text("x") not in conversation.transcript


async def test_an_agent_that_does_not_hold_the_baton_is_refused() -> None:
    async with deploy(EDGES) as flow:
        seen: list[str] = []

        async def triage(owner: OwnerHandle, baton: BatonPass | None) -> None:
            with pytest.raises(NotOwnerError) as caught:
                flow.conversations.reply("c1", "billing", 0, "I am not the owner")
            seen.append(str(caught.value))
            owner.handoff("refund")
            with pytest.raises(NotOwnerError) as caught:
                flow.conversations.reply("c1", "billing", 1, "nor now")
            seen.append(str(caught.value))

        flow.behaviours.update(triage=triage, refund=replies("ok"))
        await flow.submit("m1")
        assert seen == [
            "conversation 'c1' is held by agent 'triage', not by 'billing'",
            "conversation 'c1' is held by a handoff in flight, not by 'billing'",
        ]


async def test_a_handoff_to_an_undeclared_agent_is_refused_and_lists_the_allowed_ones() -> None:
    async with deploy({**EDGES, "shipping": []}) as flow:

        async def triage(owner: OwnerHandle, baton: BatonPass | None) -> None:
            try:
                owner.handoff("shipping")
            except UndeclaredHandoffError as exc:
                flow.errors.append(exc)
            owner.reply("I will answer myself")

        flow.behaviours["triage"] = triage
        result = await flow.submit("m1")
        [error] = flow.errors
        assert str(error) == (
            "agent 'triage' may not hand off to 'shipping'; its declared handoffs: "
            "'billing', 'refund'"
        )
        assert isinstance(error, UndeclaredHandoffError)
        assert error.allowed == ("billing", "refund")
        assert (result.owner, result.epoch, result.text) == ("triage", 0, "I will answer myself")


async def test_an_agent_with_no_handoffs_is_told_so() -> None:
    async with deploy(EDGES, entry="billing") as flow:

        async def billing(owner: OwnerHandle, baton: BatonPass | None) -> None:
            owner.handoff("triage")

        flow.behaviours["billing"] = billing
        result = await flow.submit("m1")
        assert result.error == (
            "agent 'billing' failed: UndeclaredHandoffError: agent 'billing' may not hand off "
            "to 'triage'; its declared handoffs: none"
        )


async def test_handoffs_past_max_handoffs_end_the_turn_with_a_clear_error() -> None:
    async with deploy(EDGES, max_handoffs=2) as flow:
        flow.behaviours.update(triage=hands_to("refund"), refund=hands_to("triage"))
        result = await flow.submit("m1")
        assert result.error == (
            "agent 'triage' failed: MaxHandoffsExceededError: conversation 'c1': more than 2 "
            "handoffs for one user message; the agents may be passing the baton in a loop"
        )
        assert (result.owner, result.epoch) == ("triage", 2)
        assert flow.log == ["triage turn m1 e0", "refund baton m1 e1", "triage baton m1 e2"]


async def test_the_handoff_count_starts_again_with_each_user_message() -> None:
    async with deploy(EDGES, max_handoffs=1) as flow:
        flow.behaviours.update(triage=hands_to("refund"), refund=replies("done"))
        assert (await flow.submit("m1")).error is None
        flow.behaviours["refund"] = hands_to("triage")
        flow.behaviours["triage"] = replies("back")
        result = await flow.submit("m2")
        assert (result.error, result.text) == (None, "back")


async def test_model_turns_past_max_turns_raise() -> None:
    async with deploy(EDGES, max_turns=3) as flow:

        async def triage(owner: OwnerHandle, baton: BatonPass | None) -> None:
            for _ in range(3):
                owner.count_model_turn()
            try:
                owner.count_model_turn()
            except MaxTurnsExceededError as exc:
                flow.errors.append(exc)
                owner.fail(str(exc))

        flow.behaviours["triage"] = triage
        result = await flow.submit("m1")
        assert result.error == (
            "conversation 'c1': more than 3 model turns for one user message; raise max_turns "
            "in the flow if this is expected"
        )
        assert flow.errors[0].limit == 3  # type: ignore[attr-defined]


async def test_a_repeated_message_id_gets_the_same_result_and_is_processed_once() -> None:
    async with deploy(EDGES) as flow:
        flow.behaviours["triage"] = replies("hello")
        first = flow.submit("m1", "hi")
        second = flow.submit("m1", "hi again")
        assert first is not second  # each submitter has its own waiter
        assert await first is await second
        third = await flow.submit("m1")
        assert third is await first
        conversation = flow.conversations.get("c1")
        assert conversation is not None
        assert flow.log == ["triage turn m1 e0"]
        assert conversation.transcript == [Text("hi")]
        assert flow.conversations.duplicates == 2
        assert flow.conversations.turns_accepted == 1


async def test_a_user_turn_during_a_handoff_waits_behind_it_in_order() -> None:
    async with deploy(EDGES) as flow:
        states: list[tuple[str | None, bool]] = []
        waiting: list[object] = []

        async def triage(owner: OwnerHandle, baton: BatonPass | None) -> None:
            owner.handoff("refund")
            conversation = owner.conversation
            # The baton is in the handoff message now: nobody owns the conversation.
            states.append((conversation.owner, conversation.in_flight is not None))
            waiting.append(flow.submit("m2", "second"))
            states.append((conversation.owner, len(conversation.inbox) == 1))

        async def refund(owner: OwnerHandle, baton: BatonPass | None) -> None:
            owner.reply(f"refund answers {owner.message_id}")

        flow.behaviours.update(triage=triage, refund=refund)
        first = await flow.submit("m1", "first")
        second = await waiting[0]  # type: ignore[misc]
        assert states == [(None, True), (None, True)]
        assert flow.log == ["triage turn m1 e0", "refund baton m1 e1", "refund turn m2 e1"]
        assert (first.text, second.text) == ("refund answers m1", "refund answers m2")
        assert second.owner == "refund"


async def test_messages_are_handled_one_at_a_time_in_the_order_they_came() -> None:
    async with deploy(EDGES) as flow:
        gate = anyio.Event()

        async def triage(owner: OwnerHandle, baton: BatonPass | None) -> None:
            if owner.message_id == "m1":
                await gate.wait()
            owner.reply(owner.message_id)

        flow.behaviours["triage"] = triage
        futures = [flow.submit(f"m{i}") for i in (1, 2, 3)]
        await anyio.wait_all_tasks_blocked()
        assert flow.log == ["triage turn m1 e0"]
        gate.set()
        assert [(await f).text for f in futures] == ["m1", "m2", "m3"]


async def test_a_lease_returns_the_baton_after_its_turns() -> None:
    async with deploy(EDGES) as flow:
        flow.behaviours.update(
            triage=hands_to("refund", return_to_sender=True, lease_turns=2),
            refund=replies("refund speaking"),
        )
        first = await flow.submit("m1")
        assert (first.owner, first.epoch) == ("refund", 1)
        second = await flow.submit("m2")
        assert (second.text, second.owner, second.epoch) == ("refund speaking", "triage", 2)
        flow.behaviours["triage"] = replies("triage again")
        third = await flow.submit("m3")
        assert (third.text, third.owner) == ("triage again", "triage")
        conversation = flow.conversations.get("c1")
        assert conversation is not None
        assert [r.owner for r in conversation.ownership] == ["triage", "refund", "triage"]
        assert conversation.leases == ()
        returned = [e for e in conversation.events or [] if isinstance(e, HandoffEvent)][-1]
        assert (returned.action, returned.sender, returned.target, returned.epoch) == (
            "return",
            "refund",
            "triage",
            2,
        )


async def test_an_agent_called_as_a_tool_keeps_the_caller_owner_and_cannot_reply_or_hand_off() -> (
    None
):
    async with deploy({**EDGES, "policy": ["billing"]}) as flow:
        refused: list[str] = []

        async def policy(scope: ToolScope, request: ToolRequest) -> str:
            conversation = flow.conversations.get(scope.conversation_id)
            assert conversation is not None
            for attempt in (
                lambda: flow.conversations.reply(
                    scope.conversation_id, "policy", conversation.epoch, "hijack"
                ),
                lambda: flow.conversations.handoff(
                    scope.conversation_id, "policy", conversation.epoch, "billing"
                ),
            ):
                try:
                    attempt()
                except NotOwnerError as exc:
                    refused.append(str(exc))
            scope.charge("policy", "m", input_tokens=3, output_tokens=2, cost_usd=0.5)
            return "30 days"

        async def triage(owner: OwnerHandle, baton: BatonPass | None) -> None:
            answer = await flow.conversations.ask_agent("c1", "triage", "policy", "call-1", "days?")
            owner.reply(f"policy says {answer}")

        flow.behaviours["triage"] = triage
        flow.tools["policy"] = policy
        result = await flow.submit("m1")
        assert (result.text, result.owner, result.epoch) == ("policy says 30 days", "triage", 0)
        assert refused == [
            "conversation 'c1' is held by agent 'triage', not by 'policy'",
            "conversation 'c1' is held by agent 'triage', not by 'policy'",
        ]
        conversation = flow.conversations.get("c1")
        assert conversation is not None
        assert conversation.usage_by_agent()["policy"].cost_usd == 0.5
        assert not hasattr(ToolScope, "reply")
        assert not hasattr(ToolScope, "handoff")


async def test_an_agent_tool_call_that_would_wait_on_itself_is_refused() -> None:
    async with deploy({**EDGES, "policy": []}) as flow:
        with pytest.raises(RecursiveCallError) as caught:
            await flow.conversations.ask_agent(
                "c1", "policy", "triage", "call-1", "q", chain=("triage",)
            )
        assert str(caught.value) == (
            "agent 'triage' is already waiting in the call chain triage -> policy; "
            "calling it again would deadlock"
        )
        assert flow.log == []


async def test_a_turn_that_returns_without_replying_ends_with_an_error_result() -> None:
    async with deploy(EDGES) as flow:

        async def silent(owner: OwnerHandle, baton: BatonPass | None) -> None:
            return None

        flow.behaviours["triage"] = silent
        result = await flow.submit("m1")
        assert result.error == "agent 'triage' ended its turn without replying or handing off"
        assert result.replies == ()
        conversation = flow.conversations.get("c1")
        assert conversation is not None
        assert isinstance(conversation.events[-1], ReplyEvent)  # type: ignore[index]
        assert conversation.active is None


async def test_a_crashing_handler_ends_the_turn_with_an_error_and_the_next_message_runs() -> None:
    async with deploy(EDGES) as flow:

        async def triage(owner: OwnerHandle, baton: BatonPass | None) -> None:
            if owner.message_id == "m1":
                raise RuntimeError("boom")
            owner.reply("fine again")

        flow.behaviours["triage"] = triage
        first = flow.submit("m1")
        second = flow.submit("m2")
        assert (await first).error == "agent 'triage' failed: RuntimeError: boom"
        assert (await second).text == "fine again"


async def test_a_receiver_that_crashes_before_taking_the_baton_still_ends_the_turn() -> None:
    async with deploy(EDGES) as flow:

        async def refund(owner: OwnerHandle, baton: BatonPass | None) -> None:
            raise ValueError("refund is down")

        flow.behaviours.update(triage=hands_to("refund"), refund=refund)
        result = await flow.submit("m1")
        assert result.error == "agent 'refund' failed: ValueError: refund is down"
        assert (result.owner, result.epoch) == ("refund", 1)


async def test_a_baton_that_was_taken_cannot_be_taken_again() -> None:
    async with deploy(EDGES) as flow:
        flow.behaviours.update(triage=hands_to("refund"), refund=replies("ok"))
        await flow.submit("m1")
        conversation = flow.conversations.get("c1")
        assert conversation is not None
        stale = BatonPass(
            conversation_id="c1", sender="triage", target="refund", epoch=1, message_id="m1"
        )
        with pytest.raises(OwnershipError, match="the baton of epoch 1 was taken already"):
            flow.conversations.accept(stale, "refund")


async def test_a_closed_conversation_refuses_new_messages() -> None:
    from relaybaton.runtime import ConversationStatus

    async with deploy(EDGES) as flow:
        conversation = flow.conversations.open("c1")
        conversation.status = ConversationStatus.CLOSED
        with pytest.raises(OwnershipError, match="conversation 'c1' is closed; start a new one"):
            flow.submit("m1")
