"""The simulated model: routes, calls tools with fitting arguments, answers, all seeded."""

from __future__ import annotations

import json

import anyio
import msgspec
import pytest

from relaybaton.adapters import (
    AssistantMessage,
    ModelRequest,
    RequestMetadata,
    SimulatedModel,
    ToolCall,
    ToolResultMessage,
    ToolSpec,
    UserMessage,
)
from relaybaton.errors import ConfigError, ModelOverloadedError
from relaybaton.testing import FakeClock

pytestmark = pytest.mark.anyio

REASON = {"type": "object", "properties": {"reason": {"type": "string"}}}
HANDOFFS = (
    ToolSpec(
        name="transfer_to_refund",
        description="Refunds and returns: money back for an order that arrived damaged or late.",
        parameters=REASON,
    ),
    ToolSpec(
        name="transfer_to_billing",
        description="Billing: invoices, charges, double charges, payment methods and receipts.",
        parameters=REASON,
    ),
)
ISSUE_REFUND = ToolSpec(
    name="issue_refund",
    description="Issue a refund of an amount of money for an order.",
    parameters={
        "type": "object",
        "properties": {"order_id": {"type": "string"}, "amount": {"type": "number"}},
        "required": ["order_id", "amount"],
    },
)
WEATHER = ToolSpec(name="weather_forecast", description="Tomorrow's weather in a city.")


def ask(
    text: str,
    *,
    tools: tuple[ToolSpec, ...] = (),
    agent: str = "triage",
    instructions: str = "",
    after: tuple[AssistantMessage | ToolResultMessage, ...] = (),
) -> ModelRequest:
    return ModelRequest(
        instructions=instructions,
        messages=(UserMessage(text=text), *after),
        tools=tools,
        metadata=RequestMetadata(agent=agent, conversation_id="c1"),
    )


def quick(**options: object) -> SimulatedModel:
    return SimulatedModel(latency_p50_s=0.0, **options)  # type: ignore[arg-type]


async def test_a_refund_question_is_handed_to_the_refund_agent() -> None:
    response = await quick().complete(
        ask("My order arrived damaged and I want a refund", tools=HANDOFFS)
    )
    [call] = response.message.tool_calls
    assert call.name == "transfer_to_refund"
    assert json.loads(call.arguments)["reason"].startswith("the customer asks: My order")
    assert response.finish_reason == "tool_calls"


async def test_a_billing_question_is_handed_to_billing() -> None:
    response = await quick().complete(
        ask("Why is there a double charge on my invoice?", tools=HANDOFFS)
    )
    assert [c.name for c in response.message.tool_calls] == ["transfer_to_billing"]


async def test_relevant_tools_are_called_with_arguments_that_fit_their_schema() -> None:
    response = await quick().complete(
        ask("Please refund $42 for order AB-1234", tools=(ISSUE_REFUND, WEATHER))
    )
    [call] = response.message.tool_calls
    assert call.name == "issue_refund"
    assert json.loads(call.arguments) == {"order_id": "AB-1234", "amount": 42.0}


async def test_integer_and_boolean_parameters_are_filled_by_type() -> None:
    tool = ToolSpec(
        name="refund_items",
        description="Refund some items.",
        parameters={
            "type": "object",
            "properties": {
                "count": {"type": "integer"},
                "express": {"type": "boolean"},
                "mode": {"type": "string", "enum": ["full", "partial"]},
            },
        },
    )
    response = await quick().complete(ask("refund 3 items", tools=(tool,)))
    assert json.loads(response.message.tool_calls[0].arguments) == {
        "count": 3,
        "express": True,
        "mode": "full",
    }


async def test_it_answers_from_the_tool_results_once_its_tools_answered() -> None:
    call = ToolCall(id="c1", name="issue_refund", arguments="{}")
    response = await quick().complete(
        ask(
            "Please refund $42 for order AB-1234",
            tools=(ISSUE_REFUND,),
            agent="refund",
            after=(
                AssistantMessage(tool_calls=(call,), agent="refund"),
                ToolResultMessage(call_id="c1", name="issue_refund", content="refunded $42.00"),
            ),
        )
    )
    assert response.message.text == "I've refunded $42.00."
    assert response.message.tool_calls == ()


async def test_it_answers_from_the_best_matching_knowledge_line() -> None:
    instructions = (
        "Answer billing questions.\n"
        "Knowledge: Duplicate card charges drop off within 3 business days.\n"
        "Knowledge: Invoices are emailed on the first of the month.\n"
    )
    response = await quick().complete(ask("When are invoices emailed?", instructions=instructions))
    assert response.message.text == "Invoices are emailed on the first of the month."


async def test_without_tools_or_knowledge_it_asks_for_more() -> None:
    response = await quick().complete(ask("what about the thing"))
    assert response.message.text == (
        "I'm sorry, I don't have an answer to that. Could you tell me more about what you need?"
    )


async def test_a_greeting_is_answered_with_what_the_agent_can_help_with() -> None:
    response = await quick().complete(ask("Hello!", tools=HANDOFFS))
    assert response.message.text == (
        "Hello! How can I help you today? I can help with refunds and returns or billing."
    )


async def test_a_question_no_handoff_fits_well_stays_and_says_what_it_can_help_with() -> None:
    response = await quick().complete(ask("Where is my order XY-0001?", tools=HANDOFFS))
    assert response.message.tool_calls == ()
    assert response.message.text.startswith("I'm sorry, I can't help with that here.")
    assert "refunds and returns or billing" in response.message.text


LOOKUP = ToolSpec(
    name="lookup_order",
    description="Look up an order by its id.",
    parameters={
        "type": "object",
        "properties": {"order_id": {"type": "string", "description": "the order id, like AB-1234"}},
        "required": ["order_id"],
    },
)


def _after(*steps: tuple[str, str, str]) -> tuple[AssistantMessage | ToolResultMessage, ...]:
    history: list[AssistantMessage | ToolResultMessage] = []
    for index, (name, arguments, result) in enumerate(steps):
        call = ToolCall(id=f"c{index}", name=name, arguments=arguments)
        history.append(AssistantMessage(tool_calls=(call,), agent="refund"))
        history.append(ToolResultMessage(call_id=call.id, name=name, content=result))
    return tuple(history)


async def test_it_looks_the_order_up_before_it_refunds_with_the_id_in_any_case() -> None:
    response = await quick().complete(
        ask("refund $100 for ab-1234", tools=(ISSUE_REFUND, LOOKUP), agent="refund")
    )
    [call] = response.message.tool_calls
    assert (call.name, json.loads(call.arguments)) == ("lookup_order", {"order_id": "AB-1234"})


async def test_it_refunds_the_looked_up_total_when_no_amount_is_given() -> None:
    found = '{"order_id":"AB-1234","found":true,"item":"espresso machine","total":42.0}'
    response = await quick().complete(
        ask(
            "I want a refund for order AB-1234",
            tools=(ISSUE_REFUND, LOOKUP),
            agent="refund",
            after=_after(("lookup_order", '{"order_id":"AB-1234"}', found)),
        )
    )
    [call] = response.message.tool_calls
    assert json.loads(call.arguments) == {"order_id": "AB-1234", "amount": 42.0}


async def test_it_stops_when_the_lookup_finds_nothing_and_says_so() -> None:
    missing = '{"order_id":"ZZ-9999","found":false}'
    response = await quick().complete(
        ask(
            "refund $30 on order ZZ-9999",
            tools=(ISSUE_REFUND, LOOKUP),
            agent="refund",
            after=_after(("lookup_order", '{"order_id":"ZZ-9999"}', missing)),
        )
    )
    assert response.message.tool_calls == ()
    assert response.message.text == (
        "I couldn't find ZZ-9999; please check the number and try again."
    )


async def test_a_refused_action_is_explained_without_the_runtime_wording() -> None:
    refused = ToolResultMessage(
        call_id="c1",
        name="issue_refund",
        content="issue_refund refused: a refund is never more than what was paid; nothing was done",
        is_error=True,
    )
    call = ToolCall(id="c1", name="issue_refund", arguments="{}")
    response = await quick().complete(
        ask(
            "Refund $99 on order AB-1234",
            tools=(ISSUE_REFUND,),
            agent="refund",
            after=(AssistantMessage(tool_calls=(call,), agent="refund"), refused),
        )
    )
    assert response.message.text == (
        "I couldn't issue the refund: a refund is never more than what was paid."
    )


async def test_a_requested_schema_gets_json_with_one_finding_per_fitting_knowledge_line() -> None:
    schema = {
        "type": "object",
        "properties": {
            "findings": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "issue": {"type": "string"},
                        "cwe": {"type": "string"},
                        "severity": {"type": "string", "enum": ["low", "high"]},
                        "fix": {"type": "string"},
                    },
                },
            }
        },
    }
    instructions = (
        "Knowledge: eval() of data executes arbitrary code (CWE-95); use json.loads instead.\n"
        "Knowledge: SQL built from a query string allows injection (CWE-89); use parameters.\n"
    )
    request = msgspec.structs.replace(
        ask("Scan: data = eval(open(p).read())", instructions=instructions),
        response_format=schema,
    )
    answer = json.loads((await quick().complete(request)).message.text)
    assert answer == {
        "findings": [
            {
                "issue": "eval() of data executes arbitrary code (CWE-95).",
                "cwe": "CWE-95",
                "severity": "high",
                "fix": "Use json.loads instead.",
            }
        ]
    }


async def test_call_ids_are_unique_per_conversation_step_and_the_same_on_a_rerun() -> None:
    async def call_id(conversation: str, earlier: int) -> str:
        model = SimulatedModel(latency_p50_s=0.0, seed=1)
        request = ask("refund $42 for AB-1234", tools=(ISSUE_REFUND,))
        history = (UserMessage(text="earlier"),) * earlier + request.messages
        request = msgspec.structs.replace(
            request,
            messages=history,
            metadata=RequestMetadata(agent="refund", conversation_id=conversation),
        )
        return (await model.complete(request)).message.tool_calls[0].id

    assert await call_id("c1", 0) == await call_id("c1", 0)  # a rerun after a crash
    assert await call_id("c1", 0) != await call_id("c1", 2)  # a later step
    assert await call_id("c1", 0) != await call_id("c2", 0)  # another conversation


async def test_usage_is_priced_per_thousand_tokens() -> None:
    model = quick(price_in_per_1k=1.0, price_out_per_1k=2.0)
    response = await model.complete(ask("x" * 400))
    usage = response.usage
    assert usage.input_tokens == 100
    assert usage.cost_usd == pytest.approx((100 * 1.0 + usage.output_tokens * 2.0) / 1000)
    assert response.model == "simulated:general"


async def test_an_error_rate_raises_a_retryable_overload_error() -> None:
    model = quick(error_rate=1.0, name="flaky")
    with pytest.raises(ModelOverloadedError) as caught:
        await model.complete(ask("hi"))
    assert str(caught.value) == "simulated:flaky is overloaded (simulated, error rate 100.0%)"
    assert caught.value.retryable
    assert (caught.value.status, caught.value.provider) == (503, "simulated")


def test_an_error_rate_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"error_rate must be within \[0, 1\], got 1.5"):
        SimulatedModel(error_rate=1.5)


async def test_latency_is_slept_on_the_injected_clock() -> None:
    clock = FakeClock()
    model = SimulatedModel(latency_p50_s=1.0, latency_sigma=0.0, clock=clock)
    answers: list[str] = []

    async def call() -> None:
        answers.append((await model.complete(ask("hi"))).message.text)

    async with anyio.create_task_group() as tg:
        tg.start_soon(call)
        await anyio.wait_all_tasks_blocked()
        await clock.advance(0.999)
        assert answers == []
        await clock.advance(0.001)
    assert len(answers) == 1
    assert model.calls == 1
