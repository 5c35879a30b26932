"""The example flow, end to end, on each provider's wire protocol (a local fake server).

``relaybaton run`` runs as a real subprocess with ``--model '*=provider:model'`` and the
provider's base URL variable pointing at the fake server; the key is a canary that must
reach the server's auth header and nothing else: not stdout, not stderr (logs included).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.adapters._servers import FakeServer, Reply

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
CANARY = "sk-canary-3f9a1c7e5b2d4f60a8e1"
ANSWER = "Your refund of $42.00 for order AB-1234 is on its way."


def _openai(message: dict[str, Any], finish: str) -> Reply:
    return Reply.json(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1764000000,
            "model": "gpt-5.2-2025-12-11",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "refusal": None, **message},
                    "logprobs": None,
                    "finish_reason": finish,
                }
            ],
            "usage": {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150},
        }
    )


def _anthropic(content: list[dict[str, Any]], stop: str) -> Reply:
    return Reply.json(
        {
            "id": "msg_01",
            "type": "message",
            "role": "assistant",
            "model": "claude-opus-4-6",
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": {"input_tokens": 120, "output_tokens": 30},
        }
    )


def _gemini(parts: list[dict[str, Any]]) -> Reply:
    return Reply.json(
        {
            "candidates": [
                {"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}
            ],
            "usageMetadata": {
                "promptTokenCount": 120,
                "candidatesTokenCount": 30,
                "totalTokenCount": 150,
            },
            "modelVersion": "gemini-3-pro",
        }
    )


SCRIPTS: dict[str, tuple[str, str, str, list[Reply]]] = {
    "openai": (
        "openai:gpt-5.2",
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        [
            _openai(
                {
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_h1",
                            "type": "function",
                            "function": {"name": "transfer_to_refund", "arguments": "{}"},
                        }
                    ],
                },
                "tool_calls",
            ),
            _openai({"content": ANSWER}, "stop"),
        ],
    ),
    "anthropic": (
        "anthropic:claude-opus-4-6",
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_BASE_URL",
        [
            _anthropic(
                [{"type": "tool_use", "id": "toolu_h1", "name": "transfer_to_refund", "input": {}}],
                "tool_use",
            ),
            _anthropic([{"type": "text", "text": ANSWER}], "end_turn"),
        ],
    ),
    "gemini": (
        "gemini:gemini-3-pro",
        "GEMINI_API_KEY",
        "GEMINI_BASE_URL",
        [
            _gemini([{"functionCall": {"name": "transfer_to_refund", "args": {}}}]),
            _gemini([{"text": ANSWER}]),
        ],
    ),
}


@pytest.fixture
async def server() -> Any:
    fake = FakeServer()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


@pytest.mark.parametrize("provider", sorted(SCRIPTS))
async def test_customer_service_flow_runs_on_the_provider_wire_and_never_shows_the_key(
    provider: str, server: FakeServer
) -> None:
    model, key_variable, url_variable, replies = SCRIPTS[provider]
    server.enqueue(*replies)
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_BASE_URL"))}
    env.update({key_variable: CANARY, url_variable: server.base_url, "PYTHONPATH": str(ROOT)})
    command = [
        sys.executable,
        "-m",
        "relaybaton",
        "--log-level",
        "debug",
        "run",
        str(ROOT / "examples" / "customer_service.toml"),
        "--model",
        f"*={model}",
        "--message",
        "I want a refund for order AB-1234, it arrived damaged; it cost $42.",
        "--json",
    ]
    result = await anyio.to_thread.run_sync(
        lambda: subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=60, check=False
        )
    )
    assert result.returncode == 0, result.stderr + result.stdout
    report = json.loads(result.stdout)
    assert report["replies"] == [{"agent": "refund", "text": ANSWER}]
    assert [e["kind"] for e in report["events"]].count("model_call") == 2
    assert len(server.received) == 2
    # The second request carries the handoff call *and* its result: a history the provider
    # accepts (a tool result for every tool call).
    second = server.received[1].body.decode()
    assert "transfer_to_refund" in second
    assert "Transferred to refund." in second
    # The key went to the server, in the provider's header, and nowhere else.
    headers = {k.lower(): v for k, v in server.received[0].headers.items()}
    assert CANARY in headers.get("authorization", "") + headers.get("x-api-key", "") + headers.get(
        "x-goog-api-key", ""
    )
    assert CANARY not in result.stdout
    assert CANARY not in result.stderr


def _run_flow(server: FakeServer, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_BASE_URL"))}
    env.update({"OPENAI_API_KEY": CANARY, "OPENAI_BASE_URL": server.base_url + "/v1"})
    env["PYTHONPATH"] = str(ROOT)
    command = [
        sys.executable, "-m", "relaybaton", "run",
        str(ROOT / "examples" / "customer_service.toml"),
        "--model", "*=openai:gpt-5.2", "--message", "Hello", *extra,
    ]  # fmt: skip
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)


def _unavailable() -> Reply:
    error = {"message": "The server is overloaded.", "type": "server_error", "code": None}
    return Reply.json({"error": error}, status=503)


async def test_a_failing_real_provider_is_never_answered_by_the_flows_simulated_fallback(
    server: FakeServer,
) -> None:
    server.enqueue(_unavailable(), _unavailable(), _unavailable())
    result = await anyio.to_thread.run_sync(lambda: _run_flow(server, "--json"))
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert "simulated" not in result.stdout
    assert report["replies"][0]["text"] == ""
    assert "failed" in report["replies"][0]["error"]
    # Said at start-up: the flow's simulated fallback is gone for this run.
    assert "simulated_fallbacks_dropped" in result.stderr
    assert "simulated:general-fallback" in result.stderr
    # Every failed attempt is in the trace, with what failed it, and in the log.
    failed = [e for e in report["events"] if e["kind"] == "model_call"]
    assert [e["outcome"] for e in failed] == ["ModelOverloadedError"] * 3
    assert all(e["model"] == "openai:gpt-5.2" and "overloaded" in e["error"] for e in failed)
    assert result.stderr.count("model_attempt_retried") == 2
    assert len(server.received) == 3


async def test_a_retry_that_succeeds_shows_the_failed_attempt_in_text_and_json(
    server: FakeServer,
) -> None:
    answer = _openai({"content": "Hello! How can I help?"}, "stop")
    server.enqueue(_unavailable(), answer)
    result = await anyio.to_thread.run_sync(lambda: _run_flow(server, "--json"))
    assert result.returncode == 0, result.stderr
    events = [e for e in json.loads(result.stdout)["events"] if e["kind"] == "model_call"]
    assert [e["outcome"] for e in events] == ["ModelOverloadedError", "ok"]
    assert events[1]["route"]["policy"] == "retry"
    assert "model_attempt_retried" in result.stderr
    server.enqueue(_unavailable(), answer)
    text = await anyio.to_thread.run_sync(lambda: _run_flow(server))
    assert text.returncode == 0, text.stderr
    assert "FAILED ModelOverloadedError" in text.stdout
    assert "Hello! How can I help?" in text.stdout


async def test_usage_a_server_does_not_report_is_estimated_in_the_ledger_and_the_trace(
    server: FakeServer,
) -> None:
    answer = _openai({"content": "Hello! How can I help you today?"}, "stop")
    answer.body = answer.body.replace(b', "usage": {', b', "unused": {')  # type: ignore[union-attr]
    server.enqueue(answer)
    result = await anyio.to_thread.run_sync(lambda: _run_flow(server, "--json"))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    [call] = [e for e in report["events"] if e["kind"] == "model_call"]
    assert call["usage_estimated"] is True
    assert call["input_tokens"] > 0
    assert call["output_tokens"] > 0
    assert report["usage"]["estimated_calls"] == 1
    assert report["usage"]["cost_usd"] > 0
