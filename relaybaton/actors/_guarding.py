"""Running an agent's guardrails in the turn loop: screen a text, trace it, journal a trip.

``Guards`` holds one agent's guardrails sorted by stage, so the turn loop asks a single
attribute whether a stage has any (the common case has none and costs nothing). A screen
runs the stage's guardrails in order on the text, each on what the one before left; the
first that blocks ends the screen. Every check is a ``guardrail`` trace event (name, stage,
verdict), which the HTTP edge turns into a span and a metric; every trip is also a journal
record (``GuardrailTripped``), so a conversation's history says what was stopped and why.

A check that raises blocks (``failed``): a guardrail exists to stop what nobody checked.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, final

import msgspec
import structlog

from relaybaton.actors._events import GuardrailEvent
from relaybaton.actors._guardrail import Guardrail, GuardrailContext, GuardrailResult, Stage
from relaybaton.adapters import ChatMessage, UserMessage
from relaybaton.runtime._journal_events import GuardrailTripped

if TYPE_CHECKING:  # the compiled agent holds its Guards: a cycle at import time only
    from relaybaton.actors._compiled import FlowContext

__all__ = ["Guards", "Screened", "Where"]

_log = structlog.get_logger("relaybaton.guardrails")

_CACHE = 256  # user messages whose redaction an agent remembers (its models see them often)
# Conversations whose redacted history an agent remembers: each model call of a turn sends
# the whole history, so redacting only what was appended since keeps a call's cost flat in
# the conversation's length. A conversation that falls out is redacted whole again.
_HISTORIES = 2048


@final
@dataclass(frozen=True, slots=True)
class Screened:
    """What a screen left: ``text`` to go on with, or ``blocked`` (the refusal text)."""

    text: str
    blocked: str | None = None


@final
@dataclass(frozen=True, slots=True)
class Where:
    """Where a screen runs: the flow, the conversation, who is calling, for which tool."""

    flow: FlowContext
    conversation_id: str
    agent: str
    sink: object  # an OwnerHandle or ToolScope: has ``record(event)``
    tool: str = ""
    chain: tuple[str, ...] = ()


@final
class Guards:
    """One agent's guardrails by stage."""

    __slots__ = (
        "_histories",
        "_redactions",
        "any",
        "input",
        "output",
        "redacts_input",
        "tool_arguments",
        "tool_result",
    )

    def __init__(self, guardrails: Sequence[Guardrail]) -> None:
        def at(stage: Stage) -> tuple[Guardrail, ...]:
            return tuple(g for g in guardrails if stage in g.on)

        self.input = at("input")
        self.output = at("output")
        self.tool_arguments = at("tool_arguments")
        self.tool_result = at("tool_result")
        self.redacts_input = tuple(g for g in self.input if g.action == "redact")
        #: Whether an owner's turn runs any of them (the tool stages run in tool scopes).
        self.any = bool(self.input or self.output)
        self._redactions: OrderedDict[str, str] = OrderedDict()
        # By conversation: the history last redacted, and what its redaction gave.
        self._histories: OrderedDict[str, tuple[list[ChatMessage], list[ChatMessage]]] = (
            OrderedDict()
        )

    async def screen(
        self, stage: Stage, guardrails: Sequence[Guardrail], text: str, where: Where
    ) -> Screened:
        """Run ``guardrails`` at ``stage`` on ``text``; see the module docstring."""
        context = _context(stage, where)  # one per screen: checks of a stage share it
        clock = where.flow.clock
        observed = where.flow.conversations.observed
        for guardrail in guardrails:
            if where.tool and not guardrail.watches(stage, where.tool):
                continue
            # The check is called here, not in a coroutine of its own: most are not async,
            # and a screen runs several on every message.
            started = clock.now() if observed else 0.0
            try:
                result = guardrail.check(text, context)
                if type(result) is not GuardrailResult:
                    result = await guardrail.settle(result)
                verdict = _verdict(guardrail, result)
            except Exception as exc:  # a check is user code: its failure blocks, and is logged
                result, verdict = _failed(guardrail, where, exc), "failed"
            if observed:
                where.sink.record(  # type: ignore[attr-defined]
                    GuardrailEvent(
                        guardrail=guardrail.name,
                        stage=stage,
                        agent=where.agent,
                        verdict=verdict,
                        reason=result.reason[:300],
                        tool=where.tool,
                        latency_s=clock.now() - started,
                        at=started,
                    )
                )
            if verdict == "passed":
                continue
            _journal(
                where,
                GuardrailTripped(
                    guardrail=guardrail.name,
                    stage=stage,
                    agent=where.agent,
                    verdict=verdict,
                    reason=result.reason,
                    tool=where.tool,
                ),
            )
            if verdict == "redacted" and result.rewritten is not None:
                text = result.rewritten
                continue
            return Screened(text=text, blocked=guardrail.refusal(stage, result.reason))
        return Screened(text=text)

    async def redact_history(
        self, history: Sequence[ChatMessage], where: Where
    ) -> tuple[ChatMessage, ...]:
        """The history with each user message as the redacting input guardrails leave it.

        What the model sees, not what is journaled: the journal keeps the user's words.
        The part of ``history`` that equals the history last redacted for the conversation
        (the same message objects, compared in C) is not redacted again.
        """
        items = list(history)
        histories = self._histories
        key = where.conversation_id
        known = histories.get(key)
        start, out = 0, []
        if known is not None:
            seen, redacted = known
            if len(seen) <= len(items) and items[: len(seen)] == seen:
                start, out = len(seen), list(redacted)
            histories.move_to_end(key)
        for message in items[start:] if start else items:
            if isinstance(message, UserMessage):
                text = await self._redacted(message.text, where)
                if text != message.text:
                    out.append(msgspec.structs.replace(message, text=text))
                    continue
            out.append(message)
        histories[key] = (items, out)
        if len(histories) > _HISTORIES:
            histories.popitem(last=False)
        return tuple(out)

    async def _redacted(self, text: str, where: Where) -> str:
        """``text`` as the redacting input guardrails leave it (remembered by text)."""
        found = self._redactions.get(text)
        if found is not None:
            return found
        original = text
        context = _context("input", where)
        for guardrail in self.redacts_input:
            result = await guardrail.run(text, context)
            if result.tripped and result.rewritten is not None:
                text = result.rewritten
        self._redactions[original] = text
        if len(self._redactions) > _CACHE:
            self._redactions.popitem(last=False)
        return text


def _verdict(guardrail: Guardrail, result: GuardrailResult) -> str:
    if not result.tripped:
        return "passed"
    if guardrail.action == "redact" and result.rewritten is not None:
        return "redacted"
    return "blocked"


def _failed(guardrail: Guardrail, where: Where, exc: Exception) -> GuardrailResult:
    _log.warning(
        "guardrail_failed",
        guardrail=guardrail.name,
        conversation_id=where.conversation_id,
        exc_info=exc,
    )
    return GuardrailResult(tripped=True, reason=f"the check failed ({type(exc).__name__})")


def _context(stage: Stage, where: Where) -> GuardrailContext:
    conversations = where.flow.conversations

    async def ask(agent: str, text: str) -> str:
        answer = await conversations.ask_agent(
            where.conversation_id,
            where.agent,
            agent,
            f"guardrail-{stage}",
            text,
            chain=where.chain,
        )
        return str(answer)

    return GuardrailContext(
        conversation_id=where.conversation_id,
        agent=where.agent,
        stage=stage,
        tool=where.tool,
        ask=ask,
    )


def _journal(where: Where, event: GuardrailTripped) -> None:
    conversations = where.flow.conversations
    journal = conversations.journal
    conversation = conversations.get(where.conversation_id)
    if journal is not None and conversation is not None:
        journal.record(conversation, event)
