"""Evaluations: datasets, graders graded on traces, experiments and their reports.

Below the service and the cluster, so online grading in ``serve`` uses the same graders as
``relaybaton eval``; running a dataset through a flow is wired from the layers above
(``relaybaton eval`` in the CLI, the ``[evals]`` table in the flow layer): the runner takes
an opened ``Runtime`` or a factory for one.
"""

from relaybaton.evals._dataset import EvalItem, load_dataset, parse_items
from relaybaton.evals._function_grader import FunctionGrader
from relaybaton.evals._grade import Grade, Grader, Sample
from relaybaton.evals._model_grader import ModelGrader
from relaybaton.evals._online import OnlineGrading, in_sample, open_online_grading
from relaybaton.evals._report_files import json_report, junit_report
from relaybaton.evals._report_html import html_report
from relaybaton.evals._report_text import Progress, format_comparison, format_summary
from relaybaton.evals._runner import ItemRun, RuntimeFactory, VariantRun, grade_sample, run_dataset
from relaybaton.evals._spec import (
    EvalsConfig,
    GraderSpec,
    Thresholds,
    create_graders,
    load_graders_file,
)
from relaybaton.evals._stats import (
    Interval,
    PairedDifference,
    bootstrap_mean,
    paired_difference,
    wilson,
)
from relaybaton.evals._store_dataset import dataset_from_store
from relaybaton.evals._summary import Comparison, GraderSummary, Summary, compare, summarize
from relaybaton.evals._text_graders import JsonSchemaGrader, SimilarityGrader, StringGrader
from relaybaton.evals._trace import Trace, TraceTurn, build_trace, live_trace
from relaybaton.evals._trace_graders import (
    ApprovalRequiredGrader,
    FinalOwnerGrader,
    HandoffGrader,
    LimitGrader,
    NoToolErrorGrader,
    ToolCalledGrader,
)

__all__ = [
    "ApprovalRequiredGrader",
    "Comparison",
    "EvalItem",
    "EvalsConfig",
    "FinalOwnerGrader",
    "FunctionGrader",
    "Grade",
    "Grader",
    "GraderSpec",
    "GraderSummary",
    "HandoffGrader",
    "Interval",
    "ItemRun",
    "JsonSchemaGrader",
    "LimitGrader",
    "ModelGrader",
    "NoToolErrorGrader",
    "OnlineGrading",
    "PairedDifference",
    "Progress",
    "RuntimeFactory",
    "Sample",
    "SimilarityGrader",
    "StringGrader",
    "Summary",
    "Thresholds",
    "ToolCalledGrader",
    "Trace",
    "TraceTurn",
    "VariantRun",
    "bootstrap_mean",
    "build_trace",
    "compare",
    "create_graders",
    "dataset_from_store",
    "format_comparison",
    "format_summary",
    "grade_sample",
    "html_report",
    "in_sample",
    "json_report",
    "junit_report",
    "live_trace",
    "load_dataset",
    "load_graders_file",
    "open_online_grading",
    "paired_difference",
    "parse_items",
    "run_dataset",
    "summarize",
    "wilson",
]
