"""Conversations hash to partitions the way a producer in any language can repeat."""

from __future__ import annotations

import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relaybaton.cluster._partitions import partition_of


@given(st.text(min_size=1, max_size=80), st.integers(min_value=1, max_value=4096))
def test_a_conversation_always_lands_in_one_partition_in_range(cid: str, count: int) -> None:
    first = partition_of(cid, count)
    assert 0 <= first < count
    assert partition_of(cid, count) == first


def test_the_hash_is_plain_crc32_so_other_languages_can_compute_it() -> None:
    assert partition_of("pg1", 64) == zlib.crc32(b"pg1") % 64
    assert partition_of("conv-ü", 7) == zlib.crc32("conv-ü".encode()) % 7


def test_conversations_spread_over_the_partitions() -> None:
    counts = [0] * 16
    for n in range(16_000):
        counts[partition_of(f"conversation-{n}", 16)] += 1
    assert min(counts) > 800  # within 20 % of the even 1,000
    assert max(counts) < 1200


def test_a_partition_count_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        partition_of("x", 0)
