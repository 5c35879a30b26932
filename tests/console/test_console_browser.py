"""The console in a real browser: the baton on the timeline, approvals, a person's reply,
a stale decision explained, and a script in a message shown as text and never run."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.console._served import served

TIMEOUT_MS = 15_000


@pytest.fixture
def url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("RELAYBATON_TEST_EFFECTS", str(tmp_path / "effects.jsonl"))
    reports = tmp_path / "reports"
    reports.mkdir()
    with served(tmp_path, reports=reports) as base:
        yield base


def post(url: str, path: str, body: dict[str, Any]) -> tuple[int, Any]:
    request = urllib.request.Request(
        url + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def say(url: str, cid: str, text: str, *, wait: bool = True) -> Any:
    status, body = post(
        url, f"/v1/conversations/{cid}/messages?wait={str(wait).lower()}", {"text": text}
    )
    assert status in {200, 202}, body
    return body


def shot(page: Any, folder: Path, name: str) -> None:
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def test_the_baton_pass_appears_live_on_the_timeline(
    url: str, page: Any, screenshots: Path
) -> None:
    say(url, "c-baton", "hello there")
    page.goto(f"{url}/conversations/c-baton")
    page.wait_for_selector("body[data-ready='1']")
    assert page.locator(".ev-baton").count() == 0
    say(url, "c-baton", "I want a refund of $40 for order AB-1234", wait=False)
    baton = page.locator(".ev-baton", has_text="triage → refund").first
    baton.wait_for(timeout=TIMEOUT_MS)
    assert "epoch 1" in baton.inner_text()
    page.locator(".ev-model").first.wait_for()
    heads = page.locator(".lane-head").all_inner_texts()
    assert heads[:2] == ["triage", "refund"]
    shot(page, screenshots, "conversation")
    assert not page.errors


def test_a_150_dollar_refund_is_approved_from_the_inbox_and_the_conversation_finishes(
    url: str, page: Any, screenshots: Path
) -> None:
    say(url, "c-refund", "I want a refund of $150 for order CD-5678", wait=False)
    page.goto(f"{url}/approvals")
    card = page.locator("article.approval").first
    card.wait_for(timeout=TIMEOUT_MS)
    page.reload()
    card = page.locator("article.approval").first
    text = card.inner_text()
    assert "issue_refund" in text
    assert "c-refund" in text
    assert "amount > 100" in text
    assert "150" in text
    shot(page, screenshots, "approvals")
    card.get_by_role("button", name="Approve", exact=True).click()
    page.wait_for_url(f"{url}/approvals")
    page.goto(f"{url}/conversations/c-refund")
    page.locator(".ev-reply").first.wait_for(timeout=TIMEOUT_MS)
    assert "refunded" in page.locator("#transcript").inner_text().lower()
    assert not page.errors


def test_a_person_takes_the_baton_and_replies(url: str, page: Any, screenshots: Path) -> None:
    say(url, "c-person", "hello there")
    page.goto(f"{url}/conversations/c-person")
    page.get_by_role("button", name="Pause").click()
    page.wait_for_url(f"{url}/conversations/c-person")
    say(url, "c-person", "are you a person?", wait=False)
    page.locator(".status", has_text="waiting for a person").wait_for(timeout=TIMEOUT_MS)
    page.get_by_role("button", name="Take the baton").click()
    page.locator(".owner", has_text="person:loopback").wait_for(timeout=TIMEOUT_MS)
    page.locator("textarea[name=text]").fill("Yes: Ana here. How can I help?")
    page.get_by_role("button", name="Reply as you").click()
    page.locator("#transcript .msg.person", has_text="Ana here").wait_for(timeout=TIMEOUT_MS)
    page.locator("select[name=agent]").select_option("triage")
    page.get_by_role("button", name="Hand back").click()
    page.locator(".owner", has_text="triage").wait_for(timeout=TIMEOUT_MS)
    assert page.locator(".ev-baton", has_text="taken by a person").count() == 1
    shot(page, screenshots, "conversation-person")
    assert not page.errors


def test_a_stale_approval_shows_the_conflict_explained(
    url: str, page: Any, screenshots: Path
) -> None:
    say(url, "c-stale", "I want a refund of $150 for order EF-9012", wait=False)
    page.goto(f"{url}/approvals")
    page.locator("article.approval").first.wait_for(timeout=TIMEOUT_MS)
    page.reload()
    card = page.locator("article.approval").first
    approval_id = card.get_attribute("data-approval")
    # Someone else decides first, through the API.
    status, _ = post(url, f"/v1/approvals/{approval_id}", {"decision": "reject", "reason": "no"})
    assert status == 200
    card.get_by_role("button", name="Approve", exact=True).click()
    problem = page.locator(".problem")
    problem.wait_for(timeout=TIMEOUT_MS)
    assert problem.get_attribute("data-status") == "409"
    assert "was decided already by person:loopback: reject" in problem.inner_text()
    shot(page, screenshots, "approval-conflict")


def test_a_script_in_a_message_is_shown_as_text_and_never_runs(
    url: str, page: Any, screenshots: Path
) -> None:
    payload = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'
    say(url, "c-xss", f"hello {payload}")
    page.goto(f"{url}/conversations/c-xss")
    page.wait_for_selector("body[data-ready='1']")
    user = page.locator("#transcript .msg.user").first
    assert payload in user.inner_text()
    assert page.evaluate("window.__pwned") is None
    assert page.locator("#transcript img").count() == 0
    page.goto(url + "/")
    assert page.evaluate("window.__pwned") is None
    shot(page, screenshots, "conversations")


def test_every_page_renders_and_is_screenshotted(url: str, page: Any, screenshots: Path) -> None:
    say(url, "c-pages", "hello")
    for name, path, heading in [
        ("supervisor", "/supervisor", "Supervisor"),
        ("memory", "/memory?user=ana", "Memory"),
        ("evaluations", "/evaluations", "Evaluations"),
        ("login", "/login", "Log in"),
    ]:
        page.goto(url + path)
        assert page.locator("h1").inner_text() == heading
        shot(page, screenshots, name)
    page.goto(url + "/evaluations")
    assert "There are no evaluation reports in" in page.locator("main").inner_text()
    assert not page.errors
