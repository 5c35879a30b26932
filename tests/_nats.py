"""The NATS server (with JetStream) the cluster tests use, and throwaway names on it.

The server is nats://127.0.0.1:4222 (``RELAYBATON_TEST_NATS_URL`` overrides it). Where none
answers, the NATS cases are skipped with the reason, except under ``CI=true``, where they
fail.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable
from urllib.parse import urlparse

import anyio
import pytest

NATS_URL = os.environ.get("RELAYBATON_TEST_NATS_URL", "nats://127.0.0.1:4222")

_START = (
    "start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server --"
    " -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log"
)


def _nats_problem() -> str | None:
    """Why the NATS cases cannot run here, or None when they can."""
    try:
        import nats  # noqa: F401
    except ImportError:
        return "nats-py is not installed: pip install -e '.[dev]'"
    url = urlparse(NATS_URL)
    try:
        socket.create_connection((url.hostname or "127.0.0.1", url.port or 4222), 2).close()
    except OSError as exc:
        return f"NATS is not answering at {NATS_URL} ({exc}): start it with `{_START}`"
    return None


_nats_checked: list[str | None] = []


def require_nats() -> None:
    """Skip (or under CI=true, fail) the calling test when no NATS server answers."""
    if not _nats_checked:
        _nats_checked.append(_nats_problem())
    problem = _nats_checked[0]
    if problem is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true requires NATS: {problem}", pytrace=False)
    pytest.skip(problem)


def throwaway_prefix() -> str:
    """A fresh bucket/stream prefix for one test; delete with :func:`delete_prefix`."""
    return f"rbt{uuid.uuid4().hex[:10]}"


async def delete_prefix(prefix: str) -> None:
    """Delete every stream (KV buckets included) whose name contains ``prefix``, in any case.

    A cluster names its KV buckets with the prefix as given and its streams with it in
    upper case: both go.
    """
    import nats

    nc = await nats.connect(NATS_URL)
    try:
        js = nc.jetstream()
        for info in await js.streams_info():
            name = info.config.name or ""
            if prefix.lower() in name.lower():
                await js.delete_stream(name)
    finally:
        await nc.close()


async def wait_until(condition: Callable[[], bool], within: float) -> float:
    """Seconds until ``condition`` held (polled every 20 ms); fails after ``within``.

    For what a node does after the event a test can await (a counter bumped once a publish
    returned): the condition is the behaviour, the bound only keeps a broken run short.
    """
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < within, "condition not reached in time"
        await anyio.sleep(0.02)
    return time.monotonic() - started
