"""The names producers and nodes agree on: subjects, streams and consumers of one prefix.

With the default prefix ``relaybaton``:

* ``relaybaton.in.<partition>``: user messages, in the stream ``RELAYBATON_IN``;
* ``relaybaton.out.<conversation_id>``: each turn's reply (unless the message named a
  reply subject), and ``relaybaton.events.<conversation_id>``: the turn's events;
* ``relaybaton.dead``: messages no node can process, in the stream ``RELAYBATON_DEAD``.

A conversation id may contain dots (the HTTP edge allows them), so an out subject can have
more than three tokens; subscribe to the exact subject, or to ``relaybaton.out.>``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from relaybaton.errors import ConfigError

__all__ = ["DEFAULT_PREFIX", "ProducerSubjects"]

DEFAULT_PREFIX: Final = "relaybaton"

_PREFIX = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,31}")  # as ClusterConfig.prefix


@dataclass(frozen=True, slots=True)
class ProducerSubjects:
    """Every subject, stream and consumer name derived from one ``prefix``.

    Tests and clusters that share a NATS server use distinct prefixes.
    """

    prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        if not _PREFIX.fullmatch(self.prefix):
            raise ConfigError(
                f"NATS subject prefix {self.prefix!r} is not usable: it must start with a "
                "letter and hold up to 32 letters, digits, '-' or '_'"
            )

    @property
    def stream(self) -> str:
        """The JetStream stream of user messages, e.g. ``RELAYBATON_IN``."""
        return f"{self._upper}_IN"

    @property
    def dead_stream(self) -> str:
        """The JetStream stream that keeps dead letters, e.g. ``RELAYBATON_DEAD``."""
        return f"{self._upper}_DEAD"

    @property
    def inbound(self) -> str:
        """The stream's subjects: every partition's, ``<prefix>.in.>``."""
        return f"{self.prefix}.in.>"

    def partition(self, partition: int) -> str:
        """Where producers publish a message of ``partition``: ``<prefix>.in.<partition>``."""
        return f"{self.prefix}.in.{partition}"

    def durable(self, partition: int) -> str:
        """The pull consumer of ``partition``'s subject (one per partition, cluster-wide)."""
        return f"{self._upper}_P{partition}"

    def out(self, conversation_id: str) -> str:
        """Where the owner publishes a conversation's replies."""
        return f"{self.prefix}.out.{conversation_id}"

    def events(self, conversation_id: str) -> str:
        """Where the owner publishes a conversation's events (when enabled)."""
        return f"{self.prefix}.events.{conversation_id}"

    @property
    def dead(self) -> str:
        """The dead-letter subject: ``<prefix>.dead``."""
        return f"{self.prefix}.dead"

    @property
    def _upper(self) -> str:
        return self.prefix.upper().replace("-", "_")
