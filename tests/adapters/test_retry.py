"""The retry policy: backoff with jitter, Retry-After, attempts, deadline, what never retries."""

from __future__ import annotations

import random

import pytest

from relaybaton.adapters import (
    RetryPolicy,
    SimulatedModel,
    create_model_adapter,
    retries_itself,
    sending_once,
)
from relaybaton.adapters._metrics import MeteredAdapter
from relaybaton.adapters._retry import recording_retries
from relaybaton.errors import (
    BadRequestError,
    ConfigError,
    ModelOverloadedError,
    ModelTimeoutError,
    RateLimitedError,
    StreamInterruptedError,
)
from tests.adapters._fakes import StepClock

pytestmark = pytest.mark.anyio


class Flaky:
    """Fails with the given errors in order, then answers "ok"."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


async def test_retries_retryable_errors_until_success_and_records_them() -> None:
    clock = StepClock()
    send = Flaky(ModelOverloadedError("busy"), ModelTimeoutError("slow"))
    with recording_retries() as log:
        result = await RetryPolicy(attempts=3, seed=1).call(send, clock=clock)
    assert result == "ok"
    assert send.calls == 3
    assert log.errors == ["ModelOverloadedError", "ModelTimeoutError"]
    assert len(clock.sleeps) == 2


async def test_backoff_is_full_jitter_under_a_doubling_cap() -> None:
    policy = RetryPolicy(attempts=10, base_delay=1.0, max_delay=5.0, deadline=1e9)
    rng = random.Random(7)
    error = ModelOverloadedError("busy")
    for retry, cap in enumerate([1.0, 2.0, 4.0, 5.0, 5.0]):
        waits = [policy.delay(error, retry=retry, elapsed=0, rng=rng) for _ in range(200)]
        assert all(w is not None and 0.0 <= w <= cap for w in waits)
        assert max(w for w in waits if w is not None) > cap * 0.8  # spread over the range


async def test_retry_after_is_a_lower_bound_on_the_wait() -> None:
    clock = StepClock()
    send = Flaky(RateLimitedError("slow down", retry_after=4.0))
    await RetryPolicy(attempts=2, base_delay=0.01, seed=3).call(send, clock=clock)
    assert clock.sleeps == [4.0]


async def test_gives_up_when_attempts_are_spent() -> None:
    clock = StepClock()
    send = Flaky(*(ModelOverloadedError(f"busy {i}") for i in range(5)))
    with pytest.raises(ModelOverloadedError, match="busy 2"):
        await RetryPolicy(attempts=3).call(send, clock=clock)
    assert send.calls == 3


async def test_gives_up_when_the_wait_would_pass_the_deadline() -> None:
    clock = StepClock()
    send = Flaky(RateLimitedError("slow down", retry_after=30.0))
    with pytest.raises(RateLimitedError):
        await RetryPolicy(attempts=5, deadline=10.0).call(send, clock=clock)
    assert send.calls == 1
    assert clock.sleeps == []


@pytest.mark.parametrize(
    "error",
    [
        BadRequestError("no"),
        StreamInterruptedError("cut", emitted=True),
        RateLimitedError("quota", retry_after=None),
    ],
)
async def test_never_retries_unretryable_errors_or_streams_that_emitted(error: Exception) -> None:
    if isinstance(error, RateLimitedError):
        error.retryable = False  # an exhausted quota
    clock = StepClock()
    send = Flaky(error)
    with pytest.raises(type(error)):
        await RetryPolicy(attempts=5).call(send, clock=clock)
    assert send.calls == 1


async def test_a_stream_cut_before_emitting_is_retried() -> None:
    send = Flaky(StreamInterruptedError("cut", emitted=False))
    assert await RetryPolicy(attempts=2).call(send, clock=StepClock()) == "ok"


def test_policy_rejects_zero_attempts_with_a_message() -> None:
    with pytest.raises(ConfigError, match="expected >= 1, got 0"):
        RetryPolicy(attempts=0)


async def test_a_retry_after_past_the_deadline_is_raised_with_a_note_saying_why() -> None:
    clock = StepClock()
    send = Flaky(RateLimitedError("slow down", retry_after=30.0))
    with pytest.raises(RateLimitedError) as info:
        await RetryPolicy(attempts=5, deadline=10.0).call(send, clock=clock)
    (note,) = info.value.__notes__
    assert "asked to wait 30 s" in note
    assert "10.00 s were left of the call's 10 s retry deadline" in note
    assert "RetryPolicy.deadline" in note  # what to do about it


async def test_inside_sending_once_a_policy_sends_once() -> None:
    clock = StepClock()
    send = Flaky(ModelOverloadedError("busy"), ModelOverloadedError("busy again"))
    with sending_once(), pytest.raises(ModelOverloadedError, match="busy"):
        await RetryPolicy(attempts=5).call(send, clock=clock)
    assert send.calls == 1
    assert clock.sleeps == []
    assert await RetryPolicy(attempts=5).call(send, clock=clock) == "ok"  # outside: retries


@pytest.mark.parametrize("field", ["deadline", "base_delay", "max_delay"])
def test_policy_rejects_negative_seconds_naming_the_field(field: str) -> None:
    with pytest.raises(ValueError, match=f"RetryPolicy.{field}: expected seconds >= 0, got -1"):
        RetryPolicy(**{field: -1.0})  # type: ignore[arg-type]


def test_an_adapter_says_whether_it_retries_on_its_own_and_wrappers_pass_it_on() -> None:
    retrying = create_model_adapter("openai-compatible:m", base_url="http://127.0.0.1:9")
    single = create_model_adapter(
        "openai-compatible:m", base_url="http://127.0.0.1:9", retry=RetryPolicy(attempts=1)
    )
    assert retries_itself(retrying)
    assert not retries_itself(single)
    # Offline models send once already: a slot needs no marker for them.
    assert not retries_itself(SimulatedModel())
    assert retries_itself(MeteredAdapter(retrying, lambda record: None))
    assert not retries_itself(MeteredAdapter(SimulatedModel(), lambda record: None))
