"""The agent turn loop on scripted models: handoffs, agents as tools, tool errors, limits."""

from __future__ import annotations

import json
from collections.abc import Sequence

import anyio
import msgspec
import pytest

from relaybaton.actors import (
    Agent,
    AgentTool,
    FunctionTool,
    Runtime,
    handoff,
    keep_last_user_message,
    open_runtime,
    strip_tool_calls,
)
from relaybaton.adapters import (
    AssistantMessage,
    Capabilities,
    ModelRequest,
    ModelResponse,
    ToolResultMessage,
    Usage,
    UserMessage,
)
from relaybaton.errors import BadRequestError, ModelOverloadedError
from relaybaton.runtime.messages import HandoffEvent
from relaybaton.testing import FakeClock, ScriptedModel, tool_call

pytestmark = pytest.mark.anyio


def lookup_order(order_id: str) -> dict[str, object]:
    """Look up an order.

    Args:
        order_id: the order id.
    """
    return {"order_id": order_id, "total": 42.0}


LOOKUP = FunctionTool(lookup_order)


def assert_every_tool_call_has_one_result(transcript: Sequence[msgspec.Struct]) -> None:
    calls = [c.id for m in transcript if isinstance(m, AssistantMessage) for c in m.tool_calls]
    results = [m.call_id for m in transcript if isinstance(m, ToolResultMessage)]
    assert sorted(calls) == sorted(results)


def transcript(runtime: Runtime, conversation_id: str = "c1") -> list[msgspec.Struct]:
    conversation = runtime.conversation(conversation_id)
    assert conversation is not None
    return conversation.transcript


async def test_the_handoff_pattern_passes_the_baton_and_the_receiver_answers() -> None:
    refund = Agent(name="refund", model="refund", description="Refunds.")
    triage = Agent(name="triage", model="triage", handoffs=(refund,))
    triage_model = ScriptedModel([tool_call("transfer_to_refund", reason="money back")])
    refund_model = ScriptedModel(["Your refund is on its way."])
    async with open_runtime(
        triage, models={"triage": triage_model, "refund": refund_model}, clock=FakeClock()
    ) as runtime:
        result = await runtime.send("c1", "I want my money back", message_id="m1")
        assert (result.owner, result.epoch, result.error) == ("refund", 1, None)
        assert [(r.agent, r.text) for r in result.replies] == [
            ("refund", "Your refund is on its way.")
        ]
        assert [t.name for t in triage_model.requests[0].tools] == ["transfer_to_refund"]
        assert transcript(runtime) == [
            UserMessage(text="I want my money back", message_id="m1"),
            AssistantMessage(
                tool_calls=(tool_call("transfer_to_refund", reason="money back"),),
                agent="triage",
            ),
            ToolResultMessage(
                call_id="call_transfer_to_refund",
                name="transfer_to_refund",
                content="Transferred to refund.",
            ),
            AssistantMessage(text="Your refund is on its way.", agent="refund"),
        ]


class Rendezvous:
    """A model adapter that answers only once ``expected`` calls are in flight at once.

    Run one after another, the calls would wait forever; the test's deadline turns that
    into a failure. ``peak`` is the most calls seen in flight together.
    """

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.in_flight = 0
        self.peak = 0
        self.everyone_here = anyio.Event()

    @property
    def name(self) -> str:
        return "rendezvous"

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities()

    async def complete(self, request: ModelRequest) -> ModelResponse:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        if self.in_flight == self.expected:
            self.everyone_here.set()
        await self.everyone_here.wait()
        self.in_flight -= 1
        text = f"{request.metadata.agent} found: {request.messages[0].text}"  # type: ignore[union-attr]
        return ModelResponse(
            message=AssistantMessage(text=text),
            usage=Usage(input_tokens=10, output_tokens=5, cost_usd=0.25),
            model="rendezvous",
        )

    def stream(self, request: ModelRequest):  # type: ignore[no-untyped-def]
        raise NotImplementedError

    async def aclose(self) -> None:
        return None


def manager_flow() -> tuple[Agent, ScriptedModel]:
    reviewer = Agent(name="reviewer", model="experts", description="Finds bugs.")
    security = Agent(name="security", model="experts", description="Finds vulnerabilities.")
    synthesizer = Agent(
        name="synthesizer", model="synth", tools=(reviewer.as_tool(), security.as_tool())
    )
    synth_model = ScriptedModel(
        [
            [
                tool_call("reviewer", "call_r", input="review this"),
                tool_call("security", "call_s", input="scan this"),
            ],
            "One report.",
        ]
    )
    return synthesizer, synth_model


async def test_the_manager_pattern_runs_parallel_agent_tool_calls_concurrently() -> None:
    synthesizer, synth_model = manager_flow()
    experts = Rendezvous(expected=2)
    async with open_runtime(
        synthesizer, models={"synth": synth_model, "experts": experts}, clock=FakeClock()
    ) as runtime:
        with anyio.fail_after(5):
            result = await runtime.send("c1", "Review my code")
        assert (result.text, result.owner, result.epoch) == ("One report.", "synthesizer", 0)
        assert experts.peak == 2
        second = synth_model.requests[1].messages
        assert [m for m in second if isinstance(m, ToolResultMessage)] == [
            ToolResultMessage(
                call_id="call_r", name="reviewer", content="reviewer found: review this"
            ),
            ToolResultMessage(
                call_id="call_s", name="security", content="security found: scan this"
            ),
        ]
        assert_every_tool_call_has_one_result(transcript(runtime))


async def test_agent_tool_usage_is_charged_to_the_callers_conversation_under_the_callees_name() -> (
    None
):
    synthesizer, synth_model = manager_flow()
    experts = Rendezvous(expected=2)
    async with open_runtime(
        synthesizer, models={"synth": synth_model, "experts": experts}, clock=FakeClock()
    ) as runtime:
        with anyio.fail_after(5):
            await runtime.send("c1", "Review my code")
        conversation = runtime.conversation("c1")
        assert conversation is not None
        by_agent = conversation.usage_by_agent()
        assert set(by_agent) == {"synthesizer", "reviewer", "security"}
        assert (by_agent["reviewer"].calls, by_agent["reviewer"].cost_usd) == (1, 0.25)
        assert conversation.ledger[("security", "rendezvous")].input_tokens == 10
        assert by_agent["synthesizer"].calls == 2
        kinds = [
            (e.tool, e.tool_kind, e.is_error)  # type: ignore[attr-defined]
            for e in conversation.events or []
            if type(e).__name__ == "ToolCallEvent"
        ]
        assert sorted(kinds) == [("reviewer", "agent", False), ("security", "agent", False)]


async def test_a_flow_can_mix_handoffs_and_agents_as_tools() -> None:
    policy = Agent(name="policy", model="policy", description="Knows the policy.")
    refund = Agent(name="refund", model="refund", tools=(policy.as_tool("check_policy"),))
    triage = Agent(name="triage", model="triage", handoffs=(refund,))
    models = {
        "triage": ScriptedModel([tool_call("transfer_to_refund")]),
        "refund": ScriptedModel([tool_call("check_policy", input="30 days?"), "Refund approved."]),
        "policy": ScriptedModel(["Yes, within 30 days."]),
    }
    async with open_runtime(triage, models=models, clock=FakeClock()) as runtime:
        result = await runtime.send("c1", "refund please")
        assert (result.text, result.owner, result.epoch) == ("Refund approved.", "refund", 1)
        results = [m for m in transcript(runtime) if isinstance(m, ToolResultMessage)]
        assert [(r.name, r.content) for r in results] == [
            ("transfer_to_refund", "Transferred to refund."),
            ("check_policy", "Yes, within 30 days."),
        ]
        assert models["policy"].requests[0].messages == (UserMessage(text="30 days?"),)
        assert models["policy"].requests[0].tools == ()


async def solo(script: list[object], *, tools: tuple[object, ...] = (LOOKUP,), **options: object):  # type: ignore[no-untyped-def]
    agent = Agent(name="solo", model="m", tools=tools, **options)  # type: ignore[arg-type]
    model = ScriptedModel(script)  # type: ignore[arg-type]
    async with open_runtime(agent, models={"m": model}, clock=FakeClock()) as runtime:
        result = await runtime.send("c1", "order AB-1234")
        return result, model, transcript(runtime)


async def test_an_unknown_tool_is_a_tool_error_the_model_sees_and_recovers_from() -> None:
    result, model, history = await solo([tool_call("lookup_ordr", order_id="AB-1234"), "Sorry."])
    assert (result.text, result.error) == ("Sorry.", None)
    seen = model.requests[1].messages[-1]
    assert seen == ToolResultMessage(
        call_id="call_lookup_ordr",
        name="lookup_ordr",
        content="unknown tool 'lookup_ordr'; this agent's tools are: lookup_order",
        is_error=True,
    )
    assert_every_tool_call_has_one_result(history)


async def test_bad_tool_arguments_are_a_tool_error_naming_the_field() -> None:
    result, model, _ = await solo([tool_call("lookup_order", order_id=1234), "Retrying."])
    seen = model.requests[1].messages[-1]
    assert isinstance(seen, ToolResultMessage)
    assert seen.is_error
    assert seen.content.startswith(
        "invalid arguments for tool 'lookup_order': Expected `str`, got `int` - at `$.order_id`"
    )
    assert result.text == "Retrying."


async def test_a_tool_that_raises_is_a_tool_error_with_the_exception() -> None:
    def explode(order_id: str) -> str:
        raise LookupError(f"no order {order_id}")

    result, model, _ = await solo(
        [tool_call("explode", order_id="AB-1"), "It failed."], tools=(FunctionTool(explode),)
    )
    seen = model.requests[1].messages[-1]
    assert seen == ToolResultMessage(
        call_id="call_explode",
        name="explode",
        content="tool 'explode' raised LookupError: no order AB-1",
        is_error=True,
    )
    assert result.text == "It failed."


async def test_a_tool_that_raises_is_logged_with_its_traceback(captured_logs: list[str]) -> None:
    def explode(order_id: str) -> str:
        raise LookupError(f"no order {order_id}")

    result, _, _ = await solo(
        [tool_call("explode", order_id="AB-1"), "It failed."], tools=(FunctionTool(explode),)
    )
    assert result.text == "It failed."  # the turn survived the tool's failure
    [record] = [json.loads(line) for line in captured_logs if '"tool_failed"' in line]
    assert (record["level"], record["tool"]) == ("info", "explode")
    assert "in explode" in record["exception"]
    assert record["exception"].rstrip().endswith("LookupError: no order AB-1")


async def test_a_non_retryable_model_error_ends_the_turn_with_an_error_result() -> None:
    result, model, _ = await solo([BadRequestError("prompt too odd", provider="scripted")])
    assert result.error == "the model of agent 'solo' failed: prompt too odd"
    assert result.replies == ()
    assert len(model.requests) == 1


async def test_a_retryable_model_error_is_retried_after_the_backoff_on_the_clock() -> None:
    clock = FakeClock()
    agent = Agent(name="solo", model="m")
    model = ScriptedModel([ModelOverloadedError("busy", provider="scripted"), "Fine now."])
    async with open_runtime(agent, models={"m": model}, clock=clock) as runtime:
        future = runtime.submit("c1", "hello")
        await anyio.wait_all_tasks_blocked()
        assert len(model.requests) == 1
        assert not future.done()  # waiting out the backoff, on the fake clock
        await clock.advance(0.25)  # the first backoff is at most 0.25 s
        result = await future
        assert (result.text, result.error) == ("Fine now.", None)
        assert len(model.requests) == 2


async def test_a_retryable_error_on_every_attempt_ends_the_turn() -> None:
    clock = FakeClock()
    agent = Agent(name="solo", model="m")
    model = ScriptedModel(lambda request: ModelOverloadedError("still busy"))
    async with open_runtime(agent, models={"m": model}, clock=clock, model_attempts=2) as runtime:
        future = runtime.submit("c1", "hello")
        await anyio.wait_all_tasks_blocked()
        await clock.advance(1.0)
        result = await future
        assert result.error == "the model of agent 'solo' failed: still busy"
        assert len(model.requests) == 2


async def test_an_agent_tool_call_back_up_the_chain_is_a_recursive_call_tool_error() -> None:
    first = Agent(
        name="first",
        model="first",
        tools=(AgentTool(agent="second", name="second", description="x"),),
    )
    second = Agent(name="second", model="second", tools=(first.as_tool(),))
    models = {
        "first": ScriptedModel([tool_call("second", input="help"), "done"]),
        "second": ScriptedModel([tool_call("first", input="help back"), "I could not ask."]),
    }
    async with open_runtime(first, agents=[second], models=models, clock=FakeClock()) as runtime:
        with anyio.fail_after(5):
            result = await runtime.send("c1", "go")
        assert result.text == "done"
        seen = models["second"].requests[1].messages[-1]
        assert seen == ToolResultMessage(
            call_id="call_first",
            name="first",
            content=(
                "agent tool 'first' failed: agent 'first' is already waiting in the call chain "
                "first -> second; calling it again would deadlock"
            ),
            is_error=True,
        )


@pytest.mark.parametrize(
    ("history_filter", "expected"),
    [
        (keep_last_user_message, [UserMessage(text="refund AB-1234", message_id="m1")]),
        (
            strip_tool_calls,
            [
                UserMessage(text="refund AB-1234", message_id="m1"),
                AssistantMessage(text="Let me check.", agent="triage"),
            ],
        ),
        (
            None,
            [
                UserMessage(text="refund AB-1234", message_id="m1"),
                AssistantMessage(
                    text="Let me check.",
                    tool_calls=(tool_call("transfer_to_refund"),),
                    agent="triage",
                ),
                ToolResultMessage(
                    call_id="call_transfer_to_refund",
                    name="transfer_to_refund",
                    content="Transferred to refund.",
                ),
            ],
        ),
    ],
)
async def test_the_handoff_input_filter_decides_what_the_receivers_model_sees(
    history_filter: object, expected: list[object]
) -> None:
    refund = Agent(name="refund", model="refund")
    triage = Agent(
        name="triage",
        model="triage",
        handoffs=(handoff(refund, input_filter=history_filter),),  # type: ignore[arg-type]
    )
    refund_model = ScriptedModel(["ok"])
    models = {
        "triage": ScriptedModel(
            [AssistantMessage(text="Let me check.", tool_calls=(tool_call("transfer_to_refund"),))]
        ),
        "refund": refund_model,
    }
    async with open_runtime(triage, models=models, clock=FakeClock()) as runtime:
        await runtime.send("c1", "refund AB-1234", message_id="m1")
        assert list(refund_model.requests[0].messages) == expected
        assert len(transcript(runtime)) == 4  # the transcript itself is never filtered


async def test_calls_a_handoff_cut_short_still_get_a_result_in_the_transcript() -> None:
    ran: list[str] = []

    def lookup(order_id: str) -> str:
        ran.append(order_id)
        return "found"

    refund = Agent(name="refund", model="refund")
    triage = Agent(name="triage", model="triage", tools=(FunctionTool(lookup),), handoffs=(refund,))
    models = {
        "triage": ScriptedModel(
            [
                [
                    tool_call("lookup", "c_lookup", order_id="A"),
                    tool_call("transfer_to_refund", "c_t"),
                ]
            ]
        ),
        "refund": ScriptedModel(["refund here"]),
    }
    async with open_runtime(triage, models=models, clock=FakeClock()) as runtime:
        result = await runtime.send("c1", "hi")
        history = transcript(runtime)
        assert result.text == "refund here"
        assert ran == []
        assert_every_tool_call_has_one_result(history)
        assert (
            ToolResultMessage(
                call_id="c_lookup",
                name="lookup",
                content="not run: the conversation was handed off to refund",
                is_error=True,
            )
            in history
        )


async def test_every_tool_call_has_a_result_across_several_tool_rounds() -> None:
    _, _, history = await solo(
        [
            [
                tool_call("lookup_order", "a", order_id="A"),
                tool_call("lookup_order", "b", order_id="B"),
            ],
            tool_call("nope", "c"),
            "done",
        ]
    )
    assert_every_tool_call_has_one_result(history)


async def test_an_agent_out_of_its_max_turns_ends_the_turn_with_an_error() -> None:
    result, model, history = await solo(
        [tool_call("lookup_order", f"c{i}", order_id="A") for i in range(5)], max_turns=2
    )
    assert result.error == (
        "agent 'solo' used its 2 model turns for one user message without answering; "
        "raise its max_turns if this is expected"
    )
    assert len(model.requests) == 2
    assert_every_tool_call_has_one_result(history)


async def test_the_flow_wide_max_turns_bounds_a_handoff_chain() -> None:
    refund = Agent(name="refund", model="m", handoffs=("triage",))
    triage = Agent(name="triage", model="m", handoffs=(refund,))
    model = ScriptedModel(
        lambda request: tool_call(
            "transfer_to_refund" if request.metadata.agent == "triage" else "transfer_to_triage"
        )
    )
    async with open_runtime(
        triage, models=model, clock=FakeClock(), max_turns=3, max_handoffs=10
    ) as runtime:
        result = await runtime.send("c1", "loop")
        assert result.error == (
            "conversation 'c1': more than 3 model turns for one user message; raise max_turns "
            "in the flow if this is expected"
        )


async def test_a_handoff_loop_ends_at_max_handoffs_with_an_error() -> None:
    refund = Agent(name="refund", model="m", handoffs=("triage",))
    triage = Agent(name="triage", model="m", handoffs=(refund,))
    model = ScriptedModel(
        lambda request: tool_call(
            "transfer_to_refund" if request.metadata.agent == "triage" else "transfer_to_triage"
        )
    )
    async with open_runtime(triage, models=model, clock=FakeClock(), max_handoffs=2) as runtime:
        result = await runtime.send("c1", "loop")
        assert result.error is not None
        assert "more than 2 handoffs for one user message" in result.error
        conversation = runtime.conversation("c1")
        assert conversation is not None
        handoffs = [e for e in conversation.events or [] if isinstance(e, HandoffEvent)]
        assert [e.action for e in handoffs].count("handoff") == 2
        assert_every_tool_call_has_one_result(conversation.transcript)
