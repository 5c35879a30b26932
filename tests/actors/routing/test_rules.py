"""Routing rules: matching, and the load-time check for dead and ambiguous rules."""

from __future__ import annotations

import pytest

from relaybaton.actors.routing import Rule, TaskFeatures
from relaybaton.actors.routing._rules import check_rules
from relaybaton.errors import ConfigError


def _rules(*specs: tuple[str, str] | tuple[str, str, int]) -> list[Rule]:
    return [
        Rule(spec[0], spec[1], priority=spec[2] if len(spec) == 3 else None, index=i)
        for i, spec in enumerate(specs)
    ]


def test_a_broader_rule_first_makes_the_narrower_one_dead_and_the_message_names_both() -> None:
    problems = check_rules(_rules(("complexity > 5", "reasoning"), ("complexity > 15", "big")))
    assert [p.index for p in problems] == [1]
    assert problems[0].message == (
        "can never match: rules[0] (complexity > 5) already takes every call with "
        "complexity > 15; put rules[1] before rules[0] or narrow rules[0]"
    )


def test_the_seed_shape_is_valid_and_routes_as_written() -> None:
    rules = _rules(
        ("complexity <= 3", "general"),
        ("complexity <= 7", "reasoning"),
        ("vision", "multimodal"),
        ("", "domain"),
    )
    assert check_rules(rules) == []
    first = lambda f: next(r.use for r in rules if r.matches(f))  # noqa: E731
    assert first(TaskFeatures(complexity=2)) == "general"
    assert first(TaskFeatures(complexity=6)) == "reasoning"
    assert first(TaskFeatures(complexity=9, needs_vision=True)) == "multimodal"
    assert first(TaskFeatures(complexity=9)) == "domain"


def test_a_rule_covered_only_by_several_earlier_rules_together_is_dead() -> None:
    problems = check_rules(
        _rules(("complexity <= 3", "a"), ("complexity >= 4", "b"), ("vision", "c"))
    )
    assert [p.index for p in problems] == [2]
    assert "rules[0] and rules[1] together already take every call with vision" in (
        problems[0].message
    )


def test_rules_of_equal_priority_that_overlap_are_ambiguous() -> None:
    problems = check_rules(_rules(("complexity <= 5", "a", 1), ("vision", "b", 1)))
    assert len(problems) == 1
    assert problems[0].message == (
        "overlaps rules[0] (complexity <= 5) with the same priority 1: both take calls with "
        "complexity <= 5 and vision but send them to 'a' and 'b'; give one a higher priority "
        "or narrow one"
    )


def test_a_rule_without_priority_ranks_as_zero_and_overlaps_one_with_priority_zero() -> None:
    problems = check_rules(
        _rules(("complexity <= 5", "a", 0), ("vision", "b"), ("complexity > 8", "c", 1))
    )
    assert [p.index for p in problems] == [1]
    assert problems[0].message.startswith(
        "overlaps rules[0] (complexity <= 5) with the same priority 0: both take calls with"
    )


def test_a_higher_priority_orders_overlapping_rules() -> None:
    assert check_rules(_rules(("complexity <= 5", "a", 2), ("vision", "b", 1))) == []


def test_contradictory_conditions_are_reported() -> None:
    problems = check_rules(_rules(("complexity > 5 and complexity < 3", "a")))
    assert "contradict each other" in problems[0].message


def test_domain_rules_are_checked_too() -> None:
    problems = check_rules(
        _rules(('domain == "math"', "a"), ('domain in ["math", "code"] and vision', "b"))
    )
    assert problems == []  # "code" with vision is still reachable
    problems = check_rules(_rules(('domain == "math"', "a"), ('domain == "math" and vision', "b")))
    assert [p.index for p in problems] == [1]


def test_unreadable_conditions_say_what_was_expected() -> None:
    with pytest.raises(ConfigError, match="cannot read condition `complexity ~ 3`"):
        Rule("complexity ~ 3", "a")
    with pytest.raises(ConfigError, match="unknown feature `price`"):
        Rule("price > 5", "a")


def test_the_seeds_shadowed_cost_branch_is_refused_naming_both_rules() -> None:
    rules = [Rule("cost > 5", "reasoning", index=0), Rule("cost > 15", "domain", index=1)]
    [problem] = check_rules(rules)
    assert problem.index == 1
    assert problem.message.startswith(
        "can never match: rules[0] (cost > 5) already takes every call with cost > 15"
    )
