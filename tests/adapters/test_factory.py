"""Model ids, keys from the environment, base URLs, and the price table."""

from __future__ import annotations

import pickle

import pytest

from relaybaton.adapters import Usage, create_model_adapter
from relaybaton.adapters._anthropic import AnthropicAdapter
from relaybaton.adapters._credentials import Secret
from relaybaton.adapters._gemini import GeminiAdapter
from relaybaton.adapters._openai import OpenAIChatAdapter
from relaybaton.adapters._pricing import PriceTable
from relaybaton.errors import ConfigError, MissingCredentialsError

pytestmark = pytest.mark.anyio


async def test_each_provider_builds_its_adapter_with_its_default_endpoint() -> None:
    env = {"OPENAI_API_KEY": "k1", "ANTHROPIC_API_KEY": "k2", "GEMINI_API_KEY": "k3"}
    openai = create_model_adapter("openai:gpt-5.2", environ=env)
    anthropic = create_model_adapter("anthropic:claude-opus-4-6", environ=env)
    gemini = create_model_adapter("gemini:gemini-3-pro", environ=env)
    try:
        assert isinstance(openai, OpenAIChatAdapter)
        assert isinstance(anthropic, AnthropicAdapter)
        assert isinstance(gemini, GeminiAdapter)
        assert [a.name for a in (openai, anthropic, gemini)] == [
            "openai:gpt-5.2", "anthropic:claude-opus-4-6", "gemini:gemini-3-pro",
        ]  # fmt: skip
        assert "https://api.openai.com/v1" in repr(openai)
        assert gemini.capabilities.vision
    finally:
        for a in (openai, anthropic, gemini):
            await a.aclose()


def test_missing_key_fails_at_construction_naming_the_variable() -> None:
    with pytest.raises(MissingCredentialsError) as info:
        create_model_adapter("anthropic:claude-opus-4-6", environ={})
    assert "set the environment variable ANTHROPIC_API_KEY" in str(info.value)
    assert info.value.variable == "ANTHROPIC_API_KEY"


def test_gemini_prefers_google_api_key_over_gemini_api_key() -> None:
    from relaybaton.adapters._credentials import resolve_api_key

    env = {"GOOGLE_API_KEY": "google-key-123", "GEMINI_API_KEY": "gemini-key-456"}
    key = resolve_api_key("gemini", "gemini:x", api_key_env=None, environ=env)
    assert key is not None
    assert key.reveal() == "google-key-123"
    only = resolve_api_key("gemini", "gemini:x", api_key_env=None, environ={"GEMINI_API_KEY": "g"})
    assert only is not None
    assert only.reveal() == "g"
    with pytest.raises(MissingCredentialsError, match="GOOGLE_API_KEY or GEMINI_API_KEY"):
        resolve_api_key("gemini", "gemini:x", api_key_env=None, environ={})


def test_flow_named_key_variable_replaces_the_provider_default() -> None:
    with pytest.raises(MissingCredentialsError, match="MINIMAX_KEY"):
        create_model_adapter(
            "openai-compatible:minimax-m2.5",
            base_url="https://api.minimax.example/v1",
            api_key_env="MINIMAX_KEY",
            environ={"OPENAI_API_KEY": "not this one"},
        )


async def test_openai_compatible_needs_a_base_url_but_no_key() -> None:
    with pytest.raises(ConfigError, match="needs a base URL"):
        create_model_adapter("openai-compatible:llama3", environ={})
    local = create_model_adapter(
        "openai-compatible:llama3", base_url="http://localhost:11434/v1", environ={}
    )
    assert local.name == "openai-compatible:llama3"
    await local.aclose()


async def test_base_url_comes_from_the_flow_then_the_environment() -> None:
    env = {"OPENAI_API_KEY": "k", "OPENAI_BASE_URL": "http://localhost:8000/v1"}
    from_env = create_model_adapter("openai:qwen", environ=env)
    from_flow = create_model_adapter("openai:qwen", base_url="http://127.0.0.1:9/v1", environ=env)
    assert "localhost:8000" in repr(from_env)
    assert "127.0.0.1:9" in repr(from_flow)
    await from_env.aclose()
    await from_flow.aclose()


@pytest.mark.parametrize(
    ("model_id", "fragment"),
    [
        ("gpt-5.2", "expected `provider:model`"),
        ("simulated:fast", "unknown provider 'simulated'; expected one of anthropic, gemini"),
        ("azure:gpt", "unknown provider 'azure'"),
    ],
)
def test_bad_model_ids_are_config_errors_naming_the_known_providers(
    model_id: str, fragment: str
) -> None:
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(")):
        create_model_adapter(model_id, environ={})


def test_secret_never_prints_its_value() -> None:
    secret = Secret("canary-value-xyz")
    assert "canary" not in repr(secret)
    assert "canary" not in str(secret)
    assert "canary" not in f"{secret} {secret!r} {[secret]}"
    assert secret.reveal() == "canary-value-xyz"
    with pytest.raises(TypeError):
        pickle.dumps(secret)


def test_cost_prices_cached_tokens_and_dated_snapshots() -> None:
    table = PriceTable.default()
    usage = Usage(input_tokens=1_000_000, cached_input_tokens=400_000, output_tokens=100_000)
    # 600k fresh at 1.75, 400k cached at 0.175, 100k out at 14 ($ per 1M)
    expected = 0.6 * 1.75 + 0.4 * 0.175 + 0.1 * 14
    assert table.cost("openai", "gpt-5.2-2025-12-11", usage) == pytest.approx(expected)
    assert table.cost("gemini", "models/gemini-2.5-pro", usage) > 0
    assert table.cost("openai", "unknown-model", usage) == 0.0


def test_flow_prices_override_the_shipped_table_and_bad_entries_are_named() -> None:
    table = PriceTable.default({"openai": {"gpt-5.2": {"input": 1.0, "output": 2.0}}})
    usage = Usage(input_tokens=1_000_000, cached_input_tokens=1_000_000, output_tokens=0)
    assert table.cost("openai", "gpt-5.2", usage) == pytest.approx(1.0)  # no cached price
    with pytest.raises(ConfigError, match=r"at `openai.gpt-x`"):
        PriceTable.default({"openai": {"gpt-x": {"input": "cheap"}}})
