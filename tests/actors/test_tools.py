"""Function tools: schemas from type hints, validation that names the field, invocation."""

from __future__ import annotations

import json

import msgspec
import pytest

from relaybaton.actors import FunctionTool, ToolContext, function_tool
from relaybaton.errors import ConfigError, ToolArgumentsError, ToolError

pytestmark = pytest.mark.anyio

CONTEXT = ToolContext(conversation_id="c1", agent="refund", call_id="call_7")


def issue_refund(
    order_id: str, amount: float, context: ToolContext, note: str = "none", urgent: bool = False
) -> dict[str, object]:
    """Issue a refund for an order.

    Args:
        order_id: the order to refund.
        amount (float): the amount in dollars.
    """
    return {"order_id": order_id, "amount": amount, "key": context.idempotency_key, "note": note}


class Money(msgspec.Struct):
    amount: float
    currency: str


def test_the_schema_comes_from_the_type_hints_with_defaults_and_docstring_descriptions() -> None:
    tool = FunctionTool(issue_refund)
    assert tool.name == "issue_refund"
    assert tool.description == "Issue a refund for an order."
    assert tool.spec.parameters == {
        "type": "object",
        "properties": {
            "order_id": {"type": "string", "description": "the order to refund."},
            "amount": {"type": "number", "description": "the amount in dollars."},
            "note": {"type": "string", "default": "none"},
            "urgent": {"type": "boolean", "default": False},
        },
        "required": ["order_id", "amount"],
        "additionalProperties": False,
    }


def test_the_tool_context_parameter_is_not_part_of_the_schema() -> None:
    tool = FunctionTool(issue_refund)
    assert "context" not in tool.spec.parameters["properties"]  # type: ignore[operator]
    assert "context" not in tool.spec.parameters["required"]  # type: ignore[operator]


def test_nested_struct_parameters_are_described_in_defs() -> None:
    def charge(price: Money) -> str:
        return f"{price.amount} {price.currency}"

    tool = FunctionTool(charge)
    assert tool.spec.parameters["properties"] == {"price": {"$ref": "#/$defs/Money"}}
    assert set(tool.spec.parameters["$defs"]) == {"Money"}  # type: ignore[arg-type]


def test_a_function_without_parameters_gets_an_empty_object_schema() -> None:
    def ping() -> str:
        """Answer pong."""
        return "pong"

    tool = FunctionTool(ping)
    assert tool.spec.parameters["type"] == "object"
    assert tool.spec.parameters["properties"] == {}
    assert tool.parse("") == {}


def test_the_decorator_takes_a_name_and_a_description() -> None:
    @function_tool(name="refund", description="Give money back.")
    def anything(order_id: str) -> str:
        return order_id

    assert (anything.name, anything.description, anything.spec.name) == (
        "refund",
        "Give money back.",
        "refund",
    )
    assert isinstance(function_tool(issue_refund), FunctionTool)


def test_var_args_cannot_be_described() -> None:
    def spread(*values: int) -> int:
        return sum(values)

    with pytest.raises(
        ConfigError, match=r"tool 'spread': \*args and \*\*kwargs cannot be described"
    ):
        FunctionTool(spread)


def test_a_wrong_type_names_the_field_and_the_expected_type() -> None:
    tool = FunctionTool(issue_refund)
    with pytest.raises(ToolArgumentsError) as caught:
        tool.parse('{"order_id": "AB-1", "amount": "forty"}')
    message = str(caught.value)
    assert message.startswith(
        "invalid arguments for tool 'issue_refund': Expected `float`, got `str` - at `$.amount`; "
        'expected an object matching {"type":"object",'
    )
    assert caught.value.tool == "issue_refund"
    assert isinstance(caught.value, ToolError)
    assert isinstance(caught.value, ValueError)


def test_a_missing_required_field_is_named() -> None:
    tool = FunctionTool(issue_refund)
    with pytest.raises(ToolArgumentsError, match="Object missing required field `order_id`"):
        tool.parse('{"amount": 1}')


def test_an_unknown_field_is_refused_by_name() -> None:
    tool = FunctionTool(issue_refund)
    with pytest.raises(ToolArgumentsError, match="Object contains unknown field `amout`"):
        tool.parse('{"order_id": "A", "amount": 1, "amout": 2}')


def test_invalid_json_is_a_tool_error_asking_for_a_json_object() -> None:
    tool = FunctionTool(issue_refund)
    with pytest.raises(ToolArgumentsError) as caught:
        tool.parse("{order_id: A}")
    assert str(caught.value) == (
        "arguments for tool 'issue_refund' are not valid JSON "
        "(JSON is malformed: object keys must be strings (byte 1)); send a JSON object"
    )


def test_valid_arguments_fill_in_defaults() -> None:
    tool = FunctionTool(issue_refund)
    assert tool.parse('{"order_id": "A", "amount": 2}') == {
        "order_id": "A",
        "amount": 2.0,
        "note": "none",
        "urgent": False,
    }


async def test_invoke_injects_the_context_with_its_idempotency_key_and_encodes_the_result() -> None:
    tool = FunctionTool(issue_refund)
    text = await tool.invoke('{"order_id": "AB-1", "amount": 42}', CONTEXT)
    assert json.loads(text) == {
        "order_id": "AB-1",
        "amount": 42.0,
        "key": "c1:call_7",
        "note": "none",
    }
    assert CONTEXT.idempotency_key == "c1:call_7"


async def test_an_async_function_is_awaited_and_a_str_result_is_passed_as_is() -> None:
    async def greet(name: str) -> str:
        return f"hello {name}"

    assert await FunctionTool(greet).invoke('{"name": "ada"}', CONTEXT) == "hello ada"


async def test_non_str_results_are_json_encoded() -> None:
    def numbers() -> list[int]:
        return [1, 2]

    def money() -> Money:
        return Money(amount=1.5, currency="EUR")

    assert await FunctionTool(numbers).invoke("{}", CONTEXT) == "[1,2]"
    assert await FunctionTool(money).invoke("{}", CONTEXT) == '{"amount":1.5,"currency":"EUR"}'


async def test_invalid_arguments_never_run_the_function() -> None:
    calls: list[str] = []

    def record(order_id: str) -> str:
        calls.append(order_id)
        return order_id

    with pytest.raises(ToolArgumentsError):
        await FunctionTool(record).invoke('{"order_id": 5}', CONTEXT)
    assert calls == []
