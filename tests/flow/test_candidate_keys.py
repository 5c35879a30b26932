"""Each routing candidate has its own endpoint and key, and a key reaches only its own host.

Four candidates on four providers, four fake servers, four canary keys: each call to a
candidate must reach that candidate's server with that candidate's key, and no canary may
appear in any request that another server received (headers, query or body).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relaybaton.actors.routing import ModelSlot
from relaybaton.adapters import ModelRequest, RequestMetadata, UserMessage
from relaybaton.flow._compose import _candidate_config, create_slots
from relaybaton.flow._file import CandidateConfig, ModelConfig, parse_flow
from relaybaton.runtime import MonotonicClock
from tests.adapters._servers import FakeServer
from tests.flow.test_on_providers import _anthropic, _gemini, _openai

pytestmark = pytest.mark.anyio

CANARIES = {
    "general": "sk-canary-general-7c1d",
    "reasoning": "sk-ant-canary-reasoning-41be",
    "multimodal": "canary-multimodal-9a20",
    "domain": "canary-domain-minimax-5e33",
}
PROVIDERS = {
    "general": "openai:gpt-5.2",
    "reasoning": "anthropic:claude-opus-4-6",
    "multimodal": "gemini:gemini-3-pro",
    "domain": "openai-compatible:minimax-m2.5",
}


@pytest.fixture
async def servers() -> AsyncIterator[dict[str, FakeServer]]:
    made = {name: FakeServer() for name in CANARIES}
    for fake in made.values():
        await fake.start()
    try:
        yield made
    finally:
        for fake in made.values():
            await fake.stop()


def _flow(servers: dict[str, FakeServer]) -> str:
    # The slot's endpoint and key are the MiniMax host's: before, every candidate got them.
    return f'''
[models.assistant]
model = "openai-compatible:minimax-m2.5"
base_url = "{servers["domain"].base_url}/v1"
api_key_env = "DOMAIN_KEY"

[models.assistant.routing]
rules = [
  {{ when = "complexity <= 3", use = "general" }},
  {{ when = "complexity <= 7", use = "reasoning" }},
  {{ when = "vision", use = "multimodal" }},
  {{ use = "domain" }},
]

[[models.assistant.routing.candidates]]
name = "general"
model = "openai:gpt-5.2"
base_url = "{servers["general"].base_url}/v1"
api_key_env = "GENERAL_KEY"
p95_s = 0.5

[[models.assistant.routing.candidates]]
name = "reasoning"
model = "anthropic:claude-opus-4-6"
p95_s = 0.5

[[models.assistant.routing.candidates]]
name = "multimodal"
model = "gemini:gemini-3-pro"
base_url = "{servers["multimodal"].base_url}"
api_key_env = "VISION_KEY"
p95_s = 0.8

[[models.assistant.routing.candidates]]
name = "domain"
model = "openai-compatible:minimax-m2.5"
p95_s = 1.5

[[agents]]
name = "assistant"
model = "assistant"
'''


def _reply(name: str) -> Any:
    if name == "reasoning":
        return _anthropic([{"type": "text", "text": "ok"}], "end_turn")
    if name == "multimodal":
        return _gemini([{"text": "ok"}])
    return _openai({"content": "ok"}, "stop")


def _seen_by(server: FakeServer) -> str:
    return " ".join(
        f"{r.path} {r.query} {r.headers} {r.body.decode(errors='replace')}" for r in server.received
    )


async def test_four_candidates_each_send_their_own_key_to_their_own_host_only(
    servers: dict[str, FakeServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ("OPENAI", "ANTHROPIC", "GEMINI", "GOOGLE"):
        monkeypatch.delenv(f"{variable}_API_KEY", raising=False)
        monkeypatch.delenv(f"{variable}_BASE_URL", raising=False)
    monkeypatch.setenv("GENERAL_KEY", CANARIES["general"])
    monkeypatch.setenv("ANTHROPIC_API_KEY", CANARIES["reasoning"])
    monkeypatch.setenv("ANTHROPIC_BASE_URL", servers["reasoning"].base_url)
    monkeypatch.setenv("VISION_KEY", CANARIES["multimodal"])
    monkeypatch.setenv("DOMAIN_KEY", CANARIES["domain"])
    flow = parse_flow(_flow(servers))
    slots, board = create_slots(flow, clock=MonotonicClock())
    slot = slots["assistant"]
    assert isinstance(slot, ModelSlot)
    assert board is not None
    request = ModelRequest(
        messages=(UserMessage(text="hi"),), metadata=RequestMetadata(conversation_id="c1")
    )
    try:
        for candidate in slot.candidates:
            servers[candidate.name].enqueue(_reply(candidate.name))
            response = await candidate.adapter.complete(request)
            assert response.message.text == "ok"
            assert candidate.adapter.name == PROVIDERS[candidate.name]
    finally:
        for candidate in slot.candidates:
            await candidate.adapter.aclose()
    for name, server in servers.items():
        assert len(server.received) == 1, name
        seen = _seen_by(server)
        assert CANARIES[name] in seen
        others = [other for other in CANARIES if other != name and CANARIES[other] in seen]
        assert others == [], f"{name}'s server received the keys of {others}"
    # Each candidate's breaker has its own p95 limit.
    limits = {c.name: board.breaker(c.adapter.name).policy.p95_s for c in slot.candidates}
    assert limits == {"general": 0.5, "reasoning": 0.5, "multimodal": 0.8, "domain": 1.5}


async def test_an_override_to_another_provider_never_takes_the_slots_host_or_key(
    servers: dict[str, FakeServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ("OPENAI", "ANTHROPIC", "GEMINI", "GOOGLE"):
        monkeypatch.delenv(f"{variable}_API_KEY", raising=False)
        monkeypatch.delenv(f"{variable}_BASE_URL", raising=False)
    monkeypatch.setenv("ANTHROPIC_API_KEY", CANARIES["reasoning"])
    monkeypatch.setenv("ANTHROPIC_BASE_URL", servers["reasoning"].base_url)
    monkeypatch.setenv("DOMAIN_KEY", CANARIES["domain"])
    flow = parse_flow(_flow(servers))
    overrides = {"assistant": "anthropic:claude-opus-4-6"}
    slots, _ = create_slots(flow, clock=MonotonicClock(), overrides=overrides)
    slot = slots["assistant"]
    assert isinstance(slot, ModelSlot)
    request = ModelRequest(messages=(UserMessage(text="hi"),))
    try:
        for candidate in slot.candidates:
            servers["reasoning"].enqueue(_reply("reasoning"))
            await candidate.adapter.complete(request)
    finally:
        for candidate in slot.candidates:
            await candidate.adapter.aclose()
    assert len(servers["reasoning"].received) == 4
    assert CANARIES["domain"] not in _seen_by(servers["reasoning"])
    assert all(not servers[n].received for n in ("general", "multimodal", "domain"))


_PROVIDERS = st.sampled_from(["openai", "anthropic", "gemini", "openai-compatible", "simulated"])
_maybe = st.none() | st.sampled_from(["http://127.0.0.1:1/v1", "http://127.0.0.1:2"])
_keys = st.none() | st.sampled_from(["KEY_A", "KEY_B"])


@given(
    providers=st.tuples(_PROVIDERS, _PROVIDERS),
    slot=st.tuples(_maybe, _keys),
    own=st.tuples(_maybe, _keys),
)
def test_a_candidate_takes_the_slots_endpoint_and_key_only_for_the_same_provider(
    providers: tuple[str, str],
    slot: tuple[str | None, str | None],
    own: tuple[str | None, str | None],
) -> None:
    (slot_provider, candidate_provider), (slot_url, slot_key), (own_url, own_key) = (
        providers,
        slot,
        own,
    )
    base = ModelConfig(model=f"{slot_provider}:m", base_url=slot_url, api_key_env=slot_key)
    option = CandidateConfig(
        name="c", model=f"{candidate_provider}:n", base_url=own_url, api_key_env=own_key
    )
    config = _candidate_config(base, option, 0)
    same = slot_provider == candidate_provider
    assert config.base_url == (own_url or (slot_url if same else None))
    assert config.api_key_env == (own_key or (slot_key if same else None))
