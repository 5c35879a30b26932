"""What the OpenAI-compatible endpoint does with a client's tools and output format.

The "model" a client talks to is a flow: its agents have their own tools and answer in
text. A client's ``tools`` (or the older ``functions``) would need the flow to hand tool
calls back to the client, and ``response_format`` a structured answer the flow's agents
were not written to give; accepting them and answering as if they were not there breaks
clients (an SDK's structured output then fails to parse). So each is refused with a 400
that names the field and says what is supported: ``tool_choice`` of ``"none"`` or
``"auto"`` with no tools (the same as none), and ``response_format`` of ``{"type":
"text"}``.
"""

from __future__ import annotations

from typing import Any

from relaybaton.service._errors import ApiError

__all__ = ["refuse_unsupported"]


def refuse_unsupported(
    tools: list[dict[str, Any]] | None,
    functions: list[dict[str, Any]] | None,
    tool_choice: str | dict[str, Any] | None,
    response_format: dict[str, Any] | None,
) -> None:
    """Raise a 400 ``ApiError`` for an option the endpoint would otherwise ignore."""
    if tools:
        raise ApiError(
            400,
            "client-side tools are not supported: the flow's agents call their own tools "
            "and answer in text; send the request without `tools` (or talk to the model "
            "directly if the client must run the tools)",
            code="unsupported_tools",
            param="tools",
        )
    if functions:
        raise ApiError(
            400,
            "`functions` is not supported (nor `tools`): the flow's agents call their own "
            "tools; send the request without it",
            code="unsupported_tools",
            param="functions",
        )
    if tool_choice is not None and tool_choice not in ("none", "auto"):
        raise ApiError(
            400,
            f"tool_choice {tool_choice!r} is not supported: without client tools only "
            '"none" or "auto" mean anything; leave it out',
            code="unsupported_tool_choice",
            param="tool_choice",
        )
    if response_format is not None and response_format.get("type") != "text":
        kind = response_format.get("type")
        raise ApiError(
            400,
            f"response_format {kind!r} is not supported: the flow answers in text; "
            'send {"type": "text"} or leave it out, and parse the answer yourself',
            code="unsupported_response_format",
            param="response_format",
        )
