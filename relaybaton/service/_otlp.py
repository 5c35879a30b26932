"""Hand the service's finished spans to OpenTelemetry's OTLP exporter, ids unchanged.

Imported only when the ``otel`` extra is installed. Spans are rebuilt with the SDK after
they end, with their recorded start and end times, under their recorded parent and with
the same trace and span ids as in the in-memory ring, so a trace read from the service and
one read from the collector match. The exporter reads its endpoint, headers and protocol
from the standard ``OTEL_EXPORTER_OTLP_*`` variables.
"""

from __future__ import annotations

from typing import final

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, Status, StatusCode, TraceFlags

from relaybaton.service._tracing import Span

__all__ = ["OtlpExporter"]


@final
class _PresetIds(IdGenerator):
    """Hands the SDK the ids the span already has, instead of drawing new ones."""

    def __init__(self) -> None:
        self.span_id = 0
        self.trace_id = 0

    def generate_span_id(self) -> int:
        return self.span_id

    def generate_trace_id(self) -> int:
        return self.trace_id


def _context(trace_id: str, span_id: str) -> SpanContext:
    return SpanContext(
        trace_id=int(trace_id, 16),
        span_id=int(span_id, 16),
        is_remote=False,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )


@final
class OtlpExporter:
    """Exports spans over OTLP/HTTP in batches, off the event loop (the SDK's thread)."""

    def __init__(self, *, service_name: str = "relaybaton") -> None:
        self._ids = _PresetIds()
        self._provider = TracerProvider(
            resource=Resource.create({"service.name": service_name}), id_generator=self._ids
        )
        self._provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        self._tracer = self._provider.get_tracer("relaybaton")

    def export(self, span: Span) -> None:
        self._ids.trace_id = int(span.trace_id, 16)
        self._ids.span_id = int(span.span_id, 16)
        parent = None
        if span.parent_id is not None:
            parent = trace.set_span_in_context(
                NonRecordingSpan(_context(span.trace_id, span.parent_id))
            )
        sdk_span = self._tracer.start_span(
            span.name,
            context=parent,
            kind=trace.SpanKind.INTERNAL,
            attributes=span.attributes,
            links=[Link(_context(t, s)) for t, s in span.links],
            start_time=int(span.start * 1e9),
        )
        if span.error:
            sdk_span.set_status(Status(StatusCode.ERROR, span.error[:200]))
        sdk_span.end(end_time=int((span.end or span.start) * 1e9))

    def shutdown(self) -> None:
        self._provider.shutdown()
