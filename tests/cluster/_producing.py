"""What the producer tests share: a node's runtime on PostgreSQL, a fixed ownership, NATS.

``HeldPartitions`` is an ``Ownership`` that holds what the test says (the lease manager's
place): ``gain`` and ``lose`` call the listeners as a node would.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import msgspec
import nats
from nats.aio.client import Client
from nats.aio.msg import Msg

from relaybaton import Agent, open_runtime
from relaybaton.actors import Runtime
from relaybaton.adapters import ModelRequest, UserMessage
from relaybaton.cluster._outbound import ReplyBody
from relaybaton.cluster._partitions import OwnershipListener, partition_of
from relaybaton.stores import PostgresStore
from relaybaton.testing import ScriptedModel
from tests._nats import NATS_URL
from tests._postgres import PG_DSN

PARTITIONS = 4

_replies = msgspec.json.Decoder(ReplyBody)


class HeldPartitions:
    """An ``Ownership`` whose partitions the test gives and takes."""

    def __init__(self, partitions: int = PARTITIONS, held: tuple[int, ...] | None = None) -> None:
        self.node_id = f"test-{uuid.uuid4().hex[:6]}"
        self.partitions = partitions
        self.held: dict[int, int] = dict.fromkeys(range(partitions) if held is None else held, 1)
        self.listeners: list[OwnershipListener] = []
        self.replays: list[asyncio.Future[None]] = []

    def generation(self, partition: int) -> int | None:
        return self.held.get(partition)

    def owner_of(self, partition: int) -> str | None:
        return self.node_id if partition in self.held else None

    def token(self, conversation_id: str) -> tuple[int, int] | None:
        """The (partition, generation) this node's journal writes carry (the store's fencing)."""
        partition = partition_of(conversation_id, self.partitions)
        generation = self.held.get(partition)
        return None if generation is None else (partition, generation)

    def listen(self, listener: OwnershipListener) -> None:
        self.listeners.append(listener)
        for partition, generation in sorted(self.held.items()):
            self.replays.append(asyncio.ensure_future(listener(partition, generation)))

    async def gain(self, partition: int, generation: int) -> None:
        self.held[partition] = generation
        for listener in self.listeners:
            await listener(partition, generation)

    async def lose(self, partition: int) -> None:
        self.held.pop(partition, None)
        for listener in self.listeners:
            await listener(partition, None)


def echo(request: ModelRequest) -> str:
    """The model: repeats the last user message, so a reply names what it answers."""
    said = [m.text for m in request.messages if isinstance(m, UserMessage)]
    return f"echo: {said[-1]}"


@asynccontextmanager
async def node_runtime(
    schema: str, fencing: HeldPartitions | None = None
) -> AsyncIterator[Runtime]:
    """A runtime journaling to ``schema`` on the test PostgreSQL (one node's).

    With ``fencing``, its writes carry that ownership's generations and its fences are
    raised first (as a cluster node's are).
    """
    store = PostgresStore(
        PG_DSN,
        schema=schema,
        application_name=schema,
        fencing=None if fencing is None else fencing.token,
    )
    await store.connect()
    if fencing is not None:
        for partition, generation in fencing.held.items():
            await store.raise_fence(partition, generation)
    try:
        agent = Agent(name="assistant", instructions="Answer.", model="general")
        async with open_runtime(
            agent, models={"general": ScriptedModel(echo)}, store=store
        ) as runtime:
            yield runtime
    finally:
        await store.aclose()


@asynccontextmanager
async def connected() -> AsyncIterator[Client]:
    nc = await nats.connect(NATS_URL)
    try:
        yield nc
    finally:
        await nc.close()


def body(conversation_id: str, message_id: str, text: str, **more: object) -> bytes:
    return msgspec.json.encode(
        {"conversation_id": conversation_id, "message_id": message_id, "text": text, **more}
    )


def subject_of(prefix: str, conversation_id: str, partitions: int = PARTITIONS) -> str:
    return f"{prefix}.in.{partition_of(conversation_id, partitions)}"


def user_texts(runtime: Runtime, conversation_id: str) -> list[str]:
    conversation = runtime.conversation(conversation_id)
    assert conversation is not None
    return [m.text for m in conversation.transcript if isinstance(m, UserMessage)]


class Inbox:
    """Every message on a subject, and a wait for the n-th."""

    def __init__(self) -> None:
        self.messages: list[Msg] = []
        self.changed = asyncio.Event()

    async def take(self, msg: Msg) -> None:
        self.messages.append(msg)
        self.changed.set()

    async def wait_for(self, count: int, timeout: float = 15.0) -> list[Msg]:
        with anyio.fail_after(timeout):
            while len(self.messages) < count:
                self.changed.clear()
                await self.changed.wait()
        return self.messages

    def replies(self) -> list[ReplyBody]:
        return [_replies.decode(m.data) for m in self.messages]


async def listen(nc: Client, subject: str) -> Inbox:
    inbox = Inbox()
    await nc.subscribe(subject, cb=inbox.take)
    await nc.flush()
    return inbox
