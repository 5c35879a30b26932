"""Building an adapter from a flow's model id: ``provider:model``.

``create_model_adapter("anthropic:claude-opus-4-6")`` reads the key and the base URL from
the environment (or the flow's overrides) and fails at start-up, not at the first call,
when a key is missing. The offline providers (``simulated:``, ``scripted``) are built by
the composition root before it calls this.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from relaybaton.adapters._anthropic import AnthropicAdapter
from relaybaton.adapters._credentials import resolve_api_key
from relaybaton.adapters._gemini import GeminiAdapter
from relaybaton.adapters._http import Timeouts
from relaybaton.adapters._openai import OpenAIChatAdapter
from relaybaton.adapters._pricing import PriceTable
from relaybaton.adapters._protocol import Capabilities, ModelAdapter
from relaybaton.adapters._provider import ProviderAdapter
from relaybaton.adapters._retry import RetryPolicy
from relaybaton.errors import ConfigError
from relaybaton.runtime import Clock

__all__ = ["BASE_URL_VARIABLES", "DEFAULT_BASE_URLS", "PROVIDERS", "create_model_adapter"]

PROVIDERS = ("anthropic", "gemini", "openai", "openai-compatible")

DEFAULT_BASE_URLS = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
    "gemini": "https://generativelanguage.googleapis.com",
}
BASE_URL_VARIABLES = {
    "openai": "OPENAI_BASE_URL",
    "anthropic": "ANTHROPIC_BASE_URL",
    "gemini": "GEMINI_BASE_URL",
}

# Conservative defaults; a flow that knows its model better passes capabilities.
_CAPABILITIES = {
    "openai": Capabilities(vision=True, context_tokens=400_000),
    "anthropic": Capabilities(vision=True, context_tokens=200_000),
    "gemini": Capabilities(vision=True, context_tokens=1_000_000),
    "openai-compatible": Capabilities(vision=False, context_tokens=128_000),
}


def _split(model_id: str) -> tuple[str, str]:
    provider, sep, model = model_id.partition(":")
    if not sep or not provider or not model:
        raise ConfigError(
            f"model id: expected `provider:model` (e.g. `openai:gpt-5.2`), got {model_id!r}; "
            f"known providers: {', '.join(PROVIDERS)}"
        )
    if provider not in PROVIDERS:
        raise ConfigError(
            f"model id {model_id!r}: unknown provider {provider!r}; "
            f"expected one of {', '.join(PROVIDERS)}"
        )
    return provider, model


def create_model_adapter(
    model_id: str,
    *,
    base_url: str | None = None,
    api_key_env: str | None = None,
    prices: Mapping[str, object] | None = None,
    timeouts: Timeouts | None = None,
    retry: RetryPolicy | None = None,
    capabilities: Capabilities | None = None,
    clock: Clock | None = None,
    environ: Mapping[str, str] | None = None,
) -> ModelAdapter:
    """Build the HTTP adapter that ``model_id`` names; no connection is opened yet.

    Args:
        model_id: ``openai:gpt-5.2``, ``anthropic:claude-opus-4-6``, ``gemini:gemini-3-pro``
            or ``openai-compatible:minimax-m2.5`` (which needs ``base_url``).
        base_url: the flow's base URL; else ``OPENAI_BASE_URL`` / ``ANTHROPIC_BASE_URL`` /
            ``GEMINI_BASE_URL``; else the provider's public endpoint.
        api_key_env: the variable holding the key, instead of the provider's usual one.
        prices: price overrides, ``{provider: {model: {input, cached_input, output}}}``.
        timeouts: connect, first-byte and total timeouts.
        retry: the retry policy when the adapter is called on its own; under a
            ``ModelSlot`` the slot's policy governs and the adapter sends each call once.
        capabilities: what the model accepts, when the provider default is wrong.
        clock: the clock for backoff sleeps (the runtime's, in production).
        environ: the environment to read (``os.environ`` by default).

    Raises:
        ConfigError: the id is malformed, the provider unknown, or a base URL missing.
        MissingCredentialsError: the key's variable is not set.
    """
    env = os.environ if environ is None else environ
    provider, model = _split(model_id)
    url = (
        base_url
        or env.get(BASE_URL_VARIABLES.get(provider, ""), "")
        or DEFAULT_BASE_URLS.get(provider, "")
    )
    if not url:
        raise ConfigError(
            f"model {model_id!r}: an openai-compatible model needs a base URL; set `base_url` "
            "in the flow (e.g. http://localhost:8000/v1 for vLLM, http://localhost:11434/v1 "
            "for Ollama)"
        )
    if not url.startswith(("http://", "https://")):
        raise ConfigError(
            f"model {model_id!r}: expected an http(s) base URL, got {url!r}; "
            "check base_url or the *_BASE_URL variable"
        )
    try:
        table = PriceTable.default(prices)
    except ConfigError as exc:
        raise ConfigError(f"model {model_id!r}: {exc}") from exc
    api_key = resolve_api_key(provider, model_id, api_key_env=api_key_env, environ=env)
    caps = capabilities or _CAPABILITIES[provider]
    if provider in ("openai", "openai-compatible"):
        return OpenAIChatAdapter(
            model,
            api_key=api_key,
            base_url=url,
            timeouts=timeouts,
            retry=retry,
            prices=table,
            clock=clock,
            capabilities=caps,
            provider_name=provider,
            # Servers copying the API took max_tokens long before max_completion_tokens.
            max_tokens_field="max_completion_tokens" if provider == "openai" else "max_tokens",
        )
    cls: type[ProviderAdapter] = AnthropicAdapter if provider == "anthropic" else GeminiAdapter
    return cls(
        model,
        api_key=api_key,
        base_url=url,
        timeouts=timeouts,
        retry=retry,
        prices=table,
        clock=clock,
        capabilities=caps,
    )
