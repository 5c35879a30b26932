"""Actors and the refs that reach them.

User code subclasses ``Actor`` and holds ``ActorRef`` values, never actor instances: the
runtime creates, restarts and stops instances behind a ref.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Generic, Protocol, TypeVar, final

from relaybaton.runtime._envelope import Envelope

if TYPE_CHECKING:
    from relaybaton.runtime._cell import ActorCell
    from relaybaton.runtime._system import ActorSystem

__all__ = ["Actor", "ActorContext", "ActorRef"]

M = TypeVar("M")
R = TypeVar("R")


class Actor(Generic[M, R]):
    """Base class of actors: override ``receive``, and the hooks you need.

    One instance handles one message at a time, in mailbox order. ``receive`` returns the
    reply of an ``ask`` (ignored for a ``tell``). An exception from ``receive`` is a crash:
    an asker gets ``CalleeFailedError``, ``on_failure`` runs, and the supervisor decides
    (restart a fresh instance on the same mailbox, or escalate). Messages waiting in the
    mailbox survive the crash.
    """

    context: ActorContext[M, R]

    async def on_start(self) -> None:
        """Run before the first message of this instance."""

    async def receive(self, message: M) -> R:
        """Handle one message; the return value answers an ``ask``."""
        raise NotImplementedError

    async def on_stop(self) -> None:
        """Run once after the last message, on stop or passivation."""

    async def on_failure(self, error: Exception, envelope: Envelope[M] | None) -> None:
        """Run when ``receive`` (or ``on_start``, with no envelope) raised ``error``."""


class ActorContext(Protocol[M, R]):
    """What an actor instance knows about itself: its ref, key, system and current message.

    The actor's cell plays this part itself, so an activation costs no extra object.
    """

    @property
    def system(self) -> ActorSystem: ...

    @property
    def name(self) -> str: ...

    @property
    def key(self) -> str | None: ...

    @property
    def ref(self) -> ActorRef[M, R]: ...

    @property
    def envelope(self) -> Envelope[M] | None: ...


class _Target(Protocol[M, R]):
    def cell(self) -> ActorCell[M, R]: ...

    @property
    def is_stopped(self) -> bool: ...

    async def stop(self) -> None: ...


@final
class ActorRef(Generic[M, R]):
    """The address of an actor (or of an activation, resolved at each send).

    ``tell`` never waits; ``send`` waits for room in a full mailbox; ``ask`` waits for the
    reply with an optional deadline. A ref to an activation stays valid across passivation:
    the next message creates a fresh activation.
    """

    __slots__ = ("_target", "name")

    def __init__(self, name: str, target: _Target[M, R]) -> None:
        self.name = name
        self._target = target

    def __repr__(self) -> str:
        return f"ActorRef({self.name!r})"

    def tell(
        self,
        message: M,
        *,
        sender: str | None = None,
        conversation_id: str | None = None,
        epoch: int = 0,
        trace_id: str | None = None,
    ) -> None:
        """Queue ``message`` without waiting.

        Raises:
            ActorStoppedError: the actor is stopped.
            MailboxFullError: the mailbox is full (use ``send`` to wait instead).
        """
        self._target.cell().enqueue(
            Envelope(
                message=message,
                sender=sender,
                conversation_id=conversation_id,
                epoch=epoch,
                trace_id=trace_id,
            )
        )

    async def send(
        self,
        message: M,
        *,
        sender: str | None = None,
        conversation_id: str | None = None,
        epoch: int = 0,
        trace_id: str | None = None,
    ) -> None:
        """Queue ``message``, waiting while the mailbox is full. On cancel nothing is queued."""
        await self._target.cell().enqueue_wait(
            Envelope(
                message=message,
                sender=sender,
                conversation_id=conversation_id,
                epoch=epoch,
                trace_id=trace_id,
            )
        )

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
        """Send ``message`` and wait for the reply.

        On cancel the request stays queued and its reply, when it comes, is a dead letter.

        Raises:
            AskTimeoutError: no reply within ``timeout`` seconds (measured on the system clock).
            CalleeFailedError: the callee raised while handling it; the cause is chained.
            ActorStoppedError: the actor is stopped, or stopped before handling it.
            MailboxFullError: the mailbox is full.
        """
        return await self._target.cell().ask(
            message,
            timeout=timeout,
            sender=sender,
            conversation_id=conversation_id,
            epoch=epoch,
            trace_id=trace_id,
        )

    async def stop(self) -> None:
        """Stop the actor: queued messages are still handled, later sends fail.

        Idempotent; returns once ``on_stop`` has run. A stopped actor is never revived.
        """
        await self._target.stop()

    @property
    def stopped(self) -> bool:
        """Whether the actor behind this ref is stopped (activations: once their table is)."""
        return self._target.is_stopped
