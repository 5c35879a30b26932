"""Running a dataset through a flow: every item in a conversation of its own, then graded.

The runner takes an opened ``Runtime`` (or a factory that opens one for the run) and sends
each item's user messages through ``Runtime.accept``, the path the HTTP edge uses, so the
items meet the flow's slots, routers, tools, approvals and journal as production traffic
does. Items run side by side up to ``concurrency``; ``repeat`` runs each one several times
(each in its own conversation) to measure variance.

A tool call that waits for a person is decided by ``approvals``: ``approve`` (the default)
or ``reject`` every request, or ``wait``, which leaves the conversation parked and ends the
item there (its later messages are not sent). An item may override the policy with
``metadata.approvals``. Decisions are made through ``Runtime.decide``, as a person's are.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import final

import anyio
import msgspec
import structlog

from relaybaton.actors import Runtime
from relaybaton.errors import ConfigError
from relaybaton.evals._dataset import EvalItem
from relaybaton.evals._grade import Grade, Grader, Sample
from relaybaton.evals._trace import Trace, build_trace
from relaybaton.runtime import Conversation, TurnResult

__all__ = ["ItemRun", "RuntimeFactory", "VariantRun", "grade_sample", "run_dataset"]

_log = structlog.get_logger("relaybaton.evals")

APPROVAL_POLICIES = ("approve", "reject", "wait")

RuntimeFactory = Callable[[], AbstractAsyncContextManager[Runtime]]


class ItemRun(msgspec.Struct, frozen=True, kw_only=True):
    """One run of one item: its trace and grades; ``passed`` when every grade passed."""

    item: EvalItem
    repeat: int
    variant: str
    trace: Trace
    grades: tuple[Grade, ...]

    @property
    def passed(self) -> bool:
        """Whether every grader passed it."""
        return all(g.passed for g in self.grades)

    @property
    def score(self) -> float:
        """The mean of its grades' scores (1 with no graders)."""
        return sum(g.score for g in self.grades) / len(self.grades) if self.grades else 1.0


class VariantRun(msgspec.Struct, kw_only=True):
    """All runs of one variant (a flow, or a flow with other models in some slots)."""

    name: str
    runs: list[ItemRun]
    wall_s: float = 0.0
    graders: tuple[str, ...] = ()  # the graders' names, in the order they were given


async def grade_sample(graders: Sequence[Grader], sample: Sample) -> tuple[Grade, ...]:
    """Every grader's grade of ``sample``, in the graders' order."""
    grades: list[Grade] = []
    for grader in graders:
        applies = getattr(grader, "applies", None)
        if applies is not None and not applies(sample):
            continue  # scoped to other items (tags): no grade, rather than a free pass
        try:
            grades.append(await grader.grade(sample))
        except Exception as exc:  # a grader's bug is that item's failing grade, not the run's end
            _log.warning("grader_crashed", grader=grader.name, exc_info=exc)
            grades.append(
                Grade(
                    grader=grader.name,
                    score=0.0,
                    passed=False,
                    reason=f"the grader raised {type(exc).__name__}: {exc}",
                    threshold=grader.threshold,
                )
            )
    return tuple(grades)


@final
class _Conductor:
    """Drives one item's conversation turn by turn, deciding approvals by the policy."""

    def __init__(self, runtime: Runtime, conversation_id: str, approvals: str) -> None:
        self.runtime = runtime
        self.conversation_id = conversation_id
        self.approvals = approvals

    async def turn(self, text: str) -> TurnResult | None:
        runtime = self.runtime
        future = await runtime.accept(self.conversation_id, text)
        conversation = self._conversation()
        changed = asyncio.Event()
        unsubscribe = runtime.conversations.subscribe(
            lambda cid, _event: changed.set() if cid == self.conversation_id else None
        )
        future.add_done_callback(lambda _: changed.set())
        try:
            while not future.done():
                if conversation.waiting_for_a_person:
                    if self.approvals == "wait":
                        return None
                    self._decide(conversation)
                    continue
                changed.clear()
                await changed.wait()
        finally:
            unsubscribe()
        return future.result()

    def _decide(self, conversation: Conversation) -> None:
        for request in conversation.pending_approvals:
            self.runtime.decide(
                request.approval_id,
                self.approvals,
                arguments_hash=request.arguments_hash,
                note="decided by the evaluation's approval policy",
                by="relaybaton eval",
            )

    def _conversation(self) -> Conversation:
        conversation = self.runtime.conversation(self.conversation_id)
        if conversation is None:  # pragma: no cover - accept() always opens it
            raise ConfigError(f"conversation {self.conversation_id!r} was not opened")
        return conversation


async def _run_item(  # noqa: PLR0917 - private; one call site
    runtime: Runtime,
    item: EvalItem,
    repeat: int,
    variant: str,
    graders: Sequence[Grader],
    approvals: str,
    prefix: str,
) -> ItemRun:
    policy = str(item.metadata.get("approvals", approvals))
    if policy not in APPROVAL_POLICIES:
        raise ConfigError(
            f"item {item.id!r}: metadata.approvals is {policy!r}; use one of {APPROVAL_POLICIES}"
        )
    conversation_id = f"eval-{prefix}-{variant}-{item.id}-{repeat}"
    conductor = _Conductor(runtime, conversation_id, "approve" if policy == "approve" else policy)
    clock = runtime.flow.clock
    results: list[TurnResult | None] = []
    latencies: list[float] = []
    for text in item.messages:
        started = clock.now()
        result = await conductor.turn(text)
        latencies.append(clock.now() - started)
        results.append(result)
        if result is None:
            break  # parked on a person's decision: later turns would only queue
    trace = build_trace(conductor._conversation(), item.messages, results, latencies)
    sample = Sample(item=item, trace=trace, repeat=repeat)
    return ItemRun(
        item=item,
        repeat=repeat,
        variant=variant,
        trace=trace,
        grades=await grade_sample(graders, sample),
    )


async def run_dataset(
    source: Runtime | RuntimeFactory,
    items: Sequence[EvalItem],
    graders: Sequence[Grader],
    *,
    variant: str = "A",
    concurrency: int = 8,
    repeat: int = 1,
    approvals: str = "approve",
    on_run: Callable[[ItemRun], None] | None = None,
) -> VariantRun:
    """Run every item ``repeat`` times on the runtime and grade each run.

    Runs come back in item order then repeat order, whatever order they finished in.
    ``on_run`` is called as each run is graded (a progress display). Cancelling cancels the
    runs in flight; an error in the runtime ends the whole run with it.
    """
    if concurrency < 1:
        raise ConfigError(f"--concurrency must be at least 1, got {concurrency}")
    if repeat < 1:
        raise ConfigError(f"--repeat must be at least 1, got {repeat}")
    if approvals not in APPROVAL_POLICIES:
        raise ConfigError(f"--approvals must be one of {APPROVAL_POLICIES}, got {approvals!r}")
    if isinstance(source, Runtime):
        return await _run_all(
            source, items, graders, variant, concurrency, repeat, approvals, on_run
        )
    async with source() as runtime:
        return await _run_all(
            runtime, items, graders, variant, concurrency, repeat, approvals, on_run
        )


async def _run_all(  # noqa: PLR0917 - private; the public call passes its options through
    runtime: Runtime,
    items: Sequence[EvalItem],
    graders: Sequence[Grader],
    variant: str,
    concurrency: int,
    repeat: int,
    approvals: str,
    on_run: Callable[[ItemRun], None] | None,
) -> VariantRun:
    jobs = [(item, r) for item in items for r in range(repeat)]
    finished: list[ItemRun | None] = [None] * len(jobs)
    limiter = anyio.CapacityLimiter(concurrency)
    prefix = secrets.token_hex(3)
    clock = runtime.flow.clock
    began = clock.now()

    async def one(index: int) -> None:
        item, r = jobs[index]
        async with limiter:
            run = await _run_item(runtime, item, r, variant, graders, approvals, prefix)
        finished[index] = run
        if on_run is not None:
            on_run(run)

    async with anyio.create_task_group() as group:
        for index in range(len(jobs)):
            group.start_soon(one, index)
    return VariantRun(
        name=variant,
        runs=[r for r in finished if r is not None],
        wall_s=clock.now() - began,
        graders=tuple(g.name for g in graders),
    )
