"""Prometheus metrics of the service, on its own registry, in base units.

Names start with ``relaybaton_``; labels are bounded by the flow (agents, tools, models,
routes, reasons), never a conversation or message id. Counts that the runtime already keeps
(turns accepted, duplicates, queued messages) are read at scrape time rather than
duplicated on the hot path, and the counts of the hot path (a dozen per request) go to a
plain dict that every scrape adds to their counters first (``_Tally``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any, final

import msgspec
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from relaybaton.actors import GuardrailEvent, Runtime, ToolCallEvent
from relaybaton.adapters._metrics import ModelCallRecord
from relaybaton.runtime import SupervisionEvent
from relaybaton.runtime.messages import HandoffEvent, ReplyEvent

__all__ = ["ServiceMetrics"]

# Model calls last from a few milliseconds (cached, local) to minutes (long reasoning).
_MODEL_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60)


@final
class _RuntimeCollector(Collector):
    """Reads the runtime's own counters when scraped."""

    def __init__(self, runtime: Runtime, pending_approvals: Callable[[], int]) -> None:
        self.runtime = runtime
        self.pending_approvals = pending_approvals

    def collect(self) -> Iterable[CounterMetricFamily | GaugeMetricFamily]:
        conversations = self.runtime.conversations
        yield CounterMetricFamily(
            "relaybaton_turns_accepted",
            "User messages accepted for processing (duplicates excluded).",
            value=conversations.turns_accepted,
        )
        yield CounterMetricFamily(
            "relaybaton_turns_finished",
            "User messages whose turn ended, with replies or an error.",
            value=conversations.turns_finished,
        )
        yield CounterMetricFamily(
            "relaybaton_messages_duplicate",
            "User messages refused as repeats of an accepted message id.",
            value=conversations.duplicates,
        )
        yield GaugeMetricFamily(
            "relaybaton_turns_in_flight",
            "Accepted user messages not finished yet (queued or running).",
            value=conversations.turns_accepted - conversations.turns_finished,
        )
        # Summed at scrape time: O(conversations), against a counter update per message.
        depth = sum(len(c.inbox) for c in conversations.by_id.values())
        yield GaugeMetricFamily(
            "relaybaton_mailbox_depth",
            "User messages waiting behind their conversation's active turn.",
            value=depth,
        )
        yield GaugeMetricFamily(
            "relaybaton_conversations",
            "Conversations the runtime holds in memory.",
            value=len(conversations.by_id),
        )
        yield GaugeMetricFamily(
            "relaybaton_approvals_pending",
            "Tool calls or handoffs waiting for a decision.",
            value=self.pending_approvals(),
        )


@final
class _Tally(Collector):
    """Counter increments kept in a plain dict, added to their counters when scraped.

    A prometheus-client increment takes a lock and checks its labels, ten times the cost of
    a dict update, and a request made a dozen. Registered before every other collector, so
    any read of the registry (the ``/metrics`` route, ``get_sample_value``) adds them in
    first. The registry is read on the event loop, as the increments are made.
    """

    #: Observations held at most, over all histograms: past it they are folded at once, so
    #: a registry nobody scrapes costs no more memory than this.
    max_observations = 10_000

    def __init__(self) -> None:
        self.pending: dict[Any, float] = {}  # a counter's child -> what to add to it
        self.observed: list[tuple[Any, float]] = []  # (a histogram's child, a value)

    def add(self, child: Any, amount: float = 1.0) -> None:
        pending = self.pending
        pending[child] = pending.get(child, 0.0) + amount

    def observe(self, child: Any, value: float) -> None:
        """A histogram observation (its lock and bucket search happen at the scrape)."""
        observed = self.observed
        observed.append((child, value))
        if len(observed) >= self.max_observations:
            self._fold_observations()

    def _fold_observations(self) -> None:
        observed, self.observed = self.observed, []
        for child, value in observed:
            child.observe(value)

    def collect(self) -> Iterable[CounterMetricFamily]:
        pending, self.pending = self.pending, {}
        for child, amount in pending.items():
            child.inc(amount)
        self._fold_observations()
        return ()


@final
class ServiceMetrics:
    """Every metric of one service; subscribes to the runtime until ``close``."""

    def __init__(
        self, runtime: Runtime, *, pending_approvals: Callable[[], int] = lambda: 0
    ) -> None:
        self.runtime = runtime
        self.registry = registry = CollectorRegistry(auto_describe=True)
        self.tally = _Tally()
        registry.register(self.tally)  # first: it adds what it holds before the others read
        registry.register(_RuntimeCollector(runtime, pending_approvals))
        self.messages_received = Counter(
            "relaybaton_messages_received",
            "User messages received at the edge, before deduplication.",
            ["api"],
            registry=registry,
        )
        self.handoffs = Counter(
            "relaybaton_handoffs", "Ownership changes, by action.", ["action"], registry=registry
        )
        self.replies = Counter(
            "relaybaton_replies", "Turns ended, by outcome.", ["outcome"], registry=registry
        )
        self.tool_calls = Counter(
            "relaybaton_tool_calls",
            "Tool calls, by agent, tool, kind and outcome.",
            ["agent", "tool", "tool_kind", "outcome"],
            registry=registry,
        )
        self.guardrails = Counter(
            "relaybaton_guardrail_checks",
            "Guardrail checks by guardrail, stage and verdict (passed, blocked, redacted, failed).",
            ["guardrail", "stage", "verdict"],
            registry=registry,
        )
        self.model_duration = Histogram(
            "relaybaton_model_request_duration_seconds",
            "Model call attempts, from request to whole answer or error.",
            ["provider", "model", "outcome"],
            buckets=_MODEL_BUCKETS,
            registry=registry,
        )
        self.model_tokens = Counter(
            "relaybaton_model_tokens",
            "Tokens of model calls, by direction.",
            ["provider", "model", "outcome", "direction"],
            registry=registry,
        )
        # Of those, the ones estimated from the text because the server reported none.
        self.model_tokens_estimated = Counter(
            "relaybaton_model_tokens_estimated",
            "Tokens of model calls estimated from the text (the server reported none).",
            ["provider", "model", "outcome", "direction"],
            registry=registry,
        )
        self.model_cost = Counter(
            "relaybaton_model_cost_dollars",
            "Priced cost of model calls in US dollars.",
            ["provider", "model", "outcome"],
            registry=registry,
        )
        self.model_utility = Histogram(
            "relaybaton_model_utility",
            "Grades of model answers (0..1): online graders and users' ratings.",
            ["provider", "model"],
            buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
            registry=registry,
        )
        self.swaps = Counter(
            "relaybaton_model_swaps",
            "Adapter changes seen in a model slot.",
            ["slot"],
            registry=registry,
        )
        self.restarts = Counter(
            "relaybaton_supervisor_actions",
            "Supervisor decisions on crashed actors (restart, escalate), by kind.",
            ["kind"],
            registry=registry,
        )
        self.http_requests = Counter(
            "relaybaton_http_requests",
            "HTTP requests answered, by route template, method and status.",
            ["route", "method", "status"],
            registry=registry,
        )
        self.http_duration = Histogram(
            "relaybaton_http_request_duration_seconds",
            "Time to answer an HTTP request (to the first byte for event streams).",
            ["route"],
            buckets=_HTTP_BUCKETS,
            registry=registry,
        )
        self.refusals = Counter(
            "relaybaton_http_refusals",
            "Requests refused at the edge, by reason (auth, limits, backpressure, draining).",
            ["reason"],
            registry=registry,
        )
        self.event_streams = Gauge(
            "relaybaton_event_streams",
            "Server-sent event streams open.",
            registry=registry,
        )
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self._guardrail_children: dict[tuple[str, str, str], Any] = {}
        # By (route, method, status): the request counter's child and the duration's.
        self._requests: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._adapters = {name: slot.adapter.name for name, slot in runtime.slots.items()}
        self._detach: list[Callable[[], None]] = [
            runtime.conversations.subscribe(
                self._on_event, (GuardrailEvent, ToolCallEvent, HandoffEvent, ReplyEvent)
            )
        ]
        for name, slot in runtime.slots.items():
            listener = self._model_listener(name)
            slot.listeners.append(listener)
            self._detach.append(_remover(slot.listeners, listener))
        runtime.system.supervision_listeners.append(self._on_supervision)
        self._detach.append(_remover(runtime.system.supervision_listeners, self._on_supervision))

    def close(self) -> None:
        """Stop listening to the runtime."""
        for detach in self._detach:
            detach()
        self._detach.clear()

    def child(self, metric: Counter | Histogram, *labels: str) -> Any:
        """``metric.labels(*labels)``, kept: the client's own lookup costs a few µs a call,
        and the edge asks for the same few children on every request."""
        key = (id(metric), labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def count(self, metric: Counter, *labels: str, amount: float = 1.0) -> None:
        """Add ``amount`` to the counter's child of ``labels`` (at the next scrape)."""
        self.tally.add(self.child(metric, *labels), amount)

    def count_request(self, route: str, method: str, status: int, started: float) -> None:
        """Count one HTTP request and its duration (``started``: a ``perf_counter`` time)."""
        key = (route, method, status)
        children = self._requests.get(key)
        if children is None:
            children = self._requests[key] = (
                self.http_requests.labels(route, method, str(status)),
                self.http_duration.labels(route),
            )
        self.tally.add(children[0])
        self.tally.observe(children[1], time.perf_counter() - started)

    def _on_event(self, conversation_id: str, event: msgspec.Struct) -> None:
        if isinstance(event, GuardrailEvent):  # most events of a guarded turn: the short way
            key = (event.guardrail, event.stage, event.verdict)
            child = self._guardrail_children.get(key)
            if child is None:
                child = self._guardrail_children[key] = self.guardrails.labels(*key)
            self.tally.add(child)
        elif isinstance(event, ToolCallEvent):
            outcome = "error" if event.is_error else "ok"
            self.count(self.tool_calls, event.agent, event.tool, event.tool_kind, outcome)
        elif isinstance(event, HandoffEvent):
            self.count(self.handoffs, event.action)
        elif isinstance(event, ReplyEvent):
            self.count(self.replies, "error" if event.error else "ok")
        # Model calls are counted per attempt from the slots' records, retries included.

    def _model_listener(self, slot_name: str) -> Callable[[ModelCallRecord], None]:
        slot = self.runtime.slots[slot_name]

        def on_record(record: ModelCallRecord) -> None:
            current = slot.adapter.name
            if self._adapters.get(slot_name) != current:
                self._adapters[slot_name] = current
                self.swaps.labels(slot_name).inc()
            provider = record.adapter.partition(":")[0] if ":" in record.adapter else "custom"
            if record.outcome == "graded":  # a grade of an earlier call, not a call
                if record.utility is not None:
                    self.model_utility.labels(provider, record.model).observe(record.utility)
                return
            labels = (provider, record.model, record.outcome)
            count = self.count
            self.tally.observe(self.child(self.model_duration, *labels), record.latency_s)
            usage = record.usage
            if usage.input_tokens:
                count(self.model_tokens, *labels, "input", amount=usage.input_tokens)
            if usage.output_tokens:
                count(self.model_tokens, *labels, "output", amount=usage.output_tokens)
            if usage.estimated:
                estimated = self.model_tokens_estimated
                estimated.labels(*labels, "input").inc(usage.input_tokens)
                estimated.labels(*labels, "output").inc(usage.output_tokens)
            if usage.cost_usd:
                count(self.model_cost, *labels, amount=usage.cost_usd)

        return on_record

    def _on_supervision(self, event: SupervisionEvent) -> None:
        self.restarts.labels(event.kind).inc()


def _remover(items: list[Callable[..., None]], item: Callable[..., None]) -> Callable[[], None]:
    def remove() -> None:
        if item in items:
            items.remove(item)

    return remove
