"""The commands over a durable store: approvals decide a paused step, resume finishes it."""

from __future__ import annotations

import fcntl
import json
import os
import socket
from pathlib import Path

import msgspec
import pytest

from relaybaton.cli import main
from relaybaton.stores._hold import HolderInfo, lock_path_of

ROOT = Path(__file__).resolve().parents[2]
CODE_REVIEW = str(ROOT / "examples" / "code_review.toml")


def _paused_review(store: str, capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    message = "Review this code for bugs, performance and security: data = eval(open(p).read())"
    assert main(["run", CODE_REVIEW, "--store", store, "-m", message, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["replies"] == []
    assert report["status"] == "awaiting_approval"
    assert "waiting for review" in report["waiting_reply"]
    [request] = report["approvals"]
    assert request["approval_id"] in report["waiting_reply"]
    assert request["tool"] == "publish_review"
    assert request["rule"].startswith("against the rules: a release needs a clean security scan")
    assert "CWE-95" in json.loads(request["arguments"])["report"]
    return request  # type: ignore[no-any-return]


def test_a_security_finding_blocks_the_release_until_a_person_releases_it_with_a_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = str(tmp_path / "review.db")
    request = _paused_review(store, capsys)
    reason = "internal tool, inputs are ours; fix tracked as SEC-12"
    approve = ["approvals", "approve", request["approval_id"], "--store", store, "--note", reason]
    assert main(approve) == 0
    assert main(["resume", CODE_REVIEW, "--store", store, "--json"]) == 0
    resumed = json.loads(capsys.readouterr().out.splitlines()[-1])
    [conversation] = resumed["conversations"]
    text = conversation["last_replies"][0]["text"]
    assert "released by a person as a known risk (1 security finding(s) not fixed)" in text
    assert reason in text
    assert "scan of this code is clean" not in text


def test_a_release_against_the_rules_without_a_reason_is_not_published(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = str(tmp_path / "review.db")
    request = _paused_review(store, capsys)
    assert main(["approvals", "approve", request["approval_id"], "--store", store]) == 0
    assert main(["resume", CODE_REVIEW, "--store", store, "--json"]) == 0
    resumed = json.loads(capsys.readouterr().out.splitlines()[-1])
    [conversation] = resumed["conversations"]
    text = conversation["last_replies"][0]["text"]
    assert "without giving a reason" in text
    assert "published" not in text


def test_resume_in_plain_text_prints_the_replies_it_produced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = str(tmp_path / "review.db")
    message = "Review this code for bugs, performance and security: data = eval(open(p).read())"
    assert main(["run", CODE_REVIEW, "--store", store, "-m", message, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    [request] = report["approvals"]
    assert main(["approvals", "approve", request["approval_id"], "--store", store]) == 0
    capsys.readouterr()
    assert main(["resume", CODE_REVIEW, "--store", store]) == 0
    out = capsys.readouterr().out
    assert (
        main(["conversations", "show", report["conversation_id"], "--store", store, "--json"]) == 0
    )
    shown = json.loads(capsys.readouterr().out)
    replies = [m for m in shown["transcript"] if m.get("type") == "assistant" and m["text"]]
    last = replies[-1]
    assert f"    {last['agent']}: {last['text']}" in out


def _held_by(store: str, holder: HolderInfo) -> int:
    """Hold ``store`` as another process does: the lock taken, the holder described."""
    fd = os.open(lock_path_of(Path(store)), os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.write(fd, msgspec.json.encode(holder))
    return fd


@pytest.mark.parametrize(
    ("address", "refusal"),
    [
        (None, "which takes no decisions from outside; nothing was decided"),
        ("http://127.0.0.1:{port}", "which cannot be reached at http://127.0.0.1:"),
    ],
)
def test_a_decision_the_holder_cannot_take_is_refused_and_nothing_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], address: str | None, refusal: str
) -> None:
    store = str(tmp_path / "review.db")
    request = _paused_review(store, capsys)
    with socket.socket() as closed:  # a port nobody listens on once this closes
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    holder = HolderInfo(
        pid=os.getpid(),
        host=socket.gethostname(),
        command="relaybaton resume code_review.toml",
        since=0.0,
        address=address.format(port=port) if address else None,
    )
    fd = _held_by(store, holder)
    try:
        assert main(["approvals", "approve", request["approval_id"], "--store", store]) == 2
    finally:
        os.close(fd)
    err = capsys.readouterr().err
    assert f"journal store {store} is " in err
    assert "`relaybaton resume code_review.toml` (pid " in err
    assert refusal in err
    assert "Traceback" not in err
    assert main(["approvals", "list", "--store", store, "--json"]) == 0
    [pending] = json.loads(capsys.readouterr().out)
    assert pending["decision"] is None  # still waiting: nothing was written behind the holder
