"""Supervision trees: restart strategies, restart intensity, escalation.

A ``Supervisor`` owns an ordered list of children (actor cells, activation tables, other
supervisors). When a child crashes it restarts, per its strategy,

- ``one_for_one``: the child alone;
- ``one_for_all``: every child;
- ``rest_for_one``: the child and every child started after it.

A restart gives a fresh instance on the same mailbox, so nothing waiting there is lost. If a
supervisor would restart more than ``max_restarts`` times within ``within`` seconds, it
escalates exactly once: its parent treats it as a crashed child (restarting it restarts its
whole subtree and clears its history); the root escalates to the system, which fails.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol, TypeVar, final

import msgspec

from relaybaton.errors import ConfigError, EscalationError
from relaybaton.runtime._actor import Actor, ActorRef
from relaybaton.runtime._cell import ActorCell

if TYPE_CHECKING:
    from relaybaton.runtime._activations import ActivationTable
    from relaybaton.runtime._system import ActorSystem

__all__ = ["Child", "RestartWindow", "Strategy", "SupervisionEvent", "Supervisor", "escalation"]

M = TypeVar("M")
R = TypeVar("R")


class Strategy(StrEnum):
    """Which children a crash restarts."""

    ONE_FOR_ONE = "one_for_one"
    ONE_FOR_ALL = "one_for_all"
    REST_FOR_ONE = "rest_for_one"


class SupervisionEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A decision a supervisor took: ``restart`` (with the restarted names) or ``escalate``."""

    kind: str
    supervisor: str
    child: str
    error: str
    restarted: tuple[str, ...] = ()
    at: float = 0.0


@final
class RestartWindow:
    """Restart intensity: at most ``max_restarts`` within any ``within`` seconds."""

    __slots__ = ("_times", "max_restarts", "within")

    def __init__(self, max_restarts: int, within: float) -> None:
        self.max_restarts = max_restarts
        self.within = within
        self._times: deque[float] = deque()

    def admit(self, now: float) -> bool:
        """Count a restart at ``now``; False (and not counted) if it would exceed the limit."""
        times = self._times
        while times and times[0] <= now - self.within:
            times.popleft()
        if len(times) >= self.max_restarts:
            return False
        times.append(now)
        return True

    def clear(self) -> None:
        """Forget the history (the owner itself was restarted)."""
        self._times.clear()


def escalation(
    system: ActorSystem,
    owner: str,
    window: RestartWindow,
    *,
    child: str,
    error: Exception,
    at: float,
) -> EscalationError:
    """Record an escalation and return the error the parent should see."""
    escalated = EscalationError(owner, window.max_restarts, window.within)
    escalated.__cause__ = error
    system.record_supervision(
        SupervisionEvent(kind="escalate", supervisor=owner, child=child, error=repr(error), at=at)
    )
    return escalated


class Child(Protocol):
    """What a supervisor can do to a child."""

    @property
    def name(self) -> str: ...

    @property
    def is_stopped(self) -> bool: ...

    def restart(self, reason: str) -> None: ...

    def terminate(self, reason: str) -> None: ...

    def close(self) -> None: ...


@final
class Supervisor:
    """A node of the supervision tree. Create with ``ActorSystem.spawn_supervisor``."""

    def __init__(
        self,
        system: ActorSystem,
        name: str,
        *,
        strategy: Strategy = Strategy.ONE_FOR_ONE,
        max_restarts: int = 3,
        within: float = 5.0,
        parent: Supervisor | None = None,
    ) -> None:
        if max_restarts < 0 or within <= 0:
            raise ConfigError(
                f"supervisor {name!r}: max_restarts must be >= 0 and within > 0, "
                f"got {max_restarts} and {within}"
            )
        self.system = system
        self.name = name
        self.strategy = strategy
        self.max_restarts = max_restarts
        self.within = within
        self.parent = parent
        self.children: list[Child] = []
        self.is_stopped = False
        self.restart_count = 0
        self.escalations = 0
        self._window = RestartWindow(max_restarts, within)

    def __repr__(self) -> str:
        return f"Supervisor({self.name!r}, {self.strategy.value})"

    # --- building the tree ----------------------------------------------------------------

    async def spawn(
        self, factory: Callable[[], Actor[M, R]], *, name: str, capacity: int = 1000
    ) -> ActorRef[M, R]:
        """Start an actor under this supervisor; return its ref once ``on_start`` ran.

        Raises whatever ``on_start`` raised (the actor is then not started).
        """
        cell: ActorCell[M, R] = ActorCell(
            self.system, name, factory, parent=self, capacity=capacity
        )
        if type(cell.instance).on_start is not Actor.on_start:
            await cell.instance.on_start()
        cell._started = True
        self.children.append(cell)
        return cell.ref

    def spawn_supervisor(
        self,
        name: str,
        *,
        strategy: Strategy = Strategy.ONE_FOR_ONE,
        max_restarts: int = 3,
        within: float = 5.0,
    ) -> Supervisor:
        """Add a child supervisor."""
        child = Supervisor(
            self.system,
            name,
            strategy=strategy,
            max_restarts=max_restarts,
            within=within,
            parent=self,
        )
        self.children.append(child)
        return child

    def activations(
        self,
        name: str,
        factory: Callable[[], Actor[M, R]],
        *,
        capacity: int = 1000,
        max_restarts: int = 10,
        within: float = 10.0,
    ) -> ActivationTable[M, R]:
        """Add a table of activations of one actor type, keyed by string."""
        from relaybaton.runtime._activations import ActivationTable  # noqa: PLC0415 - cycle

        table: ActivationTable[M, R] = ActivationTable(
            self.system,
            name,
            factory,
            parent=self,
            capacity=capacity,
            max_restarts=max_restarts,
            within=within,
        )
        self.children.append(table)
        return table

    # --- the Parent protocol --------------------------------------------------------------

    def child_failed(self, child: Child, error: Exception) -> None:
        """Restart per strategy, or escalate when the restart intensity is exceeded."""
        if self.is_stopped:
            return
        now = self.system.clock.now()
        if not self._window.admit(now):
            self._escalate(child, error, now)
            return
        affected = self._affected(child)
        for each in affected:
            each.restart(f"{child.name} failed: {type(error).__name__}")
        self.restart_count += 1
        self.system.record_supervision(
            SupervisionEvent(
                kind="restart",
                supervisor=self.name,
                child=child.name,
                error=repr(error),
                restarted=tuple(c.name for c in affected),
                at=now,
            )
        )

    def child_stopped(self, child: Child) -> None:
        """Forget a child that stopped for good."""
        if child in self.children:
            self.children.remove(child)

    def child_idle(self, child: Child) -> None:
        """Nothing to do: a supervised actor stays until it is stopped (no passivation)."""

    # --- the Child protocol (as seen by our parent) ---------------------------------------

    def restart(self, reason: str) -> None:
        """Restart every child and forget the restart history."""
        self._window.clear()
        for child in list(self.children):
            child.restart(reason)

    def terminate(self, reason: str) -> None:
        """Terminate every child, last started first."""
        for child in reversed(list(self.children)):
            child.terminate(reason)
        self.is_stopped = True

    def close(self) -> None:
        """Close every child's mailbox so that queued messages drain."""
        for child in reversed(list(self.children)):
            child.close()

    # --- internals ------------------------------------------------------------------------

    def _affected(self, child: Child) -> list[Child]:
        live = [c for c in self.children if not c.is_stopped]
        if self.strategy is Strategy.ONE_FOR_ONE or child not in live:
            return [child]
        if self.strategy is Strategy.ONE_FOR_ALL:
            return live
        return live[live.index(child) :]

    def _escalate(self, child: Child, error: Exception, now: float) -> None:
        self.escalations += 1
        escalated = escalation(
            self.system, self.name, self._window, child=child.name, error=error, at=now
        )
        if self.parent is not None:
            self.parent.child_failed(self, escalated)
        else:
            self.terminate("escalated")
            self.system.fail(escalated)
