"""Producers over NATS JetStream: messages in, accepted once and in order, replies out.

Real NATS (JetStream) and PostgreSQL on loopback; each test has its own subject prefix
(its own streams) and journal schema, deleted afterwards.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest
from nats.js import api

from relaybaton.cluster._inbound import RefusalCode
from relaybaton.cluster._outbound import (
    DEAD_CODE_HEADER,
    DEAD_REASON_HEADER,
    ORIGINAL_SUBJECT_HEADER,
    REPLY_TO_HEADER,
    ReplyBody,
)
from relaybaton.cluster._producers import start_consumers
from relaybaton.cluster._streams import ensure_streams
from relaybaton.cluster._subjects import ProducerSubjects
from relaybaton.errors import ConfigError, FencedWriteError
from relaybaton.runtime._message_limits import MAX_MESSAGE_BYTES, MAX_TEXT_CHARS
from tests._nats import wait_until
from tests.cluster._producing import (
    PARTITIONS,
    HeldPartitions,
    body,
    connected,
    listen,
    node_runtime,
    subject_of,
    user_texts,
)

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

_replies = msgspec.json.Decoder(ReplyBody)
ROOT = Path(__file__).resolve().parents[2]


async def test_messages_across_conversations_are_accepted_once_in_order_and_answered(
    schema: str, prefix: str
) -> None:
    conversations = [f"conv-{n}" for n in range(12)]
    per_conversation = 5
    async with connected() as nc, node_runtime(schema) as runtime:
        js = nc.jetstream()
        out = await listen(nc, f"{prefix}.out.>")
        async with start_consumers(
            nc, runtime, HeldPartitions(), subjects=ProducerSubjects(prefix)
        ) as consumers:
            # Interleaved across conversations, in order within each.
            for turn in range(per_conversation):
                for cid in conversations:
                    ack = await js.publish(
                        subject_of(prefix, cid),
                        body(cid, f"{cid}/m{turn}", f"{cid} says {turn}"),
                        headers={"Nats-Msg-Id": f"{cid}/m{turn}"},
                    )
                    assert not ack.duplicate
            total = len(conversations) * per_conversation
            await out.wait_for(total)
            await runtime.settle()

        by_conversation: dict[str, list[str]] = defaultdict(list)
        for msg, reply in zip(out.messages, out.replies(), strict=True):
            assert msg.subject == f"{prefix}.out.{reply.conversation_id}"
            assert reply.status == "replied"
            assert reply.agent == "assistant"
            by_conversation[reply.conversation_id].append(reply.message_id)
            said = reply.message_id.rsplit("m", 1)[1]
            assert reply.text == f"echo: {reply.conversation_id} says {said}"
        for cid in conversations:
            expected = [f"{cid}/m{turn}" for turn in range(per_conversation)]
            assert by_conversation[cid] == expected  # each once, in order
            assert user_texts(runtime, cid) == [
                f"{cid} says {turn}" for turn in range(per_conversation)
            ]
        assert consumers.counters.accepted == total
        assert consumers.counters.duplicates == 0
        # Acked after acceptance: the work queue holds nothing any more.
        info = await js.stream_info(consumers.subjects.stream)
        assert info.state.messages == 0


async def test_a_retry_inside_the_dedup_window_is_dropped_by_the_broker(
    schema: str, prefix: str
) -> None:
    async with connected() as nc, node_runtime(schema) as runtime:
        js = nc.jetstream()
        subjects = ProducerSubjects(prefix)
        out = await listen(nc, subjects.out("retry"))
        async with start_consumers(nc, runtime, HeldPartitions(), subjects=subjects) as consumers:
            message = body("retry", "r-1", "only once please")
            first = await js.publish(
                subject_of(prefix, "retry"), message, headers={"Nats-Msg-Id": "r-1"}
            )
            again = await js.publish(
                subject_of(prefix, "retry"), message, headers={"Nats-Msg-Id": "r-1"}
            )
            assert not first.duplicate
            assert again.duplicate
            await out.wait_for(1)
            await runtime.settle()
        assert user_texts(runtime, "retry") == ["only once please"]
        assert consumers.counters.accepted == 1


async def test_a_repeat_after_the_window_is_acked_and_not_processed_again(
    schema: str, prefix: str
) -> None:
    # Past the broker's window (here: another Nats-Msg-Id), the runtime's dedup by message
    # id is what holds (invariant 5); the repeat's reply is the first one's.
    async with connected() as nc, node_runtime(schema) as runtime:
        js = nc.jetstream()
        subjects = ProducerSubjects(prefix)
        out = await listen(nc, subjects.out("late"))
        async with start_consumers(nc, runtime, HeldPartitions(), subjects=subjects) as consumers:
            message = body("late", "l-1", "hello")
            await js.publish(subject_of(prefix, "late"), message, headers={"Nats-Msg-Id": "a"})
            await out.wait_for(1)
            await js.publish(subject_of(prefix, "late"), message, headers={"Nats-Msg-Id": "b"})
            await out.wait_for(2)
            await runtime.settle()
        assert user_texts(runtime, "late") == ["hello"]
        assert (consumers.counters.accepted, consumers.counters.duplicates) == (1, 1)
        first, second = out.replies()
        assert first == second


@pytest.mark.parametrize(
    ("data", "code", "reason"),
    [
        (b"not json at all", RefusalCode.UNDECODABLE, "not JSON"),
        (b'{"conversation_id": "c", "text": "hi"}', RefusalCode.INVALID, "message_id"),
        (b'{"conversation_id": "c", "message_id": "m", "text": 7}', RefusalCode.INVALID, "$.text"),
        (b'{"conversation_id": "c", "message_id": "m", "text": ""}', RefusalCode.INVALID, "length"),
        (
            b'{"conversation_id": "c", "message_id": "m", "text": "hi", "txet": 1}',
            RefusalCode.INVALID,
            "txet",
        ),
        (b'{"conversation_id": "a b", "message_id": "m", "text": "hi"}', RefusalCode.INVALID, "$"),
        (
            body("c", "m", "x" * (MAX_TEXT_CHARS + 1)),
            RefusalCode.TEXT_TOO_LONG,
            f"at most {MAX_TEXT_CHARS}",
        ),
    ],
    ids=[
        "not-json",
        "missing-field",
        "wrong-type",
        "empty-text",
        "unknown-field",
        "bad-id",
        "long",
    ],
)
async def test_a_message_no_node_can_process_is_dead_lettered_with_its_reason(
    schema: str, prefix: str, data: bytes, code: RefusalCode, reason: str
) -> None:
    async with connected() as nc, node_runtime(schema) as runtime:
        js = nc.jetstream()
        subjects = ProducerSubjects(prefix)
        dead = await listen(nc, subjects.dead)
        out = await listen(nc, subjects.out("c"))
        async with start_consumers(nc, runtime, HeldPartitions(), subjects=subjects) as consumers:
            bad_subject = subjects.partition(1)
            await js.publish(bad_subject, data)
            # A good message behind it on the same partition goes through: nothing is stuck.
            await js.publish(subject_of(prefix, "c"), body("c", "fine", "still here"))
            (letter,) = await dead.wait_for(1)
            await out.wait_for(1)
            # Counted once its publish returned, which can be after the letter arrived here.
            await wait_until(lambda: consumers.counters.dead_letters == {code: 1}, within=5)
            info = await js.stream_info(subjects.stream)
        assert letter.data == data
        headers = letter.headers or {}
        assert headers[DEAD_CODE_HEADER] == code.value
        assert reason in headers[DEAD_REASON_HEADER]
        assert headers[ORIGINAL_SUBJECT_HEADER] == bad_subject
        assert consumers.counters.dead_letters == {code: 1}
        assert info.state.messages == 0  # acked: never delivered again
        kept = await js.stream_info(subjects.dead_stream)
        assert kept.state.messages == 1  # and kept for reading later


async def test_an_oversized_message_is_dead_lettered(schema: str, prefix: str) -> None:
    # The server's own payload bound is 1 MiB too; a node with a lower bound refuses above it.
    from relaybaton.cluster._inbound import InboundLimits
    from relaybaton.cluster._partition_consumer import ConsumerSettings

    limit = 1000
    assert limit < MAX_MESSAGE_BYTES
    settings = ConsumerSettings(inbound=InboundLimits(max_bytes=limit))
    async with connected() as nc, node_runtime(schema) as runtime:
        js = nc.jetstream()
        subjects = ProducerSubjects(prefix)
        dead = await listen(nc, subjects.dead)
        async with start_consumers(
            nc, runtime, HeldPartitions(), subjects=subjects, settings=settings
        ) as consumers:
            data = body("big", "b-1", "y" * limit)
            await js.publish(subject_of(prefix, "big"), data)
            (letter,) = await dead.wait_for(1)
            oversized = {RefusalCode.OVERSIZED: 1}
            await wait_until(lambda: consumers.counters.dead_letters == oversized, within=5)
        assert (letter.headers or {})[DEAD_CODE_HEADER] == "oversized"
        assert runtime.conversation("big") is None


async def test_a_producer_naming_a_reply_subject_gets_the_reply_there(
    schema: str, prefix: str
) -> None:
    async with connected() as nc, node_runtime(schema) as runtime:
        js = nc.jetstream()
        subjects = ProducerSubjects(prefix)
        elsewhere = await listen(nc, subjects.out("asking"))
        async with start_consumers(nc, runtime, HeldPartitions(), subjects=subjects):
            inbox = nc.new_inbox()
            sub = await nc.subscribe(inbox)
            await js.publish(
                subject_of(prefix, "asking"),
                body("asking", "q-1", "what time is it?", user="ada"),
                headers={"Nats-Msg-Id": "q-1", REPLY_TO_HEADER: inbox},
            )
            msg = await sub.next_msg(timeout=15)
        reply = _replies.decode(msg.data)
        assert (reply.message_id, reply.text) == ("q-1", "echo: what time is it?")
        assert elsewhere.messages == []  # on the inbox instead of the out subject
        conversation = runtime.conversation("asking")
        assert conversation is not None
        assert conversation.user == "ada"


async def test_a_message_on_the_wrong_partition_is_moved_to_its_own(
    schema: str, prefix: str
) -> None:
    async with connected() as nc, node_runtime(schema) as runtime:
        js = nc.jetstream()
        subjects = ProducerSubjects(prefix)
        out = await listen(nc, subjects.out("lost"))
        right = int(subject_of(prefix, "lost").rsplit(".", 1)[1])
        wrong = (right + 1) % PARTITIONS
        async with start_consumers(nc, runtime, HeldPartitions(), subjects=subjects) as consumers:
            for n in range(3):
                await js.publish(
                    subjects.partition(wrong),
                    body("lost", f"w-{n}", f"turn {n}"),
                    headers={"Nats-Msg-Id": f"w-{n}"},
                )
            await out.wait_for(3)
            await runtime.settle()
        assert user_texts(runtime, "lost") == ["turn 0", "turn 1", "turn 2"]
        assert consumers.counters.misrouted == 3
        assert consumers.counters.accepted == 3


async def test_an_incompatible_stream_is_refused_at_start_with_the_fix(
    schema: str, prefix: str
) -> None:
    subjects = ProducerSubjects(prefix)
    async with connected() as nc, node_runtime(schema) as runtime:
        await nc.jetstream().add_stream(
            api.StreamConfig(
                name=subjects.stream,
                subjects=[subjects.inbound],
                storage=api.StorageType.MEMORY,
            )
        )
        with pytest.raises(ConfigError, match=r"retention is 'limits'.*storage is 'memory'"):
            async with start_consumers(nc, runtime, HeldPartitions(), subjects=subjects):
                pass  # pragma: no cover - refused before


async def test_a_lost_partition_stops_taking_and_the_next_holder_takes_over_in_order(
    schema: str, prefix: str
) -> None:
    # Two nodes on one journal: A holds partition p, gives it up, B gains it. Messages
    # published meanwhile wait in the stream and reach B, in order.
    cid = "moving"
    subjects = ProducerSubjects(prefix)
    partition = int(subject_of(prefix, cid).rsplit(".", 1)[1])
    async with (
        connected() as nc,
        node_runtime(schema) as node_a,
    ):
        js = nc.jetstream()
        out = await listen(nc, subjects.out(cid))
        a = HeldPartitions(held=(partition,))
        b = HeldPartitions(held=())
        async with start_consumers(nc, node_a, a, subjects=subjects) as on_a:
            for n in range(3):
                await js.publish(subject_of(prefix, cid), body(cid, f"x{n}", f"part one {n}"))
            await out.wait_for(3)
            await node_a.settle()
            await a.lose(partition)
            assert on_a.tasks == {}
        for n in range(3):
            await js.publish(subject_of(prefix, cid), body(cid, f"y{n}", f"part two {n}"))
        async with (
            node_runtime(schema) as node_b,
            start_consumers(nc, node_b, b, subjects=subjects) as on_b,
        ):
            await b.gain(partition, 2)
            await out.wait_for(6)
            await node_b.settle()
            assert user_texts(node_b, cid) == [
                *(f"part one {n}" for n in range(3)),
                *(f"part two {n}" for n in range(3)),
            ]
            assert on_b.counters.accepted == 3
        assert on_a.counters.accepted == 3


async def test_a_node_killed_between_journal_commit_and_ack_is_not_processed_twice(
    schema: str, prefix: str
) -> None:
    # The node process dies right after the journal holds message 3 and before its ack
    # (the failpoint kills it as SIGKILL would): NATS delivers it again to the next
    # holder, whose runtime knows its id from the journal and does not process it twice.
    cid = "crashy"
    subjects = ProducerSubjects(prefix)
    async with connected() as nc:
        js = nc.jetstream()
        # The streams exist before the producer publishes (the node would make them).
        await ensure_streams(js, subjects)
        for n in range(5):
            await js.publish(
                subject_of(prefix, cid),
                body(cid, f"k{n}", f"turn {n}"),
                headers={"Nats-Msg-Id": f"k{n}"},
            )
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "RELAYBATON_FAILPOINT": "after_user_accepted:3",
        }
        process = await anyio.open_process(
            [sys.executable, "-m", "tests.cluster._producer_node", prefix, schema],
            env=env,
            cwd=ROOT,
        )
        with anyio.fail_after(30):
            assert await process.wait() == 137
        pending = await js.stream_info(subjects.stream)
        assert pending.state.messages == 3  # k2 accepted but not acked, k3 and k4 untouched

        out = await listen(nc, subjects.out(cid))
        async with (
            node_runtime(schema) as runtime,
            start_consumers(nc, runtime, HeldPartitions(), subjects=subjects) as consumers,
        ):
            await out.wait_for(3)
            await runtime.settle()
            assert user_texts(runtime, cid) == [f"turn {n}" for n in range(5)]
            assert (consumers.counters.duplicates, consumers.counters.accepted) == (1, 2)
            assert sorted(r.message_id for r in out.replies()) == ["k2", "k3", "k4"]
            info = await js.stream_info(subjects.stream)
            assert info.state.messages == 0


async def test_a_fenced_journal_stops_the_partition_and_the_next_holder_goes_on_in_order(
    schema: str, prefix: str
) -> None:
    # Node A holds the partition under generation 1; node B raises the fence to 2 (took
    # it over) while A still consumes. A's next acceptance is refused by the journal: the
    # message is not acked, nothing behind it is taken, and B goes on from it, in order.
    cid = "fenced"
    subjects = ProducerSubjects(prefix)
    partition = int(subject_of(prefix, cid).rsplit(".", 1)[1])
    a, b = HeldPartitions(held=(partition,)), HeldPartitions(held=())
    refused: list[BaseException] = []
    stopped = asyncio.Event()

    async def note(_partition: int, error: BaseException) -> None:
        refused.append(error)
        stopped.set()

    async with connected() as nc:
        js = nc.jetstream()
        out = await listen(nc, subjects.out(cid))
        async with (
            node_runtime(schema, fencing=a) as node_a,
            start_consumers(nc, node_a, a, subjects=subjects, on_journal_refused=note) as on_a,
        ):
            await js.publish(subject_of(prefix, cid), body(cid, "f0", "before"))
            await out.wait_for(1)
            await node_a.settle()
            b.held[partition] = 2
            async with node_runtime(schema, fencing=b):  # B raises the fence, then waits
                for n in (1, 2):
                    await js.publish(subject_of(prefix, cid), body(cid, f"f{n}", f"after {n}"))
                with anyio.fail_after(15):
                    await stopped.wait()
                await a.lose(partition)
        assert isinstance(refused[0], FencedWriteError)
        assert on_a.counters.journal_refusals >= 1
        assert on_a.counters.accepted == 1
        info = await js.stream_info(subjects.stream)
        assert info.state.messages == 2  # neither was acked by A
        b.held.clear()
        async with (
            node_runtime(schema) as node_b,
            start_consumers(nc, node_b, b, subjects=subjects) as on_b,
        ):
            await b.gain(partition, 2)
            await out.wait_for(3)
            await node_b.settle()
            assert user_texts(node_b, cid) == ["before", "after 1", "after 2"]
            assert on_b.counters.accepted == 2
        assert [r.message_id for r in out.replies()] == ["f0", "f1", "f2"]


async def test_the_readme_producer_gets_its_reply(schema: str, prefix: str) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Producers over NATS", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    code = code.replace('f"relaybaton.in.', f'f"{prefix}.in.')
    assert prefix in code
    async with (
        connected() as nc,
        node_runtime(schema) as runtime,
        start_consumers(
            nc, runtime, HeldPartitions(partitions=64), subjects=ProducerSubjects(prefix)
        ),
    ):
        done = await anyio.run_process(
            [sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT)}
        )
    assert done.stdout.decode().strip() == "echo: Where is my order?"


async def test_a_message_that_keeps_failing_is_dead_lettered_after_max_deliver(
    schema: str, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from relaybaton.cluster._partition_consumer import ConsumerSettings

    settings = ConsumerSettings(max_deliver=3, retry_delay_s=0.01)
    async with connected() as nc, node_runtime(schema) as runtime:
        js = nc.jetstream()
        subjects = ProducerSubjects(prefix)
        dead = await listen(nc, subjects.dead)
        accept = runtime.accept
        tries: list[str] = []

        async def broken_for_one(conversation_id: str, text: str, **kw: Any) -> Any:
            if conversation_id == "poison":  # a fault injected into acceptance
                tries.append(text)
                raise RuntimeError("this message breaks acceptance")
            return await accept(conversation_id, text, **kw)

        monkeypatch.setattr(runtime, "accept", broken_for_one)
        poison_subject = subject_of(prefix, "poison")
        healthy = next(f"h{n}" for n in range(100) if subject_of(prefix, f"h{n}") == poison_subject)
        out = await listen(nc, subjects.out(healthy))
        async with start_consumers(
            nc, runtime, HeldPartitions(), subjects=subjects, settings=settings
        ) as consumers:
            await js.publish(poison_subject, body("poison", "p-1", "boom"))
            await js.publish(poison_subject, body(healthy, "h-1", "fine"))  # behind it
            (letter,) = await dead.wait_for(1)
            await out.wait_for(1)
        assert tries == ["boom"] * 3
        headers = letter.headers or {}
        assert headers[DEAD_CODE_HEADER] == RefusalCode.POISON.value
        assert "failed 3 times" in headers[DEAD_REASON_HEADER]
        assert consumers.counters.retries == 3
        assert consumers.counters.accepted == 1
