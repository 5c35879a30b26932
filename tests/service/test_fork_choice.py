"""A fork that chooses another model or instructions for an agent, over real HTTP."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from relaybaton.adapters import ModelAdapter, ModelRequest, UserMessage
from relaybaton.errors import ConfigError
from relaybaton.testing import ScriptedModel
from tests.service._support import serving

pytestmark = pytest.mark.anyio

OTHER = "scripted:other"


def _other_answer(request: ModelRequest) -> str:
    said = [m.text for m in request.messages if isinstance(m, UserMessage)]
    return f"other ({request.instructions}) heard: {said[-1]}"


class Builder:
    """Builds ``scripted:other`` only, as a flow builds the ids it knows; counts builds."""

    def __init__(self) -> None:
        self.built: list[str] = []
        self.other = ScriptedModel(_other_answer, name=OTHER)

    def __call__(self, slot: str, model_id: str) -> ModelAdapter:
        if model_id != OTHER:
            raise ConfigError(f"model id {model_id!r}: unknown provider")
        self.built.append(f"{slot}/{model_id}")
        return self.other


async def call(
    session: aiohttp.ClientSession, method: str, url: str, body: object | None = None
) -> tuple[int, Any]:
    async with session.request(method, url, json=body) as response:
        return response.status, await response.json()


async def say(session: aiohttp.ClientSession, base: str, cid: str, text: str) -> str:
    status, body = await call(
        session, "POST", f"{base}/v1/conversations/{cid}/messages", {"text": text}
    )
    assert status == 200, body
    return str(body["replies"][-1]["text"])


async def test_a_fork_with_another_model_is_answered_by_it_and_the_source_keeps_its_own() -> None:
    builder = Builder()
    async with (
        serving(model_builder=builder, tracing=True) as served,
        aiohttp.ClientSession() as session,
    ):
        url = served.url
        assert await say(session, url, "c", "hello") == "triage heard: hello"
        status, fork = await call(
            session,
            "POST",
            f"{url}/v1/conversations/c/fork",
            {
                "upto": 2,
                "conversation_id": "c-other",
                "models": {"triage": OTHER},
                "instructions": {"triage": "Answer as the other model."},
            },
        )
        assert status == 201, fork
        assert fork["fork_models"] == {"triage": OTHER}
        assert fork["fork_instructions_for"] == ["triage"]
        assert await say(session, url, "c-other", "again") == (
            "other (Answer as the other model.) heard: again"
        )
        # The source, and a fork that chose nothing, keep the flow's model.
        assert await say(session, url, "c", "still you?") == "triage heard: still you?"
        status, plain = await call(
            session, "POST", f"{url}/v1/conversations/c/fork", {"upto": 2, "conversation_id": "p"}
        )
        assert (status, plain["fork_models"]) == (201, {})
        assert await say(session, url, "p", "plain") == "triage heard: plain"
        assert builder.built == ["general/scripted:other"]  # built once, at the fork
        # The trace names the chosen model and says the fork chose it.
        status, trace = await call(session, "GET", f"{url}/v1/conversations/c-other/trace")
        assert status == 200
        chats = [s for s in trace["spans"] if s["name"].startswith("chat ")]
        assert chats, trace
        attributes = chats[-1]["attributes"]
        assert attributes["gen_ai.response.model"] == "other"
        assert attributes["relaybaton.route.policy"] == "fork"
        assert "chosen by the fork of 'c'" in attributes["relaybaton.route.reason"]
        status, source_trace = await call(session, "GET", f"{url}/v1/conversations/c/trace")
        assert all(
            "relaybaton.route.policy" not in s["attributes"]
            for s in source_trace["spans"]
            if s["name"].startswith("chat ")
        )


@pytest.mark.parametrize(
    ("body", "param", "says"),
    [
        ({"models": {"triage": "nowhere:model"}}, "models.triage", "cannot use 'nowhere:model'"),
        ({"models": {"nobody": OTHER}}, "models.nobody", "no agent named 'nobody'"),
        ({"instructions": {"ghost": "hi"}}, "instructions.ghost", "no agent named 'ghost'"),
        ({"instructions": {"triage": "   "}}, "instructions.triage", "empty"),
    ],
)
async def test_a_choice_that_cannot_be_honoured_is_a_400_naming_the_field(
    body: dict[str, object], param: str, says: str
) -> None:
    async with serving(model_builder=Builder()) as served, aiohttp.ClientSession() as session:
        await say(session, served.url, "c", "hello")
        status, refused = await call(
            session,
            "POST",
            f"{served.url}/v1/conversations/c/fork",
            {"upto": 2, "conversation_id": "f", **body},
        )
        assert status == 400, refused
        assert refused["error"]["param"] == param
        assert says in refused["error"]["message"]
        assert served.runtime.conversation("f") is None  # nothing was forked


async def test_a_model_choice_is_described_by_the_openapi_document() -> None:
    async with serving() as served, aiohttp.ClientSession() as session:
        status, document = await call(session, "GET", f"{served.url}/openapi.json")
        assert status == 200
        fork_in = document["components"]["schemas"]["ForkIn"]["properties"]
        assert {"models", "instructions"} <= set(fork_in)
