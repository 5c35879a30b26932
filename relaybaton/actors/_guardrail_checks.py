"""The kinds of guardrail check: declarative ones, a Python function, an agent as classifier.

``create_guardrail`` builds one ``Guardrail`` from any mix of them, as a flow file's
``[guardrails.<name>]`` table does; its checks run in the order below, each on the text the
one before left (a redaction first, so later checks never see what it removed), and the
first that trips decides:

- ``pii``: card numbers (13 to 19 digits, spaces or dashes allowed, that pass the Luhn
  check, so an order number is not a card) and e-mail addresses; a trip carries the text
  with each one replaced (``[card number removed]``), which ``action = "redact"`` uses;
- ``max_length`` / ``min_length``: characters;
- ``deny``: words or phrases, matched whole and ignoring case;
- ``patterns``: regular expressions (Python syntax), any match trips;
- ``json_schema``: the text must be a JSON value that fits the schema (a tool's result,
  say);
- ``function``: ``fn(text, context)``, sync or async, returning a ``GuardrailResult``, a
  reason (a ``str``: tripped), ``True`` (tripped) or ``False``/``None`` (passed);
- ``agent``: asks that agent of the flow about the text; an answer starting with
  ``block``, ``unsafe``, ``deny`` or ``yes`` trips (what follows a colon is the reason),
  one starting with ``allow``, ``safe``, ``pass`` or ``no`` passes, and anything else trips,
  since a classifier that cannot say "allow" has not allowed.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, Literal

import msgspec

from relaybaton.actors._guardrail import (
    PASSED,
    Guardrail,
    GuardrailCheck,
    GuardrailContext,
    GuardrailResult,
)
from relaybaton.actors._schema_tool import check_schema
from relaybaton.errors import ConfigError

__all__ = ["PII_KINDS", "create_guardrail", "luhn_valid"]

PII_KINDS = ("card", "email")

_CARD = re.compile(r"(?<![\w-])\d+(?:[ -]\d+)*(?![\w-])")  # digit groups: cards are inside
_DIGITS = re.compile(r"\d[ -]?\d")  # a quick look: without two digits in a row, no card
_EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b")
_VERDICT = re.compile(r"^\W*(\w+)\W*(.*)$", re.DOTALL)
_TRIPS = frozenset({"block", "blocked", "unsafe", "deny", "denied", "yes", "tripped"})
_PASSES = frozenset({"allow", "allowed", "safe", "pass", "passed", "no", "ok"})

FunctionCheck = Callable[..., object]


def luhn_valid(digits: str) -> bool:
    """Whether a string of digits passes the Luhn check (as every payment card number does)."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _redact_cards(run: str) -> tuple[str, int]:
    """``run`` (digit groups with single spaces or dashes between) with each card removed.

    A card is any stretch of whole groups with 13 to 19 digits that passes the Luhn check,
    the longest first, so a card beside other numbers ("ref 2026 4111 1111 1111 1111") is
    found too.
    """
    if len(run) < 13:  # the common case, "1234" or "42": too short to hold a card
        return run, 0
    parts = re.split(r"([ -])", run)
    groups, separators = parts[0::2], parts[1::2]
    out: list[str] = []
    count = 0
    start = 0
    while start < len(groups):
        end = _card_end(groups, start)
        if end is None:
            out.append(groups[start])
            if start < len(separators):
                out.append(separators[start])
            start += 1
            continue
        out.append("[card number removed]")
        count += 1
        if end < len(separators):
            out.append(separators[end])
        start = end + 1
    return "".join(out), count


def _card_end(groups: Sequence[str], start: int) -> int | None:
    """The last group of the longest card starting at ``groups[start]``, or None."""
    digits = ""
    ends: list[tuple[int, str]] = []
    for index in range(start, len(groups)):
        digits += groups[index]
        if len(digits) > 19:
            break
        if len(digits) >= 13:
            ends.append((index, digits))
    for index, candidate in reversed(ends):
        if luhn_valid(candidate):
            return index
    return None


def _pii(kinds: Sequence[str]) -> GuardrailCheck:
    cards = "card" in kinds
    emails = "email" in kinds

    def check(text: str, _: GuardrailContext) -> GuardrailResult:
        found: list[str] = []

        def card(match: re.Match[str]) -> str:
            redacted, count = _redact_cards(match.group(0))
            found.extend(["a card number"] * count)
            return redacted

        def email(_: re.Match[str]) -> str:
            found.append("an e-mail address")
            return "[e-mail address removed]"

        rewritten = _CARD.sub(card, text) if cards and _DIGITS.search(text) else text
        if emails and "@" in rewritten:
            rewritten = _EMAIL.sub(email, rewritten)
        if not found:
            return PASSED
        kinds_found = sorted(set(found))
        return GuardrailResult(
            tripped=True, reason=f"it contains {' and '.join(kinds_found)}", rewritten=rewritten
        )

    return check


def _length(max_length: int | None, min_length: int | None) -> GuardrailCheck:
    def check(text: str, _: GuardrailContext) -> GuardrailResult:
        if max_length is not None and len(text) > max_length:
            return GuardrailResult(
                tripped=True, reason=f"it is longer than {max_length} characters ({len(text)})"
            )
        if min_length is not None and len(text.strip()) < min_length:
            return GuardrailResult(
                tripped=True, reason=f"it is shorter than {min_length} characters"
            )
        return PASSED

    return check


def _deny(words: Sequence[str]) -> GuardrailCheck:
    pattern = re.compile(
        r"(?<!\w)(?:" + "|".join(re.escape(w) for w in words) + r")(?!\w)", re.IGNORECASE
    )

    def check(text: str, _: GuardrailContext) -> GuardrailResult:
        match = pattern.search(text)
        if match is None:
            return PASSED
        return GuardrailResult(tripped=True, reason=f"it mentions {match.group(0).lower()!r}")

    return check


def _patterns(name: str, patterns: Sequence[str]) -> GuardrailCheck:
    compiled: list[re.Pattern[str]] = []
    for pattern in patterns:
        try:
            compiled.append(re.compile(pattern))
        except re.error as exc:
            raise ConfigError(
                f"guardrail {name!r}: pattern {pattern!r} is not a regular expression: {exc}"
            ) from None

    def check(text: str, _: GuardrailContext) -> GuardrailResult:
        for number, regex in enumerate(compiled, 1):
            if regex.search(text):
                # The pattern's number, not its text: the reason may reach the user.
                return GuardrailResult(
                    tripped=True,
                    reason=f"it has wording this service does not accept (pattern {number})",
                )
        return PASSED

    return check


def _schema(schema: Mapping[str, Any]) -> GuardrailCheck:
    def check(text: str, _: GuardrailContext) -> GuardrailResult:
        try:
            value = msgspec.json.decode(text)
        except msgspec.DecodeError:
            return GuardrailResult(tripped=True, reason="it is not JSON")
        problems = check_schema(value, schema)
        if problems:
            return GuardrailResult(
                tripped=True, reason=f"it does not fit the schema: {'; '.join(problems)}"
            )
        return PASSED

    return check


def _function(name: str, fn: FunctionCheck) -> GuardrailCheck:
    async def check(text: str, context: GuardrailContext) -> GuardrailResult:
        said = fn(text, context)
        if inspect.isawaitable(said):
            said = await said
        if isinstance(said, GuardrailResult):
            return said
        if said is None or said is False:
            return PASSED
        if said is True:
            return GuardrailResult(tripped=True, reason=f"{name} refused it")
        if isinstance(said, str):
            return GuardrailResult(tripped=True, reason=said)
        raise TypeError(
            f"guardrail function {name!r} returned {type(said).__name__}; return a "
            "GuardrailResult, a reason (str), True, False or None"
        )

    return check


def _classifier(agent: str) -> GuardrailCheck:
    async def check(text: str, context: GuardrailContext) -> GuardrailResult:
        if context.ask is None:
            return GuardrailResult(tripped=True, reason=f"classifier {agent!r} is not reachable")
        answer = await context.ask(agent, text)
        match = _VERDICT.match(answer.strip())
        word = match.group(1).lower() if match else ""
        rest = match.group(2).strip() if match else ""
        if word in _PASSES:
            return PASSED
        reason = rest or (f"{agent} says {word}" if word in _TRIPS else f"{agent}: {answer}")
        return GuardrailResult(tripped=True, reason=reason[:300])

    return check


def _all(checks: Sequence[GuardrailCheck]) -> GuardrailCheck:
    if len(checks) == 1:
        return checks[0]

    async def check(text: str, context: GuardrailContext) -> GuardrailResult:
        redacted: GuardrailResult | None = None
        for one in checks:
            result = one(text, context)
            if inspect.isawaitable(result):
                result = await result
            assert isinstance(result, GuardrailResult)
            if not result.tripped:
                continue
            if result.rewritten is None:
                return result
            redacted = result  # go on checking what is left after the redaction
            text = result.rewritten
        if redacted is not None:
            return GuardrailResult(tripped=True, reason=redacted.reason, rewritten=text)
        return PASSED

    return check


def create_guardrail(
    name: str,
    *,
    on: Collection[str] = ("input",),
    pii: Sequence[str] = (),
    max_length: int | None = None,
    min_length: int | None = None,
    deny: Sequence[str] = (),
    patterns: Sequence[str] = (),
    json_schema: Mapping[str, Any] | None = None,
    function: FunctionCheck | None = None,
    agent: str | None = None,
    action: Literal["block", "redact"] = "block",
    message: str = "",
    tools: Collection[str] | None = None,
) -> Guardrail:
    """Build a guardrail from declarative checks, a function and/or a classifier agent.

    See the module docstring for each kind; at least one is needed.

    Raises:
        ConfigError: no check given, an unknown PII kind, a bad pattern or length.
    """
    checks: list[GuardrailCheck] = []
    unknown = [k for k in pii if k not in PII_KINDS]
    if unknown:
        raise ConfigError(
            f"guardrail {name!r}: unknown pii kind(s) {unknown}; use {', '.join(PII_KINDS)}"
        )
    if pii:
        checks.append(_pii(pii))
    for label, value in (("max_length", max_length), ("min_length", min_length)):
        if value is not None and value < 0:
            raise ConfigError(f"guardrail {name!r}: {label} must be at least 0, got {value}")
    if max_length is not None or min_length is not None:
        checks.append(_length(max_length, min_length))
    if deny:
        checks.append(_deny(deny))
    if patterns:
        checks.append(_patterns(name, patterns))
    if json_schema is not None:
        checks.append(_schema(json_schema))
    if function is not None:
        checks.append(_function(name, function))
    if agent is not None:
        checks.append(_classifier(agent))
    if not checks:
        raise ConfigError(
            f"guardrail {name!r} checks nothing; give pii, max_length, min_length, deny, "
            "patterns, json_schema, function or agent"
        )
    return Guardrail(name, _all(checks), on=on, action=action, message=message, tools=tools)
