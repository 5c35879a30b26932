"""What the producers' consumers did, counted: for logs, tests and the metrics endpoint.

Plain integers, written by the consumers on the event loop; ``ProducerCollector`` reads them
when Prometheus scrapes (the flow or command layer registers it on the service's registry,
since ``cluster`` does not import ``service``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import final

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from relaybaton.cluster._inbound import RefusalCode

__all__ = ["ProducerCollector", "ProducerCounters"]


@dataclass
class ProducerCounters:
    """Counts since the node started.

    Attributes:
        accepted: messages accepted by the runtime for the first time (journaled).
        duplicates: messages whose id the runtime had already accepted (a redelivery or a
            producer's retry after the broker's dedup window): acked, not processed again.
        misrouted: messages published on another partition's subject, moved to their own.
        dead_letters: messages sent to the dead-letter subject, by reason.
        retries: attempts at accepting a message that failed and were tried again.
        journal_refusals: partitions stopped because the journal refused a write.
        replies: replies published (a redelivered message's reply is published again).
        replies_resent: replies published again after NATS came back (``_recent_replies``).
        events: events of producers' turns published (``_events.py``).
        events_dropped: events not published: NATS could not keep up (the bounded queue
            dropped the oldest) or refused the publish.
        events_refused: events not published because the journal refused their records
            (the node was fenced out of the partition).
    """

    accepted: int = 0
    duplicates: int = 0
    misrouted: int = 0
    dead_letters: Counter[RefusalCode] = field(default_factory=Counter)
    retries: int = 0
    journal_refusals: int = 0
    replies: int = 0
    replies_resent: int = 0
    events: int = 0
    events_dropped: int = 0
    events_refused: int = 0


@final
class ProducerCollector(Collector):
    """The counters as Prometheus metrics, read at scrape time."""

    def __init__(self, counters: ProducerCounters) -> None:
        self.counters = counters

    def collect(self) -> Iterable[CounterMetricFamily]:
        c = self.counters
        yield CounterMetricFamily(
            "relaybaton_nats_messages_accepted",
            "User messages from NATS accepted and journaled (repeats excluded).",
            value=c.accepted,
        )
        yield CounterMetricFamily(
            "relaybaton_nats_messages_duplicate",
            "User messages from NATS acked as repeats of an accepted message id.",
            value=c.duplicates,
        )
        yield CounterMetricFamily(
            "relaybaton_nats_messages_misrouted",
            "User messages published on the wrong partition's subject and moved.",
            value=c.misrouted,
        )
        dead = CounterMetricFamily(
            "relaybaton_nats_dead_letters",
            "User messages from NATS sent to the dead-letter subject, by reason.",
            labels=["reason"],
        )
        for code in RefusalCode:
            dead.add_metric([code.value], c.dead_letters[code])
        yield dead
        yield CounterMetricFamily(
            "relaybaton_nats_accept_retries",
            "Failed attempts at accepting a message from NATS that were tried again.",
            value=c.retries,
        )
        yield CounterMetricFamily(
            "relaybaton_nats_journal_refusals",
            "Partitions whose consumer stopped because the journal refused a write.",
            value=c.journal_refusals,
        )
        yield CounterMetricFamily(
            "relaybaton_nats_replies",
            "Replies published on NATS.",
            value=c.replies,
        )
        yield CounterMetricFamily(
            "relaybaton_nats_replies_resent",
            "Replies published again on NATS after the node's connection came back.",
            value=c.replies_resent,
        )
        yield CounterMetricFamily(
            "relaybaton_nats_events",
            "Events of producers' turns published on NATS.",
            value=c.events,
        )
        yield CounterMetricFamily(
            "relaybaton_nats_events_dropped",
            "Events of producers' turns not published: NATS was too slow or away.",
            value=c.events_dropped,
        )
        yield CounterMetricFamily(
            "relaybaton_nats_events_refused",
            "Events of producers' turns not published: the journal refused their records.",
            value=c.events_refused,
        )
