"""One partition's consumer: user messages of one subject, accepted in stream order.

Run only by the node that holds the partition's lease. On gain it makes the partition's
durable pull consumer afresh (``<PREFIX>_P<partition>``, filtered on
``<prefix>.in.<partition>``): the stream is a work queue, so a new consumer starts at the
partition's oldest unaccepted message, and whatever a crashed or paused former owner had
fetched but not acked is delivered again at once, in order, instead of after its ack wait.

Each message is decoded and checked, then accepted by the runtime (``Runtime.accept``,
which returns once the journal holds it, and raises ``FencedWriteError`` if the journal
refused it), then acked: a message is acked only when a crash can no longer lose it, and
the next message is taken only after that, so the partition's messages (and so each
conversation's) are accepted in stream order. A message delivered
again is recognized by its id (invariant 5): acked, not processed twice.

* A message no node can process (not JSON, wrong fields, too large, refused for good by
  the runtime, or failing ``max_deliver`` times) is dead-lettered with its reason, then
  acked: never delivered forever.
* A message published on another partition's subject (a producer that hashed wrong) is
  published again on its own partition's subject, then acked: it is a valid user message,
  and a producer that hashes wrong does so for every message of a conversation, so moving
  them one by one keeps their order, where dead-lettering would lose the user's words.
* A journal that refuses (the lease was taken over, PostgreSQL is down) stops the loop:
  the message is nakked with a delay and nothing after it is taken, so nothing skips ahead.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import final

import nats.errors
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api
from nats.js.errors import NotFoundError

from relaybaton.actors import Runtime
from relaybaton.cluster._inbound import InboundLimits, Refusal, RefusalCode, decode_inbound
from relaybaton.cluster._outbound import (
    MOVED_FROM_HEADER,
    REPLY_TO_HEADER,
    publish_dead_letter,
)
from relaybaton.cluster._partitions import partition_of
from relaybaton.cluster._producer_counters import ProducerCounters
from relaybaton.cluster._replies import ReplyPublisher
from relaybaton.cluster._subjects import ProducerSubjects
from relaybaton.errors import OwnershipError, StaleEpochError, StoreError
from relaybaton.runtime import TurnResult

__all__ = ["ConsumerSettings", "JournalRefusedError", "PartitionConsumer", "ProducerContext"]

_log = structlog.get_logger("relaybaton.cluster")


@dataclass(frozen=True, slots=True)
class ConsumerSettings:
    """How each partition's consumer fetches and acknowledges.

    Attributes:
        batch: messages fetched at once (and the consumer's ``max_ack_pending``): they are
            still accepted one by one, in order.
        fetch_wait_s: how long one fetch waits for messages (a long poll).
        ack_wait_s: how long the broker waits for an ack before delivering a message again;
            longer than a journal commit under load, and a takeover does not wait for it.
        max_deliver: attempts at accepting one message before it is dead-lettered.
        retry_delay_s: the wait before trying a failed message again (doubled each time).
        refused_delay_s: the nak delay, and the wait before a partition stopped by a
            journal refusal starts again (if this node still holds it).
        max_turns_in_flight: accepted turns from NATS not finished yet, over all
            partitions; at the bound, fetching waits (messages wait in the stream).
        stop_timeout_s: how long a stopping consumer (a partition lost or handed over,
            the node leaving) waits for the message in hand to be journaled and acked
            before it is cancelled (then the message is delivered again to the next
            holder, which recognizes it if the journal got it).
        inbound: the bounds a message must keep (the HTTP edge's).
        replies_resent_after_s: how long after reconnecting the kept replies are published
            again, so that producers whose clients reconnect more slowly get them.
    """

    batch: int = 32
    fetch_wait_s: float = 5.0
    ack_wait_s: float = 30.0
    max_deliver: int = 5
    retry_delay_s: float = 0.2
    refused_delay_s: float = 1.0
    max_turns_in_flight: int = 1000
    stop_timeout_s: float = 5.0
    inbound: InboundLimits = field(default_factory=InboundLimits)
    replies_resent_after_s: float = 3.0


@dataclass
class ProducerContext:
    """What every partition's consumer on a node shares."""

    nc: Client
    js: JetStreamContext
    runtime: Runtime
    subjects: ProducerSubjects
    partitions: int
    settings: ConsumerSettings
    counters: ProducerCounters = field(default_factory=ProducerCounters)
    #: Bounds the accepted turns not finished yet (``max_turns_in_flight``).
    in_flight: asyncio.Semaphore = field(init=False)
    #: The replies this node owes (``_replies.py``).
    replies: ReplyPublisher = field(init=False)

    def __post_init__(self) -> None:
        self.in_flight = asyncio.Semaphore(self.settings.max_turns_in_flight)
        self.replies = ReplyPublisher(
            self.nc,
            self.runtime.conversations,
            self.counters,
            resent_after_s=self.settings.replies_resent_after_s,
        )


class JournalRefusedError(Exception):
    """The journal refused a message's acceptance: the partition's loop stops here."""

    def __init__(self, partition: int, cause: BaseException) -> None:
        super().__init__(
            f"partition {partition}: the journal refused a write ({cause!r}); its consumer "
            "stops and the message is delivered again"
        )
        self.partition = partition


@final
class PartitionConsumer:
    """Consumes one partition's subject for as long as ``run`` runs."""

    def __init__(self, context: ProducerContext, partition: int) -> None:
        self.context = context
        self.partition = partition
        self.on_accepted: Callable[[Msg], Awaitable[None]] | None = None  # a test's hook
        #: Set by ``stop_after_current``: ``run`` returns once the message in hand is acked.
        self.stopping = False
        self._handling = False

    def stop_after_current(self) -> bool:
        """Take no more messages; True if one is in hand (``run`` returns after its ack),
        False if the loop only waits for messages (cancelling it loses nothing)."""
        self.stopping = True
        return self._handling

    async def run(self) -> None:
        """Fetch and accept until cancelled or stopped, or raise ``JournalRefusedError``."""
        context = self.context
        subjects = context.subjects
        durable = subjects.durable(self.partition)
        await self._make_consumer(durable)
        sub = await context.js.pull_subscribe_bind(durable, subjects.stream)
        try:
            while True:
                try:
                    batch = await sub.fetch(
                        context.settings.batch, timeout=context.settings.fetch_wait_s
                    )
                except (nats.errors.TimeoutError, TimeoutError):
                    # Nothing arrived during the long poll (the client raises either kind).
                    if self.stopping:
                        return
                    continue
                # Fetched but not handled when stopping: unacked, so the next holder's
                # consumer (made afresh) delivers them first, in order.
                self._handling = True
                try:
                    for msg in batch:
                        if self.stopping:
                            return
                        await self._handle(msg)
                finally:
                    self._handling = False
                if self.stopping:
                    return
        finally:
            await sub.unsubscribe()

    async def _make_consumer(self, durable: str) -> None:
        """Replace the partition's consumer with a fresh one starting at its oldest message."""
        context = self.context
        with contextlib.suppress(NotFoundError):  # the first owner ever has none to delete
            await context.js.delete_consumer(context.subjects.stream, durable)
        settings = context.settings
        await context.js.add_consumer(
            context.subjects.stream,
            api.ConsumerConfig(
                durable_name=durable,
                description=f"relaybaton: partition {self.partition}'s user messages",
                filter_subject=context.subjects.partition(self.partition),
                deliver_policy=api.DeliverPolicy.ALL,
                ack_policy=api.AckPolicy.EXPLICIT,
                ack_wait=settings.ack_wait_s,
                max_ack_pending=settings.batch,
                # Poison messages are counted here, not by the broker: a broker giving up
                # would leave the message in the work queue, unseen and unacked forever.
                max_deliver=-1,
            ),
        )

    async def _handle(self, msg: Msg) -> None:
        context = self.context
        decoded = decode_inbound(msg.data, context.settings.inbound)
        if isinstance(decoded, Refusal):
            await self._dead_letter(msg, decoded)
            return
        home = partition_of(decoded.conversation_id, context.partitions)
        if home != self.partition:
            await self._move(msg, decoded.message_id, home)
            return
        # Journaled with the message: whoever finishes the turn publishes its reply there.
        reply_to = (msg.headers or {}).get(REPLY_TO_HEADER) or context.subjects.out(
            decoded.conversation_id
        )
        delivered = msg.metadata.num_delivered
        attempt = delivered
        while True:
            if attempt > context.settings.max_deliver:
                await self._dead_letter(
                    msg,
                    Refusal(
                        RefusalCode.POISON,
                        f"accepting it failed {attempt - 1} times (max_deliver is "
                        f"{context.settings.max_deliver}); see the node's log",
                    ),
                )
                return
            try:
                future, duplicate = await self._accept(
                    decoded.conversation_id,
                    decoded.message_id,
                    decoded.text,
                    decoded.user,
                    reply_to,
                )
            except OwnershipError as exc:
                if isinstance(exc, StaleEpochError) or self._journal_failed():
                    await self._refused(msg, exc)
                # A baton rule refused it for good (the conversation is closed).
                _log.warning("nats_message_refused", partition=self.partition, exc_info=exc)
                await self._dead_letter(msg, Refusal(RefusalCode.REFUSED, str(exc)))
                return
            except StoreError as exc:
                await self._refused(msg, exc)
            except Exception as exc:
                if self._journal_failed():
                    await self._refused(msg, exc)
                context.counters.retries += 1
                _log.exception(
                    "nats_message_accept_failed",
                    partition=self.partition,
                    message_id=decoded.message_id,
                    attempt=attempt,
                )
                await msg.in_progress()  # still ours: do not deliver it elsewhere meanwhile
                await asyncio.sleep(context.settings.retry_delay_s * 2 ** (attempt - delivered))
                attempt += 1
                continue
            break
        await msg.ack()
        if duplicate:
            context.counters.duplicates += 1
        else:
            context.counters.accepted += 1
        if self.on_accepted is not None:
            await self.on_accepted(msg)
        context.replies.publish_later(decoded.conversation_id, decoded.message_id, reply_to, future)

    async def _accept(
        self, conversation_id: str, message_id: str, text: str, user: str | None, reply_to: str
    ) -> tuple[asyncio.Future[TurnResult], bool]:
        """Accept the message (durably), within the bound of turns in flight."""
        runtime = self.context.runtime
        in_flight = self.context.in_flight
        conversation = await runtime.conversations.load(conversation_id)
        duplicate = conversation is not None and message_id in conversation.seen
        await in_flight.acquire()
        try:
            future = await runtime.accept(
                conversation_id, text, message_id=message_id, user=user or "", reply_to=reply_to
            )
        except BaseException:
            in_flight.release()
            raise
        future.add_done_callback(lambda _: in_flight.release())
        return future, duplicate

    def _journal_failed(self) -> bool:
        journal = self.context.runtime.conversations.journal
        return journal is not None and journal.failure is not None

    async def _refused(self, msg: Msg, exc: BaseException) -> None:
        self.context.counters.journal_refusals += 1
        await msg.nak(delay=self.context.settings.refused_delay_s)
        raise JournalRefusedError(self.partition, exc) from exc

    async def _dead_letter(self, msg: Msg, refusal: Refusal) -> None:
        context = self.context
        await publish_dead_letter(context.js, context.subjects, msg, refusal)
        context.counters.dead_letters[refusal.code] += 1
        _log.warning(
            "nats_message_dead_lettered",
            partition=self.partition,
            subject=msg.subject,
            code=refusal.code.value,
            reason=refusal.reason,
        )
        await msg.ack()

    async def _move(self, msg: Msg, message_id: str, home: int) -> None:
        context = self.context
        headers = dict(msg.headers or {})
        # Not the producer's id: the stream already saw it (on the wrong subject) and would
        # drop this copy as a repeat. A redelivery moves it again under the same id.
        headers["Nats-Msg-Id"] = f"{message_id}@moved"
        headers[MOVED_FROM_HEADER] = msg.subject
        subjects = context.subjects
        await context.js.publish(
            subjects.partition(home), msg.data, headers=headers, stream=subjects.stream
        )
        context.counters.misrouted += 1
        _log.warning(
            "nats_message_misrouted",
            subject=msg.subject,
            partition=home,
            hint="the partition is crc32(conversation_id) % partitions",
        )
        await msg.ack()
