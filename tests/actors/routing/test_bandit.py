"""The learned router's slopes: calls in one bucket are told apart by their numeric features."""

from __future__ import annotations

import itertools
import math
import random

import msgspec
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from relaybaton.actors.routing import LearnedRouter, TaskFeatures
from relaybaton.actors.routing._bandit import bucket_of
from relaybaton.errors import ConfigError


def test_within_one_bucket_more_number_words_raise_the_strong_models_gain() -> None:
    learned = LearnedRouter(decay=1.0, explore=0.0)
    plain = TaskFeatures(domain="math", expected_tokens=100)
    wordy = TaskFeatures(domain="math", expected_tokens=100, number_words=4)
    assert bucket_of(plain) == bucket_of(wordy)
    for _ in range(40):
        learned.record(plain, "weak", 0.9)
        learned.record(plain, "strong", 0.9)
        learned.record(wordy, "weak", 0.3)
        learned.record(wordy, "strong", 0.9)
    assert learned.gain(wordy, "strong", "weak") > learned.gain(plain, "strong", "weak") + 0.3
    assert learned.choose(plain, ["weak", "strong"], target=0.8) == "weak"
    assert learned.choose(wordy, ["weak", "strong"], target=0.8) == "strong"


def test_without_grades_the_estimate_is_the_prior() -> None:
    learned = LearnedRouter(prior=0.4)
    assert learned.estimate(TaskFeatures(number_words=9, magnitude=7), "any") == 0.4


@given(
    st.lists(
        st.tuples(
            st.integers(0, 5000),
            st.integers(0, 30),
            st.integers(0, 15),
            st.sampled_from(["math", "code"]),
            st.floats(0.0, 1.0),
        ),
        min_size=1,
        max_size=60,
    ),
    st.integers(0, 100_000),
    st.integers(0, 100),
    st.integers(0, 40),
)
def test_estimates_stay_within_zero_and_one_whatever_the_grades(
    grades: list[tuple[int, int, int, str, float]], tokens: int, words: int, digits: int
) -> None:
    learned = LearnedRouter(decay=0.99, explore=0.0)
    for expected, number_words, magnitude, domain, utility in grades:
        features = TaskFeatures(
            domain=domain,
            expected_tokens=expected,
            number_words=number_words,
            magnitude=magnitude,
        )
        learned.record(features, "a", utility)
    query = TaskFeatures(
        domain="math", expected_tokens=tokens, number_words=words, magnitude=digits
    )
    assert 0.0 <= learned.estimate(query, "a") <= 1.0


def _graded_calls(seed: int, *, signal: str, count: int) -> list[tuple[TaskFeatures, float]]:
    """Pass/fail grades whose chance of success falls with size or with number words only."""
    rng = random.Random(seed)
    calls = []
    for _ in range(count):
        features = TaskFeatures(
            domain="math",
            expected_tokens=rng.randint(20, 2000),
            number_words=rng.randint(0, 8),
            magnitude=rng.randint(0, 6),
        )
        if signal == "size":
            chance = 0.95 - 0.07 * math.log2(features.expected_tokens / 20)
        else:
            chance = 0.95 - 0.1 * features.number_words
        calls.append((features, float(rng.random() < chance)))
    return calls


def _concordance(values: list[float], keys: list[int]) -> float:
    """The share of pairs with different keys that ``values`` order the same way."""
    pairs = [(i, j) for i, j in itertools.combinations(range(len(keys)), 2) if keys[i] != keys[j]]
    agree = sum((values[i] - values[j]) * (keys[i] - keys[j]) > 0 for i, j in pairs)
    return agree / len(pairs)


def _size_concordance(learned: LearnedRouter, seed: int) -> float:
    for features, utility in _graded_calls(seed, signal="size", count=3000):
        learned.record(features, "weak", utility)
    queries = [f for f, _ in _graded_calls(seed + 1, signal="size", count=150)]
    estimates = [learned.estimate(q, "weak") for q in queries]
    return _concordance(estimates, [-q.expected_tokens for q in queries])


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2**32 - 1))
@example(38615)  # trust 0.42, the highest found: a bound on concordance alone failed here
def test_features_with_no_signal_beyond_size_leave_the_router_ranking_by_size(seed: int) -> None:
    learned = LearnedRouter(decay=1.0, explore=0.0)
    trusting = LearnedRouter(decay=1.0, explore=0.0, trust=1.0)
    ours, theirs = _size_concordance(learned, seed), _size_concordance(trusting, seed)
    assert learned.trust("weak") < 0.6
    # Trusting the buckets and the slopes on noise misorders 1-15% of the pairs that size
    # alone orders right; the learned trust misorders a third as many, seldom half.
    assert 1 - ours <= 0.75 * (1 - theirs)


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_a_strong_feature_signal_is_followed_instead_of_size(seed: int) -> None:
    learned = LearnedRouter(decay=1.0, explore=0.0)
    for features, utility in _graded_calls(seed, signal="words", count=3000):
        learned.record(features, "weak", utility)
    queries = [f for f, _ in _graded_calls(seed + 1, signal="words", count=150)]
    estimates = [learned.estimate(q, "weak") for q in queries]
    assert learned.trust("weak") > 0.8
    assert _concordance(estimates, [-q.number_words for q in queries]) > 0.95


def test_with_no_trust_the_router_ranks_by_size_alone() -> None:
    learned = LearnedRouter(decay=1.0, explore=0.0, trust=0.0)
    for features, utility in _graded_calls(3, signal="words", count=500):
        learned.record(features, "weak", utility)
    short = TaskFeatures(domain="math", expected_tokens=50, number_words=8)
    long = TaskFeatures(domain="math", expected_tokens=1500)
    same_size = msgspec.structs.replace(short, number_words=0, magnitude=6, domain="code")
    assert learned.estimate(short, "weak") == learned.estimate(same_size, "weak")
    assert learned.estimate(short, "weak") != learned.estimate(long, "weak")


def test_trust_starts_at_the_length_prior_and_is_learned_only_from_unseen_grades() -> None:
    learned = LearnedRouter(decay=1.0, explore=0.0)
    features = TaskFeatures(domain="math", expected_tokens=100, number_words=3)
    assert learned.trust("weak") == 0.0
    learned.record(features, "weak", 1.0)
    # The first grade had nothing to be predicted by, so it says nothing about trust.
    assert learned.trust("weak") == 0.0


def test_a_trust_outside_zero_and_one_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"trust must be within \[0, 1\] or None"):
        LearnedRouter(trust=1.5)
