"""Fixtures for the adapter tests: the anyio backend, the loopback guard, fake servers."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest

from tests.adapters._servers import FakeServer


class NonLoopbackRequestError(AssertionError):
    """A test tried to reach a host other than this machine."""


def _is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


async def _refuse_non_loopback(
    session: aiohttp.ClientSession, context: SimpleNamespace, params: Any
) -> None:
    host = params.url.host
    if not _is_loopback(host):
        raise NonLoopbackRequestError(
            f"test tried to reach {params.url}; adapter tests talk only to 127.0.0.1"
        )


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any test whose aiohttp session would send a request off this machine."""
    original = aiohttp.ClientSession.__init__

    def guarded(self: aiohttp.ClientSession, *args: Any, **kwargs: Any) -> None:
        trace = aiohttp.TraceConfig()
        trace.on_request_start.append(_refuse_non_loopback)
        kwargs["trace_configs"] = [*(kwargs.get("trace_configs") or ()), trace]
        original(self, *args, **kwargs)

    monkeypatch.setattr(aiohttp.ClientSession, "__init__", guarded)


@pytest.fixture
async def server() -> AsyncIterator[FakeServer]:
    fake = FakeServer()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()
