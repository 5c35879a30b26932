"""The network guard of conftest.py: a test cannot reach a host other than this machine."""

from __future__ import annotations

import asyncio
import re
import socket

import pytest

from tests.conftest import NonLoopbackConnectionError


def test_connecting_to_a_public_address_fails_the_test() -> None:
    with (
        socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock,
        pytest.raises(
            NonLoopbackConnectionError, match=r"tried to connect to \('192\.0\.2\.1', 443\)"
        ),
    ):
        sock.connect(("192.0.2.1", 443))


@pytest.mark.anyio
async def test_asyncio_connections_to_a_public_address_are_refused() -> None:
    with pytest.raises(
        NonLoopbackConnectionError, match=re.escape("may only reach 127.0.0.1 or ::1")
    ):
        await asyncio.open_connection("192.0.2.1", 443)


@pytest.mark.anyio
async def test_loopback_connections_are_allowed() -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"hi")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await reader.read() == b"hi"
        writer.close()
        await writer.wait_closed()
