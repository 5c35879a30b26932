"""The MCP tests share the memory tests' store fixtures and the reference server."""

from tests.memory.conftest import (  # the fixtures, registered here by import
    anyio_backend,
    reference_server,
    released,
    store,
    strict,
)

__all__ = ["anyio_backend", "reference_server", "released", "store", "strict"]
