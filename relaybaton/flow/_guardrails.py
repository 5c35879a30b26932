"""The flow file's guardrails, tool rules and structured answers: their tables, checks and builds.

```toml
[guardrails.card_numbers]          # a name, for traces, metrics and the journal
on = ["input", "output"]           # input | output | tool_arguments | tool_result
pii = ["card", "email"]            # and/or max_length, min_length, deny, patterns,
action = "redact"                  #   json_schema, function, agent; "block" by default
# agents = ["triage"]              # default: every agent; tools = [...] for tool stages

[tools.issue_refund.rules]
requires = ["lookup_order", "check_refund_policy"]
allow_if = "lookup_order.found and amount <= lookup_order.total"
otherwise = "refuse"               # or "approval": a person decides, with a reason

[[agents]]
output_schema = "findings.schema.json"   # or an inline table: the JSON Schema
```

A JSON Schema (``json_schema``, ``output_schema``) is an inline table or a path to a JSON
file next to the flow.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import msgspec
import structlog

from relaybaton.actors import Guardrail, ToolRules, create_guardrail
from relaybaton.actors._guardrail import STAGES
from relaybaton.actors._guardrail_checks import PII_KINDS
from relaybaton.errors import ConfigError, FlowProblem

if TYPE_CHECKING:
    from relaybaton.flow._file import FlowFile

__all__ = [
    "GuardrailConfig",
    "ToolRulesConfig",
    "check_guardrails",
    "guardrails_by_agent",
    "load_schema",
    "tool_rules_of",
]

_log = structlog.get_logger("relaybaton.flow")


class GuardrailConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A ``[guardrails.<name>]`` table; see ``create_guardrail`` for each check."""

    on: list[str] = msgspec.field(default_factory=lambda: ["input"])
    pii: list[str] = msgspec.field(default_factory=list)
    max_length: int | None = None
    min_length: int | None = None
    deny: list[str] = msgspec.field(default_factory=list)
    patterns: list[str] = msgspec.field(default_factory=list)
    json_schema: dict[str, Any] | str | None = None
    function: str | None = None
    agent: str | None = None
    action: str = "block"
    message: str = ""
    agents: list[str] | None = None
    tools: list[str] | None = None


class ToolRulesConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A ``[tools.<name>.rules]`` table; see ``ToolRules``."""

    requires: list[str] = msgspec.field(default_factory=list)
    allow_if: str | None = None
    otherwise: str = "refuse"
    message: str = ""


def load_schema(value: Mapping[str, Any] | str, base_dir: Path) -> dict[str, Any]:
    """A JSON Schema given inline, or read from a JSON file next to the flow."""
    if not isinstance(value, str):
        return dict(value)
    path = Path(value) if Path(value).is_absolute() else base_dir / value
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"no schema file {value} next to the flow (looked for {path})") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"schema file {value} cannot be read as JSON: {exc}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"schema file {value} holds {type(loaded).__name__}, not an object")
    return loaded


def _build(
    name: str,
    config: GuardrailConfig,
    base_dir: Path,
    resolve: Callable[[str, Path], Callable[..., object]],
) -> Guardrail:
    schema = None if config.json_schema is None else load_schema(config.json_schema, base_dir)
    function = None if config.function is None else resolve(config.function, base_dir)
    return create_guardrail(
        name,
        on=config.on,
        pii=config.pii,
        max_length=config.max_length,
        min_length=config.min_length,
        deny=config.deny,
        patterns=config.patterns,
        json_schema=schema,
        function=function,
        agent=config.agent,
        action=cast(Literal["block", "redact"], config.action),
        message=config.message,
        tools=config.tools,
    )


def check_guardrails(
    flow: FlowFile, resolve: Callable[[str, Path], Callable[..., object]]
) -> list[FlowProblem]:
    """Every problem in the flow's guardrails, tool rules and output schemas."""
    problems: list[FlowProblem] = []
    agents = {a.name for a in flow.agents}
    tool_names = set(flow.tools) | {
        t.name or t.agent for a in flow.agents for t in a.tools if not isinstance(t, str)
    }
    for name, config in flow.guardrails.items():
        at = f"guardrails.{name}"
        before = len(problems)
        for i, stage in enumerate(config.on):
            if stage not in STAGES:
                problems.append(
                    FlowProblem(
                        f"{at}.on[{i}]", f'"{stage}" is not a stage; use {", ".join(STAGES)}'
                    )
                )
        for i, kind in enumerate(config.pii):
            if kind not in PII_KINDS:
                problems.append(
                    FlowProblem(
                        f"{at}.pii[{i}]", f'"{kind}" is not a PII kind; use {", ".join(PII_KINDS)}'
                    )
                )
        if config.action not in ("block", "redact"):
            problems.append(
                FlowProblem(
                    f"{at}.action", f'"{config.action}" is not an action; use "block" or "redact"'
                )
            )
        for label, names, known in (
            ("agents", config.agents or [], agents),
            ("tools", config.tools or [], tool_names),
        ):
            for i, other in enumerate(names):
                if other not in known:
                    problems.append(
                        FlowProblem(f"{at}.{label}[{i}]", f'no {label[:-1]} named "{other}"')
                    )
        if config.agent is not None and config.agent not in agents:
            problems.append(
                FlowProblem(f"{at}.agent", f'no agent named "{config.agent}" to classify with')
            )
        if len(problems) > before:
            continue
        try:
            _build(name, config, flow.base_dir, resolve)
        except ConfigError as exc:
            _log.debug("flow_guardrail_refused", guardrail=name, exc_info=exc)
            problems.append(FlowProblem(at, str(exc)))
    for name, tool in flow.tools.items():
        if tool.rules is None:
            continue
        for i, required in enumerate(tool.rules.requires):
            if required not in tool_names:
                close = difflib.get_close_matches(required, sorted(tool_names), n=1, cutoff=0.6)
                hint = f' (did you mean "{close[0]}"?)' if close else ""
                problems.append(
                    FlowProblem(
                        f"tools.{name}.rules.requires[{i}]", f'no tool named "{required}"{hint}'
                    )
                )
        if tool.rules.otherwise not in ("refuse", "approval"):
            problems.append(
                FlowProblem(
                    f"tools.{name}.rules.otherwise",
                    f'"{tool.rules.otherwise}" is not a choice; use "refuse" or "approval"',
                )
            )
    for index, agent in enumerate(flow.agents):
        if agent.output_schema is not None:
            try:
                load_schema(agent.output_schema, flow.base_dir)
            except ConfigError as exc:
                problems.append(FlowProblem(f"agents[{index}].output_schema", str(exc)))
    return problems


def tool_rules_of(config: ToolRulesConfig | None) -> ToolRules | None:
    """The ``ToolRules`` of a checked ``[tools.<name>.rules]`` table."""
    if config is None:
        return None
    return ToolRules(
        requires=config.requires,
        allow_if=config.allow_if,
        otherwise=cast(Literal["refuse", "approval"], config.otherwise),
        message=config.message,
    )


def guardrails_by_agent(
    flow: FlowFile, resolve: Callable[[str, Path], Callable[..., object]]
) -> dict[str, tuple[Guardrail, ...]]:
    """Each agent's guardrails, in the flow's order (every agent's, unless ``agents``)."""
    built = {
        name: _build(name, config, flow.base_dir, resolve)
        for name, config in flow.guardrails.items()
    }
    return {
        agent.name: tuple(
            built[name]
            for name, config in flow.guardrails.items()
            if config.agents is None or agent.name in config.agents
        )
        for agent in flow.agents
    }
