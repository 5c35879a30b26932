"""Model overrides for one run, and the simulated stand-ins they must not leave behind.

``--model '*=openai:gpt-5.2'`` asks for a real model in every slot. A slot's ``fallbacks``
written for the offline example are ``simulated:`` models: kept, they would answer real
users whenever the real provider fails (a 5xx, a refused connection), and the supervisor
could pin the slot to one of them. So an override that names a real provider drops the
slot's simulated fallbacks, and says so at start-up; a simulated model answers only when
someone names it (in the override itself, or in a slot the override leaves alone).
"""

from __future__ import annotations

from collections.abc import Mapping

import structlog

from relaybaton.errors import ConfigError

__all__ = ["dropped_stand_ins", "kept_fallbacks", "parse_model_overrides"]

_log = structlog.get_logger("relaybaton.flow")

_SIMULATED = "simulated:"


def parse_model_overrides(values: list[str], slots: list[str]) -> dict[str, str]:
    """Turn ``SLOT=provider:model`` strings (``*`` for every slot) into a mapping."""
    overrides: dict[str, str] = {}
    for value in values:
        slot, sep, model = value.partition("=")
        if not sep or not slot or ":" not in model:
            raise ConfigError(
                f"--model {value!r}: write SLOT=provider:model, e.g. general=openai:gpt-5.2 "
                "or '*=simulated:general'"
            )
        if slot == "*":
            overrides.update(dict.fromkeys(slots, model))
        elif slot not in slots:
            raise ConfigError(
                f"--model {value!r}: the flow has no slot {slot!r}; its slots: {', '.join(slots)}"
            )
        else:
            overrides[slot] = model
    return overrides


def kept_fallbacks(slot: str, fallbacks: list[str], overrides: Mapping[str, str]) -> list[str]:
    """The slot's fallbacks for this run: without the simulated ones a real override drops."""
    override = overrides.get(slot)
    if override is None or override.startswith(_SIMULATED):
        return fallbacks
    return [f for f in fallbacks if not f.startswith(_SIMULATED)]


def dropped_stand_ins(
    fallbacks_by_slot: Mapping[str, list[str]], overrides: Mapping[str, str]
) -> dict[str, list[str]]:
    """Per slot, the simulated fallbacks an override drops; each drop is logged (a warning)."""
    dropped: dict[str, list[str]] = {}
    for slot, fallbacks in fallbacks_by_slot.items():
        kept = kept_fallbacks(slot, fallbacks, overrides)
        gone = [f for f in fallbacks if f not in kept]
        if gone:
            dropped[slot] = gone
            _log.warning(
                "simulated_fallbacks_dropped",
                slot=slot,
                model=overrides[slot],
                dropped=gone,
                why="a real model was asked for; a simulated one must not answer in its place",
            )
    return dropped
