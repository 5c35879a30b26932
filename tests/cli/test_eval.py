"""``relaybaton eval``: datasets through a flow file, reports, gates, variants, the store."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from relaybaton.cli import main

FLOW = """
[flow]
name = "tiny"

[models.m]
model = "simulated:general"
latency_ms = 0

[[agents]]
name = "helper"
model = "m"
instructions = "Knowledge: our shop opens at nine."

[[evals.graders]]
name = "answers"
kind = "regex"
value = "\\\\S"

[[evals.graders]]
name = "few_calls"
kind = "max_model_calls"
limit = 3

[[evals.graders]]
name = "by_python"
kind = "python"
function = "grading.py:replied_once_per_turn"
"""

GRADING = """
def replied_once_per_turn(sample):
    turns = sample.trace.turns
    return all(len(t.replies) == 1 for t in turns), f"{len(turns)} turn(s)"
"""

HOSTILE = "<script>alert('x')</script> & when do you open?"


@pytest.fixture
def flow(tmp_path: Path) -> Path:
    (tmp_path / "grading.py").write_text(GRADING)
    path = tmp_path / "flow.toml"
    path.write_text(FLOW)
    return path


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    path = tmp_path / "items.jsonl"
    rows = [
        {"id": "open", "messages": ["when do you open?"], "expected": "nine"},
        {"id": "two", "messages": ["hello", "when do you open?"]},
        {"id": "hostile", "input": HOSTILE},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_eval_prints_a_summary_and_writes_junit_and_escaped_html(
    flow: Path, dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junit, html = tmp_path / "out.xml", tmp_path / "out.html"
    status = main(
        ["eval", str(flow), str(dataset), "--junit", str(junit), "--html", str(html),
         "--repeat", "2", "--fail-under", "0.5"]
    )  # fmt: skip
    out, err = capsys.readouterr()
    assert status == 0, out + err
    assert "variant A: 6 runs" in out
    assert "answers" in out
    assert "overall" in out
    assert "gate overall" in out
    assert "met" in out
    # Not a terminal: one plain line per run on stderr.
    assert err.count("[A] ") == 6
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    assert suite.get("tests") == "6"
    assert {c.get("name") for c in suite.iter("testcase")} >= {"open#0", "hostile#1"}
    page = html.read_text()
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; when" in page
    assert "by_python" in page


def test_a_missed_gate_exits_1_and_json_says_why(
    flow: Path, dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["eval", str(flow), str(dataset), "--json", "--fail-under", "answers=1.0",
                   "--fail-under", "few_calls=1.01"])  # fmt: skip
    assert status == 2  # 1.01 is not a pass rate
    assert "--fail-under 'few_calls=1.01'" in capsys.readouterr().err
    graders = Path(flow).parent / "strict.toml"
    graders.write_text('[[graders]]\nname = "never"\nkind = "contains"\nvalue = "zzz-never"\n')
    status = main(["eval", str(flow), str(dataset), "--json", "--graders", str(graders),
                   "--fail-under", "never=0.5"])  # fmt: skip
    assert status == 1
    report = json.loads(capsys.readouterr().out)
    assert report["gate"]["never"] == {"threshold": 0.5, "pass_rate": 0.0, "met": False}
    # The headline, for readers that show only top-level scalars (the console's list).
    assert report["gate_state"] == "missed"
    assert report["runs_total"] == 3
    assert report["dataset"].endswith("items.jsonl")
    [summary] = report["summaries"]
    assert [g["grader"] for g in summary["graders"]] == [
        "answers", "few_calls", "by_python", "never",
    ]  # fmt: skip
    assert len(report["runs"]["A"]) == 3


def test_a_variant_runs_the_same_items_and_reports_paired_differences(
    flow: Path, dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["eval", str(flow), str(dataset), "--variant", "m=simulated:other",
                   "--json", "--repeat", "3"])  # fmt: skip
    assert status == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["runs"]) == {"A", "B"}
    comparison = report["comparison"]
    assert comparison["a"] == "A"
    assert comparison["b"] == "B"
    overall = comparison["differences"]["overall"]
    assert overall["pairs"] == 9
    assert overall["low"] <= overall["mean"] <= overall["high"]
    assert overall["verdict"] in {"better", "worse", "no detectable difference"}


def test_bad_input_is_a_message_and_status_2(
    flow: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "messages": []}\n')
    assert main(["eval", str(flow), str(bad)]) == 2
    assert "bad.jsonl:1: `messages` must be a non-empty string" in capsys.readouterr().err
    assert main(["eval", str(flow)]) == 2
    assert "give a DATASET file" in capsys.readouterr().err
    assert main(["eval", str(flow), str(bad), "--variant", "nope=simulated:x"]) == 2
    assert "the flow has no slot 'nope'" in capsys.readouterr().err


def test_from_store_reruns_stored_conversations_filtered_by_agent_and_time(
    flow: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = str(tmp_path / "journal.db")
    for conversation, text in (("c1", "when do you open?"), ("c2", "hello there")):
        assert main(["run", str(flow), "-m", text, "--store", store,
                     "--conversation", conversation]) == 0  # fmt: skip
    capsys.readouterr()
    status = main(["eval", str(flow), "--from-store", store, "--agent", "helper",
                   "--since", "1h", "--json"])  # fmt: skip
    assert status == 0
    runs = json.loads(capsys.readouterr().out)["runs"]["A"]
    assert sorted(r["item"] for r in runs) == ["c1", "c2"]
    assert main(["eval", str(flow), "--from-store", store, "--agent", "nobody"]) == 2
    assert "no stored conversation matches (looked at 2" in capsys.readouterr().err
    assert main(["eval", str(flow), "--from-store", store, "--since", "yesterday"]) == 2
    assert "write an ISO time" in capsys.readouterr().err
    assert main(["eval", str(flow), "--from-store", store, "--status", "closed"]) == 2
    assert "status=closed" in capsys.readouterr().err
    assert main(["eval", str(flow), "--from-store", store, "--status", "active",
                 "--until", "2000-01-01T00:00", "--json"]) == 2  # fmt: skip
    assert "until=946" in capsys.readouterr().err
    assert main(["eval", str(flow), "--from-store", store, "--status", "active", "--json",
                 "--limit", "1"]) == 0  # fmt: skip
    assert len(json.loads(capsys.readouterr().out)["runs"]["A"]) == 1


def test_the_example_datasets_pass_the_seeds_business_rules(
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = Path(__file__).resolve().parents[2] / "examples"
    for flow, rule in (
        ("customer_service", "refund_over_100_waits_for_a_person"),
        ("code_review", "review_with_findings_waits_for_a_person"),
    ):
        status = main(
            ["eval", str(root / f"{flow}.toml"), str(root / "evals" / f"{flow}.jsonl"),
             "--graders", str(root / "evals" / f"{flow}_graders.toml"), "--json",
             "--fail-under", f"{rule}=1.0"]
        )  # fmt: skip
        report = json.loads(capsys.readouterr().out)
        assert status == 0, report["gate"]
        grades = [g for r in report["runs"]["A"] for g in r["grades"] if g["grader"] == rule]
        assert len(grades) == len(report["runs"]["A"])


def test_a_variant_table_is_compared_with_the_flow_as_written(
    flow: Path, dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow.write_text(FLOW + '\n[variants.v2]\nmodels = { m = "simulated:general-v2" }\n')
    status = main(["eval", str(flow), str(dataset), "--compare-variant", "v2", "--json"])
    assert status == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["runs"]) == {"A", "B"}
    assert main(["eval", str(flow), str(dataset), "--compare-variant", "v3"]) == 2
    assert "no variant 'v3'; its variants: v2" in capsys.readouterr().err
