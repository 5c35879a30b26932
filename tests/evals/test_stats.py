"""The statistics of an evaluation: properties of the intervals and of paired verdicts."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relaybaton.evals import bootstrap_mean, paired_difference, wilson

scores = st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=1, max_size=60)


@given(st.integers(min_value=1, max_value=2000), st.data())
def test_a_wilson_interval_holds_the_observed_rate_within_0_and_1(
    n: int, data: st.DataObject
) -> None:
    passed = data.draw(st.integers(min_value=0, max_value=n))
    interval = wilson(passed, n)
    assert 0.0 <= interval.low <= interval.value <= interval.high <= 1.0
    assert interval.value == passed / n


@given(st.integers(min_value=1, max_value=500), st.data())
def test_a_wilson_interval_narrows_as_the_sample_grows(n: int, data: st.DataObject) -> None:
    passed = data.draw(st.integers(min_value=0, max_value=n))
    small, large = wilson(passed, n), wilson(passed * 4, n * 4)
    assert large.high - large.low <= small.high - small.low + 1e-12


def test_wilson_matches_the_published_interval() -> None:
    # 8 of 10: the Wilson score interval at 95% is [0.490, 0.943].
    interval = wilson(8, 10)
    assert interval.low == pytest.approx(0.4902, abs=1e-4)
    assert interval.high == pytest.approx(0.9433, abs=1e-4)
    assert wilson(0, 0).low == 0.0
    assert wilson(0, 0).high == 1.0


@settings(max_examples=50)
@given(scores)
def test_a_bootstrap_interval_holds_the_mean_within_the_data(values: list[float]) -> None:
    interval = bootstrap_mean(values, resamples=200)
    assert min(values) - 1e-12 <= interval.low <= interval.value <= interval.high
    assert interval.high <= max(values) + 1e-12
    assert bootstrap_mean(values, resamples=200) == interval  # seeded: reproducible


@settings(max_examples=50)
@given(st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=0, max_size=60))
def test_swapping_the_variants_mirrors_the_difference_and_the_verdict(
    pairs: list[tuple[float, float]],
) -> None:
    a, b = [x for x, _ in pairs], [y for _, y in pairs]
    forward, backward = (
        paired_difference(a, b, resamples=200),
        paired_difference(b, a, resamples=200),
    )
    assert forward.mean == pytest.approx(-backward.mean, abs=1e-9)
    assert forward.low <= forward.mean <= forward.high
    mirror = {"better": "worse", "worse": "better"}
    assert backward.verdict == mirror.get(forward.verdict, forward.verdict)


@given(st.lists(st.floats(0, 1), min_size=1, max_size=40))
def test_a_variant_compared_with_itself_shows_no_detectable_difference(values: list[float]) -> None:
    assert paired_difference(values, values, resamples=100).verdict == "no detectable difference"


def test_a_consistent_gain_is_better_and_a_loss_worse_but_not_on_too_few_pairs() -> None:
    a = [0.2, 0.5, 0.4, 0.6, 0.3, 0.5, 0.4, 0.2, 0.3, 0.5]
    b = [x + 0.3 for x in a]
    assert paired_difference(a, b).verdict == "better"
    assert paired_difference(b, a).verdict == "worse"
    assert paired_difference(a[:5], b[:5]).verdict == "no detectable difference"
    noisy = [1.0, 0.0] * 10
    assert paired_difference(noisy, noisy[::-1]).verdict == "no detectable difference"
    with pytest.raises(ValueError, match="one length"):
        paired_difference([1.0], [])
