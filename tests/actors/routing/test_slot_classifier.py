"""The slot classifier: a model call through a slot decides the task features a router uses."""

from __future__ import annotations

import pytest

from relaybaton.actors.routing import Candidate, HeuristicClassifier, ModelSlot, Router, Rule
from relaybaton.actors.routing._features import SlotClassifier
from relaybaton.actors.routing._router import Decision
from relaybaton.adapters import (
    ModelCallRecord,
    ModelRequest,
    RequestMetadata,
    RetryPolicy,
    UserMessage,
)
from relaybaton.errors import AuthenticationError
from relaybaton.testing import FakeClock, ScriptedModel, ScriptItem

pytestmark = pytest.mark.anyio

REQUEST = ModelRequest(
    instructions="Help the customer.",
    messages=(UserMessage(text="hello there"),),
    metadata=RequestMetadata(agent="triage", conversation_id="c1"),
)


def _routed(verdicts: list[ScriptItem]) -> tuple[ModelSlot, ScriptedModel, list[ModelCallRecord]]:
    clock = FakeClock()
    judge = ScriptedModel(verdicts, name="judge")
    judge_slot = ModelSlot("cheap", judge, clock=clock, retry=RetryPolicy(attempts=1))
    records: list[ModelCallRecord] = []
    judge_slot.listeners.append(records.append)
    small = Candidate(ScriptedModel(lambda _: "from small", name="small"), name="small")
    big = Candidate(ScriptedModel(lambda _: "from big", name="big"), name="big", tier=3)
    router = Router(
        [small, big],
        rules=[
            Rule("complexity <= 3", "small", index=0),
            Rule('domain == "legal"', "big", index=1),
            Rule("", "small", index=2),
        ],
    )
    slot = ModelSlot(
        "general",
        small.adapter,
        clock=clock,
        candidates=[small, big],
        router=router,
        classifier=SlotClassifier(judge_slot),
    )
    return slot, judge, records


async def test_the_models_verdict_routes_a_call_the_heuristic_would_send_elsewhere() -> None:
    assert HeuristicClassifier().classify(REQUEST).complexity <= 3  # the heuristic says small
    slot, judge, records = _routed(['{"complexity": 9, "domain": "legal"}'])
    routes: list[Decision] = []
    response = await slot.call(REQUEST, agent="triage", routes=routes)
    assert response.message.text == "from big"
    assert routes[0].reason == 'rule rules[1] (domain == "legal")'
    [probe] = judge.requests
    assert [m.text for m in probe.messages if isinstance(m, UserMessage)] == ["hello there"]
    assert probe.max_output_tokens == 40
    assert probe.response_format is not None
    assert probe.metadata.conversation_id == "c1"
    assert [(r.agent, r.slot, r.conversation_id) for r in records] == [
        ("classifier", "cheap", "c1")
    ]


async def test_an_out_of_range_verdict_is_clamped() -> None:
    classifier = SlotClassifier(
        ModelSlot("cheap", ScriptedModel(['{"complexity": 42, "domain": ""}']), clock=FakeClock())
    )
    features = await classifier.aclassify(REQUEST)
    assert (features.complexity, features.domain) == (10, "general")


@pytest.mark.parametrize(
    "verdict",
    [
        AuthenticationError("bad key", status=401),
        "I think it is hard",
        '{"complexity": "high"}',
    ],
    ids=["model error", "not json", "wrong type"],
)
async def test_a_failed_or_unreadable_verdict_falls_back_to_the_heuristic(
    verdict: ScriptItem,
) -> None:
    slot, _, _ = _routed([verdict])
    classifier = slot.classifier
    assert isinstance(classifier, SlotClassifier)
    features = await classifier.aclassify(REQUEST)
    assert features == HeuristicClassifier().classify(REQUEST)
    assert classifier.failures == 1
    slot.classifier = SlotClassifier(
        ModelSlot(
            "cheap", ScriptedModel([verdict]), clock=FakeClock(), retry=RetryPolicy(attempts=1)
        )
    )
    response = await slot.call(REQUEST)
    assert response.message.text == "from small"  # the call itself never fails for it


def test_the_synchronous_classify_is_the_heuristics_answer() -> None:
    slot, judge, _ = _routed([])
    assert isinstance(slot.classifier, SlotClassifier)
    assert slot.classifier.classify(REQUEST) == HeuristicClassifier().classify(REQUEST)
    assert judge.requests == []  # no model call on the synchronous path
