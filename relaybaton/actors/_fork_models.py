"""The models forks chose, built once per (slot, model id) and closed with the runtime.

Apart from ``_fork_choice.py`` (the per-call part) because the flow context holds one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import final

from relaybaton.actors.routing._slot import ModelSlot
from relaybaton.adapters import ModelAdapter
from relaybaton.errors import ConfigError

__all__ = ["ForkModels", "ModelBuilder"]

#: Builds the adapter for ``(slot name, provider:model id)``; raises ``ConfigError``
#: (``MissingCredentialsError`` included) when it cannot.
ModelBuilder = Callable[[str, str], ModelAdapter]


def _candidate(slot: ModelSlot, model_id: str) -> ModelAdapter | None:
    """The slot's own adapter or candidate that ``model_id`` names, if any."""
    for candidate in slot.candidates:
        if model_id in {candidate.name, candidate.adapter.name}:
            return candidate.adapter
    if model_id in {slot.primary.name, slot.adapter.name}:
        return slot.primary if slot.primary.name == model_id else slot.adapter
    return None


@final
class ForkModels:
    """The models forks chose, one slot per (slot name, model id), built on first use."""

    def __init__(self, builder: ModelBuilder | None = None) -> None:
        self.builder = builder
        self.slots: dict[tuple[str, str], ModelSlot] = {}
        self._built: list[ModelAdapter] = []

    def slot_for(self, base: ModelSlot, model_id: str) -> ModelSlot:
        """The slot that answers for ``model_id`` in place of ``base``.

        Raises:
            ConfigError: ``model_id`` is no candidate of ``base`` and cannot be built.
        """
        key = (base.name, model_id)
        slot = self.slots.get(key)
        if slot is not None:
            return slot
        adapter = _candidate(base, model_id)
        if adapter is None:
            if self.builder is None:
                known = sorted({c.name for c in base.candidates} | {base.primary.name})
                raise ConfigError(
                    f"model {model_id!r} is not a candidate of slot {base.name!r} "
                    f"({', '.join(known)}) and this runtime builds no other models"
                )
            adapter = self.builder(base.name, model_id)
            self._built.append(adapter)
        slot = ModelSlot(base.name, adapter, clock=base.clock, retry=base.retry)
        self.slots[key] = slot
        return slot

    async def aclose(self) -> None:
        """Close the adapters built for forks (a slot's own candidates stay its owner's)."""
        built, self._built = self._built, []
        for adapter in built:
            await adapter.aclose()
