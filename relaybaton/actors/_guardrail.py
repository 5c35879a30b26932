"""Guardrails: checks that stand between a conversation and what its agents say and do.

A guardrail looks at one piece of text at one of four stages:

- ``input``: the user's message, before the owner's model sees it;
- ``output``: the owner's reply, before it reaches the user;
- ``tool_arguments``: a tool call's JSON arguments, before the tool runs;
- ``tool_result``: a tool's result, before the model reads it.

Its check says whether it tripped, why, and (for redaction) the text to use instead. What a
trip does is the guardrail's ``action``: ``block`` ends the turn with the guardrail's
message (input, output) or gives the model an error result (tools); ``redact`` goes on with
the rewritten text. The agent actor runs guardrails in its own path (``_guarding.py``), so
no model output reaches the user or a tool around them.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Literal, final

from relaybaton.errors import ConfigError

__all__ = [
    "STAGES",
    "Guardrail",
    "GuardrailCheck",
    "GuardrailContext",
    "GuardrailResult",
    "Stage",
]

Stage = Literal["input", "output", "tool_arguments", "tool_result"]
STAGES: tuple[Stage, ...] = ("input", "output", "tool_arguments", "tool_result")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")


@final
@dataclass(frozen=True, slots=True)
class GuardrailResult:
    """What a check found: ``tripped``, the ``reason`` (for people), and ``rewritten`` text
    (a redaction) when the check can offer one."""

    tripped: bool
    reason: str = ""
    rewritten: str | None = None


PASSED = GuardrailResult(tripped=False)


@final
@dataclass(frozen=True, slots=True)
class GuardrailContext:
    """Where a check runs: the conversation, the agent, the stage and (for tools) the tool.

    ``ask`` asks another agent of the flow one question and returns its answer; a check
    that uses an agent as a classifier calls it (the agent keeps no baton, as for any
    agent used as a tool).
    """

    conversation_id: str
    agent: str
    stage: Stage
    tool: str = ""
    ask: Callable[[str, str], Awaitable[str]] | None = None


GuardrailCheck = Callable[[str, GuardrailContext], GuardrailResult | Awaitable[GuardrailResult]]


@final
class Guardrail:
    """A named check on some stages of a conversation; see the module docstring.

    Args:
        name: how traces, metrics and the journal name it.
        check: ``check(text, context)``, sync or async, returning a ``GuardrailResult``.
        on: the stages it runs at.
        action: ``block`` (the default) or ``redact`` (use the check's rewritten text;
            a trip without one blocks).
        message: the reply a blocked input or output gets; by default one naming the reason.
        tools: for the tool stages, the tools it watches (default: every tool).
    """

    __slots__ = ("_async", "action", "check", "message", "name", "on", "tools")

    def __init__(
        self,
        name: str,
        check: GuardrailCheck,
        *,
        on: Collection[str] = ("input",),
        action: Literal["block", "redact"] = "block",
        message: str = "",
        tools: Collection[str] | None = None,
    ) -> None:
        if not _NAME.match(name):
            raise ConfigError(
                f"guardrail name {name!r} must start with a letter and use only letters, "
                "digits, '_', '.' and '-'"
            )
        stages = tuple(on)
        unknown = [s for s in stages if s not in STAGES]
        if unknown or not stages:
            raise ConfigError(
                f"guardrail {name!r}: `on` must list stages among {', '.join(STAGES)}, "
                f"got {list(stages)}"
            )
        if action not in ("block", "redact"):
            raise ConfigError(
                f'guardrail {name!r}: action must be "block" or "redact", got {action!r}'
            )
        self.name = name
        self.check = check
        self.on: frozenset[str] = frozenset(stages)
        self.action = action
        self.message = message
        self.tools: frozenset[str] | None = None if tools is None else frozenset(tools)
        self._async = inspect.iscoroutinefunction(check) or inspect.iscoroutinefunction(
            getattr(check, "__call__", None)  # noqa: B004 - an async callable object
        )

    def __repr__(self) -> str:
        return f"Guardrail({self.name!r}, on={sorted(self.on)})"

    def watches(self, stage: Stage, tool: str = "") -> bool:
        """Whether it runs at ``stage`` (for ``tool``, at the tool stages)."""
        if stage not in self.on:
            return False
        return not tool or self.tools is None or tool in self.tools

    async def run(self, text: str, context: GuardrailContext) -> GuardrailResult:
        """Run the check once; a check that returns something else is a ``TypeError``."""
        result = self.check(text, context)
        if type(result) is GuardrailResult:  # the common case: a check that is not async
            return result
        return await self.settle(result)

    async def settle(self, result: object) -> GuardrailResult:
        """What a check returned, awaited if it is awaitable, checked to be a result.

        For callers that call ``check`` themselves, to skip a coroutine when it is not async.
        """
        if self._async or inspect.isawaitable(result):
            result = await result  # type: ignore[misc]
        if not isinstance(result, GuardrailResult):
            raise TypeError(
                f"guardrail {self.name!r} returned {type(result).__name__}; "
                "a check returns a GuardrailResult"
            )
        return result

    def refusal(self, stage: Stage, reason: str) -> str:
        """The text a blocked step gets: the guardrail's message, or one naming the reason."""
        if self.message:
            return self.message
        why = f": {reason}" if reason else ""
        if stage == "input":
            return f"I can't take that message{why}. Please rephrase it and try again."
        if stage == "output":
            return f"I can't share that answer{why}. A colleague can help you further."
        return f"blocked by guardrail {self.name!r}{why}; do not retry the call as it is"
