"""The kernel's approval rule, as the CLI uses it over a store: check, build, apply."""

from __future__ import annotations

import pytest

from relaybaton.errors import ApprovalError
from relaybaton.runtime import (
    ApprovalDecided,
    ApprovalRequested,
    Conversation,
    ConversationStatus,
)
from relaybaton.runtime._approvals import (
    arguments_hash,
    decide_on,
    expire_on,
    pending_of,
)
from relaybaton.runtime._transitions import approval_requested

ARGS = '{"amount": 120}'


def _waiting(expires_at: float | None = None) -> Conversation:
    conversation = Conversation(id="c", owner="a")
    approval_requested(
        conversation,
        ApprovalRequested(
            approval_id="ap-1",
            agent="a",
            call_id="k",
            tool="refund",
            arguments=ARGS,
            arguments_hash=arguments_hash(ARGS),
            rule="always",
            requested_at=10.0,
            expires_at=expires_at,
        ),
    )
    return conversation


def _decide(
    conversation: Conversation, decision: str, **options: object
) -> tuple[ApprovalDecided, bool]:
    values: dict[str, object] = {
        "arguments_hash": arguments_hash(ARGS),
        "arguments": None,
        "note": "",
        "by": "",
        "now": 11.0,
    }
    values.update(options)
    return decide_on(conversation, "ap-1", decision, **values)  # type: ignore[arg-type]


def test_a_decision_is_applied_once_and_a_repeat_returns_it() -> None:
    conversation = _waiting()
    assert pending_of([conversation])[0].approval_id == "ap-1"
    decided, fresh = _decide(conversation, "approve", by="ops")
    assert fresh
    assert decided.decision == "approve"
    assert decided.by == "ops"
    assert conversation.status is ConversationStatus.ACTIVE
    assert pending_of([conversation]) == []
    again, fresh_again = _decide(conversation, "approve")
    assert again is decided
    assert not fresh_again
    with pytest.raises(ApprovalError, match="single-use"):
        _decide(conversation, "reject")


def test_a_decision_is_bound_to_the_arguments_hash() -> None:
    conversation = _waiting()
    with pytest.raises(ApprovalError, match="the request changed"):
        _decide(conversation, "approve", arguments_hash="0" * 16)
    assert conversation.status is ConversationStatus.AWAITING_APPROVAL


def test_an_edit_needs_a_json_object_and_late_decisions_are_refused() -> None:
    with pytest.raises(ApprovalError, match="JSON object"):
        _decide(_waiting(), "edit", arguments="[1]")
    with pytest.raises(ApprovalError, match="expired"):
        _decide(_waiting(expires_at=10.5), "approve")


def test_expiry_rejects_and_resumes_the_conversation() -> None:
    conversation = _waiting(expires_at=10.5)
    decided = expire_on(conversation, "ap-1")
    assert (decided.decision, decided.by) == ("expire", "timeout")
    assert conversation.status is ConversationStatus.ACTIVE
