"""The replies kept to be published again after NATS comes back, and the connection watch."""

from __future__ import annotations

import pytest

from relaybaton.cluster._connection import ConnectionWatch
from relaybaton.cluster._recent_replies import RecentReplies


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def kept(clock: Clock, *, suspect_s: float, max_kept: int = 20_000) -> RecentReplies:
    return RecentReplies(suspect_s=suspect_s, max_kept=max_kept, clock=clock)


def test_while_connected_only_the_suspect_window_is_kept() -> None:
    clock = Clock()
    recent = kept(clock, suspect_s=10.0)
    for i in range(5):
        recent.record("inbox", f"r{i}".encode())
        clock.now += 4
    # r0 at 100, r1 at 104, r2 at 108, r3 at 112, r4 at 116; a sixth at 120 drops what is
    # older than 110.
    recent.record("inbox", b"r5")
    assert len(recent) == 3
    assert recent.take_owed() == []  # no disconnect: nothing is owed


def test_after_a_disconnect_every_reply_since_the_window_before_it_is_owed_once() -> None:
    clock = Clock()
    recent = kept(clock, suspect_s=10.0)
    recent.record("a", b"too old")  # at 100
    clock.now = 115
    recent.record("a", b"just before")  # within 10 s of the break
    clock.now = 120
    recent.disconnected()
    for i in range(3):  # while down: kept whatever their age
        clock.now += 30
        recent.record("b", f"down {i}".encode())
    clock.now += 1
    recent.disconnected()  # a second notice does not move the start
    assert recent.down
    owed = recent.take_owed()
    assert owed == [("a", b"just before"), ("b", b"down 0"), ("b", b"down 1"), ("b", b"down 2")]
    assert not recent.down
    assert recent.take_owed() == []  # once
    assert len(recent) == 1  # only the last 10 s stay: "down 2", 1 s old


def test_the_memory_is_bounded_and_an_owed_reply_dropped_is_counted() -> None:
    clock = Clock()
    recent = kept(clock, suspect_s=10.0, max_kept=3)
    recent.disconnected()
    for i in range(5):
        recent.record("s", f"{i}".encode())
    assert len(recent) == 3
    assert recent.overflowed == 2
    assert [p for _, p in recent.take_owed()] == [b"2", b"3", b"4"]


@pytest.mark.anyio
async def test_the_watch_tells_every_listener_even_after_one_fails() -> None:
    watch = ConnectionWatch(unnoticed_s=1.0)
    heard: list[str] = []

    def broken() -> None:
        raise RuntimeError("a listener's bug")

    watch.on_disconnected.extend([broken, lambda: heard.append("down")])
    watch.on_reconnected.append(lambda: heard.append("up"))
    await watch.disconnected()
    await watch.reconnected()
    assert heard == ["down", "up"]


@pytest.mark.anyio
async def test_the_disconnect_of_a_closing_node_is_no_news() -> None:
    watch = ConnectionWatch(unnoticed_s=1.0)
    heard: list[str] = []
    watch.on_disconnected.append(lambda: heard.append("down"))
    watch.closing = True
    await watch.disconnected()
    assert heard == []
