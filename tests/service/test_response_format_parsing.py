"""Any ``response_format`` a client sends is a schema, text, or a 400 naming the field."""

from __future__ import annotations

from typing import Any

import jsonschema
from hypothesis import given, settings
from hypothesis import strategies as st

from relaybaton.errors import ApiError
from relaybaton.service._response_format import answer_schema

_json: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=8,
)
_schemas = st.one_of(
    _json,
    st.fixed_dictionaries(
        {"type": st.sampled_from(["object", "string", 5, "nope"])},
        optional={
            "properties": _json,
            "required": _json,
            "$schema": st.one_of(st.text(max_size=6), _json),
            "$ref": st.sampled_from(["#", "#/nope", "#/properties", "https://example.com/s"]),
        },
    ),
)
_formats = st.one_of(
    st.dictionaries(st.text(max_size=6), _json, max_size=3),
    st.fixed_dictionaries(
        {"type": st.sampled_from(["text", "json_object", "json_schema", "xml", 3])},
        optional={
            "json_schema": st.one_of(
                _json,
                st.fixed_dictionaries(
                    {"name": st.one_of(st.text(max_size=70), _json)},
                    optional={"schema": _schemas, "strict": st.booleans()},
                ),
            )
        },
    ),
)


@settings(max_examples=300, deadline=None)
@given(_formats)
def test_a_format_is_text_a_valid_schema_or_a_400_naming_the_field(
    response_format: dict[str, Any],
) -> None:
    refusal: ApiError | None = None
    try:
        schema = answer_schema(response_format)
    except ApiError as exc:
        refusal = exc
    if refusal is not None:
        assert (refusal.status, refusal.code) == (400, "invalid_response_format")
        assert (refusal.param or "").startswith("response_format")
        return
    kind = response_format.get("type")
    if schema is None:
        assert kind == "text"
        return
    assert kind in ("json_object", "json_schema")
    jsonschema.validators.validator_for(schema).check_schema(schema)  # a schema, checked
