"""A node's settings: where NATS is, how many partitions, how long a lease lives.

The lease TTL bounds how long a killed node's conversations wait for a new owner (TTL plus
about a heartbeat); a node renews its leases every third of it, so two renewals may fail in
a row before a lease is in danger. The prefix names the KV buckets, so that several
clusters (or tests) share one NATS server without meeting.
"""

from __future__ import annotations

import math
import os
import re
import secrets
import socket
from dataclasses import dataclass, field
from typing import Final

from relaybaton.cluster._partitions import DEFAULT_PARTITIONS
from relaybaton.errors import ConfigError

__all__ = ["DEFAULT_LEASE_TTL", "ClusterConfig", "default_node_id"]

DEFAULT_LEASE_TTL: Final = 5.0
"""Seconds: the issue's bound (a killed node's conversations answer again within TTL + 1 s)."""

MAX_PARTITIONS: Final = 4096
_PREFIX = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,31}")
_NODE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def default_node_id() -> str:
    """``<hostname>-<pid>-<random>``: unique per process, readable in logs and listings."""
    host = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname())[:32] or "node"
    return f"{host}-{os.getpid()}-{secrets.token_hex(3)}"


@dataclass(frozen=True, kw_only=True)
class ClusterConfig:
    """How a node joins a cluster. ``check()`` names any bad field and its fix."""

    nats: str
    partitions: int = DEFAULT_PARTITIONS
    lease_ttl: float = DEFAULT_LEASE_TTL
    node_id: str = field(default_factory=default_node_id)
    prefix: str = "relaybaton"
    #: Publish the events of producers' turns on ``<prefix>.events.<conversation_id>``.
    events: bool = False

    def __post_init__(self) -> None:
        self.check()

    @property
    def heartbeat(self) -> float:
        """Seconds between renewals: a third of the TTL."""
        return self.lease_ttl / 3

    @property
    def ping_interval(self) -> int:
        """Whole seconds between the NATS client's pings: the TTL rounded up. With two pings
        outstanding the client reconnects at the third, so a silently dead connection (a cut
        network sends no reset) is noticed within four of these, not nats-py's default of
        eight minutes."""
        return max(1, math.ceil(self.lease_ttl))

    @property
    def dead_connection_notice(self) -> float:
        """Seconds a dead connection may go unnoticed (what was published meanwhile is lost)."""
        return 4.0 * self.ping_interval

    @property
    def safety_margin(self) -> float:
        """Seconds before its lease would expire at which a node that could not renew
        steps down: room for the clocks of two machines to run at slightly different
        rates and for the step-down itself."""
        return max(0.2, self.lease_ttl / 10)

    @property
    def leases_bucket(self) -> str:
        return f"{self.prefix}_leases"

    @property
    def members_bucket(self) -> str:
        return f"{self.prefix}_members"

    def check(self) -> None:
        """Raise ``ConfigError`` naming the first bad field and how to fix it."""
        if not self.nats.startswith(("nats://", "tls://", "ws://", "wss://")):
            raise ConfigError(
                f"cluster nats must be a NATS URL such as nats://127.0.0.1:4222, got {self.nats!r}"
            )
        if not 1 <= self.partitions <= MAX_PARTITIONS:
            raise ConfigError(
                f"cluster partitions must be between 1 and {MAX_PARTITIONS}, got"
                f" {self.partitions}; the default, {DEFAULT_PARTITIONS}, suits tens of nodes"
            )
        if not 1 <= self.lease_ttl <= 60:
            raise ConfigError(
                f"cluster lease_ttl_s must be between 1 and 60 seconds, got {self.lease_ttl:g};"
                f" {DEFAULT_LEASE_TTL:g} s is the default (a killed node's conversations wait"
                " about that long)"
            )
        if not _NODE_ID.fullmatch(self.node_id):
            raise ConfigError(
                f"cluster node_id must be 1-64 letters, digits, '-' or '_', got {self.node_id!r}"
            )
        if not _PREFIX.fullmatch(self.prefix):
            raise ConfigError(
                "cluster prefix must start with a letter and hold up to 32 letters, digits,"
                f" '-' or '_', got {self.prefix!r}"
            )
