"""The composition root: a checked flow file becomes agents, adapters and a running runtime.

This is the only module that names concrete model adapters.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager

from relaybaton._app_tools import open_flow_tools
from relaybaton._flowfile import AgentConfig, FlowFile, HandoffConfig, resolve_function
from relaybaton._flowfile_memory import memory_tools_of
from relaybaton.actors import (
    Agent,
    AgentTool,
    FunctionTool,
    Handoff,
    HistoryFilter,
    Runtime,
    handoff,
    keep_last_user_message,
    open_runtime,
    strip_tool_calls,
)
from relaybaton.actors._agent import Tool
from relaybaton.adapters import Capabilities, ModelAdapter, RetryPolicy, create_model_adapter
from relaybaton.adapters._simulated import SimulatedModel
from relaybaton.errors import ConfigError
from relaybaton.runtime import Clock, MonotonicClock

__all__ = ["build_agents", "create_adapters", "open_flow", "parse_model_overrides"]

_FILTERS: dict[str, HistoryFilter | None] = {
    "full": None,
    "no_tools": strip_tool_calls,
    "last_user_message": keep_last_user_message,
}

# The embedded default's prices when the flow gives none: a small hosted model's list price.
_DEFAULT_PRICE_IN = 0.00015
_DEFAULT_PRICE_OUT = 0.0006


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


def create_adapters(
    flow: FlowFile, *, clock: Clock, overrides: Mapping[str, str] | None = None
) -> dict[str, ModelAdapter]:
    """One adapter per model slot of the flow (``overrides`` replaces model ids)."""
    adapters: dict[str, ModelAdapter] = {}
    for slot, config in flow.models.items():
        model_id = (overrides or {}).get(slot, config.model)
        provider, _, name = model_id.partition(":")
        if provider == "simulated":
            adapters[slot] = SimulatedModel(
                model_id,
                latency_p50_s=config.latency_ms / 1000,
                latency_sigma=config.latency_sigma,
                error_rate=config.error_rate,
                price_in_per_1k=(
                    config.price_in_per_1k
                    if config.price_in_per_1k is not None
                    else _DEFAULT_PRICE_IN
                ),
                price_out_per_1k=(
                    config.price_out_per_1k
                    if config.price_out_per_1k is not None
                    else _DEFAULT_PRICE_OUT
                ),
                capabilities=Capabilities(
                    vision=bool(config.vision),
                    context_tokens=config.context_tokens or 128_000,
                ),
                seed=config.seed,
                clock=clock,
            )
        else:
            capabilities = None
            if config.vision is not None or config.context_tokens is not None:
                capabilities = Capabilities(
                    vision=bool(config.vision), context_tokens=config.context_tokens or 128_000
                )
            try:
                adapters[slot] = create_model_adapter(
                    model_id,
                    base_url=config.base_url,
                    api_key_env=config.api_key_env,
                    prices=flow.prices or None,
                    # The slot retries every adapter the same way, on the runtime's clock.
                    retry=RetryPolicy(attempts=1),
                    capabilities=capabilities,
                    clock=clock,
                )
            except ConfigError as exc:
                raise ConfigError(f"models.{slot} ({name}): {exc}") from exc
    return adapters


def _handoff(edge: str | HandoffConfig, configs: dict[str, AgentConfig]) -> Handoff:
    if isinstance(edge, str):
        return handoff(edge, tool_description=configs[edge].description or None)
    return handoff(
        edge.agent,
        tool_name=edge.tool_name,
        tool_description=edge.description or configs[edge.agent].description or None,
        return_to_sender=edge.return_to_sender,
        lease_turns=edge.lease_turns,
        input_filter=_FILTERS[edge.history],
    )


def build_agents(flow: FlowFile, extra: Mapping[str, Tool] | None = None) -> dict[str, Agent]:
    """The flow's agents by name; references between them are by name.

    ``extra`` holds the memory and MCP tools by their flow-file names (``memory.search_nodes``,
    ``mcp.files.read_file``), as ``open_flow`` opens them; without it those are left out.
    """
    configs = {a.name: a for a in flow.agents}
    functions = {
        name: FunctionTool(
            resolve_function(tool.function, flow.base_dir),
            name=name,
            description=tool.description,
        )
        for name, tool in flow.tools.items()
    }
    agents: dict[str, Agent] = {}
    for config in flow.agents:
        tools: list[Tool] = []
        for tool in config.tools:
            if isinstance(tool, str) and tool.startswith("mcp."):
                prefix = tool.removesuffix("*")
                tools.extend(
                    t
                    for name, t in (extra or {}).items()
                    if (name.startswith(prefix) if tool.endswith(".*") else name == tool)
                )
            elif isinstance(tool, str) and tool.startswith("memory."):
                continue  # with the memory access below, in the graph's tool order
            elif isinstance(tool, str):
                tools.append(functions[tool])
            else:
                tools.append(
                    AgentTool(
                        agent=tool.agent,
                        name=tool.name or tool.agent,
                        description=tool.description
                        or configs[tool.agent].description
                        or f"Ask the {tool.agent} agent.",
                        timeout=tool.timeout_s,
                    )
                )
        tools.extend(
            (extra or {})[f"memory.{name}"]
            for name in memory_tools_of(config)
            if f"memory.{name}" in (extra or {})
        )
        agents[config.name] = Agent(
            name=config.name,
            instructions=config.instructions,
            model=config.model,
            description=config.description,
            tools=tuple(tools),
            handoffs=tuple(_handoff(edge, configs) for edge in config.handoffs),
            max_turns=config.max_turns,
        )
    return agents


@asynccontextmanager
async def open_flow(
    flow: FlowFile,
    *,
    clock: Clock | None = None,
    tracing: bool = True,
    model_overrides: Mapping[str, str] | None = None,
    gc_young_threshold: int | None = 10_000,
) -> AsyncIterator[Runtime]:
    """Build the flow's agents and adapters and run them for the block."""
    clock = clock or MonotonicClock()
    async with AsyncExitStack() as stack:
        # Memory store and MCP sessions first: the agents' tools come from them, and they
        # close after the runtime (the exit stack unwinds after the block below).
        extras = await open_flow_tools(flow, stack)
        async with _open_runtime_of(
            flow,
            build_agents(flow, extras.tools),
            clock,
            tracing,
            model_overrides,
            gc_young_threshold,
        ) as runtime:
            extras.start(runtime.system)
            yield runtime


@asynccontextmanager
async def _open_runtime_of(  # noqa: PLR0917 - private; open_flow's arguments
    flow: FlowFile,
    agents: dict[str, Agent],
    clock: Clock,
    tracing: bool,
    model_overrides: Mapping[str, str] | None,
    gc_young_threshold: int | None,
) -> AsyncIterator[Runtime]:
    adapters = create_adapters(flow, clock=clock, overrides=model_overrides)
    try:
        async with open_runtime(
            agents[flow.entry],
            agents=list(agents.values()),
            models=adapters,
            clock=clock,
            tracing=tracing,
            max_turns=flow.flow.max_turns,
            max_handoffs=flow.flow.max_handoffs,
            gc_young_threshold=gc_young_threshold,
        ) as runtime:
            yield runtime
    finally:
        for adapter in adapters.values():
            await adapter.aclose()
