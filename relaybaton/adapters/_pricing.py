"""Dollars per call: a price table per 1M input, cached input and output tokens.

The table ships as ``prices.toml`` next to this module; a flow overrides or extends it with
a mapping of the same shape (``{"openai": {"gpt-5.2": {"input": ..., ...}}}``).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from importlib import resources
from typing import final

import msgspec
import structlog

from relaybaton.adapters._chat import Usage
from relaybaton.errors import ConfigError

__all__ = ["ModelPrice", "PriceTable"]

_log = structlog.get_logger("relaybaton.adapters")


class ModelPrice(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """US dollars per 1M tokens."""

    input: float
    output: float
    cached_input: float | None = None  # None: cached tokens cost the full input price


@final
class PriceTable:
    """Prices by provider and model; ``cost`` prices one call's ``Usage``."""

    def __init__(self, prices: Mapping[str, Mapping[str, ModelPrice]]) -> None:
        self._prices = {p: dict(models) for p, models in prices.items()}
        self._warned: set[tuple[str, str]] = set()

    @classmethod
    def default(cls, overrides: Mapping[str, object] | None = None) -> PriceTable:
        """Load the shipped table, then apply ``overrides`` (same shape as the TOML).

        Raises:
            ConfigError: an override is not a table of models, or an entry is not
                ``{"input": ..., "output": ...}``; the message names the entry.
        """
        text = resources.files("relaybaton.adapters").joinpath("prices.toml").read_text()
        table = cls.from_mapping(tomllib.loads(text))
        if overrides:
            extra = cls.from_mapping(overrides)
            for provider, models in extra._prices.items():
                table._prices.setdefault(provider, {}).update(models)
        return table

    @classmethod
    def from_mapping(cls, raw: Mapping[str, object]) -> PriceTable:
        """Build a table from ``{provider: {model: {input, cached_input, output}}}``."""
        prices: dict[str, dict[str, ModelPrice]] = {}
        for provider, models in raw.items():
            if not isinstance(models, Mapping):
                raise ConfigError(
                    f"prices: expected a table of models at `{provider}`, "
                    f"got {type(models).__name__}"
                )
            for model, entry in models.items():
                try:
                    price = msgspec.convert(entry, ModelPrice)
                except msgspec.ValidationError as exc:
                    raise ConfigError(
                        f"prices: {exc} - at `{provider}.{model}`; write "
                        "{input = ..., cached_input = ..., output = ...} in $ per 1M tokens"
                    ) from exc
                prices.setdefault(provider, {})[model] = price
        return cls(prices)

    def lookup(self, provider: str, model: str) -> ModelPrice | None:
        """The price of ``model``, matched exactly, else by its longest listed prefix."""
        models = self._prices.get(provider, {})
        if model in models:
            return models[model]
        # A provider answers with a dated snapshot ("gpt-5.2-2025-12-11") or a path
        # ("models/gemini-2.5-pro"); both are priced as the name they start from.
        name = model.removeprefix("models/")
        best = max((m for m in models if name.startswith(m)), key=len, default=None)
        return models[best] if best is not None else None

    def cost(self, provider: str, model: str, usage: Usage) -> float:
        """Dollars for ``usage``; 0.0 (and one warning per model) when the model is unpriced.

        ``usage.input_tokens`` includes the cached ones, which are priced at the cached rate.
        """
        price = self.lookup(provider, model)
        if price is None:
            if (provider, model) not in self._warned:
                self._warned.add((provider, model))
                _log.warning("model has no price; cost is 0", provider=provider, model=model)
            return 0.0
        cached = min(usage.cached_input_tokens, usage.input_tokens)
        cached_rate = price.input if price.cached_input is None else price.cached_input
        dollars = (
            (usage.input_tokens - cached) * price.input
            + cached * cached_rate
            + usage.output_tokens * price.output
        )
        return dollars / 1_000_000

    def priced(self, provider: str, model: str, usage: Usage) -> Usage:
        """``usage`` with ``cost_usd`` filled in."""
        return msgspec.structs.replace(usage, cost_usd=self.cost(provider, model, usage))
