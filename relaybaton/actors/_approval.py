"""Approval rules: when a tool call must wait for a person.

A rule is ``True`` (always), or an expression over the call's arguments in a small, safe
subset of Python: comparisons, ``and``/``or``/``not``, ``in``, numbers, strings, lists.
``amount > 100`` is the refund rule of the customer-service example. Rules are parsed when
the flow loads and checked against the tool's parameters, so a typo is a load error that
names the argument, not a rule that silently never matches.
"""

from __future__ import annotations

import ast
import difflib
import json
import operator
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, final

import structlog

from relaybaton.adapters import ToolCall
from relaybaton.errors import ConfigError
from relaybaton.runtime import Conversation

if TYPE_CHECKING:
    from relaybaton.actors._schema_tool import SchemaTool
    from relaybaton.actors._tools import FunctionTool

__all__ = ["ApprovalRule", "Gate", "approval_gate"]

_log = structlog.get_logger("relaybaton.agents")

_LITERALS = frozenset({"true", "false", "True", "False"})

_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}


@final
class ApprovalRule:
    """A parsed rule; ``matches(arguments)`` says whether a call needs approval."""

    __slots__ = ("_tree", "names", "text")

    def __init__(self, text: str | bool) -> None:
        if isinstance(text, bool):
            self.text = "true" if text else "false"
            self._tree: ast.expr = ast.Constant(value=text)
            self.names: frozenset[str] = frozenset()
            return
        self.text = text.strip()
        try:
            tree = ast.parse(self.text, mode="eval").body
        except SyntaxError as exc:
            raise ConfigError(f"approval rule {text!r} is not an expression: {exc.msg}") from None
        self.names = frozenset(self._check(tree))
        self._tree = tree

    def __repr__(self) -> str:
        return f"ApprovalRule({self.text!r})"

    def check_names(self, parameters: Collection[str]) -> None:
        """Raise ``ConfigError`` naming an argument the tool does not have."""
        for name in sorted(self.names - set(parameters)):
            close = difflib.get_close_matches(name, list(parameters), n=1)
            hint = f" (did you mean `{close[0]}`?)" if close else ""
            raise ConfigError(
                f"approval rule {self.text!r} uses `{name}`, which is not an argument of the "
                f"tool{hint}; its arguments: {', '.join(sorted(parameters)) or 'none'}"
            )

    def matches(self, arguments: Mapping[str, object]) -> bool:
        """Whether the call with these arguments must wait for a person."""
        try:
            return bool(self._eval(self._tree, arguments))
        except TypeError as exc:
            # A comparison the arguments cannot make (a missing value, say): ask a person,
            # since a rule exists to stop calls that nobody checked.
            _log.info("approval_rule_undecided", rule=self.text, exc_info=exc)
            return True

    def _check(self, node: ast.AST) -> set[str]:
        names: set[str] = set()
        allowed = (
            ast.BoolOp,
            ast.And,
            ast.Or,
            ast.UnaryOp,
            ast.Not,
            ast.USub,
            ast.Compare,
            ast.Name,
            ast.Load,
            ast.Constant,
            ast.List,
            ast.Tuple,
            *_COMPARE,
        )
        for child in ast.walk(node):
            if not isinstance(child, allowed):
                raise ConfigError(
                    f"approval rule {self.text!r}: `{type(child).__name__}` is not allowed; "
                    "use comparisons, and/or/not, in, numbers, strings and lists"
                )
            if isinstance(child, ast.Name) and child.id not in _LITERALS:
                names.add(child.id)
        return names

    def _eval(self, node: ast.expr, arguments: Mapping[str, object]) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            if node.id in ("true", "True"):
                return True
            if node.id in ("false", "False"):
                return False
            return arguments.get(node.id)
        if isinstance(node, ast.List | ast.Tuple):
            return [self._eval(e, arguments) for e in node.elts]
        if isinstance(node, ast.UnaryOp):
            value = self._eval(node.operand, arguments)
            return (not value) if isinstance(node.op, ast.Not) else -value
        if isinstance(node, ast.BoolOp):
            values = (self._eval(v, arguments) for v in node.values)
            return all(values) if isinstance(node.op, ast.And) else any(values)
        if isinstance(node, ast.Compare):
            left = self._eval(node.left, arguments)
            for op, right_node in zip(node.ops, node.comparators, strict=True):
                right = self._eval(right_node, arguments)
                if not _COMPARE[type(op)](left, right):
                    return False
                left = right
            return True
        raise TypeError(type(node).__name__)  # pragma: no cover - _check refused it


@final
@dataclass(frozen=True, slots=True)
class Gate:
    """What to do with one tool call: ``run`` it (with ``arguments``), ``ask`` a person
    (about ``arguments``), ``wait`` for a decision, or record ``result`` (an error text)."""

    kind: str
    arguments: str = ""
    text: str = ""
    decided: bool = False  # a person's decision let it run


def approval_gate(
    conversation: Conversation, call: ToolCall, tool: FunctionTool | SchemaTool | None
) -> Gate:
    """Decide, from the conversation's approvals and decisions, what happens to ``call``."""
    if tool is not None and call.id in conversation.tools_started and not tool.retry_safe:
        return Gate(
            "result",
            text=f"tool {call.name!r} was interrupted by a restart and is not safe to run "
            "again; its outcome is unknown, check before retrying",
        )
    rule = tool.approval_rule if tool is not None else None
    if rule is None:
        return Gate("run", call.arguments)
    requests = [a for a in conversation.approvals.values() if a.call_id == call.id]
    if not requests:
        return Gate("ask" if _matches(rule, call.arguments) else "run", call.arguments)
    latest = requests[-1]
    decided = conversation.decisions.get(latest.approval_id)
    if decided is None:
        return Gate("wait")
    if decided.decision == "approve":
        return Gate("run", latest.arguments, decided=True)
    if decided.decision == "edit" and decided.arguments is not None:
        edited = decided.arguments
        return Gate("ask" if _matches(rule, edited) else "run", edited, decided=True)
    if decided.decision == "expire":
        return Gate(
            "result", text="no decision came within the approval timeout: the call was rejected"
        )
    note = f": {decided.note}" if decided.note else ""
    return Gate("result", text=f"a person rejected this call{note}; do not retry it as is")


def _matches(rule: ApprovalRule, arguments: str) -> bool:
    try:
        parsed = json.loads(arguments or "{}")
    except ValueError:
        return False  # the tool refuses it with a clear error; nothing to approve
    return rule.matches(parsed) if isinstance(parsed, dict) else False
