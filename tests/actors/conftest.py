"""Fixtures for the agent-layer tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    """Run async tests on asyncio: the runtime is built on its event loop."""
    return "asyncio"
