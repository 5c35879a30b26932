"""The console's forms against the customer-service flow with a journal: an edited approval."""

from __future__ import annotations

import http.cookiejar
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.console._served import served


@pytest.fixture
def url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("RELAYBATON_TEST_EFFECTS", str(tmp_path / "effects.jsonl"))
    with served(tmp_path) as base:
        yield base


class Browser:
    """A cookie-keeping client that does not follow redirects."""

    def __init__(self) -> None:
        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args: object, **kwargs: object) -> None:
                return None

        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()), NoRedirect()
        )

    def open(
        self, url: str, data: dict[str, str] | None = None, *, json_body: object = None
    ) -> tuple[int, str]:
        body = None
        headers = {}
        if data is not None:
            body = urllib.parse.urlencode(data).encode()
        if json_body is not None:
            body = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=body, headers=headers)
        try:
            with self.opener.open(request, timeout=30) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()


def test_an_approval_edited_in_the_inbox_runs_with_the_new_arguments(url: str) -> None:
    browser = Browser()
    status, _ = browser.open(
        f"{url}/v1/conversations/c1/messages?wait=false",
        json_body={"text": "I want a refund of $150 for order CD-5678"},
    )
    assert status == 202
    for _ in range(100):
        status, page = browser.open(f"{url}/approvals")
        if "data-approval=" in page:
            break
        time.sleep(0.05)
    approval_id = re.search(r'data-approval="([^"]+)"', page)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    digest = re.search(r'name="arguments_hash" value="([^"]+)"', page)
    assert approval_id
    assert csrf
    assert digest
    form = {"csrf": csrf.group(1), "arguments_hash": digest.group(1), "decision": "edit"}
    status, refused = browser.open(
        f"{url}/approvals/{approval_id.group(1)}", {**form, "arguments": "not json"}
    )
    assert status == 400
    assert "must be a JSON object" in refused
    edited = json.dumps({"order_id": "CD-5678", "amount": 90})
    status, _ = browser.open(
        f"{url}/approvals/{approval_id.group(1)}", {**form, "arguments": edited}
    )
    assert status == 303
    for _ in range(100):
        _, shown = browser.open(f"{url}/v1/conversations/c1")
        texts = [str(item.get("content", "")) for item in json.loads(shown)["transcript"]]
        if any("90" in t and "refund" in t.lower() for t in texts):
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"the edited refund did not run: {texts}")


def test_after_a_restart_the_timeline_is_rebuilt_from_the_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELAYBATON_TEST_EFFECTS", str(tmp_path / "effects.jsonl"))
    with served(tmp_path) as base:
        browser = Browser()
        status, _ = browser.open(
            f"{base}/v1/conversations/c1/messages",
            json_body={"text": "I want a refund of $40 for order AB-1234"},
        )
        assert status == 200
        _, live = browser.open(f"{base}/conversations/c1")
        assert "Rebuilt from the journal" not in live
    with served(tmp_path) as base:
        _, page = Browser().open(f"{base}/conversations/c1")
    assert "Rebuilt from the journal" in page
    assert "triage → refund" in page
    assert "epoch 1" in page
    assert "latency not journaled" in page
    assert 'class="ev ev-tool' in page
    assert 'class="ev ev-reply' in page
