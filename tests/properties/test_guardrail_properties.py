"""No card number gets past a card guardrail, whatever the model writes or calls.

A model scripted at random writes answers and tool arguments that mix words, order ids,
other digits and card numbers (Luhn-valid, with spaces or dashes or none). With a ``pii``
guardrail on the output (redact) and on tool arguments (block), no reply the customer reads
and no tool the model calls ever holds a card number.
"""

from __future__ import annotations

import re

import anyio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relaybaton.actors import Agent, create_guardrail, function_tool, open_runtime
from relaybaton.actors._guardrail_checks import luhn_valid
from relaybaton.adapters import ModelRequest, ToolResultMessage
from relaybaton.testing import ScriptedModel, ScriptItem, tool_call


def _with_check_digit(body: str) -> str:
    for digit in "0123456789":
        if luhn_valid(body + digit):
            return body + digit
    raise AssertionError("some digit completes every body")  # pragma: no cover


_bodies = st.integers(min_value=12, max_value=18).flatmap(
    lambda n: st.text(alphabet="0123456789", min_size=n, max_size=n)
)
_cards = st.builds(_with_check_digit, _bodies)
_separators = st.sampled_from(["", " ", "-"])


def _spaced(card: str, separator: str) -> str:
    return separator.join(card[i : i + 4] for i in range(0, len(card), 4))


# Each piece is (its text, the card it holds or ""); the test knows every card it wrote.
_pieces = st.one_of(
    st.sampled_from(["refund", "order", "AB-1234", "$42", "thanks", "2026", "ref 12345"]).map(
        lambda word: (word, "")
    ),
    st.builds(lambda card, sep: (_spaced(card, sep), card), _cards, _separators),
)
_texts = st.lists(_pieces, min_size=1, max_size=8).map(
    lambda pieces: (" ".join(t for t, _ in pieces), [c for _, c in pieces if c])
)


def _holds(text: str, cards: list[str]) -> bool:
    """Whether any of ``cards`` is still in ``text``, however its digits are spaced."""
    squeezed = re.sub(r"[ -]", "", text)
    return any(card in squeezed for card in cards)


@given(card=_cards, position=st.integers(min_value=0, max_value=18), delta=st.integers(1, 9))
def test_a_card_number_passes_the_luhn_check_and_one_changed_digit_fails_it(
    card: str, position: int, delta: int
) -> None:
    assert luhn_valid(card)
    index = position % len(card)
    changed = card[:index] + str((int(card[index]) + delta) % 10) + card[index + 1 :]
    assert not luhn_valid(changed)


async def _run(steps: list[tuple[str, tuple[str, list[str]]]]) -> tuple[str, list[str]]:
    seen: list[str] = []

    @function_tool
    def note(text: str) -> str:
        """Write a note on the customer's file."""
        seen.append(text)
        return "noted"

    script = iter(steps)

    def answer(request: ModelRequest) -> ScriptItem:
        last = request.messages[-1]
        kind, (text, _cards) = next(script, ("answer", ("done", [])))
        if kind == "call" and not isinstance(last, ToolResultMessage):
            return tool_call("note", text=text)
        return text

    cards = create_guardrail(
        "cards", on=["output", "tool_arguments"], pii=["card"], action="redact"
    )
    blocking = create_guardrail("cards_in_tools", on=["tool_arguments"], pii=["card"])
    agent = Agent(name="clerk", tools=(note,), guardrails=(cards, blocking))
    async with open_runtime(agent, models=ScriptedModel(answer), max_turns=20) as runtime:
        result = await runtime.send("c1", "please help")
    return result.text, seen


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    steps=st.lists(st.tuples(st.sampled_from(["call", "answer"]), _texts), min_size=1, max_size=5)
)
def test_no_reply_or_tool_call_ever_holds_a_card_number(
    steps: list[tuple[str, tuple[str, list[str]]]],
) -> None:
    reply, noted = anyio.run(_run, steps)
    written = [card for _, (_, cards) in steps for card in cards]
    assert not _holds(reply, written), reply
    assert not any(_holds(text, written) for text in noted), noted
