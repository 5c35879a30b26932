"""The command line: run a flow and print the trace or one JSON object; validate a flow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from relaybaton.cli import main
from tests._spelling import assert_event_spelling, assert_no_bare_id

ROOT = Path(__file__).resolve().parents[2]
CUSTOMER_SERVICE = str(ROOT / "examples" / "customer_service.toml")
CODE_REVIEW = str(ROOT / "examples" / "code_review.toml")
REFUND = "I want a refund of $42 for order AB-1234, it arrived damaged"
CRASH_FLOW = str(ROOT / "tests" / "integration" / "crash_flow" / "flow.toml")
BILLING = "Why was I charged twice on my invoice?"


def check_report(report: dict[str, object]) -> None:
    assert set(report) >= {"conversation_id", "owner", "epoch", "replies", "events", "usage"}
    replies = report["replies"]
    assert isinstance(replies, list)
    assert replies
    assert all(set(r) >= {"agent", "text"} for r in replies)
    events = report["events"]
    assert isinstance(events, list)
    assert all("kind" in e for e in events)
    usage = report["usage"]
    assert isinstance(usage, dict)
    assert set(usage) == {
        "input_tokens",
        "output_tokens",
        "cost_usd",
        "estimated_calls",
        "by_agent",
    }
    assert usage["input_tokens"] > 0
    assert usage["cost_usd"] > 0


def test_run_json_prints_one_object_with_the_conversation_trace_and_usage(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status = main(["run", CUSTOMER_SERVICE, "--message", REFUND, "--conversation", "c7", "--json"])
    out, err = capsys.readouterr()
    assert status == 0
    assert err == ""
    assert out.count("\n") == 1
    report = json.loads(out)
    check_report(report)
    assert (report["conversation_id"], report["owner"], report["epoch"]) == ("c7", "triage", 2)
    [reply] = report["replies"]
    assert reply["agent"] == "refund"
    assert "I've refunded $42.00 for your espresso machine, order AB-1234." in reply["text"]
    kinds = {e["kind"] for e in report["events"]}
    assert kinds == {"model_call", "tool_call", "handoff", "reply", "guardrail"}
    tools = {e["tool"]: e for e in report["events"] if e["kind"] == "tool_call"}
    assert json.loads(tools["issue_refund"]["arguments"]) == {
        "order_id": "AB-1234",
        "amount": 42.0,
    }
    assert tools["check_refund_policy"]["tool_kind"] == "agent"
    assert set(report["usage"]["by_agent"]) == {"triage", "refund", "policy"}
    assert [(o["owner"], o["epoch"]) for o in report["ownership"]] == [
        ("triage", 0),
        ("refund", 1),
        ("triage", 2),
    ]


def test_run_json_works_as_a_real_subprocess() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    completed = subprocess.run(
        [sys.executable, "-m", "relaybaton", "run", CUSTOMER_SERVICE, "-m", BILLING, "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout)
    check_report(report)
    assert report["replies"][0]["agent"] == "billing"
    assert "INV-2026-118" in report["replies"][0]["text"]


def test_run_prints_owners_with_epochs_model_calls_tool_calls_and_handoffs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status = main(["run", CUSTOMER_SERVICE, "-m", REFUND, "-m", BILLING, "--conversation", "c9"])
    out, _ = capsys.readouterr()
    assert status == 0
    lines = out.splitlines()
    assert lines[0] == "conversation c9"
    assert lines[1] == f"  user: {REFUND}"
    assert any(line.startswith("  [e0 triage] model  triage ") for line in lines)
    assert "  [e0 triage] handoff triage → refund (epoch 1)" in lines
    assert any(line.startswith("  [e1 refund] tool   refund → issue_refund(") for line in lines)
    assert any(
        line.startswith("  [e1 refund] agent-tool refund → check_refund_policy(") for line in lines
    )
    assert any(line.startswith("  refund: ") for line in lines)
    assert f"  user: {BILLING}" in lines
    assert "  [e2 triage] baton returned refund → triage" in lines
    assert "  [e2 triage] handoff triage → billing (epoch 3)" in lines
    # Triage twice, refund three times (look up and check, act, answer), policy, billing twice.
    assert lines[-1].startswith("owner triage at epoch 4 · 8 model calls · ")


def test_the_code_review_example_asks_three_experts_and_writes_one_report(
    capsys: pytest.CaptureFixture[str],
) -> None:
    message = "Review this code for bugs, performance and security: total = add(a, b)"
    assert main(["run", CODE_REVIEW, "-m", message, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    experts = sorted(
        e["tool"]
        for e in report["events"]
        if e["kind"] == "tool_call" and e["tool_kind"] == "agent" and not e["is_error"]
    )
    assert experts == ["code_reviewer", "performance_optimizer", "security_scanner"]
    [reply] = report["replies"]
    assert reply["agent"] == "synthesizer"
    # No security finding: the runtime lets it through, and the reply says why.
    assert reply["text"].startswith(
        "I've published the review and released: the security scan of this code is clean."
    )
    assert "The security scanner found nothing to fix." in reply["text"]
    assert (report["owner"], report["epoch"]) == ("synthesizer", 0)


@pytest.mark.parametrize("flow", [CUSTOMER_SERVICE, CODE_REVIEW])
def test_validate_accepts_the_examples(flow: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", flow]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"{flow}: ok — flow ")
    assert err == ""


def test_validate_reports_problems_on_stderr_with_exit_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = tmp_path / "flow.toml"
    flow.write_text(
        '[models.general]\nmodel = "simulated:general"\n[[agents]]\nname = "a"\nmodel = "genral"\n'
    )
    assert main(["validate", str(flow)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        f"relaybaton: {flow}: 1 problem(s) in the flow\n"
        '  agents[0].model: no model slot named "genral" (did you mean "general"?); '
        "add a [models.genral] table\n"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            "nonsense",
            "relaybaton: --model 'nonsense': write SLOT=provider:model, e.g. "
            "general=openai:gpt-5.2 or '*=simulated:general'\n",
        ),
        (
            "vision=simulated:x",
            "relaybaton: --model 'vision=simulated:x': the flow has no slot 'vision'; "
            "its slots: general, reasoning\n",
        ),
    ],
)
def test_a_bad_model_override_exits_2_with_the_fix(
    value: str, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", CUSTOMER_SERVICE, "-m", "hi", "--model", value]) == 2
    out, err = capsys.readouterr()
    assert (out, err) == ("", expected)


def test_a_model_override_for_every_slot_is_used(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["run", CODE_REVIEW, "-m", "hello", "--model", "*=simulated:other", "--json"])
    assert status == 0
    report = json.loads(capsys.readouterr().out)
    models = {e["model"] for e in report["events"] if e["kind"] == "model_call"}
    assert models == {"simulated:other"}


def test_every_json_event_spells_kind_and_no_id_is_bare(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELAYBATON_TEST_EFFECTS", str(tmp_path / "effects.jsonl"))
    assert main(["run", CUSTOMER_SERVICE, "-m", REFUND, "-m", BILLING, "--json"]) == 0
    handed = json.loads(capsys.readouterr().out)
    assert_no_bare_id(handed, "run --json")
    kinds = set(assert_event_spelling(handed["events"], "run --json"))
    assert kinds >= {"model_call", "tool_call", "handoff", "reply"}

    store = str(tmp_path / "journal.db")
    refund = "I want a refund of $150 for order CD-5678"
    run = ["run", CRASH_FLOW, "--store", store, "-m", refund, "--conversation", "c1", "--json"]
    assert main(run) == 0
    paused = json.loads(capsys.readouterr().out)
    assert_no_bare_id(paused, "run --json")
    kinds = set(assert_event_spelling(paused["events"], "run --json"))
    assert kinds >= {"approval_requested", "paused"}
    for request in paused["approvals"]:
        assert_no_bare_id(request, "run --json approvals")

    assert main(["approvals", "list", "--store", store, "--json"]) == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert_no_bare_id(listed, "approvals list --json")
    assert (listed["conversation_id"], listed["tool"]) == ("c1", "issue_refund")
    assert main(["approvals", "approve", listed["approval_id"], "--store", store]) == 0
    assert main(["resume", CRASH_FLOW, "--store", store, "--json"]) == 0
    resumed = json.loads(capsys.readouterr().out.splitlines()[-1])
    for item in [*resumed["conversations"], *resumed["approvals"]]:
        assert_no_bare_id(item, "resume --json")

    assert main(["conversations", "show", "c1", "--store", store, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert_no_bare_id(shown, "conversations show --json")
    kinds = set(assert_event_spelling(shown["events"], "conversations show --json"))
    assert kinds >= {"approval_requested", "approval_decided", "reply"}
