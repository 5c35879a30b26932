"""The flow file's ``[variants.<name>]`` tables: versions of a flow kept in one file.

A variant changes some slots' models and some agents' instructions::

    [variants.concise]
    models = { general = "simulated:general-v2" }
    instructions = { triage = "Route in one sentence." }

``relaybaton eval FLOW DATASET --compare-variant concise`` grades it against the flow as
written, and ``relaybaton serve FLOW --ab-variant concise`` serves both as an A/B, like two
flow files would be.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from relaybaton.errors import ConfigError, FlowProblem

if TYPE_CHECKING:
    from relaybaton.flow._file import FlowFile

__all__ = ["VariantConfig", "check_variants", "variant_of"]

_PROVIDERS = ("simulated", "openai", "openai-compatible", "anthropic", "gemini")


class VariantConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One ``[variants.<name>]`` table: models per slot and instructions per agent."""

    models: dict[str, str] = msgspec.field(default_factory=dict)
    instructions: dict[str, str] = msgspec.field(default_factory=dict)
    description: str = ""


def check_variants(
    variants: dict[str, VariantConfig], slots: list[str], agents: list[str]
) -> list[FlowProblem]:
    """Every slot, agent or model id a variant names that the flow does not have."""
    problems: list[FlowProblem] = []
    for name, variant in variants.items():
        at = f"variants.{name}"
        if not variant.models and not variant.instructions:
            problems.append(FlowProblem(at, "changes nothing; give it models or instructions"))
        for slot, model in variant.models.items():
            if slot not in slots:
                problems.append(
                    FlowProblem(
                        f"{at}.models.{slot}",
                        f'no model slot named "{slot}"; the flow\'s slots: {", ".join(slots)}',
                    )
                )
            if ":" not in model or model.split(":", 1)[0] not in _PROVIDERS:
                problems.append(
                    FlowProblem(
                        f"{at}.models.{slot}", f'"{model}" is not a model id; write provider:model'
                    )
                )
        for agent in variant.instructions:
            if agent not in agents:
                problems.append(
                    FlowProblem(
                        f"{at}.instructions.{agent}",
                        f'no agent named "{agent}"; the flow\'s agents: {", ".join(agents)}',
                    )
                )
    return problems


def variant_of(flow: FlowFile, name: str) -> tuple[FlowFile, dict[str, str]]:
    """The flow with variant ``name``'s instructions, and its models as slot overrides."""
    variants = flow.variants
    variant = variants.get(name)
    if variant is None:
        raise ConfigError(
            f"the flow has no variant {name!r}; its variants: {', '.join(variants) or 'none'} "
            "(declare one in a [variants.NAME] table)"
        )
    agents = [
        msgspec.structs.replace(agent, instructions=variant.instructions[agent.name])
        if agent.name in variant.instructions
        else agent
        for agent in flow.agents
    ]
    return msgspec.structs.replace(flow, agents=agents), dict(variant.models)
