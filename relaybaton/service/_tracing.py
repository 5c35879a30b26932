"""Spans for the service, built from the runtime's event stream, named as OpenTelemetry's
GenAI conventions name them.

One user message is one trace: an ``invoke_workflow {flow}`` span, under it an
``invoke_agent {agent}`` span per owner (linked to the previous owner's span when the baton
moved), ``chat {model}`` spans for model calls, ``execute_tool {tool}`` spans for tool calls
and ``handoff {target}`` spans for the baton in flight. Supervisor decisions are
``supervise {kind}`` spans of their own. The trace id is derived from the conversation and
message ids, so logs and spans of a turn agree on it without passing it around.

Finished spans go to a bounded in-memory ring (read per conversation by
``GET /v1/conversations/{id}/trace``) and, when the ``otel`` extra is installed and
``OTEL_EXPORTER_OTLP_ENDPOINT`` is set, to OpenTelemetry's OTLP exporter with the same ids.

Without an exporter (or a debug log) the spans are built when they are read, from the
event hub's log of the conversation (``EventHub``), which keeps each event with the turn it
belongs to and the clocks of its moment: ``trace`` builds the spans of what was logged
since the last read first. Most traces are never read, and building seven spans a turn
cost a sixth of the HTTP edge's work per request (``benchmarks/http_edge_instructions.py``);
reading the hub's log rather than keeping one of its own saves the tracer a listener call
and two clock reads per event. When a log dropped events the tracer never read, the turn
they belonged to is dropped whole, as the span ring would have dropped its spans.

Message content (reply text, tool arguments and results) is recorded only with
``record_content``.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, final

import msgspec
import structlog

from relaybaton.actors import GuardrailEvent, ModelCallEvent, Runtime, ToolCallEvent
from relaybaton.runtime import SupervisionEvent
from relaybaton.runtime.messages import HandoffEvent, ReplyEvent

if TYPE_CHECKING:
    from relaybaton.service._sse import EventHub

__all__ = ["Span", "SpanExporter", "Tracer", "create_otlp_exporter", "trace_id_for"]

Attribute = str | int | float | bool


def trace_id_for(conversation_id: str, message_id: str) -> str:
    """The trace id (32 hex digits) of one user message's turn."""
    digest = hashlib.blake2b(f"{conversation_id}\x00{message_id}".encode(), digest_size=16)
    return digest.hexdigest()


@dataclass(slots=True)
class Span:
    """One finished (or open) span; times are Unix seconds."""

    name: str
    trace_id: str
    span_id: str
    parent_id: str | None
    start: float
    conversation_id: str = ""
    end: float | None = None
    attributes: dict[str, Attribute] = field(default_factory=dict)
    links: list[tuple[str, str]] = field(default_factory=list)
    error: str | None = None

    def to_json(self) -> dict[str, object]:
        """The span as JSON-ready data."""
        return {
            "name": self.name,
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "parent_span_id": self.parent_id,
            "start_time": self.start,
            "end_time": self.end,
            "duration_s": None if self.end is None else round(self.end - self.start, 6),
            "status": "error" if self.error else "ok",
            "error": self.error,
            "attributes": self.attributes,
            "links": [{"trace_id": t, "span_id": s} for t, s in self.links],
        }


class SpanExporter(Protocol):
    """Where finished spans go besides the ring."""

    def export(self, span: Span) -> None: ...

    def shutdown(self) -> None: ...


@dataclass(slots=True)
class _Turn:
    message_id: str
    workflow: Span
    agent: Span | None = None
    previous_agent: Span | None = None
    handoff: Span | None = None


@final
class Tracer:
    """Turns the runtime's events into spans; keeps the last ones, exports them if asked.

    ``hub``: the event hub whose logs the spans are built from when they are read; without
    one, spans are built as turns end (as with an exporter or a debug log).
    """

    def __init__(
        self,
        runtime: Runtime,
        *,
        flow_name: str,
        hub: EventHub | None = None,
        record_content: bool = False,
        max_spans: int = 20_000,
        spans_per_conversation: int = 512,
        max_conversations: int = 10_000,
        exporter: SpanExporter | None = None,
        build_as_turns_end: bool | None = None,
    ) -> None:
        self.runtime = runtime
        self.flow_name = flow_name
        self.record_content = record_content
        self.exporter = exporter
        self.spans: deque[Span] = deque(maxlen=max_spans)
        self.by_conversation: OrderedDict[str, deque[Span]] = OrderedDict()
        self.spans_per_conversation = spans_per_conversation
        self.max_conversations = max_conversations
        # Bound once: an unbound logger re-binds on every call (the configuration caches
        # no logger), and this one logs at the end of every turn.
        self.log = structlog.get_logger("relaybaton.service").bind()
        if build_as_turns_end is None:
            # An exporter wants spans as they end; so does a debug log, whose
            # ``turn_finished`` line gives each turn's trace id and duration as it ends.
            enabled = getattr(self.log, "is_enabled_for", None)
            debug = enabled is None or bool(enabled(logging.DEBUG))
            build_as_turns_end = exporter is not None or debug or hub is None
        if not build_as_turns_end and hub is None:
            raise ValueError("spans built when read come from an event hub's logs: pass hub")
        self.build_as_turns_end = build_as_turns_end
        self.hub = hub
        # The turn whose spans are open, by conversation (oldest first, bounded).
        self._turns: dict[str, _Turn] = {}
        self._by_id = runtime.conversations.by_id
        # The conversation whose ring took the last span (the newest in ``by_conversation``).
        self._last_key = ""
        self._last_ring: deque[Span] = deque()
        self._ids = itertools.count(1)
        self._id_prefix = secrets.randbits(32)
        self._id_hex = f"{self._id_prefix:08x}"
        self._clock = runtime.system.clock
        # Unix time minus the runtime clock's, taken once per event (both move together
        # over one event's handling): two clock reads per event instead of per span edge.
        self._offset = time.time() - self._clock.now()
        self._detach = (
            [runtime.conversations.subscribe(self._on_event)] if build_as_turns_end else []
        )
        runtime.system.supervision_listeners.append(self._on_supervision)

    def close(self) -> None:
        """Stop listening, end open spans, and flush the exporter."""
        for detach in self._detach:
            detach()
        self._detach.clear()
        listeners = self.runtime.system.supervision_listeners
        if self._on_supervision in listeners:
            listeners.remove(self._on_supervision)
        if self.hub is not None and not self.build_as_turns_end:
            for conversation_id, log in list(self.hub.logs.items()):
                if log.traced < log.next_id - 1:
                    self._build(conversation_id)
        now = self._clock.now()
        self._offset = time.time() - now
        for turn in list(self._turns.values()):
            self._end_turn(turn, now, error="the service stopped before the turn ended")
        self._turns.clear()
        if self.exporter is not None:
            self.exporter.shutdown()

    def trace(self, conversation_id: str) -> list[Span]:
        """The conversation's recent finished spans, oldest first."""
        self._build(conversation_id)
        return list(self.by_conversation.get(conversation_id, ()))

    def _build(self, conversation_id: str) -> None:
        """Build the spans of what the hub logged for the conversation since the last read."""
        log = self.hub.logs.get(conversation_id) if self.hub is not None else None
        if log is None or self.build_as_turns_end:
            return
        entries, missed = log.after(log.traced)
        if not entries:
            return
        log.traced = entries[-1].id
        skip = ""
        if missed:  # events never read were dropped: their turns go whole, never in part
            self._turns.pop(conversation_id, None)
            skip = entries[0].message_id
        for entry in entries:
            if not entry.message_id or entry.message_id == skip:  # no turn, or a partial one
                continue
            skip = ""
            self._apply(
                conversation_id, entry.event, entry.message_id, entry.now, entry.wall - entry.now
            )
        if len(self._turns) > self.max_conversations:  # open turns of logs since dropped
            del self._turns[next(iter(self._turns))]

    # --- building spans ---------------------------------------------------------------------

    def _open(  # noqa: PLR0917 - private, called with the span's parts in order
        self,
        name: str,
        trace_id: str,
        parent: Span | None,
        at: float,
        conversation_id: str,
        attributes: dict[str, Attribute],
    ) -> Span:
        """A span that starts at ``at``; it keeps ``attributes`` (a dict made for it)."""
        return Span(
            name=name,
            trace_id=trace_id,
            span_id=self._id_hex + format(next(self._ids) & 0xFFFFFFFF, "08x"),
            parent_id=parent.span_id if parent else None,
            start=self._offset + at,
            conversation_id=conversation_id,
            attributes=attributes,
        )

    def _close(self, span: Span, at: float, error: str | None = None) -> None:
        span.end = max(span.start, self._offset + at)
        if error:
            span.error = error
            span.attributes["error.type"] = error.split(":", 1)[0][:80]
        self.spans.append(span)
        key = span.conversation_id
        if key:
            if key == self._last_key:  # a turn's spans close together: it is the newest
                ring = self._last_ring
            else:
                found = self.by_conversation.get(key)
                if found is None:
                    ring = self.by_conversation[key] = deque(maxlen=self.spans_per_conversation)
                    if len(self.by_conversation) > self.max_conversations:
                        self.by_conversation.popitem(last=False)
                else:
                    ring = found
                    self.by_conversation.move_to_end(key)
                self._last_key, self._last_ring = key, ring
            ring.append(span)
        if self.exporter is not None:
            self.exporter.export(span)

    def _turn(self, conversation_id: str, message_id: str, at: float) -> _Turn:
        turn = self._turns.get(conversation_id)
        if turn is not None and turn.message_id == message_id:
            return turn
        if turn is not None:  # the previous turn ended without a reply event
            self._end_turn(turn, at, error=None)
        workflow = self._open(
            f"invoke_workflow {self.flow_name}",
            trace_id_for(conversation_id, message_id),
            None,
            at,
            conversation_id,
            {
                "gen_ai.operation.name": "invoke_workflow",
                "gen_ai.workflow.name": self.flow_name,
                "gen_ai.conversation.id": conversation_id,
                "relaybaton.message.id": message_id,
            },
        )
        turn = self._turns[conversation_id] = _Turn(message_id, workflow)
        return turn

    def _agent(self, turn: _Turn, agent: str, at: float, epoch: int | None = None) -> Span:
        if turn.agent is not None:
            return turn.agent
        span = self._open(
            f"invoke_agent {agent}",
            turn.workflow.trace_id,
            turn.workflow,
            at,
            turn.workflow.conversation_id,
            {
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.name": agent,
                "gen_ai.conversation.id": turn.workflow.conversation_id,
            },
        )
        if epoch is not None:
            span.attributes["relaybaton.epoch"] = epoch
        if turn.previous_agent is not None:
            span.links.append((turn.previous_agent.trace_id, turn.previous_agent.span_id))
        turn.agent = span
        return span

    def _end_turn(self, turn: _Turn, at: float, error: str | None) -> None:
        if turn.handoff is not None:
            self._close(turn.handoff, at)
        if turn.agent is not None:
            self._close(turn.agent, at, error)
        self._close(turn.workflow, at, error)
        self._turns.pop(turn.workflow.conversation_id, None)
        self.log.debug(
            "turn_finished",
            conversation_id=turn.workflow.conversation_id,
            message_id=turn.message_id,
            trace_id=turn.workflow.trace_id,
            agent=turn.agent.attributes.get("gen_ai.agent.name") if turn.agent else None,
            epoch=turn.agent.attributes.get("relaybaton.epoch") if turn.agent else None,
            duration_s=round((turn.workflow.end or 0.0) - turn.workflow.start, 6),
            error=error,
        )

    def _on_event(self, conversation_id: str, event: msgspec.Struct) -> None:
        # Building as turns end: each event's spans now.
        conversation = self._by_id.get(conversation_id)
        active = conversation.active if conversation is not None else None
        if active is None:  # outside a turn: nothing to trace
            return
        now = self._clock.now()
        self._apply(conversation_id, event, active.message_id, now, time.time() - now)

    def _apply(
        self,
        conversation_id: str,
        event: msgspec.Struct,
        message_id: str,
        now: float,
        offset: float,
    ) -> None:
        self._offset = offset
        at = getattr(event, "at", None)
        at = now if not isinstance(at, float) else at
        turn = self._turn(conversation_id, message_id, at)
        if isinstance(event, ModelCallEvent):
            self._model_call(turn, event)
        elif isinstance(event, ToolCallEvent):
            self._tool_call(turn, event)
        elif isinstance(event, HandoffEvent):
            self._handoff(turn, event)
        elif isinstance(event, GuardrailEvent):
            self._guardrail(turn, event)
        elif isinstance(event, ReplyEvent):
            agent = self._agent(turn, event.agent, event.at, event.epoch)
            agent.attributes.setdefault("relaybaton.epoch", event.epoch)
            if self.record_content and event.text:
                agent.attributes["gen_ai.output.messages"] = msgspec.json.encode(
                    [{"role": "assistant", "parts": [{"type": "text", "content": event.text}]}]
                ).decode()
            self._end_turn(turn, event.at, event.error)

    def _model_call(self, turn: _Turn, event: ModelCallEvent) -> None:
        parent = self._agent(turn, event.agent, event.at)
        provider, _, model = event.model.rpartition(":")
        span = self._open(
            f"chat {model or event.model}",
            turn.workflow.trace_id,
            parent,
            event.at,
            turn.workflow.conversation_id,
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": provider or "custom",
                "gen_ai.request.model": model or event.model,
                "gen_ai.response.model": model or event.model,
                "gen_ai.usage.input_tokens": event.input_tokens,
                "gen_ai.usage.output_tokens": event.output_tokens,
                "gen_ai.conversation.id": turn.workflow.conversation_id,
                "gen_ai.agent.name": event.agent,
                "relaybaton.slot": event.slot,
                "relaybaton.cost_usd": event.cost_usd,
                "relaybaton.usage.estimated": event.usage_estimated,
            },
        )
        if event.route is not None:  # why this model: a router's pick, a failover, a fork's
            span.attributes["relaybaton.route.policy"] = event.route.policy
            span.attributes["relaybaton.route.reason"] = event.route.reason
        self._close(
            span, event.at + event.latency_s, None if event.outcome == "ok" else event.outcome
        )

    def _tool_call(self, turn: _Turn, event: ToolCallEvent) -> None:
        parent = self._agent(turn, event.agent, event.at)
        attributes: dict[str, Attribute] = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": event.tool,
            "gen_ai.tool.call.id": event.call_id,
            "gen_ai.tool.type": "function" if event.tool_kind == "function" else "extension",
            "gen_ai.conversation.id": turn.workflow.conversation_id,
            "gen_ai.agent.name": event.agent,
        }
        if self.record_content:
            attributes["gen_ai.tool.call.arguments"] = event.arguments
            attributes["gen_ai.tool.call.result"] = event.result
        span = self._open(
            f"execute_tool {event.tool}",
            turn.workflow.trace_id,
            parent,
            event.at,
            turn.workflow.conversation_id,
            attributes,
        )
        self._close(span, event.at + event.latency_s, "ToolError" if event.is_error else None)

    def _guardrail(self, turn: _Turn, event: GuardrailEvent) -> None:
        # Its own span, named for the guardrail, under the agent it ran for; a trip is not
        # an error of the system (it is the guardrail working), so only a failed check is.
        span = self._open(
            f"guardrail {event.guardrail}",
            turn.workflow.trace_id,
            self._agent(turn, event.agent, event.at),
            event.at,
            turn.workflow.conversation_id,
            {
                "relaybaton.guardrail.name": event.guardrail,
                "relaybaton.guardrail.stage": event.stage,
                "relaybaton.guardrail.verdict": event.verdict,
                "relaybaton.guardrail.reason": event.reason,
                "relaybaton.guardrail.tool": event.tool,
                "gen_ai.conversation.id": turn.workflow.conversation_id,
                "gen_ai.agent.name": event.agent,
            },
        )
        self._close(
            span, event.at + event.latency_s, "failed" if event.verdict == "failed" else None
        )

    def _handoff(self, turn: _Turn, event: HandoffEvent) -> None:
        attributes: dict[str, Attribute] = {
            "relaybaton.handoff.action": event.action,
            "relaybaton.handoff.sender": event.sender,
            "relaybaton.handoff.target": event.target,
            "relaybaton.epoch": event.epoch,
            "gen_ai.conversation.id": turn.workflow.conversation_id,
        }
        if event.action == "accept":
            if turn.handoff is not None:
                self._close(turn.handoff, event.at)
                turn.handoff = None
            self._agent(turn, event.target, event.at, event.epoch)
            return
        sender = turn.agent or self._agent(turn, event.sender, event.at)
        span = self._open(
            f"handoff {event.target}",
            turn.workflow.trace_id,
            turn.workflow,
            event.at,
            turn.workflow.conversation_id,
            attributes,
        )
        span.links.append((sender.trace_id, sender.span_id))
        if event.action == "return":
            # The baton goes back after the reply: the return is an instant, no new turn.
            self._close(span, event.at)
            return
        self._close(sender, event.at)
        turn.previous_agent, turn.agent, turn.handoff = sender, None, span

    def _on_supervision(self, event: SupervisionEvent) -> None:
        now = self._clock.now()
        self._offset = time.time() - now
        at = event.at or now
        span = self._open(
            f"supervise {event.kind}",
            secrets.token_hex(16),
            None,
            at,
            "",
            {
                "relaybaton.supervisor": event.supervisor,
                "relaybaton.child": event.child,
                "relaybaton.restarted": ",".join(event.restarted),
            },
        )
        self._close(span, at, event.error or None)


# --- OTLP -------------------------------------------------------------------------------------


def create_otlp_exporter(
    environ: Mapping[str, str] | None = None, *, service_name: str = "relaybaton"
) -> SpanExporter | None:
    """An OTLP exporter when the ``otel`` extra is installed and an endpoint is set, else None."""
    env = os.environ if environ is None else environ
    if not env.get("OTEL_EXPORTER_OTLP_ENDPOINT") and not env.get(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    ):
        return None
    try:
        from relaybaton.service._otlp import OtlpExporter  # noqa: PLC0415 - optional extra
    except ImportError:
        structlog.get_logger("relaybaton.service").warning(
            "otlp_unavailable",
            exc_info=True,
            hint="OTEL_EXPORTER_OTLP_ENDPOINT is set but the otel extra is not installed; "
            "pip install 'relaybaton[otel]'. Spans stay in the in-memory ring.",
        )
        return None
    return OtlpExporter(service_name=service_name)
