"""The timeline's markup: lanes in the order agents acted, baton rows across lanes, escaping."""

from __future__ import annotations

from relaybaton.actors import ModelCallEvent, ToolCallEvent
from relaybaton.actors.routing._router import Decision
from relaybaton.runtime.messages import HandoffEvent, OperatorEvent, ReplyEvent
from relaybaton.service.console._html import html, page
from relaybaton.service.console._timeline import lane_css, render_timeline


def test_lanes_follow_the_entry_then_who_acted_and_people_come_last() -> None:
    events = [
        (
            1,
            ModelCallEvent(
                agent="triage",
                slot="general",
                model="m1",
                latency_s=0.012,
                input_tokens=10,
                output_tokens=5,
                cost_usd=0.0001,
                route=Decision(candidate="m1", reason="cheapest that fits", policy="cost"),
            ),
        ),
        (2, HandoffEvent(action="handoff", sender="triage", target="refund", epoch=1, at=0.0)),
        (3, OperatorEvent(action="take", by="person:ana", epoch=2, detail="refund", at=0.0)),
        (4, ReplyEvent(agent="person:ana", text="done", epoch=2, at=0.0)),
    ]
    markup = render_timeline(["triage", "billing", "refund"], events)
    heads = markup.split('class="lane-head')[1:]
    assert [h.split(">", 1)[1].split("<", 1)[0] for h in heads] == [
        "triage",
        "refund",
        "billing",
        "people",
    ]
    assert 'class="ev ev-baton span-1-2"' in markup  # triage -> refund, epoch 1
    assert "epoch 1" in markup
    assert 'class="ev ev-baton span-2-4"' in markup  # refund -> the people's lane
    assert "cost: cheapest that fits" in markup
    assert "12 ms" in markup
    assert "10 in / 5 out tokens" in markup


def test_tool_arguments_and_results_are_escaped() -> None:
    event = ToolCallEvent(
        agent="refund",
        tool="issue_refund",
        call_id="c1",
        tool_kind="function",
        latency_s=0.0,
        arguments='{"note": "<img src=x onerror=alert(1)>"}',
        result="</pre><script>alert(2)</script>",
    )
    markup = render_timeline(["refund"], [(1, event)])
    assert "<img" not in markup
    assert "<script>" not in markup
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in markup


def test_a_page_escapes_its_title_and_links_only_its_own_script() -> None:
    markup = page("<b>t</b>", html("<p>{}</p>", "<i>x</i>"), flow='"flow"')
    assert "&lt;b&gt;t&lt;/b&gt;" in markup
    assert "<p>&lt;i&gt;x&lt;/i&gt;</p>" in markup
    assert markup.count("<script") == 1
    assert '<script src="/console/static/console.js" defer></script>' in markup


def test_the_lane_rules_cover_every_span() -> None:
    css = lane_css()
    assert ".span-1-8 { grid-column: 1 / 9; }" in css
    assert ".lanes-8 {" in css


def test_the_supervisor_page_shows_candidates_breakers_windows_and_a_rollout() -> None:
    from relaybaton.actors.routing import Candidate, HealthBoard, ModelSlot
    from relaybaton.service.console._more_pages import supervisor_fragment
    from relaybaton.testing import FakeClock, ScriptedModel

    clock = FakeClock()
    small = ScriptedModel(["ok"], name="small<1>")
    large = ScriptedModel(["ok"], name="large")
    board = HealthBoard(clock)
    slot = ModelSlot(
        "general",
        small,
        clock=clock,
        candidates=[Candidate(small, tier=1), Candidate(large, tier=2)],
        board=board,
    )
    breaker = board.breaker("small<1>")
    token = breaker.started(0.0)
    breaker.finished(token, 0.25, ok=True)
    slot.start_rollout(ScriptedModel(["ok"], name="newer"))
    markup = supervisor_fragment({"general": slot})
    assert "small&lt;1&gt; (held)" in markup
    assert "<td>large</td>" in markup
    assert "250 ms" in markup  # p50 and p95 of the one call
    assert "rollout small&lt;1&gt; → newer" in markup
    assert "Breakers and rollouts over time" in markup


def test_a_slot_whose_unrouted_calls_change_model_shows_a_swap() -> None:
    def call(model: str) -> ModelCallEvent:
        return ModelCallEvent(agent="triage", slot="general", model=model, latency_s=0.01)

    markup = render_timeline(["triage"], [(1, call("a")), (2, call("a")), (3, call("b"))])
    assert markup.count("ev-swap") == 1
    assert "slot general: a → b" in markup
