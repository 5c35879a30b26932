"""``serve``'s quality wiring: the flow's thresholds and its graders on live traffic."""

from __future__ import annotations

from contextlib import AsyncExitStack

import structlog

from relaybaton.actors import Runtime
from relaybaton.evals import open_online_grading
from relaybaton.flow._file import FlowFile
from relaybaton.flow._graders import create_flow_graders
from relaybaton.service import Service

__all__ = ["watch_quality"]

_log = structlog.get_logger("relaybaton.service")


async def watch_quality(
    flow: FlowFile, runtime: Runtime, service: Service, stack: AsyncExitStack
) -> None:
    """Give the service the flow's thresholds and grade ``[evals] sample`` of live traffic.

    Online grading runs until ``stack`` closes (before the runtime does).
    """
    evals = flow.evals
    if evals is None:
        return
    watch = service.feedback.watch
    watch.thresholds = evals.thresholds
    if evals.sample <= 0.0:
        return
    graders = [g for g in create_flow_graders(flow, runtime) if not g.needs_expected]
    if not graders:
        _log.warning("online_grading_off", reason="no grader works without expected values")
        return
    watch.online = await stack.enter_async_context(
        open_online_grading(runtime, graders, sample=evals.sample, queue=evals.queue)
    )
