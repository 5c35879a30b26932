"""Flow-file routing: a slot's candidate models, its rules and its budgets.

A slot with a ``[models.<slot>.routing]`` table holds several candidate models and a router
that picks one per call (see ``relaybaton.actors.routing._router`` for the fixed order of its
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

``policy = "learned"`` puts the learned router (a bandit over task features) where the cost
policy would choose; rules still come first. It learns only from graded outcomes, which a
flow file cannot give: grade calls from Python with ``slot.router.learned.record(features,
candidate, utility)`` (``features`` from ``slot.classifier.classify(request)``). Until it
has grades it picks by its prior, the cheapest candidate first, exploring a little.

A ``[models.<slot>.rollout]`` table rolls a new model out in place of the slot's model (or,
in a routed slot, of the candidate ``replaces`` names), stage by stage, with automatic
rollback (see ``relaybaton.actors.routing._rollout``)::

    [models.assistant.rollout]
    model = "simulated:general-v2"
    stages = [0, 5, 50, 100]             # percent of conversations; 0 is the shadow stage
    window_s = 60                        # a clean window of this long moves one stage up
    min_calls = 50                       # ... with at least this many calls of the new model
    error_margin = 0.01                  # roll back past the incumbent's error rate + 1 point
    p95_margin = 1.5                     # ... or past 1.5 x its p95 latency
"""

from __future__ import annotations

import difflib
import itertools
import re
from collections.abc import Iterable

import msgspec

from relaybaton.actors.routing import RolloutPolicy, Rule
from relaybaton.actors.routing._rules import FLAGS, NUMERIC, check_rules
from relaybaton.errors import FlowProblem

__all__ = [
    "CandidateConfig",
    "RolloutConfig",
    "RoutingConfig",
    "RuleConfig",
    "check_rollout",
    "check_routing",
    "rollout_policy_of",
    "rules_of",
]

_CONDITION_NAMES = (*NUMERIC, *FLAGS, "domain")
_POLICIES = ("rules", "learned")
_NAME = r"^[A-Za-z][A-Za-z0-9_-]{0,63}$"


class CandidateConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One ``[[models.<slot>.routing.candidates]]`` entry; unset options are the slot's.

    ``base_url`` and ``api_key_env`` are the candidate's own; unset, they are the slot's
    only when the candidate's provider is the slot's model's (a key goes only to the host
    of the provider it belongs to), else the provider's usual variables. ``p95_s`` is the
    candidate's own latency limit for its breaker, in place of ``[supervisor] p95_s``.
    """

    name: str
    model: str
    base_url: str | None = None
    api_key_env: str | None = None
    p95_s: float | None = None
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
    policy: str = "rules"
    learn_decay: float = 0.999
    explore: float = 0.02


class RolloutConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A ``[models.<slot>.rollout]`` table: the new model, its stages and rollback margins.

    ``stages`` are percentages of conversations (0 is shadow: a copy of each call, answers
    dropped); unset model options (latency, prices, ...) are those of the model replaced.
    """

    model: str
    replaces: str | None = None
    stages: list[float] = msgspec.field(default_factory=lambda: [0.0, 5.0, 50.0, 100.0])
    window_s: float = 60.0
    min_calls: int = 50
    error_margin: float = 0.01
    p95_margin: float = 1.5
    quality_margin: float = 0.05
    min_graded: int = 0
    shadow_concurrency: int = 8
    shadow_timeout_s: float = 60.0
    latency_ms: float | None = None
    error_rate: float | None = None
    price_in_per_1k: float | None = None
    price_out_per_1k: float | None = None
    seed: int | None = None


def rollout_policy_of(rollout: RolloutConfig) -> RolloutPolicy:
    """The rollout table as the runtime's policy (stages as shares of 1)."""
    return RolloutPolicy(
        stages=tuple(stage / 100 for stage in rollout.stages),
        window_s=rollout.window_s,
        min_calls=rollout.min_calls,
        error_margin=rollout.error_margin,
        p95_margin=rollout.p95_margin,
        quality_margin=rollout.quality_margin,
        min_graded=rollout.min_graded,
    )


def _suggest(name: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""


def _no_candidate(path: str, name: str, names: list[str]) -> FlowProblem:
    return FlowProblem(
        path,
        f'no candidate named "{name}"{_suggest(name, names)}; candidates: {", ".join(names)}',
    )


def _not_positive(at: str, values: Iterable[tuple[str, float | None]]) -> list[FlowProblem]:
    """A problem per value set and not greater than 0."""
    return [
        FlowProblem(f"{at}.{label}", f"must be greater than 0, got {value}")
        for label, value in values
        if value is not None and value <= 0
    ]


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
        problems.extend(_not_positive(path, (("p95_s", candidate.p95_s),)))
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
    problems.extend(_not_positive(at, budgets))
    if not 0.0 < routing.step_down_at <= 1.0:
        add(FlowProblem(f"{at}.step_down_at", "must be within (0, 1]"))
    if routing.policy not in _POLICIES:
        add(
            FlowProblem(
                f"{at}.policy",
                f'"{routing.policy}" is not a routing policy{_suggest(routing.policy, _POLICIES)}; '
                f"use one of {', '.join(_POLICIES)}",
            )
        )
    if not 0.0 < routing.learn_decay <= 1.0:
        add(FlowProblem(f"{at}.learn_decay", "must be within (0, 1]"))
    if not 0.0 <= routing.explore <= 1.0:
        add(FlowProblem(f"{at}.explore", "must be within [0, 1]"))
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
            add(_no_candidate(f"{path}.use", config.use, names))
    if len(rules) == len(routing.rules):
        problems.extend(
            FlowProblem(f"{at}.rules[{p.index}]", p.message) for p in check_rules(rules)
        )
    return problems


def check_rollout(
    slot: str,
    model: str,
    routing: RoutingConfig | None,
    rollout: RolloutConfig,
    providers: Iterable[str],
) -> list[FlowProblem]:
    """Every problem in one slot's rollout table."""
    at = f"models.{slot}.rollout"
    problems: list[FlowProblem] = []
    add = problems.append
    if ":" not in rollout.model or rollout.model.split(":", 1)[0] not in tuple(providers):
        add(
            FlowProblem(f"{at}.model", f'"{rollout.model}" is not a model id; write provider:model')
        )
    replaced = model
    if rollout.replaces is not None:
        names = [c.name for c in routing.candidates] if routing is not None else []
        if routing is None:
            add(
                FlowProblem(
                    f"{at}.replaces",
                    "only a slot with a routing table has candidates to replace; remove it "
                    "(the rollout replaces the slot's model)",
                )
            )
        elif rollout.replaces not in names:
            add(_no_candidate(f"{at}.replaces", rollout.replaces, names))
        else:
            replaced = routing.candidates[names.index(rollout.replaces)].model
    if rollout.model == replaced:
        add(
            FlowProblem(
                f"{at}.model",
                f'"{rollout.model}" is the model it would replace; name the new model',
            )
        )
    stages = rollout.stages
    if not stages or any(not 0.0 <= s <= 100.0 for s in stages):
        add(FlowProblem(f"{at}.stages", f"must be percentages within [0, 100], got {stages}"))
    elif any(b <= a for a, b in itertools.pairwise(stages)) or stages[-1] != 100.0:
        add(
            FlowProblem(
                f"{at}.stages",
                f"must grow at every stage and end at 100 (the new model takes every call), "
                f"got {stages}; e.g. [0, 5, 50, 100]",
            )
        )
    positive = (
        ("window_s", rollout.window_s),
        ("min_calls", rollout.min_calls),
        ("shadow_concurrency", rollout.shadow_concurrency),
        ("shadow_timeout_s", rollout.shadow_timeout_s),
    )
    problems.extend(_not_positive(at, positive))
    for label, value in (
        ("error_margin", rollout.error_margin),
        ("quality_margin", rollout.quality_margin),
    ):
        if not 0.0 <= value <= 1.0:
            add(FlowProblem(f"{at}.{label}", f"must be within [0, 1], got {value}"))
    if rollout.p95_margin < 1.0:
        add(
            FlowProblem(
                f"{at}.p95_margin",
                f"must be at least 1 (a multiple of the incumbent's p95), got {rollout.p95_margin}",
            )
        )
    if rollout.error_rate is not None and not 0.0 <= rollout.error_rate <= 1.0:
        add(FlowProblem(f"{at}.error_rate", "must be within [0, 1]"))
    return problems
