"""The HTTP edge: the native API, the OpenAI-compatible endpoint, SSE, auth and limits,
Prometheus metrics and tracing.

Exported are what serving a runtime takes: ``create_service`` and its ``Service``, the
bearer ``TokenTable``, ``ServiceLimits``, and the ``SpanExporter`` port with the ``Span``
it receives.
"""

from relaybaton.service._auth import TokenTable
from relaybaton.service._limits import ServiceLimits
from relaybaton.service._server import Service, create_service
from relaybaton.service._tracing import Span, SpanExporter

__all__ = [
    "Service",
    "ServiceLimits",
    "Span",
    "SpanExporter",
    "TokenTable",
    "create_service",
]
