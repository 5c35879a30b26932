"""The learned router's slopes: calls in one bucket are told apart by their numeric features."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from relaybaton.actors._bandit import LearnedRouter, bucket_of
from relaybaton.actors._features import TaskFeatures


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
