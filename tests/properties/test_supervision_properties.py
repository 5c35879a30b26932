"""Supervision trees under random crashes, strategies, intensities and clock advances.

Checked against a model written from the docstring of ``_supervision.py``:

- a crash is a restart while fewer than ``max_restarts`` restarts happened in the last
  ``within`` seconds (since the last escalation), and otherwise one escalation;
- a restart replaces exactly the strategy's set of live children (one_for_one: the child;
  one_for_all: all; rest_for_one: the child and those started after it); an escalation makes
  the parent restart the supervisor, which replaces every child and forgets its history;
- a crash loses no message waiting in a mailbox: every unmarked message is handled once, in
  the order it was sent.
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from relaybaton.errors import ActorStoppedError
from relaybaton.runtime import Actor, Strategy, open_system
from relaybaton.testing import FakeClock
from tests.properties._driver import LoopDriver
from tests.properties._driver import settle as settle_loop
from tests.properties._profile import machine_settings

CHILDREN = ("c0", "c1", "c2")


class MarkedMessageError(Exception):
    """The crash a marked message causes."""


class Recorder:
    """What every instance of the test actors reports: instances made, messages handled."""

    def __init__(self) -> None:
        self.instances: Counter[str] = Counter()
        self.handled: defaultdict[str, list[int]] = defaultdict(list)


class Worker(Actor[tuple[str, int], None]):
    def __init__(self, name: str, recorder: Recorder) -> None:
        self.name = name
        self.recorder = recorder
        recorder.instances[name] += 1

    async def receive(self, message: tuple[str, int]) -> None:
        kind, number = message
        if kind == "crash":
            raise MarkedMessageError(f"{self.name} crashes on message {number}")
        self.recorder.handled[self.name].append(number)


class SupervisionMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.driver = LoopDriver()
        self.clock = FakeClock()
        self.recorder = Recorder()
        self.numbers = itertools.count()
        self.sent: defaultdict[str, list[int]] = defaultdict(list)
        self.stopped: set[str] = set()
        self.stop_marks: dict[str, int] = {}
        self.crashes_sent = 0
        self.opened = False

    @initialize(
        strategy=st.sampled_from(list(Strategy)),
        max_restarts=st.integers(min_value=0, max_value=3),
        within=st.sampled_from([0.5, 1.0, 3.0, 10.0]),
    )
    def open(self, strategy: Strategy, max_restarts: int, within: float) -> None:
        self.strategy = strategy
        self.max_restarts = max_restarts
        self.within = within

        # The root tolerates anything: escalations of `sup` must end in its restart.
        self.system = self.driver.open(
            open_system(clock=self.clock, max_restarts=10_000, within=1.0)
        )
        self.opened = True

        async def start() -> None:
            self.sup = self.system.spawn_supervisor(
                "sup", strategy=strategy, max_restarts=max_restarts, within=within
            )
            self.refs = {}
            for name in CHILDREN:
                self.refs[name] = await self.sup.spawn(
                    lambda name=name: Worker(name, self.recorder), name=name
                )

        self.driver.call(start)

    def teardown(self) -> None:
        self.driver.close()

    # --- rules ------------------------------------------------------------------------------

    def send(self, child: str, crash: bool) -> None:
        """Tell one message (inside the loop: a tell may start a drain task)."""
        self.send_together([(child, crash)])

    def send_together(self, messages: list[tuple[str, bool]]) -> None:
        """Tell several messages with no loop iteration in between."""
        numbered = [(child, crash, next(self.numbers)) for child, crash in messages]

        async def tell() -> None:
            for child, crash, number in numbered:
                if child in self.stopped:
                    with pytest.raises(ActorStoppedError):
                        self.refs[child].tell(("crash", number))
                    continue
                self.refs[child].tell(("crash" if crash else "ok", number))
                if crash:
                    self.crashes_sent += 1
                else:
                    self.sent[child].append(number)

        self.driver.call(tell)

    @rule(child=st.sampled_from(CHILDREN), crash=st.booleans(), settle=st.booleans())
    def tell(self, child: str, crash: bool, settle: bool) -> None:
        self.send(child, crash)
        if settle:
            self.driver.call(settle_loop)

    @rule(child=st.sampled_from(CHILDREN), count=st.integers(1, 6), marked=st.integers(0, 5))
    def tell_a_burst_with_one_crash(self, child: str, count: int, marked: int) -> None:
        # No settling in between: the drain task finds the whole burst in the mailbox.
        for index in range(count):
            self.send(child, crash=index == marked)

    @rule(
        messages=st.lists(
            st.tuples(st.sampled_from(CHILDREN), st.booleans()), min_size=2, max_size=6
        )
    )
    def tell_several_children_at_once(self, messages: list[tuple[str, bool]]) -> None:
        # Drain tasks are started but none has run yet when the first crash restarts others.
        self.send_together(messages)

    @rule()
    def settle(self) -> None:
        self.driver.call(settle_loop)

    @rule(seconds=st.sampled_from([0.1, 0.5, 1.0, 2.5, 10.0]))
    def advance_clock(self, seconds: float) -> None:
        self.driver.call(lambda: self.clock.advance(seconds))

    @precondition(lambda self: len(self.stopped) < len(CHILDREN) - 1)
    @rule(child=st.sampled_from(CHILDREN))
    def stop_child(self, child: str) -> None:
        if child in self.stopped:
            return
        self.driver.call(self.refs[child].stop)
        self.stopped.add(child)
        self.stop_marks[child] = len(self.system.supervision_events)
        assert self.refs[child].stopped

    # --- invariants -------------------------------------------------------------------------

    @invariant()
    def decisions_follow_intensity_and_strategy(self) -> None:
        if not self.opened:
            return
        events = list(self.system.supervision_events)
        recent: list[float] = []
        expected_instances = Counter(dict.fromkeys(CHILDREN, 1))
        escalations = 0
        for index, event in enumerate(events):
            if event.supervisor == "system":
                # The root's only business here: restarting `sup` after it escalated.
                assert event.kind == "restart"
                assert event.child == "sup"
                assert event.restarted == ("sup",)
                assert index > 0
                assert events[index - 1].kind == "escalate"
                continue
            assert event.supervisor == "sup"
            now = event.at
            recent = [t for t in recent if t > now - self.within]
            if len(recent) >= self.max_restarts:
                assert event.kind == "escalate", (
                    f"{len(recent)} restarts in the last {self.within}s allow no more "
                    f"(max_restarts={self.max_restarts}), yet {event}"
                )
                escalations += 1
                # The root restarts `sup` next: every child, and the history is forgotten.
                assert index + 1 < len(events)
                assert events[index + 1].supervisor == "system"
                recent = []
                for name in CHILDREN:
                    if name not in self.stopped_before(index):
                        expected_instances[name] += 1
                continue
            assert event.kind == "restart", (
                f"{len(recent)} restarts in the last {self.within}s leave room, yet {event}"
            )
            recent.append(now)
            live = [c for c in CHILDREN if c not in self.stopped_before(index)]
            if self.strategy is Strategy.ONE_FOR_ONE:
                expected = (event.child,)
            elif self.strategy is Strategy.ONE_FOR_ALL:
                expected = tuple(live)
            else:
                expected = tuple(live[live.index(event.child) :])
            assert event.restarted == expected
            for name in expected:
                expected_instances[name] += 1
        assert self.sup.escalations == escalations
        assert dict(self.recorder.instances) == dict(expected_instances)

    def stopped_before(self, index: int) -> set[str]:
        # A child counts as stopped for the decisions taken after its stop returned.
        return {name for name, mark in self.stop_marks.items() if mark <= index}

    @invariant()
    def no_message_is_lost_or_handled_twice(self) -> None:
        if not self.opened:
            return
        self.driver.call(settle_loop)
        for name in CHILDREN:
            assert self.recorder.handled[name] == self.sent[name]
        # Every crash sent became exactly one decision of `sup`.
        decisions = [e for e in self.system.supervision_events if e.supervisor == "sup"]
        assert len(decisions) == self.crashes_sent

    @invariant()
    def idle_system_holds_no_task(self) -> None:
        if not self.opened:
            return
        self.driver.call(settle_loop)
        assert self.system.task_count == 0


SupervisionMachine.TestCase.settings = machine_settings(max_examples=120, steps=30)
TestSupervision = SupervisionMachine.TestCase
