"""Schema tools: a tool declared by a JSON Schema rather than by a Python signature.

The memory graph's tools and the tools of an external MCP server arrive with their JSON
Schema already written. A ``SchemaTool`` keeps that schema as the model sees it, checks the
model's arguments against it (required fields and JSON types, through nested objects and
arrays) before anything runs, and hands the decoded object to an async function. It plugs
into the same tool path as a ``FunctionTool``: approvals, the journal's tool starts, and the
``execute_tool`` trace events.

The check is deliberately small: the keywords a tool's ``inputSchema`` uses in practice
(``type``, ``properties``, ``required``, ``items``, ``enum``). Anything richer is the
server's to refuse, and its refusal reaches the model as a tool error too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, final

import msgspec

from relaybaton.actors._approval import ApprovalRule
from relaybaton.actors._tool_rules import ToolRules
from relaybaton.actors._tools import ToolContext
from relaybaton.adapters import ToolSpec
from relaybaton.errors import ToolArgumentsError

__all__ = ["SchemaTool", "check_schema"]

SchemaCall = Callable[[dict[str, Any], ToolContext], Awaitable[str]]

_JSON_TYPES: dict[str, Callable[[object], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "null": lambda v: v is None,
}


def _type_name(value: object) -> str:
    for name in ("null", "boolean", "integer", "number", "string", "array", "object"):
        if _JSON_TYPES[name](value):
            return name
    return type(value).__name__


def check_schema(value: object, schema: Mapping[str, Any], path: str = "$") -> list[str]:
    """Return the problems of ``value`` against ``schema``, each naming its path.

    Messages read like msgspec's: ``Expected `string`, got `int` - at `$.query```.
    Unknown keywords are ignored, so a schema this check does not understand passes.
    """
    problems: list[str] = []
    expected = schema.get("type")
    types = [expected] if isinstance(expected, str) else expected
    if isinstance(types, list) and types:
        known = [t for t in types if t in _JSON_TYPES]
        if known and not any(_JSON_TYPES[t](value) for t in known):
            wanted = " | ".join(f"`{t}`" for t in known)
            problems.append(f"Expected {wanted}, got `{_type_name(value)}` - at `{path}`")
            return problems
    enum = schema.get("enum")
    if isinstance(enum, list) and value not in enum:
        choices = ", ".join(msgspec.json.encode(e).decode() for e in enum)
        problems.append(f"Expected one of {choices} - at `{path}`")
    if isinstance(value, dict):
        required = schema.get("required", [])
        for name in required if isinstance(required, list) else []:
            if name not in value:
                problems.append(f"Object missing required field `{name}` - at `{path}`")
        properties = schema.get("properties", {})
        if isinstance(properties, Mapping):
            for name, sub in properties.items():
                if name in value and isinstance(sub, Mapping):
                    problems.extend(check_schema(value[name], sub, f"{path}.{name}"))
    elif isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, Mapping):
            for index, item in enumerate(value):
                problems.extend(check_schema(item, items, f"{path}[{index}]"))
    return problems


@final
class SchemaTool:
    """A tool whose JSON Schema is given, run by ``call(arguments, context)``.

    ``call`` returns the text the model reads; raising ``ToolError`` gives the model an
    error result it can recover from (any other exception does too, as for every tool).
    """

    __slots__ = (
        "_call",
        "approval_rule",
        "approval_timeout",
        "description",
        "name",
        "parameters",
        "retry_safe",
        "rules",
        "spec",
    )

    def __init__(
        self,
        name: str,
        call: SchemaCall,
        *,
        description: str,
        parameters: Mapping[str, Any],
        needs_approval: bool | str = False,
        approval_timeout: float | None = None,
        retry_safe: bool = True,
    ) -> None:
        """Declare the tool.

        Args:
            name: the name the model sees (letters, digits, ``_`` and ``-``).
            call: the async function that runs a validated call.
            description: what the model reads.
            parameters: the JSON Schema of the arguments (an object schema).
            needs_approval: ``True``, or a rule on the top-level arguments.
            approval_timeout: seconds after which an undecided request is rejected.
            retry_safe: whether a call interrupted by a crash may run again.
        """
        self.name = name
        self._call = call
        self.description = description
        self.parameters: dict[str, Any] = dict(parameters)
        self.parameters.setdefault("type", "object")
        self.parameters.setdefault("properties", {})
        self.spec = ToolSpec(name=name, description=description, parameters=self.parameters)
        self.approval_rule: ApprovalRule | None = None
        if needs_approval:
            rule = ApprovalRule(needs_approval)
            properties = self.parameters.get("properties", {})
            rule.check_names(tuple(properties) if isinstance(properties, Mapping) else ())
            self.approval_rule = rule
        self.approval_timeout = approval_timeout
        self.retry_safe = retry_safe
        self.rules: ToolRules | None = None  # tool rules are for function tools

    def __repr__(self) -> str:
        return f"SchemaTool({self.name!r})"

    def parse(self, arguments: str) -> dict[str, Any]:
        """Decode and check the model's JSON arguments; raise ``ToolArgumentsError``."""
        try:
            value = msgspec.json.decode(arguments or "{}")
        except msgspec.DecodeError as exc:
            raise ToolArgumentsError(
                f"arguments for tool {self.name!r} are not valid JSON ({exc}); send a JSON object",
                tool=self.name,
            ) from exc
        problems = check_schema(value, self.parameters)
        if not isinstance(value, dict) and not problems:
            problems = [f"Expected `object`, got `{_type_name(value)}` - at `$`"]
        if problems:
            schema = msgspec.json.encode(self.parameters).decode()
            raise ToolArgumentsError(
                f"invalid arguments for tool {self.name!r}: {'; '.join(problems)}; "
                f"expected an object matching {schema}",
                tool=self.name,
            )
        assert isinstance(value, dict)
        return value

    async def invoke(self, arguments: str, context: ToolContext) -> str:
        """Validate the arguments, then run the call."""
        return await self._call(self.parse(arguments), context)
