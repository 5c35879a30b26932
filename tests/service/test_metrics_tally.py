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


async def test_observations_held_for_the_scrape_are_bounded_and_each_counted_once() -> None:
    model = ScriptedModel(lambda _request: "Hello!", keep_requests=False)
    async with open_runtime(Agent(name="triage"), models=model) as runtime:
        metrics = ServiceMetrics(runtime)
        try:
            limit = metrics.tally.max_observations
            for _ in range(limit + 5):  # nobody scrapes: folded when the bound is reached
                metrics.count_request("/v1/y", "GET", 200, 0.0)
            assert len(metrics.tally.observed) == 5
            read = metrics.registry.get_sample_value
            labels = {"route": "/v1/y"}
            assert read("relaybaton_http_request_duration_seconds_count", labels) == limit + 5
            assert metrics.tally.observed == []
            assert read("relaybaton_http_request_duration_seconds_count", labels) == limit + 5
        finally:
            metrics.close()
