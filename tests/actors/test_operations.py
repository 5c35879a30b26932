"""A person's actions on live conversations: pause, breakpoints, notes, the baton, forks."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from relaybaton import Agent, ToolContext, handoff, open_runtime
from relaybaton.actors import FunctionTool, Runtime
from relaybaton.actors._operations import Operations
from relaybaton.adapters import AssistantMessage, ModelRequest, ToolResultMessage, UserMessage
from relaybaton.errors import ConflictError, OwnershipError
from relaybaton.runtime import ConversationStatus
from relaybaton.runtime._fold import replay
from relaybaton.runtime._store import MemoryStore
from relaybaton.runtime.messages import OperatorEvent
from relaybaton.testing import ScriptedModel, tool_call

pytestmark = pytest.mark.anyio

ANA = "person:ana"


def script(request: ModelRequest) -> object:
    """Triage hands refunds to billing; billing refunds, then says so."""
    last = request.messages[-1]
    agent = request.metadata.agent
    if agent == "triage":
        if isinstance(last, UserMessage) and "refund" in last.text:
            return tool_call("transfer_to_billing", "h1")
        return f"triage: {getattr(last, 'text', '')}"
    if isinstance(last, ToolResultMessage) and last.name == "issue_refund":
        return f"billing: {last.content}"
    user = [m for m in request.messages if isinstance(m, UserMessage)][-1]
    if "refund" in user.text:
        return tool_call("issue_refund", f"r-{len(request.messages)}", amount=150)
    return f"billing heard: {user.text}"


class Effects:
    def __init__(self) -> None:
        self.refunds: list[str] = []

    def tool(self) -> FunctionTool:
        async def issue_refund(amount: float, context: ToolContext) -> str:
            """Refund an amount."""
            self.refunds.append(context.idempotency_key)
            return f"refunded {amount:g}"

        return FunctionTool(issue_refund)


@pytest.fixture
def effects() -> Effects:
    return Effects()


@pytest.fixture
def model() -> ScriptedModel:
    return ScriptedModel(script)


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
async def runtime(
    effects: Effects, model: ScriptedModel, store: MemoryStore
) -> AsyncIterator[Runtime]:
    billing = Agent(name="billing", model="m", tools=(effects.tool(),))
    triage = Agent(name="triage", model="m", handoffs=(handoff(billing),))
    async with open_runtime(triage, models={"m": model}, store=store, durability="sync") as rt:
        yield rt


def model_calls(model: ScriptedModel) -> int:
    return len(model.requests)


async def test_a_paused_conversation_stops_before_its_next_model_call_until_resumed(
    runtime: Runtime, model: ScriptedModel
) -> None:
    ops = Operations(runtime)
    await runtime.send("c", "hello")
    await ops.pause("c", ANA, reason="checking", epoch=0)
    pending = runtime.submit("c", "hello again")
    await runtime.settle()
    conversation = runtime.conversation("c")
    assert conversation is not None
    assert conversation.control is not None
    assert conversation.status is ConversationStatus.PAUSED
    assert conversation.control.halted == "model"
    assert model_calls(model) == 1
    assert not pending.done()
    await ops.resume("c", ANA)
    assert (await pending).text == "triage: hello again"
    assert conversation.status is ConversationStatus.ACTIVE
    actions = [e.action for e in conversation.events or () if isinstance(e, OperatorEvent)]
    assert actions == ["pause", "halt", "resume"]


async def test_a_tool_breakpoint_halts_before_the_tool_and_it_runs_once_on_resume(
    runtime: Runtime, effects: Effects
) -> None:
    ops = Operations(runtime)
    await runtime.send("c", "hi")
    await ops.set_breakpoints("c", ANA, ["tool:issue_refund"])
    pending = runtime.submit("c", "refund please")
    await runtime.settle()
    conversation = runtime.conversation("c")
    assert conversation is not None
    assert conversation.control is not None
    assert conversation.control.halted == "tool:issue_refund"
    assert conversation.owner == "billing"
    assert effects.refunds == []
    await ops.resume("c", ANA)
    assert (await pending).text == "billing: refunded 150"
    assert len(effects.refunds) == 1


async def test_an_agent_breakpoint_halts_when_that_agent_takes_the_baton(
    runtime: Runtime, model: ScriptedModel
) -> None:
    ops = Operations(runtime)
    await runtime.send("c", "hi")
    await ops.set_breakpoints("c", ANA, ["agent:billing"])
    pending = runtime.submit("c", "refund please")
    await runtime.settle()
    conversation = runtime.conversation("c")
    assert conversation is not None
    assert conversation.control is not None
    assert (conversation.owner, conversation.epoch) == ("billing", 1)
    assert conversation.control.halted == "agent:billing"
    assert [r.metadata.agent for r in model.requests] == ["triage", "triage"]
    await ops.resume("c", ANA)
    assert (await pending).text == "billing: refunded 150"


async def test_a_breakpoint_for_an_agent_the_flow_lacks_is_refused_naming_the_agents(
    runtime: Runtime,
) -> None:
    await runtime.send("c", "hi")
    with pytest.raises(OwnershipError, match="its agents: billing, triage"):
        await Operations(runtime).set_breakpoints("c", ANA, ["agent:nobody"])
    with pytest.raises(OwnershipError, match="not tool:<name> or agent:<name>"):
        await Operations(runtime).set_breakpoints("c", ANA, ["refund"])


async def test_a_note_reaches_the_next_model_call_marked_as_the_operators(
    runtime: Runtime, model: ScriptedModel
) -> None:
    ops = Operations(runtime)
    await runtime.send("c", "hello")
    await ops.add_note("c", ANA, "the customer is a VIP")
    conversation = runtime.conversation("c")
    assert conversation is not None
    before = len(conversation.transcript)
    assert before == 2  # pending notes wait outside the transcript until a model call
    await runtime.send("c", "again")
    sent = model.requests[-1].messages
    notes = [m for m in sent if isinstance(m, UserMessage) and "VIP" in m.text]
    assert len(notes) == 1
    assert notes[0].text.startswith("[Note from operator person:ana; not from the user]")
    assert sent.index(notes[0]) == len(sent) - 1  # just before the call, after the user


async def test_a_person_takes_the_baton_replies_and_hands_it_to_another_agent(
    runtime: Runtime, effects: Effects, store: MemoryStore
) -> None:
    ops = Operations(runtime)
    await runtime.send("c", "hi")
    await ops.set_breakpoints("c", ANA, ["tool:issue_refund"])
    pending = runtime.submit("c", "refund please")
    await runtime.settle()
    conversation = runtime.conversation("c")
    assert conversation is not None
    epoch = await ops.take_baton("c", ANA, epoch=conversation.epoch)
    assert (conversation.owner, conversation.epoch) == (ANA, epoch)
    # The call the agent never ran is recorded as not run: the history stays valid.
    closing = conversation.transcript[-1]
    assert isinstance(closing, ToolResultMessage)
    assert closing.is_error
    await ops.reply("c", ANA, "I refunded it myself.", epoch=epoch)
    result = await pending
    assert (result.text, result.owner) == ("I refunded it myself.", ANA)
    assert effects.refunds == []
    # While the person holds it, a user message waits for them.
    waiting = runtime.submit("c", "thanks")
    await runtime.settle()
    assert not waiting.done()
    assert conversation.waiting_for_a_person
    given = await ops.give_baton("c", ANA, "triage", epoch=epoch)
    assert given == epoch + 1
    assert (await waiting).text == "triage: thanks"
    assert [r.owner for r in conversation.ownership] == ["triage", "billing", ANA, "triage"]
    # The fold rebuilds exactly what the live path did.
    await runtime.settle()
    rebuilt = await runtime.conversations.journal.load("c", entry="triage")  # type: ignore[union-attr]
    assert rebuilt is not None
    assert (rebuilt.owner, rebuilt.epoch, rebuilt.status) == (
        conversation.owner,
        conversation.epoch,
        conversation.status,
    )
    assert rebuilt.transcript == conversation.transcript
    assert rebuilt.control == conversation.control


async def test_acting_on_an_old_epoch_is_a_conflict_that_says_what_changed(
    runtime: Runtime,
) -> None:
    ops = Operations(runtime)
    await runtime.send("c", "refund please")  # triage hands off to billing: epoch 1
    with pytest.raises(ConflictError) as refused:
        await ops.take_baton("c", ANA, epoch=0)
    assert "it is at epoch 1, owned by billing; you acted on epoch 0" in str(refused.value)
    assert "the baton moved since: epoch 1: billing" in refused.value.changed
    await ops.take_baton("c", ANA, epoch=1)
    with pytest.raises(ConflictError, match="person:ana holds it"):
        await ops.take_baton("c", "person:bo", epoch=2)
    with pytest.raises(ConflictError, match="no user message waiting for a reply"):
        await ops.reply("c", ANA, "hello?", epoch=2)


async def test_taking_the_baton_from_a_working_agent_asks_to_pause_first(
    effects: Effects, store: MemoryStore
) -> None:
    import asyncio

    gate = asyncio.Event()
    held = ScriptedModel(["done"], gate=gate)
    async with open_runtime(
        Agent(name="triage", model="m"), models={"m": held}, store=store
    ) as runtime:
        pending = runtime.submit("c", "hi")
        for _ in range(5):
            await asyncio.sleep(0)
        with pytest.raises(ConflictError, match="pause it, then take the baton"):
            await Operations(runtime).take_baton("c", ANA, epoch=0)
        gate.set()
        assert (await pending).text == "done"


async def test_a_fork_copies_the_transcript_up_to_a_point_and_leaves_the_source_alone(
    runtime: Runtime, model: ScriptedModel
) -> None:
    ops = Operations(runtime)
    await runtime.send("c", "hello")
    await runtime.send("c", "second")
    source = runtime.conversation("c")
    assert source is not None
    before = list(source.transcript)
    fork = await ops.fork("c", ANA, upto=2, new_id="c-fork")
    assert fork.transcript == before[:2]
    assert fork.control is not None
    assert fork.control.forked_from == "c"
    result = await runtime.send("c-fork", "replayed")
    assert result.text == "triage: replayed"
    assert source.transcript == before
    sent = model.requests[-1].messages
    assert [getattr(m, "text", "") for m in sent] == ["hello", "triage: hello", "replayed"]
    with pytest.raises(ConflictError, match="exists already"):
        await ops.fork("c", ANA, upto=1, new_id="c-fork")


async def test_a_fork_may_not_cut_a_tool_call_from_its_result(runtime: Runtime) -> None:
    await runtime.send("c", "refund please")
    conversation = runtime.conversation("c")
    assert conversation is not None
    cut = next(
        i + 1
        for i, m in enumerate(conversation.transcript)
        if isinstance(m, AssistantMessage) and m.tool_calls
    )
    with pytest.raises(ConflictError, match="asks for tool calls whose results come after it"):
        await Operations(runtime).fork("c", ANA, upto=cut)


async def test_a_paused_conversation_is_still_paused_after_a_restart(
    effects: Effects, model: ScriptedModel, store: MemoryStore
) -> None:
    billing = Agent(name="billing", model="m", tools=(effects.tool(),))
    triage = Agent(name="triage", model="m", handoffs=(handoff(billing),))
    async with open_runtime(triage, models={"m": model}, store=store, durability="sync") as rt:
        await rt.send("c", "hi")
        await Operations(rt).set_breakpoints("c", ANA, ["tool:issue_refund"])
        rt.submit("c", "refund please")
        await rt.settle()
    async with open_runtime(triage, models={"m": model}, store=store, durability="sync") as rt:
        await rt.settle()
        conversation = rt.conversation("c")
        assert conversation is not None
        assert conversation.control is not None
        assert conversation.status is ConversationStatus.PAUSED
        assert conversation.control.halted == "tool:issue_refund"
        assert effects.refunds == []
        [future] = rt.unfinished()
        await Operations(rt).resume("c", ANA)
        assert (await future).text == "billing: refunded 150"
        assert len(effects.refunds) == 1


def test_the_fold_of_a_fork_record_needs_no_source() -> None:
    # A fork's journal stands alone: its first record carries the copied items.
    from relaybaton.runtime._journal_events import JournalRecord
    from relaybaton.runtime._operator_events import Forked

    items = [UserMessage(text="hello")]
    record = JournalRecord(
        conversation_id="f",
        seq=1,
        epoch=0,
        at=0.0,
        event=Forked(by=ANA, source="gone", upto=1, owner="billing", items=items),
    )
    conversation = replay("f", [record], entry="triage")
    assert (conversation.owner, conversation.transcript) == ("billing", items)
