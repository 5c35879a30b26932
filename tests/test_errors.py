"""The exception tree: one base, drawn in ``relaybaton.errors``'s docstring as it is."""

from __future__ import annotations

import re

import pytest

from relaybaton import errors
from relaybaton.errors import ApiError, ConfigError, FlowError, RelaybatonError
from relaybaton.service._errors import ApiError as ServiceApiError

# A line of the drawing: the box characters, then the class name.
_NODE = re.compile(r"^(?P<indent>[ │├└─]*)(?P<name>[A-Z]\w+)")


def _drawn_parents() -> dict[str, str]:
    """Each class in the docstring's drawing, mapped to the class drawn above it."""
    doc = errors.__doc__ or ""
    drawing = doc.split("The tree::", 1)[1].split("\n\n", 2)[1]
    parents: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    for line in drawing.splitlines():
        match = _NODE.match(line.strip("\n")[4:])  # the drawing is indented by four spaces
        if match is None:
            continue  # a continuation line of a description
        depth, name = len(match["indent"]), match["name"]
        while stack and stack[-1][0] >= depth:
            stack.pop()
        if stack:
            parents[name] = stack[-1][1]
        stack.append((depth, name))
    return parents


def test_the_drawing_names_every_exception_under_its_real_parent() -> None:
    parents = _drawn_parents()
    exceptions = {
        name
        for name in errors.__all__
        if isinstance(getattr(errors, name), type)
        and issubclass(getattr(errors, name), BaseException)
    }
    assert set(parents) | {"RelaybatonError"} == exceptions
    for name, parent in parents.items():
        assert getattr(errors, parent) in getattr(errors, name).__bases__, (name, parent)


def test_configuration_misuse_is_one_class_and_still_a_value_error() -> None:
    assert issubclass(ConfigError, RelaybatonError)
    assert issubclass(ConfigError, ValueError)  # what these refusals raised before
    assert issubclass(FlowError, ConfigError)


def test_the_service_refusal_is_a_relaybaton_error_with_its_answer_attached() -> None:
    assert ServiceApiError is ApiError
    refusal = ApiError(429, "slow down", code="rate_limited", headers={"Retry-After": "1"})
    with pytest.raises(RelaybatonError, match="slow down"):
        raise refusal
    assert (refusal.status, refusal.code, refusal.param, refusal.headers) == (
        429,
        "rate_limited",
        None,
        {"Retry-After": "1"},
    )
