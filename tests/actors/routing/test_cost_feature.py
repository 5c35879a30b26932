"""``cost`` as a rule feature: the call's expected price on the slot's model, in cents."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from relaybaton.actors.routing import Candidate, Router, Rule, TaskFeatures
from relaybaton.adapters import SimulatedModel


def _candidate(name: str, price_in: float, price_out: float) -> Candidate:
    return Candidate(
        SimulatedModel(f"simulated:{name}"),
        name=name,
        price_in_per_1k=price_in,
        price_out_per_1k=price_out,
    )


# The seed's levels: $ per 1k tokens (in, out).
GENERAL = _candidate("general", 0.00125, 0.01)
REASONING = _candidate("reasoning", 0.005, 0.025)


@given(st.integers(0, 128_000), st.integers(0, 60))
def test_a_cost_rule_takes_exactly_the_calls_expected_to_cost_more_than_its_bound(
    tokens: int, bound: int
) -> None:
    router = Router(
        [GENERAL, REASONING],
        rules=[Rule(f"cost > {bound}", "reasoning", index=0), Rule("", "general", index=1)],
        cost_reference="general",
    )
    decision = router.choose(TaskFeatures(expected_tokens=tokens))
    cents = math.ceil(GENERAL.price(tokens) * 100)
    assert router.expected_cost_cents(TaskFeatures(expected_tokens=tokens)) == cents
    assert decision.candidate == ("reasoning" if cents > bound else "general")


def test_cost_is_priced_on_the_reference_candidate_not_the_cheapest() -> None:
    rules = [Rule("cost > 5", "general", index=0), Rule("", "reasoning", index=1)]
    by_general = Router([GENERAL, REASONING], rules=rules, cost_reference="general")
    by_reasoning = Router([GENERAL, REASONING], rules=rules, cost_reference="reasoning")
    features = TaskFeatures(expected_tokens=10_000)  # 3.4 cents on general, 9.9 on reasoning
    assert by_general.choose(features).candidate == "reasoning"
    assert by_reasoning.choose(features).candidate == "general"
