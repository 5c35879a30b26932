"""Flow files: a TOML description of agents, model slots, tools, handoffs and limits.

Decoding is typed (msgspec) and fails closed; then the references between sections are
checked, and every problem is reported at once with its path and a fix, in the form
``agents[2].handoffs[0]: no agent named "refnd" (did you mean "refund"?)``.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import re
import sys
import tomllib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import msgspec
import structlog

from relaybaton.actors import FunctionTool
from relaybaton.cluster import ClusterConfig
from relaybaton.errors import ConfigError, FlowError, FlowProblem
from relaybaton.evals import EvalsConfig, GraderSpec, Thresholds
from relaybaton.flow._evals import check_evals
from relaybaton.flow._guardrails import (
    GuardrailConfig,
    ToolRulesConfig,
    check_guardrails,
    tool_rules_of,
)
from relaybaton.flow._memory import check_memory_and_mcp
from relaybaton.flow._routing import (
    CandidateConfig,
    RolloutConfig,
    RoutingConfig,
    RuleConfig,
    check_rollout,
    check_routing,
)
from relaybaton.flow._supervision import SupervisorConfig, check_supervisor
from relaybaton.flow._variants import VariantConfig, check_variants

__all__ = [
    "AgentConfig",
    "AgentToolConfig",
    "CandidateConfig",
    "FlowConfig",
    "FlowFile",
    "HandoffConfig",
    "McpServerConfig",
    "MemoryConfig",
    "ModelConfig",
    "RolloutConfig",
    "RoutingConfig",
    "RuleConfig",
    "ToolConfig",
    "load_flow",
    "parse_flow",
    "resolve_function",
]

_log = structlog.get_logger("relaybaton.flow")

_NAME = r"^[A-Za-z][A-Za-z0-9_-]{0,63}$"


class FlowConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The ``[flow]`` table."""

    name: str = "flow"
    description: str = ""
    entry: str = ""
    max_turns: int = 10
    max_handoffs: int = 5


class ModelConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A ``[models.<slot>]`` table: the model id and its options.

    ``routing`` (a ``[models.<slot>.routing]`` table) gives the slot several candidate
    models and a router that picks one per call; ``rollout`` (a ``[models.<slot>.rollout]``
    table) rolls a new model out in place of the slot's, stage by stage.
    """

    model: str
    base_url: str | None = None
    api_key_env: str | None = None
    latency_ms: float = 50.0
    latency_sigma: float = 0.4
    error_rate: float = 0.0
    price_in_per_1k: float | None = None
    price_out_per_1k: float | None = None
    vision: bool | None = None
    context_tokens: int | None = None
    seed: int = 0
    fallbacks: list[str] = msgspec.field(default_factory=list)
    routing: RoutingConfig | None = None
    rollout: RolloutConfig | None = None


class ToolConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A ``[tools.<name>]`` table: the Python function behind the tool, and its approval rule.

    ``needs_approval`` is ``true`` or a rule on the arguments (``"amount > 100"``);
    ``approval_timeout_s`` rejects an undecided request; ``retry_safe = false`` gives a call
    interrupted by a crash an error result instead of running it again.
    """

    function: str
    description: str | None = None
    needs_approval: bool | str = False
    approval_timeout_s: float | None = None
    retry_safe: bool = True
    rules: ToolRulesConfig | None = None  # what must hold before a call runs (ToolRules)


class HandoffConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A handoff written as a table: ``{ agent = "refund", return_to_sender = true }``."""

    agent: str
    description: str | None = None
    tool_name: str | None = None
    return_to_sender: bool = False
    lease_turns: int = 1
    history: str = "full"


class AgentToolConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """An agent used as a tool: ``{ agent = "policy", name = "check_policy" }``."""

    agent: str
    name: str | None = None
    description: str | None = None
    timeout_s: float = 300.0


class MemoryConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The ``[memory]`` table: where the knowledge graph lives and how strict it is.

    ``store`` is a SQLite file, relative to the flow file's folder or absolute, or a
    ``postgresql://`` URL (the graph then lives in the ``relaybaton_graph`` schema).
    """

    store: str = ".relaybaton/memory.db"
    compat: str = "strict"


class ClusterTable(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The ``[cluster]`` table: run ``serve`` as one node of many (``--cluster`` overrides
    ``nats``). Empty ``node_id``: ``<hostname>-<pid>-<random>``."""

    nats: str = ""
    partitions: int = 64
    lease_ttl_s: float = 5.0
    node_id: str = ""
    prefix: str = "relaybaton"


class McpServerConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """An ``[mcp.<name>]`` table: an external MCP server whose tools agents may use.

    Either ``command`` (run over stdio, with ``env`` added to its environment, in ``cwd``
    relative to the flow's folder) or ``url`` (streamable HTTP).
    """

    command: list[str] | None = None
    env: dict[str, str] = msgspec.field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None
    timeout_s: float = 30.0


class AgentConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One ``[[agents]]`` entry."""

    name: str
    model: str
    instructions: str = ""
    description: str = ""
    tools: list[str | AgentToolConfig] = msgspec.field(default_factory=list)
    handoffs: list[str | HandoffConfig] = msgspec.field(default_factory=list)
    max_turns: int = 10
    memory: str | None = None  # "read" or "read-write": the memory tools, all at once
    output_schema: dict[str, Any] | str | None = None  # JSON Schema of its answer as a tool


class FlowFile(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A whole flow file, decoded; ``source`` is where it came from."""

    flow: FlowConfig = msgspec.field(default_factory=FlowConfig)
    models: dict[str, ModelConfig] = msgspec.field(default_factory=dict)
    tools: dict[str, ToolConfig] = msgspec.field(default_factory=dict)
    agents: list[AgentConfig] = msgspec.field(default_factory=list)
    prices: dict[str, dict[str, dict[str, float]]] = msgspec.field(default_factory=dict)
    supervisor: SupervisorConfig | None = None
    memory: MemoryConfig = msgspec.field(default_factory=MemoryConfig)
    mcp: dict[str, McpServerConfig] = msgspec.field(default_factory=dict)
    guardrails: dict[str, GuardrailConfig] = msgspec.field(default_factory=dict)
    evals: EvalsConfig | None = None
    variants: dict[str, VariantConfig] = msgspec.field(default_factory=dict)
    cluster: ClusterTable | None = None
    source: str = ""

    @property
    def entry(self) -> str:
        """The entry agent: ``flow.entry``, or the first agent."""
        return self.flow.entry or (self.agents[0].name if self.agents else "")

    @property
    def base_dir(self) -> Path:
        """The folder relative tool paths are resolved from."""
        return Path(self.source).parent if self.source else Path.cwd()


HISTORY_FILTERS = ("full", "no_tools", "last_user_message")
_PROVIDERS = ("simulated", "openai", "openai-compatible", "anthropic", "gemini")


def _suggest(name: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""


# The struct decoded at each path shape (indices and dict keys written as ``[]``).
_STRUCT_AT: dict[str, type[msgspec.Struct]] = {
    "": FlowFile,
    "flow": FlowConfig,
    "models[]": ModelConfig,
    "models[].routing": RoutingConfig,
    "models[].routing.candidates[]": CandidateConfig,
    "models[].routing.rules[]": RuleConfig,
    "models[].rollout": RolloutConfig,
    "tools[]": ToolConfig,
    "tools[].rules": ToolRulesConfig,
    "guardrails[]": GuardrailConfig,
    "agents[]": AgentConfig,
    "agents[].handoffs[]": HandoffConfig,
    "agents[].tools[]": AgentToolConfig,
    "supervisor": SupervisorConfig,
    "memory": MemoryConfig,
    "cluster": ClusterTable,
    "mcp[]": McpServerConfig,
    "evals": EvalsConfig,
    "evals.graders[]": GraderSpec,
    "evals.thresholds": Thresholds,
    "variants[]": VariantConfig,
}


def _name_table(path: str, raw: object, message: str) -> str:
    """Replace msgspec's ``models[...]`` (a dict key it does not name) with the table's name."""
    match = re.match(r"(models|tools|mcp|guardrails|variants)\[\.\.\.\](.*)", path)
    tables = raw.get(match.group(1)) if match and isinstance(raw, dict) else None
    if match is None or not isinstance(tables, dict):
        return path
    section, rest = match.groups()
    unknown = re.match(r"Object contains unknown field `(.+)`", message)
    missing = re.match(r"Object missing required field `(.+)`", message)
    key = rest.lstrip(".").split(".")[0].split("[")[0]
    for name, whole in tables.items():
        table = _dig(whole, rest) if unknown or missing else whole
        if not isinstance(table, dict):
            continue
        if (
            (unknown and unknown.group(1) in table)
            or (missing and missing.group(1) not in table)
            or (not unknown and not missing and (not key or key in table))
        ):
            return f"{section}.{name}{rest}"
    return path


def _dig(table: object, rest: str) -> object:
    """The value at ``rest`` (``.routing.candidates[0]``) inside ``table``, or None."""
    for key, index in re.findall(r"\.([^.\[]+)|\[(\d+)\]", rest):
        if key and isinstance(table, dict):
            table = table.get(key)
        elif index and isinstance(table, list) and int(index) < len(table):
            table = table[int(index)]
        else:
            return None
    return table


def _from_validation_error(error: msgspec.ValidationError, raw: object = None) -> FlowProblem:
    text = str(error)
    match = re.search(r" - at `\$(.*)`$", text)
    path = match.group(1).lstrip(".") if match else ""
    message = text[: match.start()] if match else text
    struct = _STRUCT_AT.get(re.sub(r"\[[^\]]*\]", "[]", path))
    path = _name_table(path, raw, message)
    unknown = re.match(r"Object contains unknown field `(.+)`", message)
    if unknown:
        field = unknown.group(1)
        known = struct.__struct_fields__ if struct is not None else ()
        fix = _suggest(field, known)
        listing = f"; allowed: {', '.join(f for f in known if f != 'source')}" if known else ""
        return FlowProblem(path, f"unknown field `{field}`{fix}{listing}")
    return FlowProblem(path, message[0].lower() + message[1:] if message else message)


def parse_flow(text: str, source: str = "<flow>") -> FlowFile:
    """Decode and check a flow from TOML text; raise ``FlowError`` listing every problem."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise FlowError(source, [FlowProblem("", f"not valid TOML: {exc}")]) from None
    try:
        flow = msgspec.convert(raw, FlowFile)
    except msgspec.ValidationError as exc:
        raise FlowError(source, [_from_validation_error(exc, raw)]) from None
    flow.source = source
    problems = check_flow(flow)
    if problems:
        raise FlowError(source, problems)
    return flow


def load_flow(path: str | Path) -> FlowFile:
    """Read, decode and check a flow file; raise ``FlowError`` (never a traceback)."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FlowError(str(path), [FlowProblem("", "no such file")]) from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise FlowError(str(path), [FlowProblem("", f"cannot read it: {exc}")]) from None
    return parse_flow(text, str(file))


def cluster_config(table: ClusterTable, nats: str | None = None) -> ClusterConfig:
    """The node settings of a ``[cluster]`` table (``nats``: the ``--cluster`` URL).

    Raises:
        ConfigError: a field is out of range; the message names it and the fix.
    """
    extra = {"node_id": table.node_id} if table.node_id else {}
    return ClusterConfig(
        nats=nats or table.nats,
        partitions=table.partitions,
        lease_ttl=table.lease_ttl_s,
        prefix=table.prefix,
        **extra,
    )


def cluster_problem(table: ClusterTable) -> FlowProblem | None:
    """What is wrong with a ``[cluster]`` table, or None (``nats`` may come from the CLI)."""
    try:
        cluster_config(table, table.nats or "nats://127.0.0.1:4222")
    except ConfigError as exc:
        field = str(exc).split(" ", 2)[1] if str(exc).startswith("cluster ") else "nats"
        return FlowProblem(f"cluster.{field}", str(exc))
    return None


def check_flow(flow: FlowFile) -> list[FlowProblem]:
    """Every problem in the references and values of a decoded flow."""
    problems: list[FlowProblem] = []
    add = problems.append
    names = [a.name for a in flow.agents]
    known = set(names)
    if not flow.agents:
        add(FlowProblem("agents", "a flow needs at least one [[agents]] entry"))
    if flow.flow.entry and flow.flow.entry not in known:
        add(
            FlowProblem(
                "flow.entry",
                f'no agent named "{flow.flow.entry}"{_suggest(flow.flow.entry, names)}',
            )
        )
    if flow.cluster is not None:
        problem = cluster_problem(flow.cluster)
        if problem is not None:
            add(problem)
    limits = (("max_turns", flow.flow.max_turns), ("max_handoffs", flow.flow.max_handoffs))
    for label, value in limits:
        if value < 1:
            add(FlowProblem(f"flow.{label}", f"must be at least 1, got {value}"))
    for slot, model in flow.models.items():
        provider = model.model.split(":", 1)[0]
        if ":" not in model.model or provider not in _PROVIDERS:
            add(
                FlowProblem(
                    f"models.{slot}.model",
                    f'"{model.model}" is not a model id; write provider:model with a provider '
                    f"among {', '.join(_PROVIDERS)} (e.g. simulated:general)",
                )
            )
        if not 0.0 <= model.error_rate <= 1.0:
            add(FlowProblem(f"models.{slot}.error_rate", "must be within [0, 1]"))
        for i, fallback in enumerate(model.fallbacks):
            if ":" not in fallback or fallback.split(":", 1)[0] not in _PROVIDERS:
                add(
                    FlowProblem(
                        f"models.{slot}.fallbacks[{i}]",
                        f'"{fallback}" is not a model id; write provider:model',
                    )
                )
        if model.routing is not None:
            problems.extend(
                check_routing(slot, model.model, model.fallbacks, model.routing, _PROVIDERS)
            )
        if model.rollout is not None:
            problems.extend(
                check_rollout(slot, model.model, model.routing, model.rollout, _PROVIDERS)
            )
    for name, tool in flow.tools.items():
        try:
            function = resolve_function(tool.function, flow.base_dir)
        except ConfigError as exc:
            # The problem names the cause; the traceback (a tool module that failed to
            # load, say) is for `--log-level debug`.
            _log.debug("flow_tool_unresolved", tool=name, exc_info=exc)
            add(FlowProblem(f"tools.{name}.function", str(exc)))
            continue
        try:
            FunctionTool(
                function,
                name=name,
                needs_approval=tool.needs_approval,
                rules=tool_rules_of(tool.rules),
            )
        except (TypeError, ValueError) as exc:  # also what msgspec says of an annotation
            _log.debug("flow_tool_refused", tool=name, exc_info=exc)
            field = "needs_approval" if "approval rule" in str(exc) else "function"
            if "allow_if" in str(exc) or "otherwise" in str(exc):
                field = "rules.allow_if"
            add(FlowProblem(f"tools.{name}.{field}", str(exc)))
    seen: set[str] = set()
    for index, agent in enumerate(flow.agents):
        at = f"agents[{index}]"
        if not re.match(_NAME, agent.name):
            add(
                FlowProblem(
                    f"{at}.name",
                    f'"{agent.name}" must start with a letter and use only letters, digits, '
                    "'_' and '-'",
                )
            )
        if agent.name in seen:
            add(FlowProblem(f"{at}.name", f'agent "{agent.name}" is defined twice'))
        seen.add(agent.name)
        if agent.model not in flow.models:
            add(
                FlowProblem(
                    f"{at}.model",
                    f'no model slot named "{agent.model}"{_suggest(agent.model, flow.models)}; '
                    f"add a [models.{agent.model}] table",
                )
            )
        if agent.max_turns < 1:
            add(FlowProblem(f"{at}.max_turns", f"must be at least 1, got {agent.max_turns}"))
        _check_edges(agent, at, names, flow, add)
    problems.extend(check_memory_and_mcp(flow))
    problems.extend(check_supervisor(flow.supervisor))
    problems.extend(check_variants(flow.variants, list(flow.models), names))
    if flow.evals is not None:
        problems.extend(
            check_evals(
                flow.evals,
                base_dir=flow.base_dir,
                slots=list(flow.models),
                agents=names,
                tools=list(flow.tools),
                resolve=resolve_function,
            )
        )
    problems.extend(check_guardrails(flow, resolve_function))
    return problems


def _check_edges(
    agent: AgentConfig,
    at: str,
    names: list[str],
    flow: FlowFile,
    add: Callable[[FlowProblem], None],
) -> None:
    for i, edge in enumerate(agent.handoffs):
        target = edge if isinstance(edge, str) else edge.agent
        path = f"{at}.handoffs[{i}]"
        if target not in names:
            add(FlowProblem(path, f'no agent named "{target}"{_suggest(target, names)}'))
        elif target == agent.name:
            add(FlowProblem(path, f'agent "{agent.name}" cannot hand off to itself'))
        if isinstance(edge, HandoffConfig):
            if edge.history not in HISTORY_FILTERS:
                add(
                    FlowProblem(
                        f"{path}.history",
                        f'"{edge.history}" is not a history filter; use one of '
                        f"{', '.join(HISTORY_FILTERS)}",
                    )
                )
            if edge.lease_turns < 1:
                add(FlowProblem(f"{path}.lease_turns", "must be at least 1"))
    for i, tool in enumerate(agent.tools):
        path = f"{at}.tools[{i}]"
        if isinstance(tool, str):
            if tool.startswith(("memory.", "mcp.")):
                continue  # checked by check_memory_and_mcp
            if tool not in flow.tools:
                hint = _suggest(tool, flow.tools)
                also = (
                    ' (to use an agent as a tool, write { agent = "' + tool + '" })'
                    if tool in names
                    else ""
                )
                add(
                    FlowProblem(
                        path, f'no tool named "{tool}"{hint}{also}; add a [tools.{tool}] table'
                    )
                )
        elif tool.agent not in names:
            hint = _suggest(tool.agent, names)
            add(FlowProblem(f"{path}.agent", f'no agent named "{tool.agent}"{hint}'))
        elif tool.agent == agent.name:
            add(FlowProblem(f"{path}.agent", f'agent "{agent.name}" cannot call itself as a tool'))


def resolve_function(spec: str, base_dir: Path) -> Callable[..., object]:
    """Find ``file.py:function`` (relative to ``base_dir``) or ``package.module:function``.

    Raises ``ConfigError`` with the reason and a fix.
    """
    module_part, sep, attribute = spec.partition(":")
    if not sep or not module_part or not attribute:
        raise ConfigError(
            f'"{spec}" should be "file.py:function" (next to the flow) or "package.module:function"'
        )
    if module_part.endswith(".py"):
        file = (base_dir / module_part).resolve()
        if not file.is_file():
            raise ConfigError(f"no file {module_part} next to the flow (looked for {file})")
        module_name = f"relaybaton_flow_tools_{abs(hash(str(file)))}"
        module = sys.modules.get(module_name)
        if module is None:
            loader_spec = importlib.util.spec_from_file_location(module_name, file)
            if loader_spec is None or loader_spec.loader is None:  # pragma: no cover
                raise ConfigError(f"cannot load {file}")
            module = importlib.util.module_from_spec(loader_spec)
            try:
                loader_spec.loader.exec_module(module)
            except Exception as exc:
                raise ConfigError(
                    f"{module_part} failed to load: {type(exc).__name__}: {exc}"
                ) from exc
            sys.modules[module_name] = module
    else:
        try:
            module = importlib.import_module(module_part)
        except ImportError as exc:
            raise ConfigError(f"cannot import module {module_part}: {exc}") from exc
    function = getattr(module, attribute, None)
    if not callable(function):
        public = [n for n in dir(module) if not n.startswith("_")]
        hint = _suggest(attribute, public)
        raise ConfigError(f'no function "{attribute}" in {module_part}{hint}')
    return function  # type: ignore[no-any-return]
