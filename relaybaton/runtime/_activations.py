"""Activations: one actor per (type, key), created on the first message, passivated when idle.

In the manner of Orleans grains and AutoGen agent keys: a conversation that reaches an agent
gets its own activation, so one conversation's messages are serialized while different
conversations run side by side. An activation whose mailbox runs empty is dropped at once
(it holds no task and no table entry); the next message for its key creates a fresh one.
State that must outlive that belongs in the conversation or the store, not the instance.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Generic, TypeVar, final

from relaybaton.errors import ActorStoppedError
from relaybaton.runtime._actor import Actor, ActorRef
from relaybaton.runtime._cell import ActorCell
from relaybaton.runtime._supervision import RestartWindow, SupervisionEvent, escalation

if TYPE_CHECKING:
    from relaybaton.runtime._supervision import Supervisor
    from relaybaton.runtime._system import ActorSystem

__all__ = ["ActivationTable"]

M = TypeVar("M")
R = TypeVar("R")


@final
class _ActivationTarget(Generic[M, R]):
    __slots__ = ("key", "table")

    def __init__(self, table: ActivationTable[M, R], key: str) -> None:
        self.table = table
        self.key = key

    def cell(self) -> ActorCell[M, R]:
        return self.table.cell_for(self.key)

    @property
    def is_stopped(self) -> bool:
        return self.table.is_stopped

    async def stop(self) -> None:
        cell = self.table.live.get(self.key)
        if cell is not None:
            await cell.stop()


@final
class ActivationTable(Generic[M, R]):
    """The live activations of one actor type; a single child of its supervisor.

    Crashes restart the one activation (one_for_one) while the whole table's restarts stay
    within ``max_restarts`` per ``within`` seconds; past that the table escalates to its
    supervisor, whose restart of the table restarts every live activation.
    """

    def __init__(
        self,
        system: ActorSystem,
        name: str,
        factory: Callable[[], Actor[M, R]],
        *,
        parent: Supervisor,
        capacity: int,
        max_restarts: int,
        within: float,
    ) -> None:
        self.system = system
        self.name = name
        self.factory = factory
        self.parent = parent
        self.capacity = capacity
        self.max_restarts = max_restarts
        self.within = within
        self.live: dict[str, ActorCell[M, R]] = {}
        self.is_stopped = False
        self.created = 0
        self.restart_count = 0
        self._window = RestartWindow(max_restarts, within)

    def __repr__(self) -> str:
        return f"ActivationTable({self.name!r}, live={len(self.live)})"

    def ref(self, key: str) -> ActorRef[M, R]:
        """The ref of the activation for ``key``; valid across passivations."""
        return ActorRef(f"{self.name}/{key}", _ActivationTarget(self, key))

    def cell_for(self, key: str) -> ActorCell[M, R]:
        """The live activation for ``key``, created if there is none."""
        cell = self.live.get(key)
        if cell is None:
            if self.is_stopped:
                raise ActorStoppedError(f"{self.name}/{key}")
            cell = ActorCell(
                self.system,
                f"{self.name}/{key}",
                self.factory,
                parent=self,  # type: ignore[arg-type]
                capacity=self.capacity,
                key=key,
                passivates=True,
            )
            self.live[key] = cell
            self.created += 1
        return cell

    def child_idle(self, cell: ActorCell[M, R]) -> None:
        """Passivate ``cell``: its mailbox is empty and its drain ended."""
        if cell.task is None and not len(cell.mailbox) and self.live.get(cell.key or "") is cell:
            del self.live[cell.key or ""]
            # The cell and its instance point at each other. Breaking the cycle here frees
            # both (and the mailbox) by reference counting at once; left to the garbage
            # collector, they were most of the objects it had to find per conversation.
            del cell.instance.context

    # --- Parent protocol ------------------------------------------------------------------

    def child_failed(self, child: ActorCell[M, R], error: Exception) -> None:
        now = self.system.clock.now()
        if not self._window.admit(now):
            escalated = escalation(
                self.system, self.name, self._window, child=child.name, error=error, at=now
            )
            self.parent.child_failed(self, escalated)
            return
        self.restart_count += 1
        child.restart(f"{type(error).__name__}")
        self.system.record_supervision(
            SupervisionEvent(
                kind="restart",
                supervisor=self.name,
                child=child.name,
                error=repr(error),
                restarted=(child.name,),
                at=now,
            )
        )

    def child_stopped(self, child: ActorCell[M, R]) -> None:
        if self.live.get(child.key or "") is child:
            del self.live[child.key or ""]

    # --- Child protocol -------------------------------------------------------------------

    def restart(self, reason: str) -> None:
        self._window.clear()
        for cell in list(self.live.values()):
            cell.restart(reason)

    def terminate(self, reason: str) -> None:
        self.is_stopped = True
        for cell in list(self.live.values()):
            cell.terminate(reason)

    def close(self) -> None:
        self.is_stopped = True
        for cell in list(self.live.values()):
            cell.close()
