"""The hot path's counts are kept aside and added to their counters by whoever reads them."""

from __future__ import annotations

import pytest

from relaybaton.actors import Agent, open_runtime
from relaybaton.service._prometheus import ServiceMetrics
from relaybaton.testing import ScriptedModel

pytestmark = pytest.mark.anyio


async def test_every_read_of_the_registry_sees_each_count_once() -> None:
    model = ScriptedModel(lambda _request: "Hello!", keep_requests=False)
    async with open_runtime(Agent(name="triage"), models=model) as runtime:
        metrics = ServiceMetrics(runtime)
        try:
            for _ in range(3):
                metrics.count_request("/v1/x", "POST", 200, 0.0)
            metrics.count(metrics.messages_received, "native", amount=2)
            read = metrics.registry.get_sample_value
            labels = {"route": "/v1/x", "method": "POST", "status": "200"}
            assert read("relaybaton_http_requests_total", labels) == 3.0
            assert read("relaybaton_messages_received_total", {"api": "native"}) == 2.0
            metrics.count_request("/v1/x", "POST", 200, 0.0)
            # Read again: what was added before is not added twice.
            assert read("relaybaton_http_requests_total", labels) == 4.0
            assert read("relaybaton_messages_received_total", {"api": "native"}) == 2.0
            assert read("relaybaton_http_request_duration_seconds_count", {"route": "/v1/x"}) == 4
        finally:
            metrics.close()
