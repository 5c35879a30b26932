"""A node's NATS connection going away and coming back, told to whoever needs to know.

nats-py takes one ``disconnected_cb`` and one ``reconnected_cb``, and only when connecting;
the node passes this watch's two methods there, and the parts that care (the replies owed
to producers) listen here instead of on the client.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import final

import structlog

__all__ = ["ConnectionListener", "ConnectionWatch"]

_log = structlog.get_logger("relaybaton.cluster")

ConnectionListener = Callable[[], None]


@final
class ConnectionWatch:
    """Fans a NATS client's disconnect and reconnect out to listeners (plain callables)."""

    def __init__(self, *, unnoticed_s: float) -> None:
        #: How long the client may go on writing into a dead connection before it notices.
        self.unnoticed_s = unnoticed_s
        self.on_disconnected: list[ConnectionListener] = []
        self.on_reconnected: list[ConnectionListener] = []
        #: Set by the node before it closes the connection: that disconnect is no news.
        self.closing = False

    async def disconnected(self) -> None:
        """The client lost its server (nats-py's ``disconnected_cb``, also on a close)."""
        if self.closing:
            return
        _log.warning("nats_disconnected")
        _notify(self.on_disconnected, "disconnected")

    async def reconnected(self) -> None:
        """The client is connected again, its subscriptions restored (``reconnected_cb``)."""
        _log.info("nats_reconnected")
        _notify(self.on_reconnected, "reconnected")


def _notify(listeners: list[ConnectionListener], what: str) -> None:
    for listener in list(listeners):
        try:
            listener()
        except Exception:
            # One listener's bug must not keep the others (or the client) from going on.
            _log.exception("nats_connection_listener_failed", what=what)
