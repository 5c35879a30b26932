"""The examples' business rules, as the customer or the release manager meets them.

Each test sends what a person would type to the shipped example on its embedded default
(the simulated models) and checks what that person reads back, and what money or release
actually moved.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from relaybaton.actors import FunctionTool, Paused, Runtime, ToolCallEvent, wait_for_turn
from relaybaton.flow import load_flow, open_flow
from relaybaton.runtime import TurnResult

pytestmark = pytest.mark.anyio

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SERVICE = load_flow(EXAMPLES / "customer_service.toml")
REVIEW = load_flow(EXAMPLES / "code_review.toml")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def shop() -> AsyncIterator[Runtime]:
    async with open_flow(SERVICE, gc_young_threshold=None) as runtime:
        _tools_of(runtime).REFUNDS.clear()
        yield runtime


@pytest.fixture
async def review() -> AsyncIterator[Runtime]:
    async with open_flow(REVIEW, gc_young_threshold=None) as runtime:
        _tools_of(runtime, "synthesizer", "publish_review").PUBLISHED.clear()
        yield runtime


def _tools_of(runtime: Runtime, agent: str = "refund", tool: str = "issue_refund") -> object:
    found = next(t for t in runtime.agents[agent].tools if t.name == tool)
    assert isinstance(found, FunctionTool)
    return sys.modules[found.fn.__module__]


async def _say(runtime: Runtime, conversation: str, text: str) -> TurnResult | Paused:
    future = runtime.submit(conversation, text)
    return await wait_for_turn(runtime.conversations, conversation, future)


def _refunds(runtime: Runtime) -> list[tuple[str, float]]:
    return list(_tools_of(runtime).REFUNDS.values())  # type: ignore[attr-defined]


def _tools_called(runtime: Runtime, conversation: str) -> list[str]:
    events = runtime.conversation(conversation).events or []  # type: ignore[union-attr]
    return [e.tool for e in events if isinstance(e, ToolCallEvent) and not e.is_error]


# --- customer service ------------------------------------------------------------------


async def test_a_damaged_order_is_refunded_what_was_paid_after_the_policy_check(
    shop: Runtime,
) -> None:
    said = await _say(
        shop, "c1", "I want a refund for order AB-1234, it arrived damaged. It cost $42."
    )
    assert isinstance(said, TurnResult)
    assert said.text.startswith("I've refunded $42.00 for your espresso machine, order AB-1234.")
    assert _refunds(shop) == [("AB-1234", 42.0)]
    called = _tools_called(shop, "c1")
    assert called.index("lookup_order") < called.index("issue_refund")
    assert called.index("check_refund_policy") < called.index("issue_refund")


async def test_a_refund_above_what_was_paid_is_refused_and_nothing_moves(shop: Runtime) -> None:
    said = await _say(shop, "c1", "Refund $99 on order AB-1234")
    assert isinstance(said, TurnResult)
    assert said.text.startswith(
        "I couldn't issue the refund: a refund needs an order we can find, and is never more "
        "than what was paid for it."
    )
    assert "total $42.00" in said.text
    assert _refunds(shop) == []


async def test_an_unknown_order_is_looked_up_and_never_refunded(shop: Runtime) -> None:
    said = await _say(shop, "c1", "refund $30 on order ZZ-9999")
    assert isinstance(said, TurnResult)
    assert said.text == "I couldn't find ZZ-9999; please check the number and try again."
    assert _refunds(shop) == []
    assert "issue_refund" not in _tools_called(shop, "c1")


async def test_a_refund_of_exactly_100_goes_through_on_its_own(shop: Runtime) -> None:
    said = await _say(shop, "c1", "Please refund $100 on order CD-5678, it arrived damaged")
    assert isinstance(said, TurnResult)
    assert said.text.startswith("I've refunded $100.00 for your standing desk, order CD-5678.")
    assert _refunds(shop) == [("CD-5678", 100.0)]


async def test_a_refund_over_100_tells_the_customer_it_waits_and_pays_once_approved(
    shop: Runtime,
) -> None:
    future = shop.submit("c1", "Refund $150 on order CD-5678, it arrived damaged")
    said = await wait_for_turn(shop.conversations, "c1", future)
    assert isinstance(said, Paused)
    [approval_id] = said.approval_ids
    assert said.text == (
        "Your request is waiting for review by a person before I can issue the refund "
        f"(conversation c1, approval {approval_id}). I'll continue as soon as they decide."
    )
    assert _refunds(shop) == []
    request = shop.conversations.pending_approval(approval_id)
    assert request is not None
    assert request.rule == "amount > 100"
    shop.decide(approval_id, "approve", arguments_hash=request.arguments_hash, by="ann")
    finished = await future  # the same turn goes on once the person decided
    assert finished.text.startswith("I've refunded $150.00 for your standing desk, order CD-5678.")
    assert _refunds(shop) == [("CD-5678", 150.0)]


async def test_a_greeting_is_answered_and_a_question_no_team_covers_stays_with_triage(
    shop: Runtime,
) -> None:
    hello = await _say(shop, "c1", "Hello!")
    assert isinstance(hello, TurnResult)
    assert hello.text == (
        "Hello! How can I help you today? I can help with refunds and returns or billing."
    )
    where = await _say(shop, "c2", "Where is my order XY-0001?")
    assert isinstance(where, TurnResult)
    assert where.owner == "triage"
    assert where.text.startswith("I'm sorry, I can't help with that here.")
    assert _tools_called(shop, "c2") == []


async def test_a_double_charge_is_explained_with_what_billing_knows(shop: Runtime) -> None:
    said = await _say(shop, "c1", "Why was my card charged twice on my invoice?")
    assert isinstance(said, TurnResult)
    assert said.replies[0].agent == "billing"
    assert said.text.startswith(
        "A card charged twice for one purchase is a pre-authorisation: the duplicate charge "
        "drops off within 3 business days."
    )
    assert "INV-2026-118" in said.text


# --- code review -----------------------------------------------------------------------


async def test_clean_code_is_released_after_every_expert_answered(review: Runtime) -> None:
    said = await _say(review, "r1", "Review this code: def total(items): return sum(items)")
    assert isinstance(said, TurnResult)
    assert said.text.startswith(
        "I've published the review and released: the security scan of this code is clean."
    )
    experts = {"code_reviewer", "performance_optimizer", "security_scanner"}
    assert experts <= set(_tools_called(review, "r1"))


async def test_a_3_percent_optimisation_is_not_approved(review: Runtime) -> None:
    said = await _say(
        review,
        "r1",
        "This change makes parse() 3% faster by caching the compiled regex: "
        "PATTERN = re.compile(r'[0-9]+')",
    )
    assert isinstance(said, TurnResult)
    assert "optimisation not approved (measured effect 3% is under 10%)" in said.text
    assert "security_scanner" in _tools_called(review, "r1")


async def test_sql_injection_holds_the_release_until_a_rescan_of_the_fixed_code_is_clean(
    review: Runtime,
) -> None:
    unsafe = (
        'Review this code: query = "SELECT * FROM t WHERE n = \'" + n + "\'"; cur.execute(query)'
    )
    said = await _say(review, "r1", unsafe)
    assert isinstance(said, Paused)
    [approval_id] = said.approval_ids
    request = review.conversations.pending_approval(approval_id)
    assert request is not None
    assert request.rule == (
        "against the rules: a release needs a clean security scan of the code being released"
    )
    published = _tools_of(review, "synthesizer", "publish_review").PUBLISHED  # type: ignore[attr-defined]
    assert published == {}
    review.decide(
        approval_id, "reject", arguments_hash=request.arguments_hash, note="fix the injection"
    )
    fixed = 'Review this code: cur.execute("SELECT * FROM t WHERE n = %s", (n,))'
    said = await _say(review, "r1", fixed)
    assert isinstance(said, TurnResult)
    assert said.text.startswith(
        "I've published the review and released: the security scan of this code is clean."
    )
    assert len(published) == 1
