"""The browser for the console's end-to-end tests: Debian's Chromium, driven by playwright.

``playwright install`` cannot download browsers here, so the tests launch the system's
Chromium (``/usr/bin/chromium``; ``RELAYBATON_CHROMIUM`` overrides it). Without it they
are skipped with the reason, except under ``CI=true``, where they fail. Screenshots of
every page go to one folder (``RELAYBATON_SCREENSHOTS``, else a temporary one), printed at
the start of the session.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("RELAYBATON_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def _missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed: pip install -e '.[dev]'"
    if not Path(CHROMIUM).exists():
        return f"Chromium is not at {CHROMIUM}: apt-get install -y chromium"
    return None


# Module scope, not session: while it runs, sync playwright holds an event loop running in
# the main thread, and every later test that calls asyncio.run() would fail.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    problem = _missing()
    if problem is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the console's browser tests must run in CI: {problem}")
        pytest.skip(problem)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="session")
def screenshots(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = Path(
        os.environ.get("RELAYBATON_SCREENSHOTS") or tmp_path_factory.mktemp("console-screenshots")
    )
    folder.mkdir(parents=True, exist_ok=True)
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    line = f"console screenshots: {folder}"
    if reporter is not None:
        reporter.write_line(line)
    else:
        print(line)
    return folder


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.on(
        "console", lambda message: errors.append(message.text) if message.type == "error" else None
    )
    opened.errors = errors
    try:
        yield opened
    finally:
        context.close()
