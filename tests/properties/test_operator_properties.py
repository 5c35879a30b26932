"""Properties of what people do to a conversation (``runtime/_operator.py``).

Random runs mix user messages with pauses, resumes, breakpoints, notes, a person taking the
baton, replying and handing it back, stale actions and forks (some choosing another model
and instructions for an agent, then spoken to). After every step the baton's
invariants of ``docs/architecture.md`` hold (one owner, epochs only grow, a person's turn
runs no agent), a refused action changes nothing, and at the end the journal's fold
rebuilds every conversation exactly as the live path left it.
"""

from __future__ import annotations

import asyncio

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from relaybaton import Agent, ToolContext, handoff, open_runtime
from relaybaton.actors import FunctionTool, Runtime
from relaybaton.actors._operations import Operations
from relaybaton.adapters import AssistantMessage, ModelRequest, ToolResultMessage, UserMessage
from relaybaton.errors import ConflictError, OwnershipError
from relaybaton.runtime import Conversation
from relaybaton.runtime._fold import snapshot_state
from relaybaton.runtime._operator_events import is_person
from relaybaton.runtime._store import MemoryStore
from relaybaton.testing import ScriptedModel, ScriptItem, tool_call
from tests.properties._profile import machine_settings

ACTIONS = st.sampled_from(
    [
        "say",
        "refund",
        "pause",
        "resume",
        "break_tool",
        "break_agent",
        "clear_breaks",
        "note",
        "take",
        "take_stale",
        "reply",
        "give_triage",
        "give_billing",
        "fork",
        "fork_choosing",
    ]
)

OTHER = "scripted:other"


def script(request: ModelRequest) -> ScriptItem:
    last = request.messages[-1]
    user = [
        m for m in request.messages if isinstance(m, UserMessage) and m.message_id[:5] != "note-"
    ]
    text = user[-1].text if user else ""
    if request.metadata.agent == "triage":
        if isinstance(last, UserMessage) and "refund" in text:
            return tool_call("transfer_to_billing", f"h{len(request.messages)}")
        return f"triage: {text}"
    if isinstance(last, ToolResultMessage) and last.name == "issue_refund":
        return f"billing: {last.content}"
    if "refund" in text and not isinstance(last, ToolResultMessage):
        return tool_call("issue_refund", f"r{len(request.messages)}", amount=150)
    return f"billing: {text}"


async def issue_refund(amount: float, context: ToolContext) -> str:
    """Refund an amount."""
    return f"refunded {amount:g}"


def state(conversation: Conversation) -> bytes:
    """Everything the fold must rebuild, encoded for comparison."""
    snap = snapshot_state(conversation)
    return msgspec.msgpack.encode(msgspec.structs.replace(snap, finished={}))


def check_invariants(conversation: Conversation) -> None:
    # 1. one owner: an owner, or a baton in flight, never both.
    assert (conversation.owner is None) == (conversation.in_flight is not None)
    # 4. epochs only grow, and the last ownership record is the current epoch.
    epochs = [r.epoch for r in conversation.ownership]
    assert epochs == sorted(epochs)
    assert epochs[-1] == conversation.epoch
    # A person's turn runs no agent: it is parked until they reply or hand it back.
    if is_person(conversation.owner) and conversation.active is not None:
        assert conversation.parked


async def act(ops: Operations, runtime: Runtime, action: str, step: int) -> None:
    c = runtime.conversation("c")
    epoch = c.epoch if c is not None else 0
    person = "person:ana"
    match action:
        case "say":
            runtime.submit("c", f"hello {step}")
        case "refund":
            runtime.submit("c", f"refund {step}")
        case "pause":
            await ops.pause("c", person, epoch=epoch)
        case "resume":
            await ops.resume("c", person)
        case "break_tool":
            await ops.set_breakpoints("c", person, ["tool:issue_refund"])
        case "break_agent":
            await ops.set_breakpoints("c", person, ["agent:billing"])
        case "clear_breaks":
            await ops.set_breakpoints("c", person, [])
        case "note":
            await ops.add_note("c", person, f"note {step}")
        case "take":
            await ops.take_baton("c", person, epoch=epoch)
        case "take_stale":
            await ops.take_baton("c", "person:bo", epoch=epoch - 1)
        case "reply":
            await ops.reply("c", person, f"person says {step}", epoch=epoch)
        case "give_triage":
            await ops.give_baton("c", person, "triage", epoch=epoch)
        case "give_billing":
            await ops.give_baton("c", person, "billing", epoch=epoch)
        case "fork":
            size = len(c.transcript) if c is not None else 0
            await ops.fork("c", person, upto=size, new_id=f"f{step}")
        case "fork_choosing":
            size = len(c.transcript) if c is not None else 0
            fork = await ops.fork(
                "c",
                person,
                upto=size,
                new_id=f"f{step}",
                models={"triage": OTHER},
                instructions={"billing": "Be brief."},
            )
            runtime.submit(fork.id, f"replay {step}")


def _other_answer(request: ModelRequest) -> str:
    return f"other: {request.instructions}"


async def run(actions: list[str]) -> None:
    store = MemoryStore()
    billing = Agent(name="billing", model="m", tools=(FunctionTool(issue_refund),))
    triage = Agent(name="triage", model="m", handoffs=(handoff(billing),))
    model = ScriptedModel(script, keep_requests=False)
    other = ScriptedModel(_other_answer, name=OTHER, keep_requests=False)
    async with open_runtime(
        triage,
        models={"m": model},
        store=store,
        durability="sync",
        model_builder=lambda _slot, model_id: other if model_id == OTHER else model,
    ) as rt:
        ops = Operations(rt)
        rt.submit("c", "hello")
        await rt.settle()
        for step, action in enumerate(actions):
            before = rt.conversation("c")
            encoded = state(before) if before is not None else b""
            try:
                await act(ops, rt, action, step)
            except (ConflictError, OwnershipError):
                after = rt.conversation("c")
                assert (state(after) if after is not None else b"") == encoded, action
            await rt.settle()
            for conversation in rt.conversations.by_id.values():
                check_invariants(conversation)
        journal = rt.conversations.journal
        assert journal is not None
        await journal.flush()
        for conversation_id, live in rt.conversations.by_id.items():
            rebuilt = await journal.load(conversation_id, entry="triage")
            assert rebuilt is not None, conversation_id
            assert state(rebuilt) == state(live), conversation_id
            control = live.control
            if control is not None and control.chose:  # the fork's choice, journaled with it
                assert control.fork_models == {"triage": OTHER}
                assert rebuilt.control is not None
                assert rebuilt.control.chose
                last = live.transcript[-1]
                assert isinstance(last, AssistantMessage)
                assert last.text.startswith("other: ")
            else:  # the source and every other conversation keep their own model
                assert not any(
                    isinstance(m, AssistantMessage) and m.text.startswith("other: ")
                    for m in live.transcript
                ), conversation_id


@machine_settings(max_examples=60, steps=1)
@given(actions=st.lists(ACTIONS, max_size=14))
def test_operator_actions_keep_the_baton_rules_and_replay_exactly(actions: list[str]) -> None:
    asyncio.run(run(actions))
