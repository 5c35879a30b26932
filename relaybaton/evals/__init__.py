"""Evaluations: datasets, graders graded on traces, experiments and their reports.

Below the service and the cluster, so online grading in ``serve`` uses the same graders as
``relaybaton eval``; running a dataset through a flow is wired from the layers above.
"""

__all__: list[str] = []
