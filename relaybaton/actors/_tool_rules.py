"""Tool rules: what must be true of a call, and of what the conversation recorded, before it runs.

A business rule that money or a release depends on cannot rest on a model's good manners:
the model writes the arguments, so a check of the arguments alone trusts it. A rule here
reads the conversation's recorded tool results, which the runtime wrote, not the model:

- ``requires``: tools that must have a successful result in the conversation first (look
  the order up and check the policy before money moves; ask every expert before a review
  is published);
- ``allow_if``: an expression (the approval rules' language, plus fields: ``a.b``,
  ``a[0]``) over the call's arguments and the required tools' results, true for some
  combination of recorded results: ``lookup_order.found and lookup_order.order_id ==
  order_id and amount <= lookup_order.total``. Each result's JSON fields are its names,
  ``args`` its call's arguments and ``text`` its raw text;
- ``otherwise``: ``refuse`` (the model gets an error result naming the rule) or
  ``approval`` (a person decides, and must give a reason: the tool then runs as a known
  risk, and its context says so).

``recorded_results`` is the same reading for a tool's own code, through
``ToolContext.results``.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, final

import msgspec

from relaybaton.actors._approval import ApprovalRule
from relaybaton.adapters import AssistantMessage, ToolResultMessage
from relaybaton.errors import ConfigError

__all__ = ["RecordedResult", "ToolRules", "recorded_results"]

_RECENT = 8  # results of one tool a rule looks at: the latest ones
_COMBINATIONS = 512  # a bound on the rule's search over several tools' results


@final
@dataclass(frozen=True, slots=True)
class RecordedResult:
    """A tool result the conversation recorded: the call's ``arguments``, the result's
    ``text``, and ``value``, the text decoded as JSON (None when it is not JSON)."""

    tool: str
    arguments: Mapping[str, Any]
    text: str
    value: Any

    def names(self) -> dict[str, Any]:
        """The names a rule sees for this result."""
        fields = dict(self.value) if isinstance(self.value, Mapping) else {}
        fields.setdefault("args", dict(self.arguments))
        fields.setdefault("text", self.text)
        return fields


def recorded_results(records: Sequence[object], tool: str) -> list[RecordedResult]:
    """The successful results of ``tool`` in ``records`` (a transcript), oldest first."""
    calls: dict[str, str] = {}
    found: list[RecordedResult] = []
    for item in records:
        if type(item) is AssistantMessage:
            for call in item.tool_calls:
                if call.name == tool:
                    calls[call.id] = call.arguments
        elif type(item) is ToolResultMessage and item.name == tool and not item.is_error:
            arguments = calls.get(item.call_id)
            if arguments is None:
                continue
            found.append(
                RecordedResult(
                    tool=tool,
                    arguments=_object(arguments),
                    text=item.content,
                    value=_decode(item.content),
                )
            )
    return found


def _decode(text: str) -> Any:
    if text[:1] not in ("{", "["):
        return None
    try:
        return msgspec.json.decode(text)
    except msgspec.DecodeError:
        return None


def _object(text: str) -> Mapping[str, Any]:
    value = _decode(text or "{}")
    return value if isinstance(value, Mapping) else {}


@final
class ToolRules:
    """A tool's rules; see the module docstring."""

    __slots__ = ("allow_if", "message", "otherwise", "requires")

    def __init__(
        self,
        *,
        requires: Sequence[str] = (),
        allow_if: str | None = None,
        otherwise: Literal["refuse", "approval"] = "refuse",
        message: str = "",
    ) -> None:
        if otherwise not in ("refuse", "approval"):
            raise ConfigError(f'otherwise must be "refuse" or "approval", got {otherwise!r}')
        self.requires = tuple(requires)
        self.allow_if = ApprovalRule(allow_if) if allow_if else None
        self.otherwise = otherwise
        self.message = message

    def __repr__(self) -> str:
        rule = self.allow_if.text if self.allow_if else None
        return f"ToolRules(requires={list(self.requires)}, allow_if={rule!r})"

    @property
    def text(self) -> str:
        """The rules in a line, as an approval request shows them."""
        parts = [f"requires {', '.join(self.requires)}"] if self.requires else []
        if self.allow_if is not None:
            parts.append(f"allow_if {self.allow_if.text}")
        return "; ".join(parts)

    def check_names(self, parameters: Collection[str], tool: str) -> None:
        """Raise ``ConfigError`` for a name in ``allow_if`` that is neither an argument of
        the tool nor a required tool."""
        if self.allow_if is None:
            return
        known = set(parameters) | set(self.requires)
        unknown = sorted(self.allow_if.names - known)
        if unknown:
            raise ConfigError(
                f"tool {tool!r}: allow_if {self.allow_if.text!r} uses `{unknown[0]}`, which is "
                f"neither an argument ({', '.join(sorted(parameters)) or 'none'}) nor a tool in "
                f"requires ({', '.join(self.requires) or 'none'}); add it to requires"
            )

    def refusal(self, tool: str, arguments: str, records: Sequence[object]) -> str | None:
        """Why the call may not run now, or None when the rules allow it."""
        results = {name: recorded_results(records, name)[-_RECENT:] for name in self.requires}
        missing = [name for name, found in results.items() if not found]
        if missing:
            return (
                f"{tool} may not run yet: it needs a successful {', '.join(missing)} result in "
                f"this conversation first; call {missing[0]} and read its result"
                + (f". {self.message}" if self.message else "")
            )
        if self.allow_if is None:
            return None
        args = _object(arguments)
        used = [name for name in self.requires if name in self.allow_if.names]
        combinations = itertools.product(*(results[name] for name in used))
        for combination in itertools.islice(combinations, _COMBINATIONS):
            names: dict[str, Any] = dict(args)
            names.update((r.tool, r.names()) for r in combination)
            if self.allow_if.holds(names):
                return None
        why = self.message or f"the rule {self.allow_if.text!r} does not hold"
        return f"{tool} refused: {why}; nothing was done"
