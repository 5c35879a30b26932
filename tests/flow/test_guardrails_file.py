"""Guardrails, tool rules and output schemas in a flow file: checked when loaded, then run."""

from __future__ import annotations

import pytest

from relaybaton.errors import FlowError
from relaybaton.flow import open_flow, parse_flow

pytestmark = pytest.mark.anyio

MODELS = '[models.general]\nmodel = "simulated:general"\nlatency_ms = 0\n'


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def problems(text: str) -> list[str]:
    with pytest.raises(FlowError) as caught:
        parse_flow(text, "flow.toml")
    return [f"{p.path}: {p.message}" for p in caught.value.problems]


def test_every_problem_of_guardrails_and_rules_is_named_with_its_path_and_fix() -> None:
    text = (
        MODELS
        + '[guardrails.pii]\non = ["inputs"]\npii = ["ssn"]\naction = "mask"\n'
        + '[guardrails.re]\npatterns = ["("]\n'
        + '[guardrails.none]\non = ["output"]\n'
        + '[[agents]]\nname = "a"\nmodel = "general"\noutput_schema = "nope.json"\n'
    )
    found = problems(text)
    assert found[:5] == [
        'guardrails.pii.on[0]: "inputs" is not a stage; use input, output, tool_arguments, '
        "tool_result",
        'guardrails.pii.pii[0]: "ssn" is not a PII kind; use card, email',
        'guardrails.pii.action: "mask" is not an action; use "block" or "redact"',
        "guardrails.re: guardrail 're': pattern '(' is not a regular expression: missing ), "
        "unterminated subpattern at position 0",
        "guardrails.none: guardrail 'none' checks nothing; give pii, max_length, min_length, "
        "deny, patterns, json_schema, function or agent",
    ]
    assert found[5].startswith("agents[0].output_schema: no schema file nope.json next to")


async def test_a_flow_file_guardrail_answers_the_customer_before_any_model() -> None:
    flow = parse_flow(
        MODELS
        + '[guardrails.topics]\ndeny = ["password"]\n'
        + 'message = "I can\'t help with passwords."\n'
        + '[[agents]]\nname = "a"\nmodel = "general"\ninstructions = "Knowledge: Hi."\n'
    )
    async with open_flow(flow, gc_young_threshold=None) as runtime:
        result = await runtime.send("c1", "What is the admin password?")
        usage = runtime.conversation("c1").usage_total()  # type: ignore[union-attr]
    assert result.text == "I can't help with passwords."
    assert usage.calls == 0
