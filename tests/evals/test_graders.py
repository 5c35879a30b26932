"""Graders of words, of JSON, by a model judge and by a Python function; their specs."""

from __future__ import annotations

from pathlib import Path

import pytest

from relaybaton.adapters import ModelAdapter
from relaybaton.errors import ConfigError
from relaybaton.evals import (
    EvalItem,
    FunctionGrader,
    Grade,
    GraderSpec,
    JsonSchemaGrader,
    ModelGrader,
    Sample,
    SimilarityGrader,
    StringGrader,
    Trace,
    TraceTurn,
    create_graders,
)
from relaybaton.flow._file import resolve_function
from relaybaton.testing import ScriptedModel, tool_call

pytestmark = pytest.mark.anyio


def sample(reply: str, expected: str | dict[str, object] | None = None) -> Sample:
    turn = TraceTurn(user="q", replies=(reply,), agents=("a",), error=None, latency_s=0.01)
    trace = Trace(
        conversation_id="c", turns=(turn,), events=(), owner="a", status="active",
        cost_usd=0.0, input_tokens=0, output_tokens=0,
    )  # fmt: skip
    return Sample(item=EvalItem(id="i", messages=("q",), expected=expected), trace=trace)


async def test_string_checks_read_a_fixed_value_or_the_items_expected_value() -> None:
    s = sample("Your Refund of $40 is done.", {"word": "refund"})
    assert (await StringGrader("c", "contains", value="Refund").grade(s)).passed
    assert not (await StringGrader("c", "contains", expected="word").grade(s)).passed
    assert (await StringGrader("c", "contains", expected="word", ignore_case=True).grade(s)).passed
    assert (await StringGrader("c", "not_contains", value="sorry").grade(s)).passed
    assert (await StringGrader("c", "regex", value=r"\$\d+").grade(s)).passed
    assert (await StringGrader("c", "equals", value=" your refund of $40 is done.",
                               ignore_case=True).grade(s)).passed  # fmt: skip
    missing = await StringGrader("c", "equals", expected="answer").grade(s)
    assert not missing.passed
    assert "no expected string named 'answer'" in missing.reason
    with pytest.raises(ConfigError, match="`value` is not a regex"):
        StringGrader("c", "regex", value="(")


async def test_similarity_comes_from_the_libraries_and_orders_close_above_far() -> None:
    reference = "the refund of forty dollars was issued to your card"
    close = sample("the refund of forty dollars was issued to the card", reference)
    far = sample("please hold while I check the weather", reference)
    for kind in ("fuzzy", "bleu", "rouge1", "rouge2", "rougeL"):
        grader = SimilarityGrader("s", kind, expected="", threshold=0.4)
        near, away = await grader.grade(close), await grader.grade(far)
        assert 0.0 <= away.score < near.score <= 1.0, kind
        assert near.passed, kind
        assert not away.passed, kind
    exact = await SimilarityGrader("s", "fuzzy", value=reference).grade(sample(reference))
    assert exact.score == 1.0


async def test_json_schema_checks_the_reply_or_its_fenced_block() -> None:
    schema = {
        "type": "object",
        "properties": {"amount": {"type": "number"}},
        "required": ["amount"],
    }
    grader = JsonSchemaGrader("j", schema)
    assert (await grader.grade(sample('{"amount": 40}'))).passed
    assert (await grader.grade(sample('Here:\n```json\n{"amount": 4}\n```'))).passed
    wrong = await grader.grade(sample('{"amount": "forty"}'))
    assert not wrong.passed
    assert "$['amount']: 'forty' is not of type 'number'" in wrong.reason
    assert "not JSON" in (await grader.grade(sample("forty dollars"))).reason
    with pytest.raises(ConfigError, match="not a JSON Schema"):
        JsonSchemaGrader("j", {"type": 12})


def judge(script: object) -> ModelAdapter:
    return ScriptedModel(lambda _request: script, keep_requests=True)


async def test_a_model_judge_scores_by_tool_call_or_by_text_and_labels_map_to_scores() -> None:
    verdict = tool_call("record_grade", score=8, reason="kind")
    by_tool = ModelGrader("m", slot="j", rubric="polite", scale=10, judge=lambda: judge(verdict))
    grade = await by_tool.grade(sample("thanks!"))
    assert grade.score == pytest.approx(0.8)
    assert grade.passed
    assert grade.reason == "score 8/10: kind"
    by_text = ModelGrader("m", slot="j", rubric="polite", judge=lambda: judge("Score: 0.2 rude"))
    assert (await by_text.grade(sample("no"))).score == pytest.approx(0.2)
    labelled = ModelGrader("m", slot="j", rubric="r", labels={"good": 1.0, "bad": 0.0},
                           judge=lambda: judge("label: bad"))  # fmt: skip
    assert not (await labelled.grade(sample("x"))).passed
    silent = ModelGrader("m", slot="j", rubric="r", judge=lambda: judge("I cannot say"))
    assert "no score" in (await silent.grade(sample("x"))).reason


async def test_a_model_judge_sees_the_rubric_transcript_and_expectation() -> None:
    model = ScriptedModel(lambda _r: tool_call("record_grade", score=1, reason="ok"))
    grader = ModelGrader("m", slot="j", rubric="Mentions the refund amount.", judge=lambda: model)
    await grader.grade(sample("refunded $40", expected="$40"))
    [request] = model.requests
    assert "Mentions the refund amount." in request.instructions
    text = request.messages[0].text  # type: ignore[union-attr]
    assert "ASSISTANT (a): refunded $40" in text
    assert "EXPECTED: $40" in text
    assert request.tool_choice == "record_grade"


async def test_a_function_grader_takes_scores_pairs_grades_and_survives_its_errors() -> None:
    assert (await FunctionGrader("f", lambda s: len(s.trace.reply) > 2).grade(sample("abc"))).passed
    pair = await FunctionGrader("f", lambda s: (0.5, "half"), threshold=0.5).grade(sample("x"))
    assert (pair.score, pair.reason, pair.passed) == (0.5, "half", True)

    async def graded(s: Sample) -> Grade:
        return Grade(grader="ignored", score=2.0, passed=False, reason="big")

    assert (await FunctionGrader("f", graded).grade(sample("x"))).score == 1.0
    broken = await FunctionGrader("f", lambda s: 1 / 0).grade(sample("x"))
    assert not broken.passed
    assert "ZeroDivisionError" in broken.reason
    odd = await FunctionGrader("f", lambda s: "yes").grade(sample("x"))
    assert "returned str" in odd.reason


def test_specs_name_every_problem_with_its_path(tmp_path: Path) -> None:
    specs = [
        GraderSpec(name="a", kind="contains"),
        GraderSpec(name="b", kind="tool_called"),
        GraderSpec(name="b", kind="no_tool_error"),
        GraderSpec(name="c", kind="model", slot="nope", rubric="r"),
        GraderSpec(name="d", kind="fuzzy", value="x", threshold=2),
        GraderSpec(name="e", kind="python", function="missing.py:f"),
    ]
    with pytest.raises(ConfigError) as caught:
        create_graders(
            specs, base_dir=tmp_path, resolve=resolve_function, judges={"m": lambda: judge("")}
        )
    message = str(caught.value)
    assert "evals.graders[0]: a 'contains' grader needs `value`" in message
    assert "evals.graders[1].tool: a 'tool_called' grader needs `tool`" in message
    assert "evals.graders[2].name: grader 'b' is declared twice" in message
    assert 'evals.graders[3].slot: no model slot named "nope"; the flow\'s slots: m' in message
    assert "evals.graders[4].threshold: must be within 0..1" in message
    assert "evals.graders[5]: no file missing.py next to the flow" in message


async def test_a_judge_on_a_simulated_model_is_deterministic_offline() -> None:
    from relaybaton.adapters import SimulatedModel

    def grader() -> ModelGrader:
        model = SimulatedModel("simulated:judge", latency_p50_s=0.0)
        return ModelGrader("m", slot="j", rubric="Is the answer polite?", judge=lambda: model)

    first = await grader().grade(sample("Thank you, your refund is on its way."))
    second = await grader().grade(sample("Thank you, your refund is on its way."))
    assert first == second
    assert 0.0 <= first.score <= 1.0
