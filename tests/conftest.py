"""Fixtures shared by every test: the anyio backend, and a guard against leaving the machine."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from typing import Any

import pytest
import structlog


class NonLoopbackConnectionError(AssertionError):
    """A test tried to open a connection to a host other than this machine."""


# Unconfigured, structlog renders each traceback with rich, locals and all: tens of
# milliseconds apiece, and the property tests crash actors and fail tools by the thousand on
# purpose. Plain tracebacks keep every log line (pytest shows them for a failing test).
structlog.configure(
    processors=[
        structlog.processors.add_log_level,
        structlog.processors.format_exc_info,
        structlog.dev.ConsoleRenderer(colors=False),
    ],
    cache_logger_on_first_use=False,
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _restore_structlog_config() -> Iterator[None]:
    # The CLI configures structlog to print to the stderr it finds, which under capsys is a
    # capture that closes with the test: without this, every later log line would fail.
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


def _is_loopback(address: object) -> bool:
    if not isinstance(address, tuple) or not address:
        return True  # AF_UNIX paths and other local families never leave the machine
    host = str(address[0])
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it would be resolved and reached, so refuse it


@pytest.fixture(autouse=True)
def _refuse_non_loopback_connections(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # asyncio's create_connection and every client library end in socket.connect (or
    # connect_ex for non-blocking sockets), so guarding both covers them all.
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def check(address: object) -> None:
        if not _is_loopback(address):
            raise NonLoopbackConnectionError(
                f"test tried to connect to {address!r}; tests may only reach 127.0.0.1 or ::1"
            )

    def connect(self: socket.socket, address: object) -> None:
        check(address)
        real_connect(self, address)  # type: ignore[arg-type]

    def connect_ex(self: socket.socket, address: object) -> int:
        check(address)
        return real_connect_ex(self, address)  # type: ignore[arg-type]

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    return


@pytest.fixture
def captured_logs() -> Iterator[list[str]]:
    """Route structlog through the redaction processor into a list of rendered JSON lines.

    Tracebacks are formatted into each line's ``exception`` field, as the CLI's logging does.
    """
    from relaybaton.adapters._redact import redact_processor

    lines: list[str] = []

    def sink(logger: object, method: str, event: Any) -> str:
        lines.append(str(event))
        raise structlog.DropEvent

    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.format_exc_info,
            redact_processor,
            structlog.processors.JSONRenderer(),
            sink,
        ],
        cache_logger_on_first_use=False,
    )
    try:
        yield lines
    finally:
        structlog.reset_defaults()
