"""An agent used as a tool with an output schema answers data, or its caller hears it failed."""

from __future__ import annotations

import json

import pytest

from relaybaton.actors import Agent, open_runtime
from relaybaton.adapters import ModelRequest, ToolResultMessage
from relaybaton.testing import ScriptedModel, ScriptItem, tool_call

pytestmark = pytest.mark.anyio

SCHEMA = {
    "type": "object",
    "required": ["findings"],
    "properties": {"findings": {"type": "array", "items": {"type": "string"}}},
}


def _flow(scanner_answers: list[str]) -> tuple[Agent, ScriptedModel, ScriptedModel]:
    scanner = Agent(name="scanner", model="scan", output_schema=SCHEMA)
    lead = Agent(name="lead", model="lead", tools=(scanner.as_tool("scanner"),))
    answers = iter(scanner_answers)

    def scan(request: ModelRequest) -> ScriptItem:
        return next(answers)

    lead_model = ScriptedModel([tool_call("scanner", input="scan: eval(x)"), "Reviewed."])
    return lead, lead_model, ScriptedModel(scan)


async def test_the_schema_is_asked_for_and_a_fitting_answer_is_the_tool_result() -> None:
    lead, lead_model, scan_model = _flow(['{"findings": ["eval of input"]}'])
    async with open_runtime(lead, models={"lead": lead_model, "scan": scan_model}) as runtime:
        await runtime.send("c1", "review eval(x)")
    [request] = scan_model.requests
    assert request.response_format == SCHEMA  # the bare schema: each adapter wraps it
    result = lead_model.requests[1].messages[-1]
    assert isinstance(result, ToolResultMessage)
    assert (result.is_error, json.loads(result.content)) == (False, {"findings": ["eval of input"]})


async def test_an_answer_outside_the_schema_is_sent_back_once_then_the_call_fails() -> None:
    lead, lead_model, scan_model = _flow(["Looks fine to me.", '{"findings": "none"}'])
    async with open_runtime(lead, models={"lead": lead_model, "scan": scan_model}) as runtime:
        await runtime.send("c1", "review eval(x)")
        dead = runtime.system.dead_letters.total
    correction = scan_model.requests[1].messages[-1]
    assert "must be one JSON value that fits this JSON Schema" in correction.text  # type: ignore[union-attr]
    assert "Problems: the answer is not JSON" in correction.text  # type: ignore[union-attr]
    result = lead_model.requests[1].messages[-1]
    assert isinstance(result, ToolResultMessage)
    assert result.is_error
    assert result.content == (
        "agent 'scanner' answered outside its output schema twice: "
        "'none' is not of type 'array' - at `$.findings`"
    )
    assert dead == 0
