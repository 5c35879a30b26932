"""Producers' turns' events on ``<prefix>.events.<conversation_id>``, read by a real NATS
subscriber: in order, as JSON, only for turns that came in over NATS, and only when on."""

from __future__ import annotations

import msgspec
import pytest

from relaybaton.cluster._producers import start_consumers
from relaybaton.cluster._subjects import ProducerSubjects
from tests.cluster._producing import (
    HeldPartitions,
    body,
    connected,
    listen,
    node_runtime,
    subject_of,
)

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


async def test_a_producers_turn_has_its_events_published_and_a_direct_turn_has_none(
    schema: str, prefix: str
) -> None:
    subjects = ProducerSubjects(prefix)
    async with connected() as nc, node_runtime(schema) as runtime:
        events = await listen(nc, f"{prefix}.events.>")
        out = await listen(nc, subjects.out("ev-1"))
        async with start_consumers(
            nc, runtime, HeldPartitions(), subjects=subjects, events=True
        ) as consumers:
            # A turn that did not come over NATS (a Python or HTTP caller): no events.
            direct = await runtime.send("ev-2", "hello directly", message_id="d-1")
            assert direct.error is None
            js = nc.jetstream()
            for n in range(2):
                await js.publish(
                    subject_of(prefix, "ev-1"),
                    body("ev-1", f"e-{n}", f"hello {n}"),
                    headers={"Nats-Msg-Id": f"e-{n}"},
                )
            await out.wait_for(2)
            # The reply event of the last turn is published after the turn's own, and
            # after anything of ev-2 would have been (one publisher, one subscriber).
            got = await events.wait_for(4)
        decoded = [msgspec.json.decode(m.data) for m in got]
        assert {m.subject for m in got} == {f"{prefix}.events.ev-1"}
        assert [(e["message_id"], e["kind"]) for e in decoded] == [
            ("e-0", "model_call"),
            ("e-0", "reply"),
            ("e-1", "model_call"),
            ("e-1", "reply"),
        ]
        assert all(e["conversation_id"] == "ev-1" for e in decoded)
        assert decoded[1]["text"] == "echo: hello 0"
        assert decoded[1]["agent"] == "assistant"
        assert consumers.counters.events == 4
        assert consumers.counters.events_dropped == consumers.counters.events_refused == 0


async def test_events_are_not_published_unless_asked_for(schema: str, prefix: str) -> None:
    subjects = ProducerSubjects(prefix)
    async with connected() as nc, node_runtime(schema) as runtime:
        events = await listen(nc, f"{prefix}.events.>")
        out = await listen(nc, subjects.out("ev-3"))
        async with start_consumers(nc, runtime, HeldPartitions(), subjects=subjects) as consumers:
            await nc.jetstream().publish(subject_of(prefix, "ev-3"), body("ev-3", "q-0", "hi"))
            await out.wait_for(1)
            await nc.flush()
        assert consumers.events is None
        assert consumers.counters.events == 0
        assert events.messages == []
