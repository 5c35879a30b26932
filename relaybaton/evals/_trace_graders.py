"""Trace graders: assertions on what happened in a conversation, not on its words.

Conditions on a tool's arguments (``amount > 100``) use the language of the flow file's
approval rules, so a business rule reads the same in both places. The approval grader is
the seed's rule made checkable: every call of the tool whose arguments match the condition
must have waited for a person (an approval request for that very call, decided before the
tool ran); a refund over $100 that went through without one is a failure, whatever the
reply said.
"""

from __future__ import annotations

from typing import final

from relaybaton.actors import ToolCallEvent
from relaybaton.actors._approval import ApprovalRule
from relaybaton.errors import ConfigError
from relaybaton.evals._grade import Grade, Sample
from relaybaton.evals._trace import Trace, arguments_of
from relaybaton.runtime.messages import ApprovalDecidedEvent, ApprovalRequestedEvent

__all__ = [
    "ApprovalRequiredGrader",
    "FinalOwnerGrader",
    "HandoffGrader",
    "LimitGrader",
    "NoToolErrorGrader",
    "ToolCalledGrader",
]

LIMITS = ("max_model_calls", "max_handoffs", "max_cost_usd", "max_latency_s", "max_tool_calls")


class _Binary:
    """A pass/fail trace check: score 1 or 0."""

    name: str
    needs_expected = False
    threshold = 1.0

    def _verdict(self, ok: bool, reason: str) -> Grade:
        return Grade(
            grader=self.name,
            score=1.0 if ok else 0.0,
            passed=ok,
            reason=reason,
            threshold=self.threshold,
        )


def _rule(text: str | None, grader: str) -> ApprovalRule | None:
    if text is None:
        return None
    try:
        return ApprovalRule(text)
    except ConfigError as exc:
        raise ConfigError(f"grader {grader!r}: `when`: {exc}") from None


def _matching(trace: Trace, tool: str, rule: ApprovalRule | None) -> list[ToolCallEvent]:
    calls = [c for c in trace.tool_calls() if c.tool == tool]
    if rule is None:
        return calls
    matched: list[ToolCallEvent] = []
    for call in calls:
        arguments = arguments_of(call)
        # A flow's approval rule asks a person when it cannot read an argument; a grader's
        # condition on arguments a call does not have is simply not met by that call.
        if not rule.names <= arguments.keys():
            continue
        try:
            if rule.matches(arguments):
                matched.append(call)
        except (KeyError, TypeError, ValueError):
            continue  # arguments the condition cannot read do not match it
    return matched


@final
class HandoffGrader(_Binary):
    """A handoff to ``agent`` happened (``happened=True``) or did not."""

    def __init__(self, name: str, agent: str, *, happened: bool = True) -> None:
        self.name, self.agent, self.happened = name, agent, happened

    async def grade(self, sample: Sample) -> Grade:
        path = [f"{h.sender}→{h.target}" for h in sample.trace.handoffs()]
        seen = any(h.target == self.agent for h in sample.trace.handoffs())
        route = ", ".join(path) or "no handoffs"
        if self.happened:
            return self._verdict(seen, f"handoff to {self.agent!r} expected; saw {route}")
        return self._verdict(not seen, f"no handoff to {self.agent!r} expected; saw {route}")


@final
class ToolCalledGrader(_Binary):
    """Tool ``tool`` was called (with arguments matching ``when``), or was not."""

    def __init__(
        self, name: str, tool: str, *, when: str | None = None, called: bool = True
    ) -> None:
        self.name, self.tool, self.called = name, tool, called
        self.rule = _rule(when, name)

    async def grade(self, sample: Sample) -> Grade:
        matched = _matching(sample.trace, self.tool, self.rule)
        condition = f" with {self.rule.text}" if self.rule is not None else ""
        calls = [f"{c.tool}({c.arguments})" for c in sample.trace.tool_calls()]
        seen = "; calls: " + (", ".join(calls) if calls else "none")
        if self.called:
            return self._verdict(bool(matched), f"{self.tool}{condition} expected{seen}")
        return self._verdict(not matched, f"no {self.tool}{condition} expected{seen}")


@final
class ApprovalRequiredGrader(_Binary):
    """Every call of ``tool`` matching ``when`` waited for a person's approval."""

    def __init__(self, name: str, tool: str, *, when: str | None = None) -> None:
        self.name, self.tool = name, tool
        self.rule = _rule(when, name)

    async def grade(self, sample: Sample) -> Grade:
        trace = sample.trace
        condition = f" with {self.rule.text}" if self.rule is not None else ""
        requested: dict[str, ApprovalRequestedEvent] = {}
        decided: dict[str, ApprovalDecidedEvent] = {}
        unapproved: list[str] = []
        checked = 0
        # In event order: the tool's own event must come after its request and decision.
        for event in trace.events:
            if isinstance(event, ApprovalRequestedEvent):
                requested[event.call_id] = event
            elif isinstance(event, ApprovalDecidedEvent):
                decided[event.approval_id] = event
            elif isinstance(event, ToolCallEvent) and event.tool == self.tool:
                if self.rule is not None and event not in _matching(trace, self.tool, self.rule):
                    continue
                checked += 1
                request = requested.get(event.call_id)
                if request is None or request.approval_id not in decided:
                    unapproved.append(f"{event.tool}({event.arguments})")
        # A call still parked on its request waited, which is what the rule asks.
        waiting = sum(
            1 for r in trace.approvals() if r.tool == self.tool and r.approval_id not in decided
        )
        if unapproved:
            return self._verdict(
                False,
                f"{self.tool}{condition} ran without a person's approval: {', '.join(unapproved)}",
            )
        return self._verdict(
            True,
            f"{checked} call(s) of {self.tool}{condition} ran after approval"
            + (f"; {waiting} still waiting for a person" if waiting > 0 else ""),
        )


@final
class LimitGrader(_Binary):
    """At most ``limit`` model calls, handoffs or tool calls; cost or latency under it."""

    def __init__(self, name: str, kind: str, limit: float) -> None:
        if kind not in LIMITS:
            raise ConfigError(f"grader {name!r}: unknown limit {kind!r}; use one of {LIMITS}")
        if limit < 0:
            raise ConfigError(f"grader {name!r}: `limit` must be >= 0, got {limit}")
        self.name, self.kind, self.limit = name, kind, limit

    async def grade(self, sample: Sample) -> Grade:
        trace = sample.trace
        measured: float
        if self.kind == "max_model_calls":
            measured, unit = len(trace.model_calls()), "model calls"
        elif self.kind == "max_handoffs":
            measured, unit = len(trace.handoffs()), "handoffs"
        elif self.kind == "max_tool_calls":
            measured, unit = len(trace.tool_calls()), "tool calls"
        elif self.kind == "max_cost_usd":
            measured, unit = trace.cost_usd, "USD"
        else:
            measured, unit = trace.latency_s, "s (slowest turn)"
        ok = measured <= self.limit
        return self._verdict(ok, f"{measured:g} {unit} {'<=' if ok else '>'} {self.limit:g}")


@final
class NoToolErrorGrader(_Binary):
    """No tool call ended in an error."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def grade(self, sample: Sample) -> Grade:
        failed = [f"{c.tool}: {c.result[:80]}" for c in sample.trace.tool_calls() if c.is_error]
        if failed:
            return self._verdict(False, f"{len(failed)} tool error(s): {'; '.join(failed)}")
        return self._verdict(True, f"{len(sample.trace.tool_calls())} tool call(s), no error")


@final
class FinalOwnerGrader(_Binary):
    """The conversation ended owned by ``agent``."""

    def __init__(self, name: str, agent: str) -> None:
        self.name, self.agent = name, agent

    async def grade(self, sample: Sample) -> Grade:
        owner = sample.trace.owner
        return self._verdict(owner == self.agent, f"final owner {owner!r}, expected {self.agent!r}")
