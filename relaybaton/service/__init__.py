"""The HTTP edge: the native API, the OpenAI-compatible endpoint, SSE, auth and limits,
Prometheus metrics and tracing.
"""

from relaybaton.service._auth import TokenTable
from relaybaton.service._limits import ServiceLimits
from relaybaton.service._server import Service, create_service
from relaybaton.service._tracing import Span, SpanExporter, Tracer

__all__ = [
    "Service",
    "ServiceLimits",
    "Span",
    "SpanExporter",
    "TokenTable",
    "Tracer",
    "create_service",
]
