"""The package's public names."""

from __future__ import annotations

from relaybaton import adapters


def test_all_is_sorted_and_every_name_exists() -> None:
    assert adapters.__all__ == sorted(adapters.__all__)
    missing = [name for name in adapters.__all__ if not hasattr(adapters, name)]
    assert missing == []


def test_http_adapters_satisfy_the_model_adapter_protocol() -> None:
    from relaybaton.adapters import Secret

    for cls in (adapters.OpenAIChatAdapter, adapters.AnthropicAdapter, adapters.GeminiAdapter):
        instance = cls("m", api_key=Secret("key-12345678"), base_url="http://127.0.0.1:9")
        assert isinstance(instance, adapters.ModelAdapter)
