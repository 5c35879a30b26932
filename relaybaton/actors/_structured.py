"""Structured answers: an answer that must be JSON fitting a schema.

Two callers want data, not prose. A scanner whose findings a release depends on is an agent
used as a tool with an ``output_schema``; a client of the OpenAI-compatible endpoint that
sends ``response_format`` wants the turn's answer to fit its schema. Either way the schema
goes to the model as the request's ``response_format`` (a bare JSON Schema, which each
adapter puts on its provider's wire), and the answer is checked against it (full JSON
Schema, by ``jsonschema``) before anyone sees it. An answer that does not fit is sent back
once with the problems, named by path; a second miss fails the call or the turn, so the
caller gets an explicit error rather than prose it would have to trust.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jsonschema
import msgspec
from referencing.exceptions import Unresolvable

from relaybaton.adapters import ModelRequest, UserMessage

__all__ = [
    "Unanswered",
    "answer_problems",
    "correction_id",
    "judge_answer",
    "schema_problems",
    "structured_request",
    "turn_format",
]

_CORRECTION = "#format"


class Unanswered(str):
    """What an agent used as a tool returns when it could not answer (an answer outside its
    schema twice, a budget that refused its model): the caller's model gets it as an error
    result, and the callee has not crashed."""

    __slots__ = ()


def structured_request(
    request: ModelRequest, agent: str, schema: Mapping[str, Any]
) -> ModelRequest:
    """The request, asking for JSON that fits ``schema`` (``agent`` is kept for the log)."""
    del agent  # the adapters name the schema on their own wire
    return msgspec.structs.replace(request, response_format=dict(schema))


def schema_problems(value: Any, schema: Mapping[str, Any]) -> list[str]:
    """The problems of ``value`` against ``schema``, each naming its path (``$.a[0]``)."""
    validator_class = jsonschema.validators.validator_for(schema)
    validator = validator_class(schema)
    try:
        errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    except Unresolvable as exc:  # a $ref the edge's probes did not reach points nowhere
        return [f"the schema cannot be applied: {exc}"]
    problems: list[str] = []
    for error in errors:
        path = "$" + "".join(
            f"[{part}]" if isinstance(part, int) else f".{part}" for part in error.absolute_path
        )
        problems.append(f"{error.message} - at `{path}`")
    return problems


def answer_problems(
    text: str, schema: Mapping[str, Any] | None, agent: str, corrected: bool
) -> str | None:
    """None if ``text`` fits (or there is no schema); else what is wrong.

    The first time, what is wrong is said as an instruction to the model; after a
    correction (``corrected``), as the reason the call failed.
    """
    if schema is None:
        return None
    try:
        value = msgspec.json.decode(text)
    except msgspec.DecodeError:
        problems = ["the answer is not JSON"]
    else:
        problems = schema_problems(value, schema)
    if not problems:
        return None
    if corrected:
        return f"agent {agent!r} answered outside its output schema twice: {'; '.join(problems)}"
    return (
        "Your answer must be one JSON value that fits this JSON Schema: "
        f"{msgspec.json.encode(schema).decode()}. Problems: {'; '.join(problems)}"
    )


def correction_id(message_id: str) -> str:
    """The message id of the correction sent back for the turn of ``message_id``."""
    return message_id + _CORRECTION


def turn_format(
    transcript: Sequence[msgspec.Struct], message_id: str
) -> tuple[dict[str, Any] | None, bool]:
    """The schema the answer of the turn ``message_id`` must fit, and whether it was corrected.

    Read from the transcript (the user message carries the schema, the correction is
    recorded), so an agent handed the turn, or a turn resumed after a restart, knows both.
    """
    corrected = False
    correction = correction_id(message_id)
    for item in reversed(transcript):
        if type(item) is UserMessage:
            if item.message_id == correction:
                corrected = True
            elif item.message_id == message_id:
                return item.answer_schema, corrected
    return None, False


def judge_answer(
    text: str, schema: Mapping[str, Any], agent: str, corrected: bool, message_id: str
) -> UserMessage | str | None:
    """The verdict on a turn's answer: None if it fits; else the correction to send back
    (the first miss) or the reason the turn fails (a miss after the correction)."""
    problems = answer_problems(text, schema, agent, corrected)
    if problems is None or corrected:
        return problems
    return UserMessage(
        text=problems, message_id=correction_id(message_id), answer_schema=dict(schema)
    )
