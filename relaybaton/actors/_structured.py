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
from relaybaton.errors import ToolError

__all__ = ["answer_problems", "structured_request"]


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
    """None if ``text`` fits (or there is no schema); else what to tell the model.

    Raises:
        ToolError: the answer still does not fit after one correction.
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
        raise ToolError(
            f"agent {agent!r} answered outside its output schema twice: {'; '.join(problems)}",
            tool=agent,
        )
    return (
        "Your answer must be one JSON value that fits this JSON Schema: "
        f"{msgspec.json.encode(schema).decode()}. Problems: {'; '.join(problems)}"
    )
