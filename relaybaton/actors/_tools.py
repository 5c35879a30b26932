"""Function tools: a Python function whose JSON Schema comes from its type hints.

The arguments a model sends are decoded and validated with msgspec against a struct built
from the signature, before the function runs; a bad call comes back to the model as a tool
error naming the field (``Expected `int`, got `str` - at `$.amount```), which it can fix.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, final, get_type_hints, overload

import msgspec

from relaybaton.actors._approval import ApprovalRule
from relaybaton.actors._tool_rules import RecordedResult, ToolRules, recorded_results
from relaybaton.adapters import ToolSpec
from relaybaton.errors import ConfigError, ToolArgumentsError

__all__ = ["FunctionTool", "ToolContext", "function_tool"]


@final
@dataclass(frozen=True, slots=True)
class ToolContext:
    """Passed to a tool function that declares a parameter of this type.

    ``idempotency_key`` (``conversation id : tool call id``) is the same if the call is
    ever run again after a crash; a tool with side effects should key them on it.
    ``user`` is the user the conversation was opened for (``Runtime.send(..., user=...)``).
    ``results(tool)`` reads what the conversation recorded of another tool (the runtime
    wrote it, not the model); ``approval_note`` is the reason a person gave when they let
    this call run against its rules (a known risk), else "".
    """

    conversation_id: str
    agent: str
    call_id: str
    user: str = ""  # the conversation's user (its memory namespace); "" when not given
    records: Sequence[object] = field(default=(), repr=False)
    approval_note: str = ""

    def results(self, tool: str) -> list[RecordedResult]:
        """The successful results of ``tool`` recorded in this conversation, oldest first."""
        return recorded_results(self.records, tool)

    @property
    def idempotency_key(self) -> str:
        """The key a side effect of this call should be deduplicated on."""
        return f"{self.conversation_id}:{self.call_id}"


_ARGS_SECTION = re.compile(r"^\s*(Args|Arguments|Parameters):\s*$")
_ARG_LINE = re.compile(r"^\s+(\w+)(?:\s*\([^)]*\))?:\s*(.+)$")


def _describe(fn: Callable[..., object]) -> tuple[str, dict[str, str]]:
    """Split a Google-style docstring into the summary and per-argument descriptions."""
    doc = inspect.getdoc(fn) or ""
    summary_lines: list[str] = []
    params: dict[str, str] = {}
    in_args = False
    for line in doc.splitlines():
        if _ARGS_SECTION.match(line):
            in_args = True
            continue
        if in_args:
            match = _ARG_LINE.match(line)
            if match:
                params[match.group(1)] = match.group(2).strip()
            elif line.strip() and not line.startswith((" ", "\t")):
                in_args = False
            continue
        if not params:
            summary_lines.append(line)
    summary = " ".join(" ".join(summary_lines).split())
    return summary, params


def _inline_schema(struct_type: type[msgspec.Struct]) -> dict[str, object]:
    schema = msgspec.json.schema(struct_type)
    defs = dict(schema.get("$defs", {}))
    top = dict(defs.pop(struct_type.__name__))
    top.pop("title", None)
    if defs:
        top["$defs"] = defs
    top.setdefault("properties", {})
    return top


@final
class FunctionTool:
    """A tool backed by a Python function (sync or async)."""

    __slots__ = (
        "_args_type",
        "_context_param",
        "_decoder",
        "approval_rule",
        "approval_timeout",
        "description",
        "fn",
        "name",
        "retry_safe",
        "rules",
        "spec",
    )

    def __init__(
        self,
        fn: Callable[..., object] | Callable[..., Awaitable[object]],
        *,
        name: str | None = None,
        description: str | None = None,
        needs_approval: bool | str = False,
        approval_timeout: float | None = None,
        retry_safe: bool = True,
        rules: ToolRules | None = None,
    ) -> None:
        """Wrap ``fn``.

        Args:
            fn: the function (sync or async); its type hints give the schema.
            name: the tool's name (default: the function's).
            description: what the model reads (default: the docstring's summary).
            needs_approval: ``True``, or a rule on the arguments (``"amount > 100"``):
                matching calls wait for a person's decision.
            approval_timeout: seconds after which an undecided request is rejected.
            retry_safe: whether a call interrupted by a crash may run again (with the same
                idempotency key); if not, it gets an error result instead.
            rules: what must hold of the arguments and the conversation's recorded
                results before a call runs (``ToolRules``).
        """
        self.fn = fn
        self.name = name or fn.__name__
        summary, param_docs = _describe(fn)
        self.description = description or summary or self.name
        hints = get_type_hints(fn, include_extras=True)
        fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
        self._context_param: str | None = None
        for param in inspect.signature(fn).parameters.values():
            annotation = hints.get(param.name, str)
            if annotation is ToolContext:
                self._context_param = param.name
                continue
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise ConfigError(f"tool {self.name!r}: *args and **kwargs cannot be described")
            doc = param_docs.get(param.name)
            if doc is not None:
                from typing import Annotated  # noqa: PLC0415 - only when documented

                annotation = Annotated[annotation, msgspec.Meta(description=doc)]
            if param.default is inspect.Parameter.empty:
                fields.append((param.name, annotation))
            else:
                fields.append((param.name, annotation, param.default))
        self._args_type: type[msgspec.Struct] = msgspec.defstruct(
            f"{self.name}_arguments", fields, kw_only=True, forbid_unknown_fields=True
        )
        self._decoder = msgspec.json.Decoder(self._args_type)
        self.spec = ToolSpec(
            name=self.name,
            description=self.description,
            parameters=_inline_schema(self._args_type),
        )
        self.approval_rule: ApprovalRule | None = None
        if needs_approval:
            rule = ApprovalRule(needs_approval)
            rule.check_names(self._args_type.__struct_fields__)
            self.approval_rule = rule
        self.approval_timeout = approval_timeout
        self.retry_safe = retry_safe
        if rules is not None:
            rules.check_names(self._args_type.__struct_fields__, self.name)
        self.rules = rules

    def __repr__(self) -> str:
        return f"FunctionTool({self.name!r})"

    def parse(self, arguments: str) -> dict[str, object]:
        """Validate the model's JSON arguments; raise ``ToolArgumentsError`` naming the field."""
        try:
            args = self._decoder.decode(arguments or "{}")
        except msgspec.ValidationError as exc:
            raise ToolArgumentsError(
                f"invalid arguments for tool {self.name!r}: {exc}; "
                f"expected an object matching {msgspec.json.encode(self.spec.parameters).decode()}",
                tool=self.name,
            ) from exc
        except msgspec.DecodeError as exc:
            raise ToolArgumentsError(
                f"arguments for tool {self.name!r} are not valid JSON ({exc}); send a JSON object",
                tool=self.name,
            ) from exc
        return {f: getattr(args, f) for f in args.__struct_fields__}

    async def invoke(self, arguments: str, context: ToolContext) -> str:
        """Validate, call the function, and render its result as text (JSON if not a str)."""
        kwargs = self.parse(arguments)
        if self._context_param is not None:
            kwargs[self._context_param] = context
        result = self.fn(**kwargs)
        if inspect.isawaitable(result):
            result = await result
        if isinstance(result, str):
            return result
        return msgspec.json.encode(result).decode()


@overload
def function_tool(fn: Callable[..., object], /) -> FunctionTool: ...


@overload
def function_tool(
    *,
    name: str | None = None,
    description: str | None = None,
    needs_approval: bool | str = False,
    approval_timeout: float | None = None,
    retry_safe: bool = True,
    rules: ToolRules | None = None,
) -> Callable[[Callable[..., object]], FunctionTool]: ...


def function_tool(
    fn: Callable[..., object] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    needs_approval: bool | str = False,
    approval_timeout: float | None = None,
    retry_safe: bool = True,
    rules: ToolRules | None = None,
) -> FunctionTool | Callable[[Callable[..., object]], FunctionTool]:
    """Make a tool of a function; use bare (``@function_tool``) or with options.

    See ``FunctionTool`` for the options.
    """

    def wrap(inner: Callable[..., object]) -> FunctionTool:
        return FunctionTool(
            inner,
            name=name,
            description=description,
            needs_approval=needs_approval,
            approval_timeout=approval_timeout,
            retry_safe=retry_safe,
            rules=rules,
        )

    return wrap(fn) if fn is not None else wrap
