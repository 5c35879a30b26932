"""The journal: records every state change of every conversation and commits them in groups.

The registry calls ``record`` right after each change (synchronously, on the event loop: a
record is a small frozen struct put on a list). One writer task encodes what accumulated
and commits it to the store in one transaction (group commit: many conversations' records
per transaction). ``Durability`` decides who waits for that commit:

- ``sync``: ``flushed()`` waits for it, so a step goes on only once what came before is on
  disk; replies reach the user only after their record is committed;
- ``batched``: nobody waits; the writer collects for up to ``max_delay`` seconds first
  (20 ms by default: each commit crosses to the store's thread, and a crossing costs the
  event loop a GIL hand-off; at 5 ms the journal cost 1.7x the journal-off time on the
  overhead workload, at 20 ms 1.35x, at 50 ms 1.25x, see ``benchmarks/journal.py``); a
  crash loses at most the records of that window, and none that were acknowledged, since
  ``Runtime.accept`` flushes before it returns and a waiter commits at once;
- ``off``: as batched, and the store is asked not to flush to disk.

Each commit stores one body per conversation: the MessagePack array of that conversation's
records in the batch (keyed by the first one's ``seq``), not one body per record. A store
then inserts a row or two per conversation instead of ten, which is most of what a commit
costs it. Older journals hold one record per body (MessagePack or JSON); they still decode.

A cluster node's store refuses the writes of conversations whose partition another node
has fenced (``FencedWriteError``): the journal writes the rest of the batch again without
them, and what waited for the refused conversations' commit hears the error instead of
going on, so no reply that was not journaled reaches anyone. ``on_fenced`` tells the node,
which steps down from those partitions.

Every ``snapshot_every`` records a conversation also gets a snapshot record (its whole
state), which always starts a body of its own; with ``retention`` on, the bodies before it
are pruned in the same transaction, so a conversation's journal stays short however long
it runs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar, final

import anyio
import msgspec
import structlog

from relaybaton.errors import FencedWriteError
from relaybaton.runtime._clock import Clock
from relaybaton.runtime._conversation import Conversation
from relaybaton.runtime._fold import replay, snapshot_state
from relaybaton.runtime._journal_events import (
    ApprovalDecided,
    ApprovalRequested,
    JournalRecord,
    Snapshot,
)
from relaybaton.runtime._store import (
    ApprovalRow,
    Durability,
    EncodedRecord,
    Head,
    Store,
    WriteBatch,
)

__all__ = ["Journal"]

T = TypeVar("T")

_log = structlog.get_logger("relaybaton.journal")


@final
class Journal(Generic[T]):
    """Records conversations' events and commits them to a store in groups."""

    def __init__(
        self,
        store: Store,
        item_type: Any,
        *,
        clock: Clock,
        durability: Durability = Durability.BATCHED,
        max_delay: float = 0.02,
        snapshot_every: int = 200,
        retention: bool = True,
    ) -> None:
        self.store = store
        self.clock = clock
        self.durability = Durability(durability)
        self.max_delay = max_delay
        self.snapshot_every = snapshot_every
        self.retention = retention
        self.item_type = item_type
        # Bodies are MessagePack: about twice as fast to encode as JSON on the writer's
        # path, and smaller. JSON bodies (older journals, hand-made fixtures) still decode.
        # A body is an array of records, or (older journals) one record: a map.
        body_type = JournalRecord[item_type] | list[JournalRecord[item_type]]
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder: msgspec.msgpack.Decoder[_Body] = msgspec.msgpack.Decoder(body_type)
        self._json_decoder: msgspec.json.Decoder[_Body] = msgspec.json.Decoder(body_type)
        # What waits for the writer, grouped as it will be stored: per conversation, its
        # records in bodies (a snapshot starts a new one); grouping here costs a dict lookup
        # per record, grouping at commit time cost a tuple and a second pass.
        self._pending: dict[str, _Group] = {}
        self._listed: list[JournalRecord[Any]] = []  # approvals and snapshots, in order
        self._recorded = 0
        self._committed = 0
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._callbacks: list[_Callback] = []
        #: Conversations whose writes the store refused (fenced): their waiters fail.
        self.fenced: dict[str, FencedWriteError] = {}
        #: Told of every fenced refusal (a cluster node steps down from the partitions).
        self.on_fenced: Callable[[FencedWriteError], None] | None = None
        #: Told once when the journal fails for good (a cluster node leaves the cluster).
        self.on_failed: Callable[[BaseException], None] | None = None
        self._wake = asyncio.Event()
        self._closed = False
        self.failure: BaseException | None = None
        self._task: asyncio.Task[None] | None = None
        self.transactions = 0
        self.bytes_written = 0

    # --- recording (hot path, synchronous) ------------------------------------------------

    def record(self, conversation: Conversation, event: msgspec.Struct) -> None:
        """Journal ``event``, already applied to ``conversation``."""
        seq = conversation.seq = conversation.seq + 1
        now = self.clock.now()
        record: JournalRecord[Any] = JournalRecord(
            conversation_id=conversation.id,
            seq=seq,
            epoch=conversation.epoch,
            at=now,
            event=event,  # type: ignore[arg-type]
        )
        group = self._pending.get(conversation.id)
        if group is None:
            if not self._pending:  # the writer took everything: wake it for this
                self._wake.set()
            self._pending[conversation.id] = _Group(conversation, record)
        else:
            group.bodies[-1].append(record)
        self._recorded += 1
        if type(event) in _LISTED:
            self._listed.append(record)
        if seq - conversation.snapshot_seq >= self.snapshot_every:
            self._snapshot(conversation, now)

    def _snapshot(self, conversation: Conversation, now: float) -> None:
        seq = conversation.seq = conversation.seq + 1
        record: JournalRecord[Any] = JournalRecord(
            conversation_id=conversation.id,
            seq=seq,
            epoch=conversation.epoch,
            at=now,
            event=Snapshot(state=snapshot_state(conversation)),
        )
        # Its own body: pruning what it covers then removes whole bodies.
        self._pending[conversation.id].bodies.append([record])
        self._listed.append(record)
        self._recorded += 1
        conversation.snapshot_seq = seq  # kept with the conversation: freed with it

    @staticmethod
    def _head(conversation: Conversation, now: float) -> Head:
        return Head(
            conversation_id=conversation.id,
            seq=conversation.seq,
            epoch=conversation.epoch,
            owner=conversation.owner,
            status=conversation.status.value,
            unfinished=conversation.unfinished,
            # Wall time, not the runtime's clock: the row outlives the process (a monotonic
            # clock restarts with the machine), and `eval --from-store --since` filters on it.
            updated_at=time.time(),
        )

    def after_commit(
        self,
        callback: Callable[[], None],
        *,
        conversation_id: str | None = None,
        refused: Callable[[FencedWriteError], None] | None = None,
    ) -> None:
        """Run ``callback`` once what was recorded so far is committed (at once unless sync).

        If the store refuses ``conversation_id``'s writes (fencing), ``refused`` runs
        with the error instead.
        """
        if self.durability is not Durability.SYNC or self._committed >= self._recorded:
            error = self.fenced.get(conversation_id or "")
            if error is not None and refused is not None:
                refused(error)
            else:
                callback()
        else:
            self._callbacks.append(_Callback(self._recorded, callback, conversation_id, refused))

    async def flushed(self, conversation_id: str | None = None) -> None:
        """In sync mode, wait until everything recorded so far is committed.

        Raises:
            FencedWriteError: the store refused ``conversation_id``'s writes.
        """
        if self.durability is not Durability.SYNC or self._committed >= self._recorded:
            return
        await self._wait_for(self._recorded)
        error = self.fenced.get(conversation_id or "")
        if error is not None:
            raise error

    async def flush(self) -> None:
        """Wait until everything recorded so far is committed, whatever the mode."""
        if self._committed < self._recorded:
            await self._wait_for(self._recorded)

    async def _wait_for(self, mark: int) -> None:
        if self.failure is not None:
            raise self.failure
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((mark, future))
        self._wake.set()
        await future

    # --- reading ----------------------------------------------------------------------------

    def decode(self, bodies: Iterable[bytes]) -> list[JournalRecord[Any]]:
        """The records stored bodies hold, in order (typed; fails closed)."""
        records: list[JournalRecord[Any]] = []
        for body in bodies:
            # JSON starts with "{" or "["; MessagePack with 0x8_/0x9_ or 0xdc-0xdf.
            decoded = (
                self._json_decoder.decode(body) if body[:1] in b"{[" else self._decoder.decode(body)
            )
            if isinstance(decoded, list):
                records.extend(decoded)
            else:
                records.append(decoded)
        return records

    async def load(self, conversation_id: str, *, entry: str) -> Conversation | None:
        """The conversation rebuilt from its stored journal, or None if it has none."""
        bodies = await self.store.read(conversation_id)
        if not bodies:
            return None
        records = self.decode(bodies)
        conversation = replay(conversation_id, records, entry=entry)
        snapshots = [r.seq for r in records if isinstance(r.event, Snapshot)]
        conversation.snapshot_seq = snapshots[-1] if snapshots else 0
        return conversation

    # --- the writer -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer task; ``aclose`` commits what is pending and waits for its end.

        The journal owns this one task (not a task group) so that an error in the code
        using the runtime is not wrapped into an exception group by it.
        """
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.run())

    async def run(self) -> None:
        """Commit what accumulates until ``aclose`` (``start`` runs it for you)."""
        gather = self.durability is not Durability.SYNC  # nobody waits for the commit
        while True:
            await self._wake.wait()
            self._wake.clear()
            # Unless sync: a group gathers for max_delay after its first record, and
            # commits start at most once per max_delay, so a record waits at most about
            # max_delay plus one commit. Committing again as soon as the last commit ended
            # would cross to the store's thread once per conversation or two under load,
            # and each crossing costs the event loop more than the records it carries.
            due = time.monotonic() + self.max_delay  # real time: this is I/O batching
            while self._pending:
                if gather and not self._closed and not self._waiters:
                    await anyio.sleep(max(0.0, due - time.monotonic()))
                due = time.monotonic() + self.max_delay
                await self._commit_some()
            if self._committed < self._recorded and not self._pending:
                # What is left uncommitted was discarded (``discard``): nothing more to wait for.
                self._committed = self._recorded
                self._release()
            if self._closed:
                return

    async def _commit_some(self) -> None:
        # Everything pending goes in one transaction, so each conversation's head can be
        # read from its state right now: it matches the batch's last record of it.
        if not self._pending:  # discarded while the group gathered
            return
        taken, self._pending = self._pending, {}
        listed, self._listed = self._listed, []
        mark = self._recorded
        batch = WriteBatch()
        for record in listed:
            self._note(batch, record)
        encode = self._encoder.encode
        # Wall-clock time: heads are listed by it ("updated since ..."), across restarts and
        # processes, where the runtime's clock is monotonic and per process.
        now = time.time()
        for conversation_id, group in taken.items():
            batch.heads[conversation_id] = self._head(group.conversation, now)
            for body_records in group.bodies:
                body = encode(body_records)
                self.bytes_written += len(body)
                first = body_records[0]
                batch.records.append(
                    EncodedRecord(
                        conversation_id=conversation_id,
                        seq=first.seq,
                        epoch=body_records[-1].epoch,
                        kind=_kind(type(first.event)),
                        body=body,
                    )
                )
        try:
            await self._write(batch)
        except Exception as exc:
            # A journal that cannot write must stop the runtime loudly, not drop records.
            self.failure = exc
            _log.exception("journal_write_failed", error=repr(exc))
            for _, future in self._waiters:
                if not future.done():
                    future.set_exception(exc)
            self._waiters.clear()
            if self.on_failed is not None:
                self.on_failed(exc)
            raise
        self.transactions += 1
        self._committed = mark
        self._release()

    async def _write(self, batch: WriteBatch) -> None:
        """Write the batch; if fenced conversations are refused, the rest once more."""
        while True:
            try:
                await self.store.write(batch)
            except FencedWriteError as exc:
                if not _touches(batch, exc.conversation_ids):
                    raise  # refused what the batch does not hold: retrying would loop
                for conversation_id in exc.conversation_ids:
                    self.fenced[conversation_id] = exc
                # Survived: the node steps down; the traceback is kept here.
                _log.warning(
                    "journal_writes_fenced", partitions=sorted(exc.partitions), exc_info=exc
                )
                if self.on_fenced is not None:
                    self.on_fenced(exc)
                batch = _without(batch, exc.conversation_ids)
            else:
                return

    def discard(self, conversation_ids: Iterable[str], error: FencedWriteError) -> None:
        """Drop what these conversations recorded and did not commit yet: this node lost
        their partition, and nothing it recorded may be written later, even if it gains
        the partition back (the journal the next holder wrote is the truth then). Their
        waiters and callbacks hear ``error``, as for a refused write."""
        ids = set(conversation_ids)
        dropped = False
        for conversation_id in ids:
            self.fenced[conversation_id] = error
            dropped |= self._pending.pop(conversation_id, None) is not None
        self._listed = [r for r in self._listed if r.conversation_id not in ids]
        if dropped:
            self._wake.set()  # let waiters on the dropped records go

    def forget_fenced(self, conversation_ids: Iterable[str]) -> None:
        """The node holds these conversations again (reloaded from the store)."""
        for conversation_id in conversation_ids:
            self.fenced.pop(conversation_id, None)

    def _note(self, batch: WriteBatch, record: JournalRecord[Any]) -> None:
        """Add the approval row or the pruning that ``record`` calls for to ``batch``."""
        event = record.event
        if isinstance(event, ApprovalRequested):
            batch.approvals.append(
                ApprovalRow(
                    approval_id=event.approval_id,
                    conversation_id=record.conversation_id,
                    request=_json_encode(event),  # a listing format: JSON
                )
            )
        elif isinstance(event, ApprovalDecided):
            batch.approvals.append(
                ApprovalRow(
                    approval_id=event.approval_id,
                    conversation_id=record.conversation_id,
                    request=b"",
                    decision=event.decision,
                )
            )
        elif isinstance(event, Snapshot) and self.retention:
            batch.prune[record.conversation_id] = record.seq

    def _release(self) -> None:
        committed = self._committed
        if self._waiters:
            keep = []
            for mark, future in self._waiters:
                if mark <= committed:
                    if not future.done():
                        future.set_result(None)
                else:
                    keep.append((mark, future))
            self._waiters = keep
        if self._callbacks:
            due = [cb for cb in self._callbacks if cb.mark <= committed]
            self._callbacks = [cb for cb in self._callbacks if cb.mark > committed]
            for callback in due:
                error = self.fenced.get(callback.conversation_id or "")
                if error is not None and callback.refused is not None:
                    callback.refused(error)
                else:
                    callback.callback()

    async def aclose(self) -> None:
        """Commit what is pending and stop the writer; raise what stopped it. Idempotent."""
        self._closed = True
        self._wake.set()
        task, self._task = self._task, None
        if task is not None:
            with anyio.CancelScope(shield=True):
                await asyncio.wait([task])
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]


@final
class _Group:
    """One conversation's pending records, as the bodies they will be stored in."""

    __slots__ = ("bodies", "conversation")

    def __init__(self, conversation: Conversation, record: JournalRecord[Any]) -> None:
        self.conversation = conversation
        self.bodies = [[record]]


@final
class _Callback:
    """What runs once the records up to ``mark`` are committed (or refused)."""

    __slots__ = ("callback", "conversation_id", "mark", "refused")

    def __init__(
        self,
        mark: int,
        callback: Callable[[], None],
        conversation_id: str | None,
        refused: Callable[[FencedWriteError], None] | None,
    ) -> None:
        self.mark = mark
        self.callback = callback
        self.conversation_id = conversation_id
        self.refused = refused


def _touches(batch: WriteBatch, conversation_ids: frozenset[str]) -> bool:
    """Whether the batch writes anything of ``conversation_ids``."""
    return bool(
        conversation_ids & batch.heads.keys()
        or any(r.conversation_id in conversation_ids for r in batch.records)
        or any(a.conversation_id in conversation_ids for a in batch.approvals)
        or conversation_ids & batch.prune.keys()
    )


def _without(batch: WriteBatch, conversation_ids: frozenset[str]) -> WriteBatch:
    """The batch less everything of ``conversation_ids``."""
    return WriteBatch(
        records=[r for r in batch.records if r.conversation_id not in conversation_ids],
        heads={c: h for c, h in batch.heads.items() if c not in conversation_ids},
        approvals=[a for a in batch.approvals if a.conversation_id not in conversation_ids],
        prune={c: s for c, s in batch.prune.items() if c not in conversation_ids},
    )


_Body = JournalRecord[Any] | list[JournalRecord[Any]]

# Events that add an approval row to the batch besides their record.
_LISTED: frozenset[type] = frozenset({ApprovalRequested, ApprovalDecided})

_KINDS: dict[type, str] = {}


def _kind(event_type: type) -> str:
    """An event type's tag, looked up once per type (it is read for every record)."""
    kind = _KINDS.get(event_type)
    if kind is None:
        kind = _KINDS[event_type] = str(event_type.__struct_config__.tag or "")  # type: ignore[attr-defined]
    return kind


_json_encode = msgspec.json.Encoder().encode
