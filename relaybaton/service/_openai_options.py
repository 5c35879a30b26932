"""What the OpenAI-compatible endpoint does with a client's tools.

The "model" a client talks to is a flow: its agents have their own tools. A client's
``tools`` (or the older ``functions``) would need the flow to hand tool calls back to the
client; accepting them and answering as if they were not there breaks clients. So each is
refused with a 400 that names the field and says what is supported: ``tool_choice`` of
``"none"`` or ``"auto"`` with no tools (the same as none). (``response_format`` is
honoured: see ``_response_format``.)
"""

from __future__ import annotations

from typing import Any

from relaybaton.service._errors import ApiError

__all__ = ["refuse_unsupported"]


def refuse_unsupported(
    tools: list[dict[str, Any]] | None,
    functions: list[dict[str, Any]] | None,
    tool_choice: str | dict[str, Any] | None,
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
