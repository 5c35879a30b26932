"""Flow-file routing: a slot's candidate models, its rules and its budgets.

A slot with a ``[models.<slot>.routing]`` table holds several candidate models and a router
that picks one per call (see ``relaybaton.actors._routing`` for the fixed order of its
policies: capability, health, budget, then rules, then cost)::

    [models.assistant]
    model = "simulated:general"          # the slot's primary: one of the candidates' models

    [models.assistant.routing]
    budget_usd_per_conversation = 0.50
    rules = [
      { when = "complexity <= 3", use = "general" },
      { when = "complexity <= 7", use = "reasoning" },
      { when = "vision", use = "multimodal" },
      { use = "domain" },
    ]

    [[models.assistant.routing.candidates]]
    name = "general"
    model = "simulated:general"
    tier = 1

The rules are checked when the flow loads: a rule that can never match (earlier rules take
every call it would take) or two rules of the same priority that take the same calls and
send them to different models are load errors naming both rules.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

import msgspec

from relaybaton.actors._rules import FLAGS, NUMERIC, Rule, check_rules
from relaybaton.errors import FlowProblem

__all__ = ["CandidateConfig", "RoutingConfig", "RuleConfig", "check_routing", "rules_of"]

_CONDITION_NAMES = (*NUMERIC, *FLAGS, "domain")
_NAME = r"^[A-Za-z][A-Za-z0-9_-]{0,63}$"


class CandidateConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One ``[[models.<slot>.routing.candidates]]`` entry; unset options are the slot's."""

    name: str
    model: str
    tier: int = 1
    vision: bool | None = None
    tools: bool = True
    context_tokens: int | None = None
    price_in_per_1k: float | None = None
    price_out_per_1k: float | None = None
    latency_ms: float | None = None
    error_rate: float | None = None
    seed: int | None = None


class RuleConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A routing rule: ``{ when = "complexity <= 3", use = "general" }``."""

    use: str
    when: str = ""
    priority: int | None = None


class RoutingConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A ``[models.<slot>.routing]`` table: candidates, rules and spending limits.

    Past ``step_down_at`` of a budget the cheapest candidate takes the calls; past the
    budget they are refused.
    """

    candidates: list[CandidateConfig] = msgspec.field(default_factory=list)
    rules: list[RuleConfig] = msgspec.field(default_factory=list)
    budget_usd_per_conversation: float | None = None
    budget_tokens_per_conversation: int | None = None
    budget_usd_per_agent: float | None = None
    budget_tokens_per_agent: int | None = None
    step_down_at: float = 0.8


def _suggest(name: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""


def rules_of(routing: RoutingConfig) -> list[Rule]:
    """The routing table's rules, parsed (the flow has been checked, so they parse)."""
    return [Rule(r.when, r.use, priority=r.priority, index=i) for i, r in enumerate(routing.rules)]


def _condition_hint(message: str) -> str:
    """A "did you mean" for the first word of the condition a parse error quotes."""
    quoted = re.search(r"`([^`]*)`", message)
    if quoted is None:
        return ""
    word = re.match(r"\s*(?:not\s+)?([A-Za-z_]+)", quoted.group(1))
    if word is None or word.group(1) in _CONDITION_NAMES:
        return ""
    return _suggest(word.group(1), _CONDITION_NAMES)


def check_routing(
    slot: str, model: str, fallbacks: list[str], routing: RoutingConfig, providers: Iterable[str]
) -> list[FlowProblem]:
    """Every problem in one slot's routing table."""
    at = f"models.{slot}.routing"
    problems: list[FlowProblem] = []
    add = problems.append
    known_providers = tuple(providers)
    if fallbacks:
        add(
            FlowProblem(
                f"models.{slot}.fallbacks",
                "a slot with a routing table lists its other models as routing candidates, "
                "not fallbacks; move them to [[models." + slot + ".routing.candidates]]",
            )
        )
    if not routing.candidates:
        add(FlowProblem(f"{at}.candidates", "a routing table needs at least one candidate"))
    names = [c.name for c in routing.candidates]
    seen: set[str] = set()
    for i, candidate in enumerate(routing.candidates):
        path = f"{at}.candidates[{i}]"
        if not re.match(_NAME, candidate.name):
            add(
                FlowProblem(
                    f"{path}.name",
                    f'"{candidate.name}" must start with a letter and use only letters, '
                    "digits, '_' and '-'",
                )
            )
        if candidate.name in seen:
            add(FlowProblem(f"{path}.name", f'candidate "{candidate.name}" is listed twice'))
        seen.add(candidate.name)
        if ":" not in candidate.model or candidate.model.split(":", 1)[0] not in known_providers:
            add(
                FlowProblem(
                    f"{path}.model",
                    f'"{candidate.model}" is not a model id; write provider:model',
                )
            )
        if candidate.tier < 1:
            add(FlowProblem(f"{path}.tier", f"must be at least 1, got {candidate.tier}"))
        if candidate.error_rate is not None and not 0.0 <= candidate.error_rate <= 1.0:
            add(FlowProblem(f"{path}.error_rate", "must be within [0, 1]"))
    models = [c.model for c in routing.candidates]
    if routing.candidates and model not in models:
        add(
            FlowProblem(
                f"models.{slot}.model",
                f'"{model}" is not the model of any routing candidate{_suggest(model, models)}; '
                "the slot's model must be one of them (it is the slot's primary)",
            )
        )
    budgets = (
        ("budget_usd_per_conversation", routing.budget_usd_per_conversation),
        ("budget_tokens_per_conversation", routing.budget_tokens_per_conversation),
        ("budget_usd_per_agent", routing.budget_usd_per_agent),
        ("budget_tokens_per_agent", routing.budget_tokens_per_agent),
    )
    for label, value in budgets:
        if value is not None and value <= 0:
            add(FlowProblem(f"{at}.{label}", f"must be greater than 0, got {value}"))
    if not 0.0 < routing.step_down_at <= 1.0:
        add(FlowProblem(f"{at}.step_down_at", "must be within (0, 1]"))
    rules: list[Rule] = []
    for i, config in enumerate(routing.rules):
        path = f"{at}.rules[{i}]"
        try:
            rules.append(Rule(config.when, config.use, priority=config.priority, index=i))
        except ValueError as exc:
            text = str(exc)
            hint = _condition_hint(text)
            if hint:
                first, sep, rest = text.partition(";")
                text = f"{first}{hint}{sep}{rest}"
            add(FlowProblem(f"{path}.when", text))
        if routing.candidates and config.use not in names:
            add(
                FlowProblem(
                    f"{path}.use",
                    f'no candidate named "{config.use}"{_suggest(config.use, names)}; '
                    f"candidates: {', '.join(names)}",
                )
            )
    if len(rules) == len(routing.rules):
        problems.extend(
            FlowProblem(f"{at}.rules[{p.index}]", p.message) for p in check_rules(rules)
        )
    return problems
