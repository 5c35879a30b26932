"""Structured answers: an agent used as a tool that must answer JSON fitting a schema.

A scanner whose findings a release depends on answers data, not prose: its agent's
``output_schema`` goes to the model as the request's ``response_format`` (JSON Schema), and
its answer is checked against the schema before the caller sees it. An answer that does
not fit is sent back once with the problems, named by path; a second miss fails the call,
so the caller gets a typed error rather than prose it would have to trust.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from relaybaton.actors._schema_tool import check_schema
from relaybaton.adapters import ModelRequest

__all__ = ["Unanswered", "answer_problems", "structured_request"]


class Unanswered(str):
    """What an agent used as a tool returns when it could not answer (an answer outside its
    schema twice, a budget that refused its model): the caller's model gets it as an error
    result, and the callee has not crashed."""

    __slots__ = ()


def structured_request(
    request: ModelRequest, agent: str, schema: Mapping[str, Any]
) -> ModelRequest:
    """The request, asking for JSON that fits ``schema``."""
    return msgspec.structs.replace(
        request,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": f"{agent}_answer", "schema": dict(schema)},
        },
    )


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
        problems = check_schema(value, schema)
    if not problems:
        return None
    if corrected:
        return f"agent {agent!r} answered outside its output schema twice: {'; '.join(problems)}"
    return (
        "Your answer must be one JSON value that fits this JSON Schema: "
        f"{msgspec.json.encode(schema).decode()}. Problems: {'; '.join(problems)}"
    )
