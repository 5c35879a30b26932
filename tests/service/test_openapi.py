"""The OpenAPI document describes every route, and the server keeps to it under fuzzing.

The fuzz is schemathesis over real HTTP: every operation of ``/openapi.json`` with bounded,
seeded examples. No answer may be a 5xx or carry a traceback; every refusal must be a
status the document lists, with the error body. The event stream is left out of the fuzz
(an accepted request streams until the client leaves); its refusals are tested below.
Schemathesis's heuristic that every schema-valid request is accepted is off: a well-formed
action may be refused by the conversation's state, with a documented 400 or 409.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from relaybaton.service import ServiceLimits
from relaybaton.service._openapi import ROUTES, openapi_document
from tests.service._support import Served, serving
from tests.service._threaded import served_in_thread

schema = schemathesis.openapi.from_dict(openapi_document(title="support"))


async def _prepare(served: Served) -> None:
    # Something to find: a conversation with a turn, so routes answer more than 404.
    await served.runtime.send("c", "hello")


@pytest.fixture(scope="module")
def server() -> Iterator[Served]:
    # Bodies up to the documented field sizes fit, so each reaches its validation (a 413
    # before it is right, but not the refusal the fuzz means to check).
    with served_in_thread(_prepare, limits=ServiceLimits(max_body_bytes=16 << 20)) as served:
        yield served


def no_traceback(ctx: Any, response: Any, case: Any) -> bool | None:
    text = response.content.decode(errors="replace") if response.content else ""
    assert "Traceback (most recent call last)" not in text, text[:500]
    assert 'File "' not in text or response.headers.get("Content-Type", [""])[0].startswith(
        "text/plain"
    ), text[:500]
    if response.status_code >= 400:
        body = json.loads(text)
        assert set(body) == {"error"}, body
        assert body["error"]["message"], body
    return None


@schema.exclude(path_regex=r"/events$").parametrize()
@settings(
    max_examples=15,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_every_route_keeps_to_its_description(case: Any, server: Served) -> None:
    case.call_and_validate(
        base_url=server.url,
        additional_checks=[no_traceback],
        # A well-formed action may still be refused by the conversation's state (a
        # breakpoint naming no agent of the flow, a fork past the transcript's end): 400
        # with the error body, as documented, not the 2xx this heuristic check expects.
        excluded_checks=[schemathesis.checks.positive_data_acceptance],
    )


def test_the_document_names_every_route_the_server_has() -> None:
    async def routes() -> set[tuple[str, str]]:
        async with serving() as served:
            return {
                (route.method.lower(), route.resource.canonical)
                for route in served.service.app.router.routes()
                if route.method != "HEAD" and route.resource is not None
            }

    import asyncio

    registered = asyncio.run(routes())
    described = {(r.method, r.path) for r in ROUTES}
    assert registered == described


@pytest.mark.anyio
async def test_openapi_json_is_served_and_says_3_1() -> None:
    async with (
        serving() as served,
        aiohttp.ClientSession() as session,
        session.get(f"{served.url}/openapi.json") as response,
    ):
        document = await response.json()
    assert document["openapi"] == "3.1.0"
    assert "/v1/conversations/{conversation_id}/baton/take" in document["paths"]
    take = document["paths"]["/v1/conversations/{conversation_id}/baton/take"]["post"]
    assert "409" in take["responses"]


@pytest.mark.anyio
async def test_the_event_stream_refuses_a_bad_last_event_id_as_documented() -> None:
    async with (
        serving() as served,
        aiohttp.ClientSession() as session,
        session.get(f"{served.url}/v1/conversations/c/events?last_event_id=soon") as response,
    ):
        assert response.status == 400
        body = await response.json()
    assert body["error"]["param"] == "Last-Event-ID"
