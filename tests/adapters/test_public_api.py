"""The package's public names."""

from __future__ import annotations

from relaybaton import adapters
from relaybaton.adapters._anthropic import AnthropicAdapter
from relaybaton.adapters._credentials import Secret
from relaybaton.adapters._gemini import GeminiAdapter
from relaybaton.adapters._openai import OpenAIChatAdapter


def test_all_is_sorted_and_every_name_exists() -> None:
    assert adapters.__all__ == sorted(adapters.__all__)
    missing = [name for name in adapters.__all__ if not hasattr(adapters, name)]
    assert missing == []


def test_http_adapters_satisfy_the_model_adapter_protocol() -> None:
    for cls in (OpenAIChatAdapter, AnthropicAdapter, GeminiAdapter):
        instance = cls("m", api_key=Secret("key-12345678"), base_url="http://127.0.0.1:9")
        assert isinstance(instance, adapters.ModelAdapter)
