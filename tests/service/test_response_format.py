"""A client's ``response_format`` is honoured: the answer fits the schema or the turn fails.

Driven over real HTTP by the official ``openai`` client and by the OpenAI Agents SDK with an
``output_type`` (the client whose structured output broke on a text answer).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import agents
import openai
import pytest
from aiohttp import web
from pydantic import BaseModel

from relaybaton.actors import Agent, FunctionTool, handoff, open_runtime
from relaybaton.adapters import ModelAdapter, ModelRequest, SimulatedModel, UserMessage
from relaybaton.adapters._credentials import Secret
from relaybaton.adapters._openai import OpenAIChatAdapter
from relaybaton.service import create_service
from relaybaton.testing import ScriptedModel, ScriptItem, tool_call
from tests.adapters._servers import FakeServer, Reply

pytestmark = pytest.mark.anyio

KEY = "sk-test-" + "f" * 24
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"category": {"type": "string"}, "urgent": {"type": "boolean"}},
    "required": ["category", "urgent"],
    "additionalProperties": False,
}
FORMAT = {
    "type": "json_schema",
    "json_schema": {"name": "ticket", "schema": SCHEMA, "strict": True},
}
HELLO = [{"role": "user", "content": "My invoice was charged twice, please help"}]


@asynccontextmanager
async def _serve(model: ModelAdapter, *agents: Agent) -> AsyncIterator[str]:
    """The agents behind the service on a loopback port; yields the client's base URL."""
    first, *rest = agents
    async with open_runtime(first, agents=rest, models=model, tracing=False) as runtime:
        service = create_service(runtime, flow_name="support")
        runner = web.AppRunner(service.app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        try:
            yield f"http://{host}:{port}/v1"
        finally:
            await service.drain(5.0)
            await runner.cleanup()
            service.close()


def _client(url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=url, api_key=KEY, max_retries=0)


def _scripted(answers: list[str]) -> ScriptedModel:
    replies = iter(answers)

    def answer(request: ModelRequest) -> ScriptItem:
        return next(replies)

    return ScriptedModel(answer, name="scripted:general")


async def _streamed_text(client: openai.AsyncOpenAI, **kwargs: Any) -> str:
    stream = await client.chat.completions.create(
        model="support", messages=HELLO, stream=True, **kwargs
    )
    return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])


class Ticket(BaseModel):
    category: str
    urgent: bool


async def test_the_agents_sdk_output_type_gets_a_parsed_answer_from_the_simulated_model() -> None:
    agents.set_tracing_disabled(True)  # nothing leaves the machine
    front = Agent(name="front", instructions="Sort tickets.", model="general")
    async with _serve(SimulatedModel(), front) as url, _client(url) as client:
        sdk_agent = agents.Agent(
            name="sorter",
            instructions="Sort the ticket.",
            model=agents.OpenAIChatCompletionsModel(model="support", openai_client=client),
            output_type=Ticket,
        )
        whole = await agents.Runner.run(sdk_agent, "My invoice was charged twice")
        assert isinstance(whole.final_output, Ticket)
        streamed = agents.Runner.run_streamed(sdk_agent, "My invoice was charged twice")
        async for _ in streamed.stream_events():
            pass
        assert isinstance(streamed.final_output, Ticket)


async def test_json_schema_and_json_object_answers_parse_streamed_and_not() -> None:
    front = Agent(name="front", instructions="Sort tickets.", model="general")
    async with _serve(SimulatedModel(), front) as url, _client(url) as client:
        parsed = await client.chat.completions.parse(
            model="support", messages=HELLO, response_format=Ticket
        )
        assert isinstance(parsed.choices[0].message.parsed, Ticket)
        whole = await client.chat.completions.create(
            model="support", messages=HELLO, response_format=FORMAT
        )
        assert set(json.loads(whole.choices[0].message.content or "")) == {"category", "urgent"}
        streamed = await _streamed_text(client, response_format=FORMAT)
        assert set(json.loads(streamed)) == {"category", "urgent"}
        anything = await client.chat.completions.create(
            model="support", messages=HELLO, response_format={"type": "json_object"}
        )
        assert isinstance(json.loads(anything.choices[0].message.content or ""), dict)


@pytest.mark.parametrize("stream", [False, True])
async def test_an_answer_outside_the_schema_is_corrected_once_and_only_the_fit_is_sent(
    stream: bool,
) -> None:
    model = _scripted(["Sure! It is billing.", '{"category": "billing", "urgent": true}'])
    front = Agent(name="front", instructions="Sort tickets.", model="general")
    async with _serve(model, front) as url, _client(url) as client:
        if stream:
            text = await _streamed_text(client, response_format=FORMAT)
        else:
            done = await client.chat.completions.create(
                model="support", messages=HELLO, response_format=FORMAT
            )
            text = done.choices[0].message.content or ""
    # The first attempt never reaches the client, streamed or not.
    assert json.loads(text) == {"category": "billing", "urgent": True}
    first, second = model.requests
    assert first.response_format == SCHEMA == second.response_format
    correction = second.messages[-1]
    assert isinstance(correction, UserMessage)
    assert "Problems: the answer is not JSON" in correction.text


async def test_a_second_miss_is_an_explicit_error_streamed_and_not() -> None:
    misses = ['{"category": "billing"}', '{"category": 3, "urgent": "yes"}'] * 2
    front = Agent(name="front", instructions="Sort tickets.", model="general")
    async with _serve(_scripted(misses), front) as url, _client(url) as client:
        with pytest.raises(openai.InternalServerError, match="outside its output schema twice"):
            await client.chat.completions.create(
                model="support", messages=HELLO, response_format=FORMAT
            )
        stream = await client.chat.completions.create(
            model="support", messages=HELLO, response_format=FORMAT, stream=True
        )
        sent: list[str] = []

        async def read() -> None:
            async for chunk in stream:
                sent.extend(c.delta.content or "" for c in chunk.choices)

        with pytest.raises(openai.APIError, match="is not of type 'string'"):
            await read()
        assert "".join(sent) == ""  # nothing of either attempt was passed off as the answer


async def test_the_format_follows_the_turn_through_a_handoff() -> None:
    def answer(request: ModelRequest) -> ScriptItem:
        if request.metadata.agent == "front":
            return tool_call("transfer_to_billing", reason="invoice")
        return '{"category": "billing", "urgent": false}'

    model = ScriptedModel(answer, name="scripted:general")
    billing = Agent(name="billing", instructions="Billing.", model="general")
    front = Agent(name="front", model="general", handoffs=(handoff(billing),))
    async with _serve(model, front, billing) as url, _client(url) as client:
        done = await client.chat.completions.create(
            model="support", messages=HELLO, response_format=FORMAT
        )
    assert json.loads(done.choices[0].message.content or "")["category"] == "billing"
    assert [r.response_format for r in model.requests] == [SCHEMA, SCHEMA]


@pytest.mark.parametrize(
    ("response_format", "param", "says"),
    [
        ({"type": "xml"}, "response_format.type", "'text', 'json_object' or 'json_schema'"),
        ({"type": "json_schema"}, "response_format.json_schema", "needs a `json_schema`"),
        (
            {"type": "json_schema", "json_schema": {"name": "has space", "schema": {}}},
            "response_format.json_schema.name",
            "1 to 64 letters",
        ),
        (
            {"type": "json_schema", "json_schema": {"name": "t", "schema": {"type": 5}}},
            "response_format.json_schema.schema",
            "not a valid JSON Schema",
        ),
    ],
)
async def test_a_format_that_cannot_be_honoured_is_a_400_naming_the_field(
    response_format: dict[str, Any], param: str, says: str
) -> None:
    front = Agent(name="front", model="general")
    async with _serve(SimulatedModel(), front) as url, _client(url) as client:
        with pytest.raises(openai.BadRequestError, match=says) as info:
            await client.chat.completions.create(
                model="support",
                messages=HELLO,  # type: ignore[arg-type]
                response_format=response_format,  # type: ignore[arg-type]
            )
    assert info.value.param == param  # type: ignore[attr-defined]


def _provider_reply(content: str) -> Reply:
    return Reply.json({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "gpt-5.2",
        "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                     "message": {"role": "assistant", "content": content}}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 7, "total_tokens": 16},
    })  # fmt: skip


async def test_the_client_schema_reaches_an_openai_provider_on_its_documented_wire() -> None:
    provider = FakeServer()  # refuses what a strict Chat Completions server would
    await provider.start()
    provider.enqueue(_provider_reply('{"category": "billing", "urgent": true}'))
    model = OpenAIChatAdapter(
        "gpt-5.2", api_key=Secret("sk-test-0123456789abcdef"), base_url=provider.base_url + "/v1"
    )
    front = Agent(name="front", instructions="Sort tickets.", model="general")
    try:
        async with _serve(model, front) as url, _client(url) as client:
            done = await client.chat.completions.create(
                model="support", messages=HELLO, response_format=FORMAT
            )
    finally:
        await provider.stop()
    assert json.loads(done.choices[0].message.content or "")["urgent"] is True
    assert provider.refused == []
    [sent] = provider.received
    wire = sent.json()["response_format"]
    assert wire["type"] == "json_schema"
    assert wire["json_schema"]["schema"] == SCHEMA


async def test_a_turn_waiting_for_a_person_is_a_409_not_prose_passed_off_as_the_answer() -> None:
    async def refund(amount: int) -> str:
        """Refund an amount."""
        return f"refunded {amount}"

    def answer(request: ModelRequest) -> ScriptItem:
        return tool_call("refund", amount=500)

    model = ScriptedModel(answer, name="scripted:general")
    tool = FunctionTool(refund, needs_approval="amount > 100")
    front = Agent(name="front", model="general", tools=(tool,))
    async with _serve(model, front) as url, _client(url) as client:
        with pytest.raises(openai.ConflictError, match="waits for a person's decision") as info:
            await client.chat.completions.create(
                model="support", messages=HELLO, response_format=FORMAT, user="w1"
            )
        assert info.value.code == "awaiting_approval"
        stream = await client.chat.completions.create(
            model="support", messages=HELLO, response_format=FORMAT, user="w2", stream=True
        )
        sent: list[str] = []

        async def read() -> None:
            async for chunk in stream:
                sent.extend(c.delta.content or "" for c in chunk.choices)

        with pytest.raises(openai.APIError, match="no structured answer yet"):
            await read()
        assert "".join(sent) == ""
