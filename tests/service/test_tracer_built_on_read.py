"""Spans are built when a trace is read (or as turns end, for an exporter), from the event
hub's bounded log of each conversation's events, dropping whole turns the log lost."""

from __future__ import annotations

import logging

import pytest
import structlog

from relaybaton.actors import Agent, Runtime, open_runtime
from relaybaton.service._sse import EventHub
from relaybaton.service._tracing import Span, Tracer, trace_id_for
from relaybaton.testing import ScriptedModel

pytestmark = pytest.mark.anyio


def built_on_read(rt: Runtime, replay_events: int = 512) -> Tracer:
    """A tracer building on read from a new event hub keeping ``replay_events`` each."""
    hub = EventHub(rt.conversations, replay_events=replay_events)
    return Tracer(rt, flow_name="f", hub=hub, build_as_turns_end=False)


class Collected:
    def __init__(self) -> None:
        self.spans: list[Span] = []

    def export(self, span: Span) -> None:
        self.spans.append(span)

    def shutdown(self) -> None:
        pass


async def test_spans_are_built_when_the_trace_is_read_and_equal_the_turns() -> None:
    agent = Agent(name="assistant")
    async with open_runtime(agent, models=ScriptedModel(lambda _r: "Hi."), tracing=False) as rt:
        tracer = built_on_read(rt)
        for i in range(3):
            await rt.send("c1", f"Hello {i}", message_id=f"m{i}")
        assert list(tracer.spans) == []  # nothing read yet: nothing built
        spans = tracer.trace("c1")
        tracer.close()
    workflows = [s for s in spans if s.name == "invoke_workflow f"]
    assert [s.attributes["relaybaton.message.id"] for s in workflows] == ["m0", "m1", "m2"]
    for span in spans:  # every span belongs to one of the turns, and each has ended
        assert span.trace_id in {trace_id_for("c1", f"m{i}") for i in range(3)}
        assert span.end is not None
        assert span.end >= span.start
    chats = [s for s in spans if s.name.startswith("chat ")]
    assert len(chats) == 3


async def test_a_full_log_drops_its_oldest_turns_whole() -> None:
    agent = Agent(name="assistant")
    async with open_runtime(agent, models=ScriptedModel(lambda _r: "Hi."), tracing=False) as rt:
        tracer = built_on_read(rt, replay_events=5)
        for i in range(6):
            await rt.send("c1", f"Hello {i}", message_id=f"m{i}")
        spans = tracer.trace("c1")
        tracer.close()
    kept = {s.attributes["relaybaton.message.id"] for s in spans if s.name == "invoke_workflow f"}
    assert kept
    assert "m5" in kept
    assert "m0" not in kept
    for span in spans:  # no span of a turn whose start was dropped
        assert span.trace_id in {trace_id_for("c1", m) for m in kept}


async def test_with_an_exporter_spans_are_built_as_turns_end() -> None:
    agent = Agent(name="assistant")
    exporter = Collected()
    async with open_runtime(agent, models=ScriptedModel(lambda _r: "Hi."), tracing=False) as rt:
        tracer = Tracer(rt, flow_name="f", exporter=exporter)
        await rt.send("c1", "Hello", message_id="m0")
        names = [s.name for s in exporter.spans]  # before any read
        tracer.close()
    assert "invoke_workflow f" in names
    assert any(n.startswith("chat ") for n in names)


async def test_a_debug_log_says_each_turn_finished_as_it_ends() -> None:
    agent = Agent(name="assistant")
    async with open_runtime(agent, models=ScriptedModel(lambda _r: "Hi."), tracing=False) as rt:
        tracer = Tracer(rt, flow_name="f")  # the tests log at debug: built as turns end
        assert tracer.build_as_turns_end
        await rt.send("c1", "Hello", message_id="m0")
        assert any(s.name == "invoke_workflow f" for s in tracer.spans)
        tracer.close()


async def test_a_second_read_builds_only_what_was_logged_since_the_first() -> None:
    agent = Agent(name="assistant")
    async with open_runtime(agent, models=ScriptedModel(lambda _r: "Hi."), tracing=False) as rt:
        tracer = built_on_read(rt)
        await rt.send("c1", "Hello", message_id="m0")
        first = tracer.trace("c1")
        await rt.send("c1", "Again", message_id="m1")
        second = tracer.trace("c1")
        tracer.close()
    assert second[: len(first)] == first  # the first read's spans, not built twice
    workflows = [s for s in second if s.name == "invoke_workflow f"]
    assert [s.attributes["relaybaton.message.id"] for s in workflows] == ["m0", "m1"]
    assert len(tracer.spans) == len(second)


async def test_a_tracer_without_a_hub_builds_as_turns_end() -> None:
    # At warning level (as `serve` runs), where a tracer with a hub builds on read.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    agent = Agent(name="assistant")
    async with open_runtime(agent, models=ScriptedModel(lambda _r: "Hi."), tracing=False) as rt:
        with pytest.raises(ValueError, match="hub"):
            Tracer(rt, flow_name="f", build_as_turns_end=False)
        with_hub = Tracer(rt, flow_name="f", hub=EventHub(rt.conversations))
        without = Tracer(rt, flow_name="f")
        await rt.send("c1", "Hello", message_id="m0")
        assert not with_hub.build_as_turns_end
        assert list(with_hub.spans) == []
        assert without.build_as_turns_end
        assert any(s.name == "invoke_workflow f" for s in without.spans)
        with_hub.close()
        without.close()


async def test_a_turn_that_runs_on_after_the_streams_end_is_still_traced() -> None:
    agent = Agent(name="assistant")
    async with open_runtime(agent, models=ScriptedModel(lambda _r: "Hi."), tracing=False) as rt:
        tracer = built_on_read(rt)
        hub = tracer.hub
        assert hub is not None
        hub.end_streams()  # the server drains: its streams end, a late turn goes on
        await rt.send("c1", "Hello", message_id="m0")
        assert hub.log("c1").closed
        spans = tracer.trace("c1")
        hub.close()
        tracer.close()
    assert [
        s.attributes["relaybaton.message.id"] for s in spans if s.name == "invoke_workflow f"
    ] == ["m0"]
