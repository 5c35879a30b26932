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

__all__ = [
    "AGAINST_RULES",
    "ApprovalRule",
    "Gate",
    "approval_gate",
    "approval_note",
    "callee_refusal",
]

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

    def holds(self, names: Mapping[str, object]) -> bool:
        """Whether the rule is true of ``names``; a comparison it cannot make is false."""
        try:
            return bool(self._eval(self._tree, names))
        except TypeError as exc:
            _log.debug("rule_undecided", rule=self.text, exc_info=exc)
            return False

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
            ast.Attribute,  # a recorded result's field: lookup_order.total
            ast.Subscript,  # an item of one: scan.findings[0]
            *_COMPARE,
        )
        for child in ast.walk(node):
            if not isinstance(child, allowed):
                raise ConfigError(
                    f"approval rule {self.text!r}: `{type(child).__name__}` is not allowed; "
                    "use comparisons, and/or/not, in, numbers, strings, lists and fields (a.b)"
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
        if isinstance(node, ast.Attribute):
            value = self._eval(node.value, arguments)
            return value.get(node.attr) if isinstance(value, Mapping) else None
        if isinstance(node, ast.Subscript):
            value = self._eval(node.value, arguments)
            index = self._eval(node.slice, arguments)
            try:
                return value[index]
            except (KeyError, IndexError, TypeError):
                return None
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


# The rule text of a request that asks a person to let a call run against its tool's rules:
# such an approval must carry a reason (the known risk), and the tool is told it.
AGAINST_RULES = "against the rules: "


@final
@dataclass(frozen=True, slots=True)
class Gate:
    """What to do with one tool call: ``run`` it (with ``arguments``), ``ask`` a person
    (about ``arguments``, under ``rule``), ``wait`` for a decision, or record ``result``
    (an error text)."""

    kind: str
    arguments: str = ""
    text: str = ""
    decided: bool = False  # a person's decision let it run
    rule: str = ""


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
    if tool is None or (tool.approval_rule is None and tool.rules is None):
        return Gate("run", call.arguments)
    requests = [a for a in conversation.approvals.values() if a.call_id == call.id]
    if not requests:
        return _first_look(conversation, tool, call.arguments)
    latest = requests[-1]
    decided = conversation.decisions.get(latest.approval_id)
    if decided is None:
        return Gate("wait")
    if decided.decision == "approve":
        if latest.rule.startswith(AGAINST_RULES) and not decided.note.strip():
            return Gate(
                "result",
                text="a person approved this call against its rules without giving a reason; "
                "such an approval needs one (the known risk), so nothing was done",
            )
        return Gate("run", latest.arguments, decided=True)
    if decided.decision == "edit" and decided.arguments is not None:
        gate = _first_look(conversation, tool, decided.arguments)
        return Gate(gate.kind, gate.arguments, gate.text, decided=True, rule=gate.rule)
    if decided.decision == "expire":
        return Gate(
            "result", text="no decision came within the approval timeout: the call was rejected"
        )
    note = f": {decided.note}" if decided.note else ""
    return Gate("result", text=f"a person rejected this call{note}; do not retry it as is")


def _first_look(
    conversation: Conversation, tool: FunctionTool | SchemaTool, arguments: str
) -> Gate:
    """The gate for arguments no person has seen: the tool's rules, then its approval rule."""
    rules = tool.rules
    if rules is not None:
        refusal = rules.refusal(tool.name, arguments, conversation.transcript)
        if refusal is not None:
            if rules.otherwise == "refuse":
                return Gate("result", text=refusal)
            reason = refusal.removeprefix(f"{tool.name} refused: ")
            reason = reason.removesuffix("; nothing was done")
            return Gate("ask", arguments, rule=f"{AGAINST_RULES}{reason}")
    rule = tool.approval_rule
    if rule is not None and _matches(rule, arguments):
        return Gate("ask", arguments, rule=rule.text)
    return Gate("run", arguments)


def callee_refusal(
    conversation: Conversation | None, tool: FunctionTool | SchemaTool, arguments: str
) -> str | None:
    """Why an agent used as a tool may not make this call, or None.

    A callee cannot pause the conversation for a person, so a call that would need one is
    refused rather than run unchecked.
    """
    records = conversation.transcript if conversation is not None else ()
    if tool.rules is not None:
        refusal = tool.rules.refusal(tool.name, arguments, records)
        if refusal is not None:
            return refusal
    if tool.approval_rule is not None and _matches(tool.approval_rule, arguments):
        return (
            f"{tool.name} needs a person's approval ({tool.approval_rule.text}); an agent used "
            "as a tool cannot ask for one, so the conversation's owner must make this call"
        )
    return None


def approval_note(conversation: Conversation | None, call_id: str) -> str:
    """The reason a person gave for letting this call run against its rules, or ""."""
    if conversation is None or not conversation.decisions:
        return ""
    for request in reversed(list(conversation.approvals.values())):
        if request.call_id == call_id:
            decided = conversation.decisions.get(request.approval_id)
            if decided is not None and request.rule.startswith(AGAINST_RULES):
                return decided.note
            return ""
    return ""


def _matches(rule: ApprovalRule, arguments: str) -> bool:
    try:
        parsed = json.loads(arguments or "{}")
    except ValueError:
        return False  # the tool refuses it with a clear error; nothing to approve
    return rule.matches(parsed) if isinstance(parsed, dict) else False
