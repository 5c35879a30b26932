"""The heuristic classifier: signs of arithmetic in a word problem."""

from __future__ import annotations

from relaybaton.actors.routing import HeuristicClassifier
from relaybaton.adapters import ModelRequest, UserMessage

PROBLEM = (
    "A baker sells twice as many loaves on Saturday as on Friday, and half of the rest on "
    "Sunday. He made 1,250 loaves and two dozen rolls; twenty-five were burnt. How many did "
    "he sell on Sunday?"
)


def test_number_words_count_cardinals_multiples_and_fractions_not_longer_words() -> None:
    # twice, half, two, dozen, twenty, five; not "someone", "threefold" or "tendency".
    assert HeuristicClassifier.number_words(PROBLEM + " Someone threefold tendency.") == 6


def test_magnitude_is_the_digits_of_the_largest_integer_part() -> None:
    assert HeuristicClassifier.magnitude(PROBLEM) == 4  # 1,250
    assert HeuristicClassifier.magnitude("about 3.75 or 12.5 kg") == 2
    assert HeuristicClassifier.magnitude("no numbers here") == 0


def test_classify_carries_the_arithmetic_signs() -> None:
    features = HeuristicClassifier().classify(ModelRequest(messages=(UserMessage(text=PROBLEM),)))
    assert (features.number_words, features.magnitude, features.domain) == (6, 4, "math")
