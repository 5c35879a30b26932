"""A fork's own model and instructions, per agent, for the forked conversation only.

A person forks a conversation to replay a turn with another model or prompt. The fork's
choice lives in its ``Control`` (journaled with the ``Forked`` record, so a restart and the
journal fold keep it); the turn loop looks at it only when ``Control.chose`` is set, so a
conversation without a choice pays nothing. The chosen model is either a candidate of the
agent's slot (by candidate or adapter name) or a ``provider:model`` id the runtime's
``model_builder`` builds (the flow's, under the same rules as ``--model`` overrides). Each
is built once per (slot, model id), behind a slot of its own with the slot's retry policy,
and closed with the runtime.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec
import structlog

from relaybaton.actors._compiled import CompiledAgent, FlowContext
from relaybaton.actors._model_call import call_model
from relaybaton.actors.routing._router import Decision
from relaybaton.adapters import AssistantMessage, ModelRequest
from relaybaton.errors import ConfigError, ModelError
from relaybaton.runtime import OwnerHandle, ToolScope
from relaybaton.runtime._journal_events import Charged
from relaybaton.runtime._operator_events import Control

__all__ = ["call_forked", "check_fork_choice"]

_log = structlog.get_logger("relaybaton.agents")


def check_fork_choice(
    flow: FlowContext, models: Mapping[str, str], instructions: Mapping[str, str]
) -> None:
    """Refuse a fork's choice the runtime cannot honour, naming the field and the fix.

    Builds each chosen model now (kept for the fork's calls), so a missing key or a bad id
    is a refusal of the fork, not a failure of its first turn.
    """
    agents = sorted(flow.agents)
    for field_name, chosen in (("models", models), ("instructions", instructions)):
        for agent in chosen:
            if agent not in flow.agents:
                raise ConfigError(
                    f"{field_name}.{agent}: no agent named {agent!r}; the flow's agents: "
                    f"{', '.join(agents)}"
                )
    for agent, text in instructions.items():
        if not text.strip():
            raise ConfigError(f"instructions.{agent}: empty; give the text the agent should use")
    for agent, model_id in models.items():
        try:
            flow.fork_models.slot_for(flow.agents[agent].slot, model_id)
        except ConfigError as exc:
            raise ConfigError(
                f"models.{agent}: cannot use {model_id!r}: {exc}; name a `provider:model` "
                "the flow can build or a candidate of the agent's slot"
            ) from exc


async def call_forked(
    compiled: CompiledAgent,
    flow: FlowContext,
    request: ModelRequest,
    sink: OwnerHandle | ToolScope,
    control: Control,
) -> tuple[AssistantMessage, Charged]:
    """One model call of a fork that chose something: its instructions, its model."""
    agent = compiled.agent.name
    text = control.fork_instructions.get(agent)
    if text is not None:
        request = msgspec.structs.replace(request, instructions=text)
    model_id = control.fork_models.get(agent)
    if model_id is None:
        if text is None:  # the fork chose for other agents only
            return await call_model(compiled, flow, request, sink)
        why = f"instructions chosen by the fork of {control.forked_from!r} (by {control.forked_by})"
        chosen = Decision(candidate=compiled.slot.adapter.name, reason=why, policy="fork")
        return await call_model(compiled, flow, request, sink, chosen=chosen)
    try:
        slot = flow.fork_models.slot_for(compiled.slot, model_id)
    except ConfigError as exc:  # it was built at fork time; a restart may lack its key
        _log.warning("fork_model_unavailable", agent=agent, model=model_id, exc_info=exc)
        raise ModelError(f"the model {model_id!r} the fork chose for {agent!r}: {exc}") from exc
    why = f"chosen by the fork of {control.forked_from!r} (by {control.forked_by})"
    if text is not None:
        why += ", with the fork's instructions"
    chosen = Decision(candidate=model_id, reason=why, policy="fork")
    return await call_model(compiled, flow, request, sink, slot=slot, chosen=chosen)
