"""The flow file's ``[evals]`` table: its graders checked when the flow loads.

Graders are declared in the flow's terms — a model grader names one of its slots, a
Python grader a ``file.py:function`` beside it, a trace grader its agents and tools — and
built by ``relaybaton.evals``; ``relaybaton validate`` refuses what ``eval`` would.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from pathlib import Path

from relaybaton.adapters import ModelAdapter
from relaybaton.errors import ConfigError, FlowProblem
from relaybaton.evals import EvalsConfig, create_graders

__all__ = ["check_evals"]


def _unbound(slot: str) -> Callable[[], ModelAdapter]:
    def judge() -> ModelAdapter:  # pragma: no cover - only built at check time, never called
        raise ConfigError(f"slot {slot!r} is not running")

    return judge


def _names(
    evals: EvalsConfig, agents: Collection[str], tools: Collection[str]
) -> list[FlowProblem]:
    problems: list[FlowProblem] = []
    for index, spec in enumerate(evals.graders):
        at = f"evals.graders[{index}]"
        if spec.agent is not None and spec.agent not in agents:
            problems.append(
                FlowProblem(
                    f"{at}.agent",
                    f'no agent named "{spec.agent}"; the flow\'s agents: {", ".join(agents)}',
                )
            )
        # Memory and MCP tools are named at run time (``memory.*``, ``mcp.*``).
        if (
            spec.tool is not None
            and spec.tool not in tools
            and not spec.tool.startswith(("memory_", "mcp_"))
        ):
            problems.append(
                FlowProblem(
                    f"{at}.tool",
                    f'no tool named "{spec.tool}"; the flow\'s tools: '
                    f"{', '.join(sorted(tools)) or 'none'}",
                )
            )
    return problems


def check_evals(
    evals: EvalsConfig,
    *,
    base_dir: Path,
    slots: Collection[str],
    agents: Collection[str],
    tools: Collection[str],
    resolve: Callable[[str, Path], Callable[..., object]],
) -> list[FlowProblem]:
    """Every problem of the ``[evals]`` table, each with its path and the fix."""
    problems: list[FlowProblem] = []
    if not 0.0 <= evals.sample <= 1.0:
        problems.append(FlowProblem("evals.sample", f"must be within 0..1, got {evals.sample}"))
    if evals.queue < 1:
        problems.append(FlowProblem("evals.queue", f"must be at least 1, got {evals.queue}"))
    try:
        create_graders(
            evals.graders,
            base_dir=base_dir,
            resolve=resolve,
            judges={slot: _unbound(slot) for slot in slots},
        )
    except ConfigError as exc:
        for problem in str(exc).split("; evals."):
            text = problem if problem.startswith("evals.") else f"evals.{problem}"
            path, _, message = text.partition(": ")
            problems.append(FlowProblem(path, message or text))
    problems.extend(_names(evals, agents, tools))
    return problems
