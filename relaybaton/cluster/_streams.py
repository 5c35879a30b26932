"""The two JetStream streams a cluster's producers use: created at node start, or checked.

``<PREFIX>_IN`` holds user messages until a node accepted them. It is a work queue: a
message leaves the stream when its partition's consumer acks it (after the journal holds
it), so the stream is exactly what no node has accepted yet, and a consumer made afresh
for a partition starts at its oldest unaccepted message. File storage, so a NATS restart
loses nothing a producer was told was stored; the dedup window is set explicitly, and a
producer's retry with the same ``Nats-Msg-Id`` inside it is dropped by the broker.

``<PREFIX>_DEAD`` keeps dead letters (``<prefix>.dead``) for a week, so a refused message
can be read after the fact even when nobody listened when it was refused.
"""

from __future__ import annotations

from typing import Final

import structlog
from nats.js import JetStreamContext, api
from nats.js.errors import NotFoundError

from relaybaton.cluster._subjects import ProducerSubjects
from relaybaton.errors import ConfigError

__all__ = ["DEAD_LETTER_MAX_AGE_S", "DEFAULT_DEDUP_WINDOW_S", "ensure_streams"]

_log = structlog.get_logger("relaybaton.cluster")

DEFAULT_DEDUP_WINDOW_S: Final = 120.0
"""Two minutes: longer than any sane producer retry loop, short enough to bound the
broker's memory of ids. A repeat after it is still processed once (the runtime
deduplicates by message id), but costs a trip to the owner."""

DEAD_LETTER_MAX_AGE_S: Final = 7 * 24 * 3600.0
_DEAD_LETTER_MAX_MSGS: Final = 100_000


async def ensure_streams(
    js: JetStreamContext,
    subjects: ProducerSubjects,
    *,
    dedup_window_s: float = DEFAULT_DEDUP_WINDOW_S,
) -> None:
    """Create the inbound and dead-letter streams, or check that the existing ones fit.

    Raises:
        ConfigError: a stream of that name exists with a configuration that would lose or
            misplace messages (not a work queue, other subjects, memory storage).
    """
    inbound = api.StreamConfig(
        name=subjects.stream,
        description="relaybaton: user messages not yet accepted by their partition's owner",
        subjects=[subjects.inbound],
        retention=api.RetentionPolicy.WORK_QUEUE,
        storage=api.StorageType.FILE,
        discard=api.DiscardPolicy.NEW,  # a full stream refuses the producer; never drops
        duplicate_window=dedup_window_s,
    )
    dead = api.StreamConfig(
        name=subjects.dead_stream,
        description="relaybaton: messages no node could process, with the reason",
        subjects=[subjects.dead],
        retention=api.RetentionPolicy.LIMITS,
        storage=api.StorageType.FILE,
        max_age=DEAD_LETTER_MAX_AGE_S,
        max_msgs=_DEAD_LETTER_MAX_MSGS,
        discard=api.DiscardPolicy.OLD,
    )
    await _ensure(js, inbound, work_queue=True)
    await _ensure(js, dead, work_queue=False)


async def _ensure(js: JetStreamContext, wanted: api.StreamConfig, *, work_queue: bool) -> None:
    assert wanted.name is not None
    try:
        info = await js.stream_info(wanted.name)
    except NotFoundError:
        await js.add_stream(wanted)
        _log.info("stream_created", stream=wanted.name, subjects=wanted.subjects)
        return
    have = info.config
    problems = []
    if sorted(have.subjects or []) != sorted(wanted.subjects or []):
        problems.append(f"its subjects are {have.subjects}, not {wanted.subjects}")
    retention, storage = _value(have.retention), _value(have.storage)
    if work_queue and retention != api.RetentionPolicy.WORK_QUEUE.value:
        problems.append(f"its retention is {retention!r}, not 'workqueue'")
    if storage != api.StorageType.FILE.value:
        problems.append(f"its storage is {storage!r}, not 'file' (a NATS restart would lose it)")
    if problems:
        raise ConfigError(
            f"JetStream stream {wanted.name!r} exists but cannot be used: "
            + "; ".join(problems)
            + f". Delete it (`nats stream rm {wanted.name}`) if nothing in it is needed, "
            "or give this cluster another subject prefix"
        )
    if work_queue and have.duplicate_window != wanted.duplicate_window:
        # Not fatal: a different window only changes how long the broker drops repeats.
        _log.warning(
            "stream_dedup_window_differs",
            stream=wanted.name,
            configured_s=wanted.duplicate_window,
            existing_s=have.duplicate_window,
        )


def _value(setting: object) -> object:
    # nats-py gives an enum member or, for some server answers, its plain string.
    return getattr(setting, "value", setting)
