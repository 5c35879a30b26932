"""A client's ``response_format``: the JSON Schema the turn's answer must fit.

The OpenAI-compatible endpoint honours the three formats Chat Completions documents:
``{"type": "text"}`` (the default: no schema), ``{"type": "json_object"}`` (any JSON
object) and ``{"type": "json_schema", "json_schema": {"name", "schema", "strict"}}`` (what
the OpenAI Agents SDK sends for an agent with an ``output_type``). The schema travels with
the user message to whichever agent answers; its model is asked for it, and its answer is
checked against it (corrected once, else the turn fails with an explicit error). A format
the endpoint cannot honour, or a schema that is not one, is a 400 naming the field.
"""

from __future__ import annotations

import re
from typing import Any

import jsonschema
from referencing.exceptions import Unresolvable

from relaybaton.service._errors import ApiError

__all__ = ["answer_schema", "not_answered_yet"]

_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_ANY_OBJECT: dict[str, Any] = {"type": "object"}
_PROBES: tuple[Any, ...] = (None, {}, [], "", 0)


def not_answered_yet(waiting: str) -> ApiError:
    """The 409 for a structured request whose turn waits for a person: the waiting reply is
    prose, so it is said as an error, never passed off as the structured answer."""
    return ApiError(
        409,
        f"no structured answer yet: the turn waits for a person's decision. {waiting}",
        code="awaiting_approval",
    )


def _refuse(message: str, param: str) -> ApiError:
    return ApiError(400, message, code="invalid_response_format", param=param)


def answer_schema(response_format: dict[str, Any] | None) -> dict[str, Any] | None:
    """The JSON Schema the answer must fit, or None for text; a 400 for anything else."""
    if response_format is None:
        return None
    kind = response_format.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return dict(_ANY_OBJECT)
    if kind != "json_schema":
        raise _refuse(
            f"response_format type {kind!r} is not supported; send one of 'text', "
            "'json_object' or 'json_schema'",
            "response_format.type",
        )
    spec = response_format.get("json_schema")
    if not isinstance(spec, dict):
        raise _refuse(
            'response_format of type "json_schema" needs a `json_schema` object: '
            '{"name": ..., "schema": {...}}',
            "response_format.json_schema",
        )
    name = spec.get("name")
    if not isinstance(name, str) or _NAME.fullmatch(name) is None:
        raise _refuse(
            f"response_format.json_schema.name {name!r} must be 1 to 64 letters, digits, "
            "underscores or dashes",
            "response_format.json_schema.name",
        )
    schema = spec.get("schema", {})  # optional in Chat Completions: any JSON value
    if not isinstance(schema, dict):
        raise _refuse(
            f"response_format.json_schema.schema must be a JSON Schema object, not "
            f"{type(schema).__name__}",
            "response_format.json_schema.schema",
        )
    if not isinstance(schema.get("$schema", ""), str):
        raise _refuse(
            "response_format.json_schema.schema.$schema must be the URI of a JSON Schema draft",
            "response_format.json_schema.schema",
        )
    validator_class = jsonschema.validators.validator_for(schema)
    try:
        validator_class.check_schema(schema)
        validator = validator_class(schema)
        for probe in _PROBES:  # a $ref that points nowhere shows on the first value it meets
            validator.is_valid(probe)
    except (jsonschema.SchemaError, Unresolvable) as exc:
        reason = exc.message if isinstance(exc, jsonschema.SchemaError) else str(exc)
        raise _refuse(
            f"response_format.json_schema.schema is not a valid JSON Schema: {reason}",
            "response_format.json_schema.schema",
        ) from exc
    return schema
