"""A flow's `[models.<slot>.routing]`: candidates, rules and budgets, from the flow file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from relaybaton.actors.routing import ModelSlot, Router
from relaybaton.adapters import ImagePart, ModelCallRecord
from relaybaton.cli import main
from relaybaton.errors import FlowError
from relaybaton.flow import open_flow, parse_flow

pytestmark = pytest.mark.anyio

CANDIDATES = """
[[models.assistant.routing.candidates]]
name = "general"
model = "simulated:general"
tier = 1
price_in_per_1k = 0.0001
price_out_per_1k = 0.0004

[[models.assistant.routing.candidates]]
name = "reasoning"
model = "simulated:reasoning"
tier = 3
price_in_per_1k = 0.003
price_out_per_1k = 0.012

[[models.assistant.routing.candidates]]
name = "multimodal"
model = "simulated:multimodal"
tier = 2
vision = true
price_in_per_1k = 0.001
price_out_per_1k = 0.004

[[models.assistant.routing.candidates]]
name = "domain"
model = "simulated:domain"
tier = 3
price_in_per_1k = 0.002
price_out_per_1k = 0.008
"""

FLOW = (
    """
[flow]
entry = "a"

[models.assistant]
model = "simulated:general"
latency_ms = 1

[models.assistant.routing]
rules = [
  { when = "complexity <= 3", use = "general" },
  { when = "complexity <= 7", use = "reasoning" },
  { when = "vision", use = "multimodal" },
  { use = "domain" },
]
"""
    + CANDIDATES
    + """
[[agents]]
name = "a"
model = "assistant"
instructions = "Knowledge: routed answers."
"""
)

SIMPLE = "hello"
COMPLEX = (
    "Why does the invoice total differ? Explain step by step and compare the two payment "
    "plans over the year."
)
HARDEST = (
    "Prove that the algorithm terminates, derive its cost, and explain each step: the list "
    "holds 12, 40, 7, 19, 3 and 88 items across 4 shards, 9 queues and 2 regions. "
) * 4
IMAGE = ImagePart(media_type="image/png", data_base64="iVBORw0KGgo=")


def _listen(slot: object) -> list[ModelCallRecord]:
    assert isinstance(slot, ModelSlot)
    records: list[ModelCallRecord] = []
    slot.listeners.append(records.append)
    return records


async def test_rules_route_simple_complex_vision_and_other_calls_to_their_models() -> None:
    async with open_flow(parse_flow(FLOW), gc_young_threshold=None) as runtime:
        slot = runtime.slots["assistant"]
        records = _listen(slot)
        assert isinstance(slot, ModelSlot)
        assert isinstance(slot.router, Router)
        assert [c.name for c in slot.candidates] == ["general", "reasoning", "multimodal", "domain"]
        simple = await runtime.send("c1", SIMPLE)
        complex_ = await runtime.send("c2", COMPLEX)
        hardest = await runtime.send("c3", HARDEST)
        # A simple call with an image: general and reasoning cannot see it, so their rules
        # fall through to the vision rule.
        seeing = await runtime.send("c4", "what is this?", images=[IMAGE])
    assert [r.text for r in (simple, complex_, hardest, seeing)] == ["routed answers."] * 4
    assert [(r.conversation_id, r.adapter, r.outcome) for r in records] == [
        ("c1", "simulated:general", "ok"),
        ("c2", "simulated:reasoning", "ok"),
        ("c3", "simulated:domain", "ok"),
        ("c4", "simulated:multimodal", "ok"),
    ]


async def test_a_budget_running_short_steps_down_to_the_cheapest_candidate() -> None:
    flow = parse_flow(
        FLOW.replace(
            "[models.assistant.routing]\n",
            "[models.assistant.routing]\nbudget_tokens_per_conversation = 100000\n"
            "step_down_at = 0.0001\n",
        )
    )
    async with open_flow(flow, gc_young_threshold=None) as runtime:
        records = _listen(runtime.slots["assistant"])
        await runtime.send("c1", COMPLEX)
        await runtime.send("c1", COMPLEX)  # past 0.01% of the budget: the cheapest model
        await runtime.send("c2", COMPLEX)  # another conversation has its own budget
    assert [(r.conversation_id, r.adapter) for r in records] == [
        ("c1", "simulated:reasoning"),
        ("c1", "simulated:general"),
        ("c2", "simulated:reasoning"),
    ]


def _problems(text: str) -> str:
    with pytest.raises(FlowError) as caught:
        parse_flow(text)
    return str(caught.value)


def test_a_rule_an_earlier_one_covers_is_a_load_error_naming_both() -> None:
    text = _problems(
        FLOW.replace(
            '{ when = "complexity <= 3", use = "general" },',
            '{ when = "complexity > 5", use = "reasoning" },\n'
            '  { when = "complexity > 15", use = "domain" },',
        )
    )
    assert (
        "models.assistant.routing.rules[1]: can never match: rules[0] (complexity > 5) already "
        "takes every call with complexity > 15; put rules[1] before rules[0] or narrow rules[0]"
    ) in text


def test_two_rules_of_one_priority_that_overlap_are_a_load_error_naming_both() -> None:
    text = _problems(
        FLOW.replace(
            '{ when = "complexity <= 3", use = "general" },\n'
            '  { when = "complexity <= 7", use = "reasoning" },',
            '{ when = "complexity <= 3", use = "general", priority = 1 },\n'
            '  { when = "not tools", use = "reasoning", priority = 1 },',
        ).replace('{ use = "domain" }', '{ use = "domain", priority = -1 }')
    )
    assert "1 problem(s)" in text
    assert (
        "models.assistant.routing.rules[1]: overlaps rules[0] (complexity <= 3) with the same "
        "priority 1: both take calls with complexity <= 3 and vision and not tools but send them "
        "to 'general' and 'reasoning'; give one a higher priority or narrow one"
    ) in text


def test_a_rule_using_no_candidate_and_a_misspelt_condition_get_suggestions() -> None:
    text = _problems(
        FLOW.replace('use = "reasoning"', 'use = "reasoing"').replace(
            'when = "vision"', 'when = "visoin"'
        )
    )
    assert (
        'models.assistant.routing.rules[1].use: no candidate named "reasoing" (did you mean '
        '"reasoning"?); candidates: general, reasoning, multimodal, domain'
    ) in text
    assert (
        "models.assistant.routing.rules[2].when: cannot read condition `visoin` "
        '(did you mean "vision"?)'
    ) in text


def test_a_misspelt_candidate_field_is_named_with_its_path() -> None:
    text = _problems(FLOW.replace("tier = 1\n", "tire = 1\n"))
    assert (
        'models.assistant.routing.candidates[0]: unknown field `tire` (did you mean "tier"?); '
        "allowed: name, model, base_url, api_key_env, p95_s, tier, vision, tools, context_tokens, "
        "price_in_per_1k, "
        "price_out_per_1k, latency_ms, error_rate, seed"
    ) in text


def test_the_slot_model_must_be_a_candidate_and_fallbacks_do_not_mix_with_routing() -> None:
    text = _problems(
        FLOW.replace(
            'model = "simulated:general"\nlatency_ms = 1\n',
            'model = "simulated:generl"\nlatency_ms = 1\nfallbacks = ["simulated:domain"]\n',
        )
    )
    assert (
        'models.assistant.model: "simulated:generl" is not the model of any routing candidate '
        '(did you mean "simulated:general"?)'
    ) in text
    assert "models.assistant.fallbacks: a slot with a routing table lists its other" in text


def _budget_flow(tmp_path: Path) -> str:
    path = tmp_path / "budget.toml"
    path.write_text(
        FLOW.replace(
            "[models.assistant.routing]\n",
            "[models.assistant.routing]\nbudget_tokens_per_conversation = 100000\n"
            "step_down_at = 0.0001\n",
        )
    )
    return str(path)


def test_run_json_shows_each_calls_route_and_the_budget_step_down(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = _budget_flow(tmp_path)
    status = main(["run", flow, "-m", COMPLEX, "-m", COMPLEX, "--conversation", "c1", "--json"])
    out, err = capsys.readouterr()
    assert (status, err) == (0, "")
    calls = [e for e in json.loads(out)["events"] if e["kind"] == "model_call"]
    assert [(c["model"], c["route"]["candidate"], c["route"]["policy"]) for c in calls] == [
        ("simulated:reasoning", "reasoning", "rules"),
        ("simulated:general", "general", "budget"),
    ]
    assert calls[0]["route"]["reason"] == "rule rules[1] (complexity <= 7)"
    assert calls[0]["route"]["stepped_down"] is False
    assert calls[1]["route"]["stepped_down"] is True
    assert calls[1]["route"]["reason"].startswith("budget: conversation c1 tokens ")
    assert calls[1]["route"]["reason"].endswith("stepped down to the cheapest model general")


def test_run_prints_the_budget_step_down_in_the_trace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = _budget_flow(tmp_path)
    status = main(["run", flow, "-m", COMPLEX, "-m", COMPLEX, "--conversation", "c1"])
    out, _ = capsys.readouterr()
    assert status == 0
    lines = out.splitlines()
    models = [line for line in lines if " model " in line]
    assert models[0].endswith("via rules")
    assert models[1].endswith("via budget")
    [budget] = [line for line in lines if "] budget " in line]
    assert lines.index(budget) == lines.index(models[1]) + 1
    assert "stepped down to the cheapest model general" in budget
