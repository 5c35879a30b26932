"""The composition root: a checked flow file becomes agents, adapters and a running runtime.

This is the only module that names concrete model adapters.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager

import msgspec

from relaybaton.actors import (
    Agent,
    AgentTool,
    FunctionTool,
    Handoff,
    HistoryFilter,
    Runtime,
    Tool,
    handoff,
    keep_last_user_message,
    open_runtime,
    strip_tool_calls,
)
from relaybaton.actors.routing import (
    BreakerPolicy,
    Budgets,
    Candidate,
    HealthBoard,
    HeuristicClassifier,
    LearnedRouter,
    ModelSlot,
    Router,
    open_model_supervisor,
)
from relaybaton.adapters import (
    Capabilities,
    ModelAdapter,
    SimulatedModel,
    create_model_adapter,
)
from relaybaton.adapters._pricing import PriceTable
from relaybaton.errors import ConfigError
from relaybaton.flow._file import (
    AgentConfig,
    CandidateConfig,
    FlowFile,
    HandoffConfig,
    ModelConfig,
    RolloutConfig,
    RoutingConfig,
    resolve_function,
)
from relaybaton.flow._guardrails import guardrails_by_agent, load_schema, tool_rules_of
from relaybaton.flow._memory import memory_tools_of
from relaybaton.flow._overrides import dropped_stand_ins, kept_fallbacks, parse_model_overrides
from relaybaton.flow._routing import rollout_policy_of, rules_of
from relaybaton.flow._supervision import supervisor_policy_of
from relaybaton.flow._tools import open_flow_tools
from relaybaton.runtime import Clock, Durability, MonotonicClock, Store

__all__ = [
    "build_agents",
    "check_models",
    "close_slots",
    "create_adapters",
    "open_flow",
    "parse_model_overrides",
]

_FILTERS: dict[str, HistoryFilter | None] = {
    "full": None,
    "no_tools": strip_tool_calls,
    "last_user_message": keep_last_user_message,
}

# The embedded default's prices when the flow gives none: a small hosted model's list price.
_DEFAULT_PRICE_IN = 0.00015
_DEFAULT_PRICE_OUT = 0.0006


def create_adapters(
    flow: FlowFile, *, clock: Clock, overrides: Mapping[str, str] | None = None
) -> dict[str, ModelAdapter]:
    """One adapter per model slot of the flow (``overrides`` replaces model ids)."""
    return {
        slot: _adapter(flow, slot, (overrides or {}).get(slot, config.model), clock)
        for slot, config in flow.models.items()
    }


def create_slots(
    flow: FlowFile, *, clock: Clock, overrides: Mapping[str, str] | None = None
) -> tuple[dict[str, ModelAdapter | ModelSlot], HealthBoard | None]:
    """The flow's slots: plain adapters, or supervised slots when some have fallbacks.

    A slot with ``fallbacks`` holds its model and the fallbacks as candidates behind one
    health board (a breaker per adapter), which the model supervisor watches. A slot with a
    routing table holds its candidates and a router that picks one per call, on the same
    board (the router skips candidates whose breaker is open). A slot with a rollout table
    starts its rollout (unless ``overrides`` replaces the slot's model for this run).
    """
    overrides = overrides or {}
    adapters: dict[str, ModelAdapter | ModelSlot] = {
        slot: _adapter(flow, slot, overrides.get(slot, config.model), clock)
        for slot, config in flow.models.items()
        if config.routing is None
    }
    if flow.supervisor is None and not any(
        c.fallbacks or c.routing is not None or c.rollout is not None for c in flow.models.values()
    ):
        return adapters, None
    board = HealthBoard(clock, flow.supervisor or BreakerPolicy())
    dropped_stand_ins({s: c.fallbacks for s, c in flow.models.items()}, overrides)
    for slot, config in flow.models.items():
        if config.routing is not None:
            adapters[slot] = _routed_slot(flow, slot, config.routing, clock, board, overrides)
            continue
        primary = adapters[slot]
        assert not isinstance(primary, ModelSlot)
        fallbacks = [
            _adapter(flow, slot, model_id, clock, fallback=True)
            for model_id in kept_fallbacks(slot, config.fallbacks, overrides)
        ]
        adapters[slot] = ModelSlot(
            slot,
            primary,
            clock=clock,
            board=board,
            candidates=[Candidate(a, tier=2) for a in (primary, *fallbacks)],
        )
    for slot, config in flow.models.items():
        if config.rollout is not None and slot not in overrides:
            routed = adapters[slot]
            assert isinstance(routed, ModelSlot)
            _start_rollout(flow, routed, config, config.rollout, clock)
    return adapters, board


def _start_rollout(
    flow: FlowFile, slot: ModelSlot, base: ModelConfig, rollout: RolloutConfig, clock: Clock
) -> None:
    """Start the slot's rollout; the new model takes the options of the one it replaces."""
    incumbent = slot.primary
    options = base
    routing = base.routing
    if routing is not None:
        name = rollout.replaces or next(
            (c.name for c in routing.candidates if c.model == base.model), ""
        )
        for index, option in enumerate(routing.candidates):
            if option.name == name:
                options = _candidate_config(base, option, index)
                incumbent = next(c.adapter for c in slot.candidates if c.name == name)
    config = msgspec.structs.replace(
        options,
        model=rollout.model,
        latency_ms=_first(rollout.latency_ms, options.latency_ms),
        error_rate=_first(rollout.error_rate, options.error_rate),
        price_in_per_1k=_first(rollout.price_in_per_1k, options.price_in_per_1k),
        price_out_per_1k=_first(rollout.price_out_per_1k, options.price_out_per_1k),
        seed=options.seed + 1 if rollout.seed is None else rollout.seed,
    )
    tools = incumbent.capabilities.tools
    adapter = _adapter(flow, slot.name, rollout.model, clock, config=config, tools=tools)
    slot.start_rollout(
        adapter,
        replaces=incumbent,
        policy=rollout_policy_of(rollout),
        shadow_limit=rollout.shadow_concurrency,
        shadow_timeout_s=rollout.shadow_timeout_s,
    )


def _candidate_config(base: ModelConfig, option: CandidateConfig, index: int) -> ModelConfig:
    """A routing candidate's options: its own, else the slot's."""
    same_provider = option.model.partition(":")[0] == base.model.partition(":")[0]
    return msgspec.structs.replace(
        base,
        model=option.model,
        # The slot's endpoint and key only for a candidate of the same provider: a key
        # must never reach another provider's host.
        base_url=option.base_url or (base.base_url if same_provider else None),
        api_key_env=option.api_key_env or (base.api_key_env if same_provider else None),
        vision=base.vision if option.vision is None else option.vision,
        context_tokens=option.context_tokens or base.context_tokens,
        price_in_per_1k=_first(option.price_in_per_1k, base.price_in_per_1k),
        price_out_per_1k=_first(option.price_out_per_1k, base.price_out_per_1k),
        latency_ms=_first(option.latency_ms, base.latency_ms),
        error_rate=_first(option.error_rate, base.error_rate),
        seed=base.seed + index if option.seed is None else option.seed,
        fallbacks=[],
        routing=None,
        rollout=None,
    )


def _routed_slot(  # noqa: PLR0917 - private, one call site
    flow: FlowFile,
    slot: str,
    routing: RoutingConfig,
    clock: Clock,
    board: HealthBoard,
    overrides: Mapping[str, str],
) -> ModelSlot:
    """A slot whose router picks one of its candidates per call.

    An override of the slot (``--model assistant=...``) replaces every candidate's model.
    """
    base = flow.models[slot]
    candidates: list[Candidate] = []
    primary: ModelAdapter | None = None
    for index, option in enumerate(routing.candidates):
        config = _candidate_config(base, option, index)
        model_id = overrides.get(slot, option.model)
        adapter = _adapter(flow, slot, model_id, clock, config=config, tools=option.tools)
        if primary is None and option.model == base.model:
            primary = adapter
        if option.p95_s is not None:
            board.set_policy(
                adapter.name, msgspec.structs.replace(board.policy, p95_s=option.p95_s)
            )
        prices = (config.price_in_per_1k, config.price_out_per_1k)
        if model_id.startswith("simulated:"):
            prices = (
                _first(prices[0], _DEFAULT_PRICE_IN),
                _first(prices[1], _DEFAULT_PRICE_OUT),
            )
        elif None in prices:
            # A real model's list price (the flow's [prices], else the shipped table), so
            # the cost policy and the ``cost`` rule feature never take it for free.
            listed = _list_price(flow, model_id)
            prices = (_first(prices[0], listed[0]), _first(prices[1], listed[1]))
        candidates.append(
            Candidate(
                adapter,
                name=option.name,
                tier=option.tier,
                price_in_per_1k=prices[0] or 0.0,
                price_out_per_1k=prices[1] or 0.0,
            )
        )
    limits = (
        routing.budget_usd_per_conversation,
        routing.budget_tokens_per_conversation,
        routing.budget_usd_per_agent,
        routing.budget_tokens_per_agent,
    )
    budgets = (
        Budgets(
            conversation_usd=routing.budget_usd_per_conversation,
            conversation_tokens=routing.budget_tokens_per_conversation,
            agent_usd=routing.budget_usd_per_agent,
            agent_tokens=routing.budget_tokens_per_agent,
            step_down_at=routing.step_down_at,
        )
        if any(limit is not None for limit in limits)
        else None
    )
    learned = (
        LearnedRouter(decay=routing.learn_decay, explore=routing.explore, seed=base.seed)
        if routing.policy == "learned"
        else None
    )
    router = Router(
        candidates,
        rules=rules_of(routing),
        learned=learned,
        budgets=budgets,
        health=board,
        cost_reference=next((c.name for c in routing.candidates if c.model == base.model), None),
    )
    return ModelSlot(
        slot,
        primary or candidates[0].adapter,
        clock=clock,
        board=board,
        candidates=candidates,
        router=router,
        classifier=HeuristicClassifier(),
    )


def _list_price(flow: FlowFile, model_id: str) -> tuple[float | None, float | None]:
    """A real model's listed price per 1k tokens (in, out), or Nones when unlisted."""
    provider, _, model = model_id.partition(":")
    listed = PriceTable.default(flow.prices or None).lookup(provider, model)
    if listed is None:
        return None, None
    return listed.input / 1000, listed.output / 1000


def _own_prices(flow: FlowFile, model_id: str, config: ModelConfig) -> dict[str, object] | None:
    """The flow's price table, with the model's own prices from its table (per 1k) on top."""
    if config.price_in_per_1k is None or config.price_out_per_1k is None:
        return dict(flow.prices) or None
    provider, _, model = model_id.partition(":")
    own = {"input": config.price_in_per_1k * 1000, "output": config.price_out_per_1k * 1000}
    merged: dict[str, object] = {p: dict(m) for p, m in flow.prices.items()}
    table = merged.setdefault(provider, {})
    assert isinstance(table, dict)
    table[model] = own
    return merged


async def check_models(flow: FlowFile, overrides: Mapping[str, str] | None = None) -> None:
    """Build every model of the flow as ``run`` would, then close them; no call is made.

    Raises what ``run`` raises at load: ``ConfigError`` (a missing base URL, a bad URL, a
    price entry) and ``MissingCredentialsError`` (a key's variable is not set).
    """
    adapters, _ = create_slots(flow, clock=MonotonicClock(), overrides=overrides)
    await close_slots(adapters)


def _first(value: float | None, default: float | None) -> float | None:
    return default if value is None else value


def _adapter(
    flow: FlowFile,
    slot: str,
    model_id: str,
    clock: Clock,
    *,
    fallback: bool = False,
    config: ModelConfig | None = None,
    tools: bool = True,
) -> ModelAdapter:
    config = config or flow.models[slot]
    provider, _, name = model_id.partition(":")
    # An override for this run may name another provider than the one the endpoint and
    # key variable were written for: they stay with their provider, never follow the slot.
    own_endpoint = provider == config.model.partition(":")[0]
    if provider == "simulated":
        # A simulated fallback shares the slot's options but not its injected failures.
        return SimulatedModel(
            model_id,
            latency_p50_s=config.latency_ms / 1000,
            latency_sigma=config.latency_sigma,
            error_rate=0.0 if fallback else config.error_rate,
            price_in_per_1k=(
                config.price_in_per_1k if config.price_in_per_1k is not None else _DEFAULT_PRICE_IN
            ),
            price_out_per_1k=(
                config.price_out_per_1k
                if config.price_out_per_1k is not None
                else _DEFAULT_PRICE_OUT
            ),
            capabilities=Capabilities(
                tools=tools,
                vision=bool(config.vision),
                context_tokens=config.context_tokens or 128_000,
            ),
            seed=config.seed + int(fallback),
            clock=clock,
        )
    capabilities = None
    if config.vision is not None or config.context_tokens is not None or not tools:
        capabilities = Capabilities(
            tools=tools,
            vision=bool(config.vision),
            context_tokens=config.context_tokens or 128_000,
        )
    try:
        return create_model_adapter(
            model_id,
            base_url=config.base_url if own_endpoint and not fallback else None,
            api_key_env=config.api_key_env if own_endpoint and not fallback else None,
            # The model's own prices (its candidate's or slot's table) go to the ledger too.
            prices=_own_prices(flow, model_id, config) if own_endpoint else flow.prices or None,
            # No retry policy of its own needed: every flow adapter runs under a ModelSlot,
            # which retries and has its adapters send each call once (``sending_once``).
            capabilities=capabilities,
            clock=clock,
        )
    except ConfigError as exc:
        raise ConfigError(f"models.{slot} ({name}): {exc}") from exc


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
            needs_approval=tool.needs_approval,
            approval_timeout=tool.approval_timeout_s,
            retry_safe=tool.retry_safe,
            rules=tool_rules_of(tool.rules),
        )
        for name, tool in flow.tools.items()
    }
    guardrails = guardrails_by_agent(flow, resolve_function)
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
            guardrails=guardrails.get(config.name, ()),
            output_schema=(
                None
                if config.output_schema is None
                else load_schema(config.output_schema, flow.base_dir)
            ),
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
    store: Store | None = None,
    durability: Durability | str = Durability.BATCHED,
    resume: bool = True,
) -> AsyncIterator[Runtime]:
    """Build the flow's agents and adapters and run them for the block.

    With a ``store``, every conversation is journaled there and the ones a previous run
    left unfinished continue at once (unless ``resume`` is False: a cluster node recovers
    each partition's as it gains it).
    """
    clock = clock or MonotonicClock()
    async with AsyncExitStack() as stack:
        # Memory store and MCP sessions first: the agents' tools come from them, and they
        # close after the runtime (the exit stack unwinds after the block below).
        extras = await open_flow_tools(flow, stack)
        async with _open_runtime_of(
            flow,
            build_agents(flow, extras.tools),
            clock,
            tracing=tracing,
            model_overrides=model_overrides,
            gc_young_threshold=gc_young_threshold,
            store=store,
            durability=durability,
            resume=resume,
        ) as runtime:
            extras.start(runtime.system)
            yield runtime


@asynccontextmanager
async def _open_runtime_of(
    flow: FlowFile,
    agents: dict[str, Agent],
    clock: Clock,
    *,
    tracing: bool,
    model_overrides: Mapping[str, str] | None,
    gc_young_threshold: int | None,
    store: Store | None,
    durability: Durability | str,
    resume: bool = True,
) -> AsyncIterator[Runtime]:
    adapters, board = create_slots(flow, clock=clock, overrides=model_overrides)
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
            store=store,
            durability=durability,
            resume=resume,
            # A fork may choose another model for an agent: built like a `--model` override.
            model_builder=lambda slot, model_id: _adapter(flow, slot, model_id, clock),
        ) as runtime:
            if board is None:
                yield runtime
            else:
                slots = {k: v for k, v in adapters.items() if isinstance(v, ModelSlot)}
                policy = supervisor_policy_of(flow.supervisor)
                async with open_model_supervisor(runtime.system, slots, board, policy=policy):
                    yield runtime
    finally:
        await close_slots(adapters)


async def close_slots(adapters: Mapping[str, ModelAdapter | ModelSlot]) -> None:
    """Close every adapter of ``create_slots``'s answer once."""
    # Every adapter once: a rollout's two models may sit in the slot or only in it.
    owned: dict[int, ModelAdapter] = {}
    for adapter in adapters.values():
        if isinstance(adapter, ModelSlot):
            held = [c.adapter for c in adapter.candidates]
            if adapter.rollout is not None:
                held += [adapter.rollout.incumbent, adapter.rollout.candidate]
            owned.update((id(a), a) for a in held)
        else:
            owned[id(adapter)] = adapter
    for adapter in owned.values():
        await adapter.aclose()
