"""The router: capability is never violated, budgets step down then stop, health and learning."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relaybaton.actors.routing import (
    Budgets,
    Candidate,
    HeuristicClassifier,
    LearnedRouter,
    Router,
    Rule,
    TaskFeatures,
)
from relaybaton.actors.routing._budget import expected_cost
from relaybaton.actors.routing._router import violates
from relaybaton.adapters import (
    Capabilities,
    ImagePart,
    ModelRequest,
    SimulatedModel,
    ToolSpec,
    Usage,
    UserMessage,
)
from relaybaton.errors import BudgetExceededError, NoCapableModelError


def _candidate(name: str, tier: int, price: float, **caps: object) -> Candidate:
    model = SimulatedModel(f"simulated:{name}", capabilities=Capabilities(**caps))  # type: ignore[arg-type]
    return Candidate(model, name=name, tier=tier, price_in_per_1k=price, price_out_per_1k=price)


CANDIDATES = [
    _candidate("small", 1, 0.1, tools=False, context_tokens=4_000),
    _candidate("general", 2, 0.5, context_tokens=32_000),
    _candidate("vision", 2, 1.0, vision=True, context_tokens=128_000),
    _candidate("big", 3, 5.0, context_tokens=200_000),
]


class _Health:
    def __init__(self, closed: set[str]) -> None:
        self.closed = closed

    def allows(self, adapter: str) -> bool:
        return adapter in self.closed

    def latency(self, adapter: str) -> float | None:
        return None


requests = st.builds(
    lambda text, image, tools, max_out: ModelRequest(
        messages=(UserMessage(text=text, images=(ImagePart(url="x"),) if image else ()),),
        tools=(ToolSpec(name="t", description="d"),) if tools else (),
        max_output_tokens=max_out,
    ),
    st.text(max_size=300).map(lambda t: t * 40),
    st.booleans(),
    st.booleans(),
    st.integers(0, 150_000),
)


@settings(max_examples=300, deadline=None)
@given(
    request=requests,
    rules=st.booleans(),
    healthy=st.sets(st.sampled_from([c.adapter.name for c in CANDIDATES])),
)
def test_no_call_ever_goes_to_a_model_that_lacks_what_it_needs(
    request: ModelRequest, rules: bool, healthy: set[str]
) -> None:
    router = Router(
        CANDIDATES,
        rules=[Rule("complexity <= 3", "small", index=0), Rule("", "general", index=1)]
        if rules
        else (),
        health=_Health(healthy),
    )
    features = HeuristicClassifier().classify(request)
    try:
        decision = router.choose(features)
    except NoCapableModelError:
        assert all(violates(c, features) for c in CANDIDATES)
        return
    assert violates(router.by_name[decision.candidate], features) is None


def test_the_cost_policy_takes_the_cheapest_model_of_the_tier_the_complexity_asks_for() -> None:
    router = Router(CANDIDATES)
    assert router.choose(TaskFeatures(complexity=2)).candidate == "small"
    assert router.choose(TaskFeatures(complexity=5)).candidate == "general"
    assert router.choose(TaskFeatures(complexity=9)).candidate == "big"
    assert router.choose(TaskFeatures(complexity=2, needs_vision=True)).candidate == "vision"


def test_a_budget_steps_down_to_the_cheapest_model_then_stops_and_says_so() -> None:
    router = Router(CANDIDATES, budgets=Budgets(conversation_usd=10.0, step_down_at=0.8))
    assert router.choose(TaskFeatures(complexity=9), conversation_id="c").candidate == "big"
    router.charge("c", "a", Usage(cost_usd=8.5))
    decision = router.choose(TaskFeatures(complexity=9, needs_tools=True), conversation_id="c")
    assert decision.stepped_down
    assert decision.candidate == "general"  # the cheapest that can call tools
    assert decision.reason.startswith("budget: conversation c $ 8.5 of 10")
    router.charge("c", "a", Usage(cost_usd=1.6))
    with pytest.raises(BudgetExceededError, match="budget used up: conversation c"):
        router.choose(TaskFeatures(complexity=9), conversation_id="c")
    assert router.choose(TaskFeatures(complexity=9), conversation_id="other").candidate == "big"


def test_a_call_whose_expected_cost_would_pass_the_budget_steps_down_or_is_refused() -> None:
    router = Router(CANDIDATES, budgets=Budgets(conversation_usd=1.0))
    # The big model's expected answer alone (256 tokens at $5 per 1K) is $1.28: too much.
    decision = router.choose(TaskFeatures(complexity=9), conversation_id="c")
    assert (decision.candidate, decision.stepped_down) == ("small", True)
    assert decision.reason == (
        "budget: big would pass conversation c $1.28 of 1.0; stepped down to the cheapest "
        "model small"
    )
    router.charge("c", "a", Usage(cost_usd=0.99))  # the small model's $0.0256 would pass it
    with pytest.raises(BudgetExceededError, match="budget would be passed by the next call"):
        router.choose(TaskFeatures(complexity=1), conversation_id="c")


@given(
    limit=st.floats(min_value=0.05, max_value=5.0),
    factors=st.lists(st.floats(min_value=0.0, max_value=2.0), min_size=1, max_size=60),
    complexities=st.lists(st.integers(min_value=1, max_value=10), min_size=60, max_size=60),
)
def test_a_budget_is_never_passed_by_more_than_one_call_s_estimate(
    limit: float, factors: list[float], complexities: list[int]
) -> None:
    router = Router(CANDIDATES, budgets=Budgets(conversation_usd=limit))
    spent = 0.0
    largest = 0.0
    for factor, complexity in zip(factors, complexities, strict=False):
        features = TaskFeatures(complexity=complexity, expected_tokens=200)
        try:
            decision = router.choose(features, conversation_id="c")
        except BudgetExceededError:
            break
        chosen = router.by_name[decision.candidate]
        estimate = expected_cost(chosen.price_in_per_1k, chosen.price_out_per_1k, features)
        assert spent + estimate <= limit  # checked before the call, with its expected cost
        largest = max(largest, estimate)
        cost = estimate * factor  # what the call really cost: up to twice the estimate
        spent += cost
        router.charge("c", "a", Usage(cost_usd=cost))
    assert spent <= limit + largest


def test_open_breakers_are_skipped_and_a_rule_falls_through_to_the_next() -> None:
    names = {c.adapter.name for c in CANDIDATES} - {"simulated:small"}
    router = Router(
        CANDIDATES,
        rules=[Rule("complexity <= 3", "small", index=0), Rule("", "general", index=1)],
        health=_Health(names),
    )
    decision = router.choose(TaskFeatures(complexity=1))
    assert decision.candidate == "general"
    assert "skipped open breaker(s): small" in decision.reason


def test_the_learned_router_learns_which_domain_needs_the_strong_model_and_forgets() -> None:
    learned = LearnedRouter(decay=0.9, explore=0.0)
    math, chat = TaskFeatures(domain="math"), TaskFeatures(domain="chat")
    for _ in range(50):
        learned.record(math, "small", 0.2)
        learned.record(math, "big", 0.9)
        learned.record(chat, "small", 0.95)
        learned.record(chat, "big", 0.95)
    router = Router([CANDIDATES[0], CANDIDATES[3]], learned=learned, quality_target=0.8)
    assert router.choose(math).candidate == "big"
    assert router.choose(chat).candidate == "small"
    for _ in range(60):  # the small model got better at math: old grades fade
        learned.record(math, "small", 0.95)
    assert router.choose(math).candidate == "small"
