"""A fork's own model and instructions: a slot's candidate, a restart, the journal's fold."""

from __future__ import annotations

import pytest

from relaybaton import Agent, open_runtime
from relaybaton.actors._operations import Operations
from relaybaton.actors.routing import Candidate, ModelSlot
from relaybaton.adapters import ModelAdapter, ModelRequest, UserMessage
from relaybaton.errors import ConfigError
from relaybaton.runtime import MonotonicClock
from relaybaton.runtime._fold import replay
from relaybaton.runtime._journal_events import JournalRecord
from relaybaton.runtime._operator_events import Forked
from relaybaton.runtime._store import MemoryStore
from relaybaton.testing import ScriptedModel

pytestmark = pytest.mark.anyio

ANA = "person:ana"


def _said(request: ModelRequest) -> str:
    return [m.text for m in request.messages if isinstance(m, UserMessage)][-1]


def model(name: str) -> ScriptedModel:
    return ScriptedModel(lambda r: f"{name} [{r.instructions}]: {_said(r)}", name=name)


async def test_a_fork_may_choose_a_candidate_of_the_agents_slot_without_a_builder() -> None:
    fast, deep = model("fast"), model("deep")
    slot = ModelSlot(
        "m",
        fast,
        clock=MonotonicClock(),
        candidates=[Candidate(fast, name="quick"), Candidate(deep, name="thorough")],
    )
    agent = Agent(name="triage", model="m", instructions="Flow's.")
    async with open_runtime(agent, models={"m": slot}) as runtime:
        assert (await runtime.send("c", "hi")).text == "fast [Flow's.]: hi"
        ops = Operations(runtime)
        await ops.fork("c", ANA, upto=2, new_id="f", models={"triage": "thorough"})
        assert (await runtime.send("f", "again")).text == "deep [Flow's.]: again"
        await ops.fork("c", ANA, upto=2, new_id="g", instructions={"triage": "Mine."})
        assert (await runtime.send("g", "again")).text == "fast [Mine.]: again"
        assert (await runtime.send("c", "still")).text == "fast [Flow's.]: still"
        with pytest.raises(ConfigError, match=r"models\.triage: .*not a candidate of slot 'm'"):
            await ops.fork("c", ANA, upto=2, new_id="h", models={"triage": "openai:gpt-5.2"})
        assert runtime.conversation("h") is None


async def test_a_restart_replays_the_forks_choice_from_the_journal() -> None:
    store = MemoryStore()
    flows = model("flows")
    builds: list[str] = []

    def build(slot: str, model_id: str) -> ModelAdapter:
        builds.append(model_id)
        return model(model_id)

    agent = Agent(name="triage", model="m", instructions="Flow's.")
    async with open_runtime(
        agent, models={"m": flows}, store=store, durability="sync", model_builder=build
    ) as runtime:
        await runtime.send("c", "hi")
        await Operations(runtime).fork(
            "c",
            ANA,
            upto=2,
            new_id="f",
            models={"triage": "simulated:other"},
            instructions={"triage": "Replay."},
        )
    # A new process: the fork's choice comes back from its journal, and is built again.
    async with open_runtime(
        agent,
        models={"m": flows},
        store=store,
        durability="sync",
        model_builder=build,
        snapshot_every=1,
    ) as runtime:
        assert (await runtime.send("f", "again")).text == "simulated:other [Replay.]: again"
        assert (await runtime.send("c", "you?")).text == "flows [Flow's.]: you?"
        assert builds == ["simulated:other", "simulated:other"]
        conversation = runtime.conversation("f")
        assert conversation is not None
        journal = runtime.conversations.journal
        assert journal is not None
        await journal.flush()
        # After a snapshot too (snapshot_every=1), the fold rebuilds the same choice.
        rebuilt = await journal.load("f", entry="triage")
        assert rebuilt is not None
        assert rebuilt.control is not None
        assert rebuilt.control.fork_models == {"triage": "simulated:other"}
        assert rebuilt.control.fork_instructions == {"triage": "Replay."}
        assert rebuilt.control.chose


def test_a_fork_record_of_an_older_journal_chooses_nothing() -> None:
    # Journals written before forks could choose decode with empty choices.
    record = JournalRecord(
        conversation_id="f",
        seq=1,
        epoch=0,
        at=0.0,
        event=Forked(by=ANA, source="c", upto=0, owner="triage", items=[]),
    )
    conversation = replay("f", [record], entry="triage")
    assert conversation.control is not None
    assert not conversation.control.chose
    assert conversation.control.fork_models == {}
