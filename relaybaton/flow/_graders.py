"""The flow's graders built on a running runtime: judges are the slots' current adapters."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from relaybaton.actors import Runtime
from relaybaton.adapters import ModelAdapter
from relaybaton.evals import Grader, GraderSpec, create_graders
from relaybaton.flow._file import FlowFile, resolve_function

__all__ = ["create_flow_graders"]


def create_flow_graders(
    flow: FlowFile, runtime: Runtime, extra: Sequence[GraderSpec] = (), *, where: str = ""
) -> list[Grader]:
    """The flow's ``[evals]`` graders and ``extra`` ones (from a graders file)."""
    specs = [*(flow.evals.graders if flow.evals is not None else []), *extra]

    def judge(slot: str) -> Callable[[], ModelAdapter]:
        # Whatever the slot holds when grading: after a swap the judge is the new model.
        return lambda: runtime.slots[slot].adapter

    return create_graders(
        specs,
        base_dir=flow.base_dir,
        resolve=resolve_function,
        judges={slot: judge(slot) for slot in runtime.slots},
        where=where or "evals.graders",
    )
