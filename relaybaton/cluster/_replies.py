"""Each producer's reply, published when its turn ends, whichever node accepted the message.

A producer's message is accepted with its reply subject (the ``Relaybaton-Reply-To``
inbox, else ``<prefix>.out.<conversation_id>``) as the turn's ``reply_to``, which the
journal keeps with the message. The consumer that accepted it asks for the reply here; if
that node dies before the turn ends, the node that takes the partition over adopts the
conversation from the journal, and ``adopt`` (a ``Conversations.restore_listeners``
listener) owes the reply of each of its unfinished turns that carries a ``reply_to``. So a
reply is published at least once, by whoever finishes the turn.

One task per (conversation, message) at a time: a redelivered message whose turn is
already owed adds none.

Core NATS loses what is published around a broken connection, so every reply is also
kept for a while and published again once the connection is back (``_recent_replies.py``).
"""

from __future__ import annotations

import asyncio
from typing import final

import structlog
from nats.aio.client import Client

from relaybaton.actors import Paused, wait_for_turn
from relaybaton.cluster._connection import ConnectionWatch
from relaybaton.cluster._outbound import encode_reply
from relaybaton.cluster._producer_counters import ProducerCounters
from relaybaton.cluster._recent_replies import RecentReplies
from relaybaton.errors import PartitionNotOwnedError
from relaybaton.runtime import Conversation, Conversations, TurnResult

__all__ = ["ReplyPublisher"]

_log = structlog.get_logger("relaybaton.cluster")


@final
class ReplyPublisher:
    """The replies a node owes producers, each a task waiting for its turn's end."""

    def __init__(
        self,
        nc: Client,
        conversations: Conversations,
        counters: ProducerCounters,
        *,
        resent_after_s: float,
    ) -> None:
        self.nc = nc
        self.conversations = conversations
        self.counters = counters
        self.tasks: dict[tuple[str, str], asyncio.Task[None]] = {}
        #: Kept only while a connection is watched: without one nothing is published again.
        self.recent: RecentReplies | None = None
        self.resent_after_s = resent_after_s
        self._resend: asyncio.Task[None] | None = None
        self._watch: ConnectionWatch | None = None

    def __len__(self) -> int:
        return len(self.tasks)

    def start(self) -> None:
        """Owe the replies of conversations adopted before now, and of every later one."""
        self.conversations.restore_listeners.append(self.adopt)
        for conversation in list(self.conversations.by_id.values()):
            self.adopt(conversation)

    def watch(self, connection: ConnectionWatch) -> None:
        """Publish the kept replies again each time ``connection`` comes back."""
        self._watch = connection
        self.recent = RecentReplies(suspect_s=connection.unnoticed_s)
        connection.on_disconnected.append(self._disconnected)
        connection.on_reconnected.append(self._reconnected)

    def publish_later(
        self,
        conversation_id: str,
        message_id: str,
        subject: str,
        future: asyncio.Future[TurnResult],
    ) -> None:
        """Publish the turn's outcome on ``subject`` once ``future`` (a waiter) is done."""
        key = (conversation_id, message_id)
        if key in self.tasks:  # owed already (adopted from the journal): once is enough
            future.cancel()  # only this waiter: the turn runs on
            return
        self._start(key, subject, future)

    def adopt(self, conversation: Conversation) -> None:
        """A conversation read from the journal: owe its unfinished turns' replies.

        A task left from before (its turn was evicted with a lost partition, and fails) is
        replaced by one waiting on the turn read back.
        """
        turns = [*([conversation.active] if conversation.active else []), *conversation.inbox]
        for turn in turns:
            if turn.reply_to is None:  # not a producer's message: its caller waits itself
                continue
            key = (conversation.id, turn.message_id)
            stale = self.tasks.pop(key, None)
            if stale is not None:
                stale.cancel()
            self._start(key, turn.reply_to, turn.waiter())

    async def aclose(self, timeout: float) -> None:
        """Let the tasks end (for ``timeout`` seconds), cancel the rest, stop adopting."""
        if self.adopt in self.conversations.restore_listeners:
            self.conversations.restore_listeners.remove(self.adopt)
        if self._watch is not None:
            self._watch.on_disconnected.remove(self._disconnected)
            self._watch.on_reconnected.remove(self._reconnected)
            self._watch = None
        if self._resend is not None:
            self._resend.cancel()
            await asyncio.gather(self._resend, return_exceptions=True)
        tasks = list(self.tasks.values())
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def _start(
        self, key: tuple[str, str], subject: str, future: asyncio.Future[TurnResult]
    ) -> None:
        task = asyncio.get_running_loop().create_task(self._publish(key, subject, future))
        self.tasks[key] = task

        def done(_: asyncio.Task[None]) -> None:
            if self.tasks.get(key) is task:
                del self.tasks[key]

        task.add_done_callback(done)

    async def _publish(
        self, key: tuple[str, str], subject: str, future: asyncio.Future[TurnResult]
    ) -> None:
        conversation_id, message_id = key
        try:
            outcome = await wait_for_turn(self.conversations, conversation_id, future)
            await self._send(subject, message_id, outcome)
            if not isinstance(outcome, TurnResult):  # waiting for a person: then the end
                await self._send(subject, message_id, await future)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except PartitionNotOwnedError as exc:
            # The partition moved: its next owner reads the turn back and publishes this.
            _log.info(
                "nats_reply_left_to_next_owner", conversation_id=conversation_id, exc_info=exc
            )
        except Exception:
            # The turn is journaled either way; only this notice is lost.
            _log.exception(
                "nats_reply_not_published", conversation_id=conversation_id, subject=subject
            )

    async def _send(self, subject: str, message_id: str, outcome: TurnResult | Paused) -> None:
        payload = encode_reply(message_id, outcome)
        if self.recent is not None:
            self.recent.record(subject, payload)
        await self.nc.publish(subject, payload)
        self.counters.replies += 1

    def _disconnected(self) -> None:
        assert self.recent is not None  # listening only once watching
        self.recent.disconnected()
        if self._resend is not None:  # down again before the last resend: wait for the next
            self._resend.cancel()
            self._resend = None

    def _reconnected(self) -> None:
        if self.recent is not None and self.recent.down and self._resend is None:
            self._resend = asyncio.get_running_loop().create_task(self._publish_again())

    async def _publish_again(self) -> None:
        recent = self.recent
        assert recent is not None
        try:
            await asyncio.sleep(self.resent_after_s)  # the producers' clients reconnect too
            owed = recent.take_owed()
            for subject, payload in owed:
                await self.nc.publish(subject, payload)
            self.counters.replies_resent += len(owed)
            _log.info(
                "nats_replies_published_again",
                replies=len(owed),
                overflowed=recent.overflowed,
            )
        except asyncio.CancelledError:
            raise
        except Exception:
            # The replies stay in the journal; only these notices are lost.
            _log.exception("nats_replies_not_published_again")
        finally:
            if self._resend is asyncio.current_task():
                self._resend = None
