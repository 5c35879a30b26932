"""Agents as configuration: handoff() and as_tool() defaults, name checks, history filters."""

from __future__ import annotations

import re

import pytest

from relaybaton.actors import (
    Agent,
    AgentTool,
    Handoff,
    handoff,
    keep_last_user_message,
    strip_tool_calls,
)
from relaybaton.adapters import AssistantMessage, ToolCall, ToolResultMessage, UserMessage
from relaybaton.errors import ConfigError

REFUND = Agent(name="refund", description="Refunds for orders.")


def test_handoff_defaults_to_a_transfer_tool_described_by_the_agent() -> None:
    edge = handoff(REFUND)
    assert edge == Handoff(
        agent=REFUND,
        tool_name="transfer_to_refund",
        tool_description="Refunds for orders.",
    )
    assert edge.target == "refund"
    assert (edge.return_to_sender, edge.lease_turns, edge.input_filter) == (False, 1, None)
    assert edge.spec.name == "transfer_to_refund"
    assert edge.spec.parameters["properties"] == {
        "reason": {"type": "string", "description": "Why the conversation goes to this agent."}
    }


def test_a_handoff_by_name_gets_a_generic_description() -> None:
    edge = handoff("billing")
    assert (edge.target, edge.tool_name, edge.tool_description) == (
        "billing",
        "transfer_to_billing",
        "Hand the conversation to the billing agent.",
    )


def test_handoff_options_override_the_defaults() -> None:
    edge = handoff(
        REFUND,
        tool_name="escalate",
        tool_description="Money back.",
        return_to_sender=True,
        lease_turns=3,
        input_filter=keep_last_user_message,
    )
    assert (edge.tool_name, edge.tool_description, edge.return_to_sender, edge.lease_turns) == (
        "escalate",
        "Money back.",
        True,
        3,
    )
    assert edge.input_filter is keep_last_user_message


def test_an_agents_handoffs_are_all_normalised_to_handoff_edges() -> None:
    triage = Agent(name="triage", handoffs=(REFUND, "billing", handoff("policy", tool_name="ask")))
    assert [(h.target, h.tool_name) for h in triage.handoff_edges] == [
        ("refund", "transfer_to_refund"),
        ("billing", "transfer_to_billing"),
        ("policy", "ask"),
    ]


def test_as_tool_defaults_to_the_agent_name_and_description() -> None:
    tool = REFUND.as_tool()
    assert tool == AgentTool(
        agent=REFUND, name="refund", description="Refunds for orders.", timeout=300.0
    )
    assert tool.target == "refund"
    assert tool.spec.parameters["required"] == ["input"]
    undescribed = Agent(name="quiet").as_tool("ask_quiet", timeout=5)
    assert (undescribed.name, undescribed.description, undescribed.timeout) == (
        "ask_quiet",
        "Ask the quiet agent.",
        5,
    )


@pytest.mark.parametrize("name", ["", "1st", "has space", "dot.ted", "x" * 65])
def test_an_invalid_agent_name_is_refused_with_the_rule(name: str) -> None:
    expected = (
        f"agent name {name!r} must start with a letter and use only letters, digits, '_' and "
        "'-' (at most 64 characters)"
    )
    with pytest.raises(ConfigError, match=f"^{re.escape(expected)}$"):
        Agent(name=name)


def test_max_turns_below_one_is_refused() -> None:
    with pytest.raises(ConfigError, match="agent 'a': max_turns must be at least 1"):
        Agent(name="a", max_turns=0)


CALL = ToolCall(id="c1", name="lookup", arguments="{}")
HISTORY = [
    UserMessage(text="first"),
    AssistantMessage(text="let me look", tool_calls=(CALL,), agent="triage"),
    ToolResultMessage(call_id="c1", name="lookup", content="found"),
    AssistantMessage(tool_calls=(ToolCall(id="c2", name="transfer_to_refund"),), agent="triage"),
    ToolResultMessage(call_id="c2", name="transfer_to_refund", content="Transferred"),
    AssistantMessage(text="answer", agent="triage"),
    UserMessage(text="second"),
    AssistantMessage(text="thinking", agent="triage"),
]


def test_strip_tool_calls_keeps_the_words_and_drops_calls_and_results() -> None:
    assert list(strip_tool_calls(HISTORY)) == [
        UserMessage(text="first"),
        AssistantMessage(text="let me look", agent="triage"),
        AssistantMessage(text="answer", agent="triage"),
        UserMessage(text="second"),
        AssistantMessage(text="thinking", agent="triage"),
    ]


def test_keep_last_user_message_keeps_only_the_message_to_answer() -> None:
    assert list(keep_last_user_message(HISTORY)) == [UserMessage(text="second")]
    assert list(keep_last_user_message([AssistantMessage(text="x")])) == []
