"""Shadow traffic changes nothing a conversation holds.

The same user messages run twice through one agent: once on a plain slot, once on a slot
whose rollout is in its shadow stage, with a new model that answers differently, asks for
tool calls, fails or hangs. Transcripts, replies, ledgers and tool runs must be the same,
while the new model did get its copies.
"""

from __future__ import annotations

import asyncio

import anyio
from hypothesis import given, settings
from hypothesis import strategies as st

from relaybaton.actors import Agent, FunctionTool, open_runtime
from relaybaton.actors.routing import ModelSlot
from relaybaton.adapters import ModelRequest
from relaybaton.errors import ModelOverloadedError
from relaybaton.runtime import MonotonicClock
from relaybaton.testing import ScriptedModel, ScriptItem, tool_call


def _incumbent() -> ScriptedModel:
    def answer(request: ModelRequest) -> ScriptItem:
        last = request.messages[-1]
        return f"echo {getattr(last, 'text', '')}"

    return ScriptedModel(answer, name="old", cost_per_call=0.01)


def _candidate(behaviour: str) -> ScriptedModel:
    def answer(request: ModelRequest) -> ScriptItem:
        if behaviour == "tools":
            return tool_call("lookup", key="shadow")
        if behaviour == "error":
            return ModelOverloadedError("down")
        return "a different answer"

    gate = asyncio.Event() if behaviour == "hang" else None  # never set: the copy hangs
    return ScriptedModel(answer, name="new", cost_per_call=0.5, gate=gate)


async def _run(messages: list[tuple[int, str]], behaviour: str | None) -> tuple[object, int]:
    runs: list[str] = []

    def lookup(key: str) -> str:
        """Look a key up (counts every run, so a shadow's tool call would show)."""
        runs.append(key)
        return key

    agent = Agent(name="a", model="general", tools=(FunctionTool(lookup),))
    clock = MonotonicClock()
    slot = ModelSlot("general", _incumbent(), clock=clock)
    new = _candidate(behaviour) if behaviour is not None else None
    if new is not None:
        slot.start_rollout(new)
    async with open_runtime(agent, models={"general": slot}, clock=clock) as runtime:
        for index, (conversation, text) in enumerate(messages):
            await runtime.send(f"c{conversation}", text, message_id=f"m{index}")
            await anyio.wait_all_tasks_blocked()
        held = {
            cid: (list(c.transcript), c.usage_total(), c.owner, c.epoch)
            for cid, c in sorted(runtime.conversations.by_id.items())
        }
    if new is not None:
        assert len(new.requests) == len(messages)  # every call was copied
    return held, len(runs)


@settings(max_examples=25, deadline=None)
@given(
    messages=st.lists(
        st.tuples(st.integers(0, 3), st.text(min_size=1, max_size=20)), min_size=1, max_size=8
    ),
    behaviour=st.sampled_from(["text", "tools", "error", "hang"]),
)
def test_shadow_calls_never_alter_a_conversation(
    messages: list[tuple[int, str]], behaviour: str
) -> None:
    plain = asyncio.run(_run(messages, None))
    shadowed = asyncio.run(_run(messages, behaviour))
    assert shadowed == plain
    assert plain[1] == 0
