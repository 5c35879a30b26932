"""Admitting a tool call and its result: the checks every tool call passes, owner or callee.

The owner's calls meet their approval rules and tool rules at the approval gate
(``_approval.py``), which can pause the conversation for a person. An agent used as a tool
cannot pause anything, so its calls that would need a person, or that break a tool's
rules, are refused here instead of running unchecked. Then, for every call, the agent's
``tool_arguments`` guardrails screen the arguments and its ``tool_result`` guardrails the
result, so neither a model nor a tool gets around them.
"""

from __future__ import annotations

from dataclasses import replace

from relaybaton.actors._approval import Gate, callee_refusal
from relaybaton.actors._compiled import CompiledAgent, FlowContext
from relaybaton.actors._guarding import Where
from relaybaton.adapters import ToolCall
from relaybaton.errors import ToolRefusedError

__all__ = ["admit", "screen_for_approval", "screen_result"]


async def admit(
    flow: FlowContext,
    compiled: CompiledAgent,
    call: ToolCall,
    arguments: str,
    where: tuple[str, tuple[str, ...], object],
    *,
    callee: bool,
) -> str:
    """The arguments ``call`` runs with; raises ``ToolRefusedError`` if it may not run.

    ``where`` is (conversation id, call chain, trace sink).
    """
    conversation_id, chain, sink = where
    if callee:
        tool = compiled.function_tools.get(call.name)
        if tool is not None and (tool.rules is not None or tool.approval_rule is not None):
            refusal = callee_refusal(flow.conversations.get(conversation_id), tool, arguments)
            if refusal is not None:
                raise ToolRefusedError(refusal, tool=call.name)
    guards = compiled.guards
    if not guards.tool_arguments:
        return arguments
    at = Where(flow, conversation_id, compiled.agent.name, sink, call.name, chain)
    screened = await guards.screen("tool_arguments", guards.tool_arguments, arguments, at)
    if screened.blocked is not None:
        raise ToolRefusedError(screened.blocked, tool=call.name)
    return screened.text


async def screen_result(
    flow: FlowContext,
    compiled: CompiledAgent,
    call: ToolCall,
    content: str,
    where: tuple[str, tuple[str, ...], object],
) -> tuple[str, bool]:
    """The result the model reads, and whether it is an error (a blocked result is)."""
    guards = compiled.guards
    conversation_id, chain, sink = where
    at = Where(flow, conversation_id, compiled.agent.name, sink, call.name, chain)
    screened = await guards.screen("tool_result", guards.tool_result, content, at)
    if screened.blocked is not None:
        return screened.blocked, True
    return screened.text, False


async def screen_for_approval(
    flow: FlowContext, compiled: CompiledAgent, call: ToolCall, gate: Gate, owner: object
) -> Gate:
    """The ``ask`` gate with its arguments screened, or a ``result`` gate if they are blocked.

    A person deciding on a call sees what the tool would get: redacted, or nothing at all.
    """
    conversation_id = getattr(owner, "conversation_id", "")
    try:
        arguments = await admit(
            flow, compiled, call, gate.arguments, (conversation_id, (), owner), callee=False
        )
    except ToolRefusedError as exc:
        return Gate("result", text=str(exc))
    return replace(gate, arguments=arguments)
