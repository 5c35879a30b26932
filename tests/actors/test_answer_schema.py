"""A turn asked for a schema answers JSON that fits it, or fails: never an unchecked reply."""

from __future__ import annotations

import json
from typing import Any

import anyio
import jsonschema
import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from relaybaton.actors import Agent, open_runtime
from relaybaton.actors._structured import schema_problems
from relaybaton.adapters import ModelRequest, UserMessage
from relaybaton.runtime import TurnResult
from relaybaton.testing import ScriptedModel, ScriptItem

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"category": {"type": "string"}, "urgent": {"type": "boolean"}},
    "required": ["category", "urgent"],
}

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=6,
)
_fitting = st.fixed_dictionaries(
    {"category": st.text(max_size=8), "urgent": st.booleans()},
    optional={"note": st.text(max_size=8)},
)
# An answer: prose, any JSON (rarely fitting), or JSON that fits.
_answer = st.one_of(
    st.text(max_size=20),
    _json.map(lambda v: msgspec.json.encode(v).decode()),
    _fitting.map(lambda v: msgspec.json.encode(v).decode()),
)


def _fits(text: str) -> bool:
    try:
        jsonschema.validate(json.loads(text), SCHEMA)
    except (ValueError, jsonschema.ValidationError):
        return False
    return True


def _run(answers: list[str]) -> tuple[TurnResult, list[ModelRequest]]:
    replies = iter(answers)

    def answer(request: ModelRequest) -> ScriptItem:
        return next(replies)

    model = ScriptedModel(answer, name="scripted:general")

    async def turn() -> TurnResult:
        front = Agent(name="front", model="general")
        async with open_runtime(front, models=model, tracing=False) as runtime:
            return await runtime.submit("c1", "sort this", message_id="m1", answer_schema=SCHEMA)

    return anyio.run(turn), model.requests


@settings(max_examples=80, deadline=None)
@given(first=_answer, second=_answer)
def test_the_reply_fits_the_schema_or_the_turn_fails_after_one_correction(
    first: str, second: str
) -> None:
    result, requests = _run([first, second])
    assert all(r.response_format == SCHEMA for r in requests)
    if _fits(first):
        assert (result.error, result.text, len(requests)) == (None, first, 1)
        return
    assert len(requests) == 2  # one correction, naming the problems
    correction = requests[1].messages[-1]
    assert isinstance(correction, UserMessage)
    assert correction.text.startswith("Your answer must be one JSON value")
    if _fits(second):
        assert (result.error, result.text) == (None, second)
    else:
        assert result.error is not None
        assert "outside its output schema twice" in result.error


def test_a_ref_that_points_nowhere_is_a_problem_not_a_crash() -> None:
    schema = {"properties": {"a": {"$ref": "#/nowhere"}}}
    [problem] = schema_problems({"a": 1}, schema)
    assert problem.startswith("the schema cannot be applied: PointerToNowhere")
