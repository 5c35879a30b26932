"""The router: per call, which of a slot's candidate models gets it.

Policies run in a fixed, composable order, each narrowing the list the previous one left:

1. ``capability`` (always on): never a model that lacks vision, tools or the context the
   call needs. If no candidate can take the call, ``NoCapableModelError``; no other policy
   can override this one.
2. ``health``: skip candidates whose breaker is open (``HealthView.allows``). If every
   capable candidate is open the call still goes out, to the one that is least bad, since
   failing it here would be a certain failure for a likely one.
3. ``budget``: past ``step_down_at`` of a conversation's or agent's budget (dollars or
   tokens), only the cheapest candidate is left and the decision says so; past the budget
   itself, ``BudgetExceededError``.
4. a chooser: ``rules`` (first match whose model is still allowed), then ``learned`` (a
   bandit over graded outcomes), then ``cost`` (the cheapest candidate whose quality tier
   meets the tier the call's complexity asks for).
5. ties (same price and tier) go to the lowest live latency.

Every ``Decision`` carries the reason, so a trace can say why a call went where it went.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol, final

import msgspec

from relaybaton.actors.routing._bandit import LearnedRouter
from relaybaton.actors.routing._budget import expected_cost, expected_tokens, first_overshoot
from relaybaton.actors.routing._features import TaskFeatures
from relaybaton.actors.routing._rules import Rule, ordered
from relaybaton.adapters import Capabilities, ModelAdapter, Usage
from relaybaton.errors import BudgetExceededError, ConfigError, NoCapableModelError

__all__ = ["Budgets", "Candidate", "Decision", "HealthView", "Router", "violates"]


@final
class Candidate:
    """A model a slot may use: the adapter, its quality tier and its price.

    ``name`` is what rules and traces call it (``general``, ``reasoning``); ``tier`` orders
    quality (1 small, 2 general, 3 reasoning, ...); prices are USD per 1K tokens.
    """

    __slots__ = ("adapter", "name", "price_in_per_1k", "price_out_per_1k", "tier")

    def __init__(
        self,
        adapter: ModelAdapter,
        *,
        name: str | None = None,
        tier: int = 1,
        price_in_per_1k: float = 0.0,
        price_out_per_1k: float = 0.0,
    ) -> None:
        self.adapter = adapter
        self.name = name or adapter.name
        self.tier = tier
        self.price_in_per_1k = price_in_per_1k
        self.price_out_per_1k = price_out_per_1k

    def __repr__(self) -> str:
        return f"Candidate({self.name!r}, tier={self.tier}, {self.adapter.name!r})"

    @property
    def capabilities(self) -> Capabilities:
        """The adapter's capabilities."""
        return self.adapter.capabilities

    def price(self, tokens: int = 1000) -> float:
        """Dollars for ``tokens`` tokens, three quarters in and one quarter out."""
        return tokens / 1000 * (0.75 * self.price_in_per_1k + 0.25 * self.price_out_per_1k)


class Decision(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Where one call goes, and why.

    ``policy`` names what decided: ``rules``, ``learned``, ``cost``, ``budget`` (a step-down;
    ``stepped_down`` is then true), or, from the slot, ``rollout`` (the conversation is on a
    new model's arm), ``failover``, ``probe`` and ``retry``. ``error`` is empty for the
    attempt that answered, else what failed it (``ProviderUnavailableError: ...``), and
    ``latency_s`` how long that failed attempt took: a failed attempt stays in the trace.
    """

    candidate: str
    reason: str
    stepped_down: bool = False
    policy: str = ""
    error: str = ""
    latency_s: float = 0.0


class HealthView(Protocol):
    """Live health, as the supervisor sees it."""

    def allows(self, adapter: str) -> bool:
        """Whether the adapter's breaker lets a call through now."""
        ...

    def latency(self, adapter: str) -> float | None:
        """The adapter's live p50 latency in seconds, or None without data."""
        ...


class Budgets(msgspec.Struct, frozen=True, kw_only=True):
    """Spending limits; ``None`` means no limit. Past ``step_down_at`` × a limit the router
    sends calls to the cheapest candidate; past the limit it refuses them."""

    conversation_usd: float | None = None
    agent_usd: float | None = None
    conversation_tokens: int | None = None
    agent_tokens: int | None = None
    step_down_at: float = 0.8


def violates(candidate: Candidate, features: TaskFeatures) -> str | None:
    """What ``candidate`` lacks for a call with ``features``, or None."""
    caps = candidate.capabilities
    if features.needs_vision and not caps.vision:
        return "vision"
    if features.needs_tools and not caps.tools:
        return "tools"
    if features.expected_tokens > caps.context_tokens:
        return f"context of {features.expected_tokens} tokens (has {caps.context_tokens})"
    return None


@final
class _Spend:
    __slots__ = ("tokens", "usd")

    def __init__(self) -> None:
        self.usd = 0.0
        self.tokens = 0


@final
class Router:
    """Picks a candidate per call; see the module docstring for the order of policies."""

    def __init__(
        self,
        candidates: Sequence[Candidate],
        *,
        rules: Sequence[Rule] = (),
        learned: LearnedRouter | None = None,
        budgets: Budgets | None = None,
        health: HealthView | None = None,
        tiers: Sequence[tuple[int, int]] = ((3, 1), (7, 2), (10, 3)),
        quality_target: float = 0.8,
        max_tracked: int = 100_000,
        cost_reference: str | None = None,
    ) -> None:
        if not candidates:
            raise ConfigError("a router needs at least one candidate")
        self.candidates = tuple(candidates)
        self.by_name = {c.name: c for c in self.candidates}
        self.rules = ordered(rules)
        unknown = [r for r in self.rules if r.use not in self.by_name]
        if unknown:
            raise ConfigError(
                f"{unknown[0].label} uses {unknown[0].use!r}, which is not a candidate; "
                f"candidates: {', '.join(self.by_name)}"
            )
        # ``cost`` in a rule is the call's expected price on this candidate (the slot's
        # model), in whole US cents rounded up; computed only when a rule reads it.
        self.cost_reference = self.by_name.get(cost_reference or "", self.candidates[0])
        self._rules_read_cost = any("cost" in r.region.ranges for r in self.rules)
        self.learned = learned
        self.budgets = budgets
        self.health = health
        self.tiers = tuple(tiers)
        self.quality_target = quality_target
        self._max_tracked = max_tracked
        self._conversations: OrderedDict[str, _Spend] = OrderedDict()
        self._agents: dict[str, _Spend] = {}
        self.step_downs = 0

    # --- spend ------------------------------------------------------------------------------

    def charge(self, conversation_id: str, agent: str, usage: Usage) -> None:
        """Count a call's usage against its conversation's and agent's budgets."""
        if self.budgets is None:
            return
        tokens = usage.input_tokens + usage.output_tokens
        spend = self._conversations.get(conversation_id)
        if spend is None:
            spend = self._conversations[conversation_id] = _Spend()
            if len(self._conversations) > self._max_tracked:
                self._conversations.popitem(last=False)  # forget the oldest conversation
        spend.usd += usage.cost_usd
        spend.tokens += tokens
        by_agent = self._agents.setdefault(agent, _Spend())
        by_agent.usd += usage.cost_usd
        by_agent.tokens += tokens

    def _budget_share(self, conversation_id: str, agent: str) -> tuple[float, str]:
        """The largest used share of any budget, and which one."""
        budgets = self.budgets
        if budgets is None:
            return 0.0, ""
        worst, label = 0.0, ""
        conv = self._conversations.get(conversation_id)
        by_agent = self._agents.get(agent)
        where = f"conversation {conversation_id}"
        checks = (
            (conv.usd if conv else 0.0, budgets.conversation_usd, f"{where} $"),
            (conv.tokens if conv else 0, budgets.conversation_tokens, f"{where} tokens"),
            (by_agent.usd if by_agent else 0.0, budgets.agent_usd, f"agent {agent} $"),
            (by_agent.tokens if by_agent else 0, budgets.agent_tokens, f"agent {agent} tokens"),
        )  # fmt: skip
        for used, limit, name in checks:
            if limit is not None and limit > 0 and used / limit > worst:
                worst, label = used / limit, f"{name} {used:.6g} of {limit:.6g}"
        return worst, label

    # --- the decision -----------------------------------------------------------------------

    def required_tier(self, features: TaskFeatures) -> int:
        """The quality tier a call of this complexity asks for."""
        for ceiling, tier in self.tiers:
            if features.complexity <= ceiling:
                return tier
        return self.tiers[-1][1] if self.tiers else 1

    def choose(
        self,
        features: TaskFeatures,
        *,
        conversation_id: str = "",
        agent: str = "",
        exclude: Sequence[str] = (),
    ) -> Decision:
        """Pick a candidate for one call; ``exclude`` names adapters a retry should avoid.

        Raises:
            NoCapableModelError: no candidate has what the call needs.
            BudgetExceededError: a budget is used up.
        """
        capable = [c for c in self.candidates if violates(c, features) is None]
        if not capable:
            needs = sorted({v for c in self.candidates if (v := violates(c, features))})
            raise NoCapableModelError(
                f"no candidate can take this call: it needs {', '.join(needs)}; candidates: "
                f"{', '.join(self.by_name)}; add a candidate that has it",
                needs=tuple(needs),
            )
        notes: list[str] = []
        pool = capable
        if exclude:
            fresh = [c for c in pool if c.adapter.name not in exclude]
            if fresh:
                pool = fresh
        health = self.health
        if health is not None:
            healthy = [c for c in pool if health.allows(c.adapter.name)]
            if healthy:
                if len(healthy) < len(pool):
                    notes.append(
                        "skipped open breaker(s): "
                        + ", ".join(c.name for c in pool if c not in healthy)
                    )
                pool = healthy
            else:
                notes.append("every capable candidate's breaker is open; trying anyway")
        share, label = self._budget_share(conversation_id, agent)
        if self.budgets is not None and share >= 1.0:
            raise BudgetExceededError(
                f"budget used up: {label}; raise the budget in the flow's routing table or "
                "start a new conversation",
                budget=label,
            )
        cheapest = min(pool, key=lambda c: (c.price(), -c.tier))
        if self.budgets is not None:
            over = self._overshoot(cheapest, features, conversation_id, agent)
            if over is not None:
                raise BudgetExceededError(
                    f"budget would be passed by the next call: {over}; raise the budget in the "
                    "flow's routing table or start a new conversation",
                    budget=over,
                )
        if self.budgets is not None and share >= self.budgets.step_down_at:
            self.step_downs += 1
            return Decision(
                candidate=cheapest.name,
                reason=f"budget: {label} (≥ {self.budgets.step_down_at * 100:g}%); stepped down "
                f"to the cheapest model {cheapest.name}",
                stepped_down=True,
                policy="budget",
            )
        chosen, policy, why = self._pick(features, pool)
        if self.budgets is not None and chosen is not cheapest:
            over = self._overshoot(chosen, features, conversation_id, agent)
            if over is not None:
                self.step_downs += 1
                return Decision(
                    candidate=cheapest.name,
                    reason=f"budget: {chosen.name} would pass {over}; stepped down to the "
                    f"cheapest model {cheapest.name}",
                    stepped_down=True,
                    policy="budget",
                )
        if notes:
            why = f"{why}; {'; '.join(notes)}"
        return Decision(candidate=chosen.name, reason=why, policy=policy)

    def _overshoot(
        self, candidate: Candidate, features: TaskFeatures, conversation_id: str, agent: str
    ) -> str | None:
        """The budget a call on ``candidate`` would pass with its expected cost, or None."""
        budgets = self.budgets
        assert budgets is not None
        cost = expected_cost(candidate.price_in_per_1k, candidate.price_out_per_1k, features)
        tokens = expected_tokens(features)
        conv = self._conversations.get(conversation_id) or _Spend()
        mine = self._agents.get(agent) or _Spend()
        where, who = f"conversation {conversation_id}", f"agent {agent}"
        usd, toks = budgets.conversation_usd, budgets.conversation_tokens
        return first_overshoot(
            (
                (conv.usd + cost, usd, f"{where} ${conv.usd + cost:.6g} of {usd}"),
                (conv.tokens + tokens, toks, f"{where} {conv.tokens + tokens} tokens of {toks}"),
                (mine.usd + cost, budgets.agent_usd, f"{who} ${mine.usd + cost:.6g} of "
                 f"{budgets.agent_usd}"),
                (mine.tokens + tokens, budgets.agent_tokens, f"{who} {mine.tokens + tokens} "
                 f"tokens of {budgets.agent_tokens}"),
            )
        )  # fmt: skip

    def expected_cost_cents(self, features: TaskFeatures) -> int:
        """The call's expected price on the cost reference, in US cents rounded up."""
        return math.ceil(self.cost_reference.price(features.expected_tokens) * 100)

    def _pick(self, features: TaskFeatures, pool: list[Candidate]) -> tuple[Candidate, str, str]:
        allowed = {c.name for c in pool}
        if self._rules_read_cost:
            features = msgspec.structs.replace(features, cost=self.expected_cost_cents(features))
        for rule in self.rules:
            # A rule whose model cannot take the call (capability, health) falls through.
            if rule.matches(features) and rule.use in allowed:
                return self.by_name[rule.use], "rules", f"rule {rule.label}"
        by_price = sorted(pool, key=lambda c: (c.price(), -c.tier, self._latency(c)))
        if self.learned is not None:
            name = self.learned.choose(features, [c.name for c in by_price], self.quality_target)
            why = "learned: cheapest expected to meet the quality target"
            return self.by_name[name], "learned", why
        need = self.required_tier(features)
        for candidate in by_price:
            if candidate.tier >= need:
                return candidate, "cost", f"cost: cheapest of tier ≥ {need}"
        best = max(by_price, key=lambda c: (c.tier, -self._latency(c)))
        return best, "cost", f"cost: no candidate of tier {need}; the strongest"

    def _latency(self, candidate: Candidate) -> float:
        if self.health is None:
            return 0.0
        value = self.health.latency(candidate.adapter.name)
        return value if value is not None else 0.0
