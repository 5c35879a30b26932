"""A routed slot streams: deltas as they come, failover before the first one, none after."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relaybaton.actors.routing import Candidate, HealthBoard, ModelSlot
from relaybaton.actors.routing._router import Decision
from relaybaton.adapters import (
    Capabilities,
    ModelRequest,
    ModelResponse,
    RequestMetadata,
    RetryPolicy,
    StreamEvent,
    TextDelta,
)
from relaybaton.errors import ModelOverloadedError
from relaybaton.runtime import MonotonicClock
from relaybaton.testing import ScriptedModel

pytestmark = pytest.mark.anyio

REQUEST = ModelRequest(metadata=RequestMetadata(agent="triage", conversation_id="c1"))


class _CutAfter:
    """Streams ``text`` word by word, then fails as a dropped connection would."""

    capabilities = Capabilities()

    def __init__(self, name: str, text: str) -> None:
        self.name = name
        self.text = text
        self.sent = 0

    async def complete(self, request: ModelRequest) -> ModelResponse:
        raise AssertionError("streamed only")

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        self.sent += 1
        for i, word in enumerate(self.text.split(" ")):
            yield TextDelta(text=word if i == 0 else " " + word)
        raise ModelOverloadedError(f"{self.name} cut mid-answer")

    async def aclose(self) -> None:
        return None


def _slot(*adapters: object) -> ModelSlot:
    clock = MonotonicClock()
    candidates = [Candidate(a) for a in adapters]  # type: ignore[arg-type]
    return ModelSlot(
        "general",
        candidates[0].adapter,
        clock=clock,
        board=HealthBoard(clock),
        candidates=candidates,
        retry=RetryPolicy(attempts=len(candidates), base_delay=0.0),
    )


async def test_a_failure_before_the_first_token_fails_over_unseen_and_deltas_keep_coming() -> None:
    primary = ScriptedModel([ModelOverloadedError("busy")], name="primary")
    fallback = ScriptedModel(["the answer comes in pieces"], name="fallback")
    slot = _slot(primary, fallback)
    texts: list[str] = []
    routes: list[Decision] = []
    response = await slot.stream(REQUEST, agent="triage", on_text=texts.append, routes=routes)
    assert texts == ["the", " answer", " comes", " in", " pieces"]
    assert response.message.text == "the answer comes in pieces"
    assert [(r.candidate, r.error.partition(":")[0]) for r in routes] == [
        ("primary", "ModelOverloadedError"),
        ("fallback", ""),
    ]


async def test_a_failure_after_the_first_token_is_raised_and_never_restarted() -> None:
    primary = _CutAfter("primary", "half an")
    fallback = ScriptedModel(["never asked"], name="fallback")
    slot = _slot(primary, fallback)
    texts: list[str] = []
    routes: list[Decision] = []
    with pytest.raises(ModelOverloadedError, match="cut mid-answer"):
        await slot.stream(REQUEST, on_text=texts.append, routes=routes)
    assert texts == ["half", " an"]
    assert primary.sent == 1
    assert fallback.requests == []
    assert routes[-1].error.startswith("ModelOverloadedError")


# Each candidate: ok, fails before its first token, or fails after showing some.
outcomes = st.lists(st.sampled_from(["ok", "before", "after"]), min_size=1, max_size=4)


@settings(max_examples=60, deadline=None)
@given(outcomes)
def test_the_client_sees_one_answer_or_the_text_then_an_error_never_a_restart(
    plan: list[str],
) -> None:
    adapters: list[object] = []
    for i, outcome in enumerate(plan):
        name = f"m{i}"
        if outcome == "ok":
            adapters.append(ScriptedModel([f"answer of {name}"], name=name))
        elif outcome == "before":
            adapters.append(ScriptedModel([ModelOverloadedError(f"{name} busy")], name=name))
        else:
            adapters.append(_CutAfter(name, f"partial of {name}"))
    slot = _slot(*adapters)
    texts: list[str] = []

    async def run() -> str | None:
        try:
            return (await slot.stream(REQUEST, on_text=texts.append)).message.text
        except ModelOverloadedError:
            return None

    answer = anyio.run(run)
    first = next((i for i, o in enumerate(plan) if o != "before"), None)
    shown = "".join(texts)
    if first is None:  # every candidate failed before a token: nothing shown
        assert (answer, shown) == (None, "")
    elif plan[first] == "ok":  # earlier failures unseen: only this answer
        assert (answer, shown) == (f"answer of m{first}", f"answer of m{first}")
    else:  # text shown, then the error: nothing after it
        assert (answer, shown) == (None, f"partial of m{first}")
