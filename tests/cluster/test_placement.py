"""Rendezvous placement: deterministic, total, and moving little when members change."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from relaybaton.cluster import assignment

names = st.sets(st.text("abcdefgh0123456789-", min_size=1, max_size=12), min_size=1, max_size=8)


@settings(max_examples=200, derandomize=True)
@given(members=names, partitions=st.integers(1, 256))
def test_every_partition_goes_to_exactly_one_live_member(
    members: set[str], partitions: int
) -> None:
    placed = assignment(partitions, members)
    assert sorted(placed) == list(range(partitions))
    assert set(placed.values()) <= members
    # The same members in another order give the same placement on every node.
    assert assignment(partitions, sorted(members, reverse=True)) == placed


@settings(max_examples=100, derandomize=True)
@given(members=names, newcomer=st.text("ijklmnop", min_size=1, max_size=12))
def test_a_joining_member_takes_only_partitions_it_wins(members: set[str], newcomer: str) -> None:
    before = assignment(256, members)
    after = assignment(256, {*members, newcomer})
    moved = [p for p in before if before[p] != after[p]]
    assert all(after[p] == newcomer for p in moved)


def test_a_joining_member_moves_about_one_nth_of_the_partitions() -> None:
    members = {f"node-{i}" for i in range(4)}
    before = assignment(1024, members)
    after = assignment(1024, {*members, "node-4"})
    moved = sum(before[p] != after[p] for p in before)
    assert 1024 / 5 * 0.7 < moved < 1024 / 5 * 1.3


def test_a_leaving_member_moves_only_its_own_partitions() -> None:
    members = {f"node-{i}" for i in range(3)}
    before = assignment(512, members)
    after = assignment(512, members - {"node-1"})
    assert {p for p in before if before[p] != after[p]} == {
        p for p, node in before.items() if node == "node-1"
    }
