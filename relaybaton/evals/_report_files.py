"""Machine-readable reports: one JSON document, and JUnit XML for CI systems.

In the JUnit file each variant is a test suite and each run of an item a test case; a case
fails when any grader failed it, the failure's message naming the graders and its text
giving every grade's reason. The XML is built with the standard library's ElementTree,
which escapes whatever the flow's replies hold.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import Any

import msgspec

from relaybaton.evals._runner import VariantRun
from relaybaton.evals._summary import Comparison, Summary

__all__ = ["json_report", "junit_report"]

# Characters XML 1.0 cannot hold at all, escaped or not: a model's reply may contain them.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _clean(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)


def _run_json(variant: VariantRun) -> list[dict[str, Any]]:
    return [
        {
            "item": run.item.id,
            "repeat": run.repeat,
            "passed": run.passed,
            "score": run.score,
            "grades": run.grades,
            "replies": [list(t.replies) for t in run.trace.turns],
            "errors": list(run.trace.errors),
            "owner": run.trace.owner,
            "cost_usd": run.trace.cost_usd,
            "latency_s": run.trace.latency_s,
            "conversation_id": run.trace.conversation_id,
        }
        for run in variant.runs
    ]


def json_report(
    variants: Sequence[VariantRun],
    summaries: Sequence[Summary],
    comparison: Comparison | None = None,
    *,
    gate: dict[str, object] | None = None,
    about: dict[str, str] | None = None,
) -> bytes:
    """The whole evaluation as one JSON document.

    Its top-level scalars are a headline (what was evaluated, the candidate's overall pass
    rate and mean score), for readers that show only those, like the console's list.
    """
    last = summaries[-1] if summaries else None
    headline: dict[str, Any] = {
        **(about or {}),
        "variants": ", ".join(s.variant for s in summaries),
        "runs_total": sum(s.runs for s in summaries),
    }
    if last is not None:
        headline["pass_rate"] = round(last.overall.pass_rate.value, 4)
        headline["mean_score"] = round(last.overall.mean_score.value, 4)
        headline["cost_usd"] = round(last.cost_usd_total, 6)
    if gate:
        headline["gate_state"] = (
            "met" if all(isinstance(v, dict) and v.get("met") for v in gate.values()) else "missed"
        )
    document: dict[str, Any] = {
        **headline,
        "summaries": list(summaries),
        "runs": {v.name: _run_json(v) for v in variants},
        "comparison": comparison,
        "gate": gate,
    }
    return msgspec.json.encode(document)


def junit_report(variants: Sequence[VariantRun]) -> bytes:
    """JUnit XML: a suite per variant, a case per (item, repeat)."""
    root = ET.Element("testsuites", name="relaybaton eval")
    total = failures = 0
    for variant in variants:
        failed = sum(1 for r in variant.runs if not r.passed)
        suite = ET.SubElement(
            root,
            "testsuite",
            name=f"variant {variant.name}",
            tests=str(len(variant.runs)),
            failures=str(failed),
            errors="0",
            time=f"{variant.wall_s:.3f}",
        )
        total += len(variant.runs)
        failures += failed
        for run in variant.runs:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"eval.{variant.name}",
                name=_clean(f"{run.item.id}#{run.repeat}"),
                time=f"{sum(t.latency_s for t in run.trace.turns):.3f}",
            )
            details = "\n".join(
                f"{'pass' if g.passed else 'FAIL'} {g.grader} score={g.score:.3f}: {g.reason}"
                for g in run.grades
            )
            if not run.passed:
                failing = ", ".join(g.grader for g in run.grades if not g.passed)
                failure = ET.SubElement(case, "failure", message=_clean(f"failed: {failing}"))
                failure.text = _clean(details)
            else:
                out = ET.SubElement(case, "system-out")
                out.text = _clean(details)
    root.set("tests", str(total))
    root.set("failures", str(failures))
    encoded: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return encoded
