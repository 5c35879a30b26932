"""The actor cell: one mailbox, the current instance, and the task that drains the mailbox.

A cell holds no task while its mailbox is empty: a message to an idle cell starts one drain
task, which handles messages until the mailbox is empty and then ends. So an idle actor
costs its mailbox and instance only, and a burst of messages costs one task, not one each.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar, final

from relaybaton.errors import ActorStoppedError, CalleeFailedError
from relaybaton.runtime._actor import Actor, ActorRef
from relaybaton.runtime._envelope import Envelope
from relaybaton.runtime._mailbox import Mailbox, MailboxClosed

if TYPE_CHECKING:
    from relaybaton.runtime._system import ActorSystem

__all__ = ["ActorCell", "Parent"]

M = TypeVar("M")
R = TypeVar("R")


class Parent(Protocol):
    """What a cell reports to: a supervisor or an activation table."""

    def child_failed(self, child: ActorCell[object, object], error: Exception) -> None:
        """Decide what to do about a crashed child (restart, or escalate)."""
        ...

    def child_stopped(self, child: ActorCell[object, object]) -> None:
        """Forget a child that stopped for good."""
        ...

    def child_idle(self, child: ActorCell[object, object]) -> None:
        """A passivating child's mailbox is empty and its drain ended (see ``passivates``)."""
        ...


@final
class ActorCell(Generic[M, R]):
    """Runs one actor: mailbox, instance, drain task, stop and restart."""

    __slots__ = (
        "_abort",
        "_drain_gen",
        "_ref",
        "_started",
        "_stop_waiters",
        "current",
        "envelope",
        "factory",
        "instance",
        "is_stopped",
        "key",
        "mailbox",
        "name",
        "parent",
        "passivates",
        "restarts",
        "system",
        "task",
    )

    def __init__(
        self,
        system: ActorSystem,
        name: str,
        factory: Callable[[], Actor[M, R]],
        *,
        parent: Parent,
        capacity: int = 1000,
        key: str | None = None,
        passivates: bool = False,
    ) -> None:
        self.system = system
        self.name = name
        self.key = key
        self.factory = factory
        self.parent = parent
        # Tell the parent whenever the drain ends idle. A flag, not a bound-method
        # callback: one object less per activation for the garbage collector to walk.
        self.passivates = passivates
        self.mailbox: Mailbox[Envelope[M]] = Mailbox(name, capacity)
        self._ref: ActorRef[M, R] | None = None
        self.envelope: Envelope[M] | None = None  # the message being handled, for the actor
        self.instance = self._new_instance()
        self.task: asyncio.Task[None] | None = None
        self.current: Envelope[M] | None = None
        self.is_stopped = False
        self.restarts = 0
        self._started = False
        self._drain_gen = 0
        self._abort: tuple[Exception, str] | None = None
        self._stop_waiters: list[asyncio.Future[None]] | None = None

    def __repr__(self) -> str:
        return f"ActorCell({self.name!r})"

    @property
    def ref(self) -> ActorRef[M, R]:
        """This actor's ref (made on first use: most activations never need one)."""
        if self._ref is None:
            self._ref = ActorRef(self.name, self)
        return self._ref

    # --- the _Target protocol of ActorRef -------------------------------------------------

    def cell(self) -> ActorCell[M, R]:
        return self

    def enqueue(self, envelope: Envelope[M], *, bounded: bool = True) -> None:
        """Queue an envelope and make sure a drain task will handle it.

        ``bounded=False`` is for the kernel's own messages (batons, dispatched turns), whose
        number is bounded elsewhere; refusing one would strand a conversation.
        """
        try:
            self.mailbox.put_nowait(envelope, bounded=bounded)
        except ActorStoppedError:
            self.system.dead_letters.record(
                self.name, envelope.message, "stopped", self.system.clock.now()
            )
            raise
        if self.task is None:
            self._start_drain()

    async def ask(
        self,
        message: M,
        *,
        timeout: float | None = None,
        sender: str | None = None,
        conversation_id: str | None = None,
        epoch: int = 0,
        trace_id: str | None = None,
    ) -> R:
        """Queue a request and wait for its reply; see ``ActorRef.ask``."""
        reply: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self.enqueue(
            Envelope(
                message=message,
                sender=sender,
                reply=reply,
                conversation_id=conversation_id,
                epoch=epoch,
                trace_id=trace_id,
            )
        )
        if timeout is None:
            return await reply  # type: ignore[return-value]
        pending = self.system.deadlines.add(reply, timeout, self.name)
        try:
            return await reply  # type: ignore[return-value]
        finally:
            pending.pop(reply, None)

    async def enqueue_wait(self, envelope: Envelope[M]) -> None:
        """Queue an envelope, waiting for room; then make sure it will be handled."""
        await self.mailbox.put(envelope)
        if self.task is None:
            self._start_drain()

    async def stop(self) -> None:
        """Close the mailbox, let queued messages be handled, run ``on_stop``. Idempotent."""
        if self.is_stopped:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._stop_waiters is None:
            self._stop_waiters = []
        self._stop_waiters.append(waiter)
        self.close()
        await waiter

    def close(self) -> None:
        """Refuse new messages; the queued ones are still handled, then the actor stops."""
        if not self.mailbox.closed:
            self.mailbox.close()
            if self.task is None:
                self._start_drain()

    # --- supervision ----------------------------------------------------------------------

    def restart(self, reason: str) -> None:
        """Replace the instance with a fresh one on the same mailbox.

        Called by the parent. If another task is draining (a sibling's failure restarts
        this cell), that task is cancelled: its message in progress fails with
        ``CalleeFailedError`` or becomes a ``restarted`` dead letter. Queued messages stay.
        """
        if self.is_stopped:
            return  # a stopped actor is never revived
        self.restarts += 1
        task = self.task
        if task is not None and task is not asyncio.current_task():
            self._cancel_drain(
                task,
                CalleeFailedError(self.name, RuntimeError(f"restarted: {reason}")),
                "restarted",
            )
        self.instance = self._new_instance()
        self._started = False
        if self.task is None and (len(self.mailbox) or self.mailbox.closed):
            self._start_drain()

    def terminate(self, reason: str) -> None:
        """Stop at once without handling the queue: queued messages become dead letters."""
        if self.is_stopped:
            return
        self.mailbox.close()
        now = self.system.clock.now()
        for envelope in self.mailbox.drain():
            self._fail_envelope(envelope, ActorStoppedError(self.name), reason, now)
        task = self.task
        if task is not None and task is not asyncio.current_task():
            self._cancel_drain(task, ActorStoppedError(self.name), reason)
        self._mark_stopped()

    # --- internals ------------------------------------------------------------------------

    def _new_instance(self) -> Actor[M, R]:
        instance = self.factory()
        instance.context = self
        return instance

    def _cancel_drain(self, task: asyncio.Task[None], error: Exception, reason: str) -> None:
        self._abort = (error, reason)
        self._drain_gen += 1
        self.task = None
        task.cancel(reason)
        # A task cancelled before its first step never enters `_drain`, so its `finally`
        # (which tells the system it ended) never runs; forget it when it is done instead.
        # Only this rare path pays for the callback.
        task.add_done_callback(self.system.forget_task)

    def _start_drain(self) -> None:
        self._drain_gen += 1
        self.task = self.system.start_task(self._drain(self._drain_gen))

    async def _drain(self, gen: int) -> None:
        # One coroutine for the whole drain (no helper frames): every frame of a parked
        # conversation is an object the garbage collector walks.
        system = self.system
        try:
            mailbox = self.mailbox
            while self._drain_gen == gen:
                instance = self.instance
                if not self._started:
                    self._started = True
                    if type(instance).on_start is not Actor.on_start:
                        try:
                            await instance.on_start()
                        except Exception as exc:
                            await self._crashed(exc, None)
                            continue
                try:
                    envelope = mailbox.poll()
                except MailboxClosed:
                    await self._finish_stop(instance)
                    break
                if envelope is None:
                    break
                self.current = envelope
                self.envelope = envelope
                try:
                    result = await instance.receive(envelope.message)
                except asyncio.CancelledError:
                    # Our parent restarted or terminated us (it set _abort), or the system is
                    # shutting down; either way the asker must hear about it.
                    error, reason = self._abort or (ActorStoppedError(self.name), "shutdown")
                    self._fail_envelope(envelope, error, reason, self.system.clock.now())
                    raise
                except Exception as exc:
                    self.current = None
                    self.envelope = None
                    await self._crashed(exc, envelope)
                    continue
                self.current = None
                self.envelope = None
                reply = envelope.reply
                if reply is not None:
                    if reply.done():
                        self.system.dead_letters.record(
                            self.name, result, "orphan_reply", self.system.clock.now()
                        )
                    else:
                        reply.set_result(result)
        except Exception as error:
            # Actor errors are handled in the loop; anything reaching here is a bug in the
            # kernel itself, and the only safe answer is to stop everything loudly.
            system.log.exception("runtime_task_failed", actor=self.name, error=repr(error))
            system.fail(error)
        finally:
            if self._drain_gen == gen:
                # Still this cell's drain, so ``self.task`` is this task (set before it
                # first ran). A drain that was replaced was cancelled by ``_cancel_drain``,
                # which forgets it when it is done.
                system.forget_task(self.task)  # type: ignore[arg-type]
                self.task = None
        if self.passivates and self._drain_gen == gen and not self.is_stopped:
            self.parent.child_idle(self)  # type: ignore[arg-type]

    async def _crashed(self, error: Exception, envelope: Envelope[M] | None) -> None:
        now = self.system.clock.now()
        if envelope is not None:
            self._fail_envelope(envelope, CalleeFailedError(self.name, error), "crashed", now)
        try:
            await self.instance.on_failure(error, envelope)
        except Exception as hook_error:  # a broken hook must not hide the original crash
            self.system.log.exception(
                "on_failure_hook_failed", actor=self.name, error=repr(hook_error)
            )
        # The crash is survived (the supervisor decides what happens next): its traceback
        # is logged here, where it was caught, whether or not an asker hears of it.
        self.system.log.warning("actor_crashed", actor=self.name, error=repr(error), exc_info=error)
        self.parent.child_failed(self, error)  # type: ignore[arg-type]

    def _fail_envelope(
        self, envelope: Envelope[M], error: Exception, reason: str, now: float
    ) -> None:
        reply = envelope.reply
        if reply is not None and not reply.done():
            if isinstance(error, CalleeFailedError):
                error.__cause__ = error.error
            reply.set_exception(error)
        else:
            self.system.dead_letters.record(self.name, envelope.message, reason, now)

    async def _finish_stop(self, instance: Actor[M, R]) -> None:
        if self._started and type(instance).on_stop is not Actor.on_stop:
            try:
                await instance.on_stop()
            except Exception as exc:
                self.system.log.exception("on_stop_failed", actor=self.name, error=repr(exc))
        self._mark_stopped()

    def _mark_stopped(self) -> None:
        self.is_stopped = True
        self.parent.child_stopped(self)  # type: ignore[arg-type]
        for waiter in self._stop_waiters or ():
            if not waiter.done():
                waiter.set_result(None)
        self._stop_waiters = None
