"""How fast does the console show a long conversation and a big list, in a real browser?

Two questions, each against a baseline measured in the same run:

- ``timeline``: a conversation with 1,000 trace events (model calls, baton passes, replies
  of real turns through the runtime) is opened in Debian's Chromium; ``ready_ms`` is the time
  from navigation start until the console's script has run (the page is interactive:
  ``performance.mark("console-ready")``), ``click_ms`` the time a click on the last row
  takes to open it. Baseline: the same page for a conversation with about 10 events.
  Target: ready in under 1,000 ms.
- ``list``: the conversations page with 10,000 conversations in the SQLite journal;
  ``server_ms`` is the request's time as a client on loopback sees it (``GET /``, median of
  ``--requests``), ``ready_ms`` the browser's time to interactive. Baseline: 10 stored
  conversations. Target: under 300 ms.

Figures are medians of ``--repeat`` page loads. Read the ratios against the baselines more
than the absolute figures: the machine is shared. Needs Chromium at /usr/bin/chromium
(``RELAYBATON_CHROMIUM`` overrides) and the playwright package (the dev extras). Usage:
``python benchmarks/console.py [--json] [--repeat N] [--requests N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from aiohttp import web
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from relaybaton.actors import open_runtime  # noqa: E402
from relaybaton.cli._logging import configure_logging  # noqa: E402
from relaybaton.flow import load_flow  # noqa: E402
from relaybaton.flow._compose import build_agents  # noqa: E402
from relaybaton.runtime._store import Head, WriteBatch  # noqa: E402
from relaybaton.service import ServiceLimits, create_service  # noqa: E402
from relaybaton.service._server import ConsoleOptions  # noqa: E402
from relaybaton.stores import SqliteStore  # noqa: E402
from relaybaton.testing import ScriptedModel, tool_call  # noqa: E402

CHROMIUM = os.environ.get("RELAYBATON_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def _answer(request: Any) -> object:
    """Triage hands every third message to billing, which answers and hands it back."""
    last = request.messages[-1]
    text = getattr(last, "text", "") or ""
    if request.metadata.agent == "triage" and "billing" in text:
        return tool_call("transfer_to_billing", reason=text)
    return f"{request.metadata.agent} heard: {text[:40]}"


async def _fill_heads(path: Path, count: int) -> None:
    store = SqliteStore(path)
    now = time.time()
    try:
        for start in range(0, count, 2000):
            heads = {
                f"stored-{n:06d}": Head(
                    conversation_id=f"stored-{n:06d}",
                    seq=3,
                    epoch=n % 3,
                    owner="triage" if n % 7 else "billing",
                    status="awaiting_approval" if n % 97 == 0 else "active",
                    unfinished=False,
                    updated_at=now - n,
                )
                for n in range(start, min(count, start + 2000))
            }
            await store.write(WriteBatch(heads=heads))
    finally:
        await store.aclose()


@contextmanager
def _served(store_path: Path, turns: dict[str, int]) -> Iterator[str]:
    """Serve the customer-service flow with the console; run ``turns`` per conversation."""
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    ready: list[str] = []
    started = threading.Event()

    async def main() -> None:
        flow = load_flow(ROOT / "examples" / "customer_service.toml")
        agents = build_agents(flow)
        model = ScriptedModel(_answer, keep_requests=False)
        store = SqliteStore(store_path, durability="off")
        try:
            async with open_runtime(
                agents[flow.entry],
                agents=list(agents.values()),
                models=model,
                tracing=False,
                store=store,
                durability="off",
            ) as runtime:
                limits = ServiceLimits(replay_events=5000, rate_per_s=1e9, burst=10**9)
                service = create_service(
                    runtime, flow_name=flow.flow.name, limits=limits, console=ConsoleOptions()
                )
                for conversation_id, count in turns.items():
                    for n in range(count):
                        text = f"billing question {n}" if n % 3 == 0 else f"hello {n}"
                        await runtime.send(conversation_id, text)
                runner = web.AppRunner(service.app, access_log=None)
                await runner.setup()
                site = web.TCPSite(runner, "127.0.0.1", 0)
                await site.start()
                host, port = runner.addresses[0][:2]
                ready.append(f"http://{host}:{port}")
                started.set()
                await stop.wait()
                await service.drain(1.0)
                await runner.cleanup()
                service.close()
        finally:
            await store.aclose()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    if not started.wait(600):
        raise RuntimeError("the server did not start")
    try:
        yield ready[0]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(60)
        loop.close()


def _page_ready_ms(page: Any, url: str) -> float:
    page.goto(url)
    page.wait_for_selector("body[data-ready='1']")
    return float(page.evaluate("performance.getEntriesByName('console-ready')[0].startTime"))


def _click_ms(page: Any) -> float:
    """After a fresh load: how long a click on the last row takes to open it."""
    last = page.locator(".ev").last
    started = time.perf_counter()
    last.click()
    page.locator(".ev.open").last.wait_for()
    return (time.perf_counter() - started) * 1000


def _server_ms(url: str, requests: int) -> float:
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        with urllib.request.urlopen(url, timeout=30) as response:
            response.read()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def measure(repeat: int, requests: int) -> dict[str, dict[str, float]]:
    """Every figure of the module's docstring, and the ratios to the baselines."""
    rows: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        for count in (10, 10_000):  # before the browser, which keeps a loop running
            asyncio.run(_fill_heads(folder / f"list-{count}.db", count))
        with sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            _timeline(page, folder, rows, repeat)
            _list(page, folder, rows, repeat, requests)
            browser.close()
    rows["ratio"] = {
        "timeline_ready": rows["timeline_1000"]["ready_ms"] / rows["timeline_10"]["ready_ms"],
        "list_server": rows["list_10000"]["server_ms"] / rows["list_10"]["server_ms"],
        "list_ready": rows["list_10000"]["ready_ms"] / rows["list_10"]["ready_ms"],
    }
    return rows


def _timeline(page: Any, folder: Path, rows: dict[str, dict[str, float]], repeat: int) -> None:
    # About 1,000 events in one conversation (140 turns), about 10 in the baseline.
    with _served(folder / "timeline.db", {"long": 140, "short": 2}) as url:
        for name, cid in (("timeline_10", "short"), ("timeline_1000", "long")):
            page.goto(f"{url}/conversations/{cid}")
            events = page.locator(".ev").count()
            ready, clicks = [], []
            for _ in range(repeat):
                ready.append(_page_ready_ms(page, f"{url}/conversations/{cid}"))
                clicks.append(_click_ms(page))
            rows[name] = {
                "events": events,
                "ready_ms": statistics.median(ready),
                "click_ms": statistics.median(clicks),
            }


def _list(
    page: Any, folder: Path, rows: dict[str, dict[str, float]], repeat: int, requests: int
) -> None:
    for name, count in (("list_10", 10), ("list_10000", 10_000)):
        with _served(folder / f"list-{count}.db", {}) as url:
            _server_ms(url + "/", 3)  # warm-up
            rows[name] = {
                "stored": count,
                "server_ms": _server_ms(url + "/", requests),
                "api_ms": _server_ms(url + "/v1/conversations?limit=50", requests),
                "ready_ms": statistics.median(
                    _page_ready_ms(page, url + "/") for _ in range(repeat)
                ),
            }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--repeat", type=int, default=7, help="page loads per figure")
    parser.add_argument("--requests", type=int, default=30, help="requests per server figure")
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        sys.exit(f"Chromium is not at {CHROMIUM}: apt-get install -y chromium")
    configure_logging("warning")
    rows = measure(args.repeat, args.requests)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    for name, row in rows.items():
        print(f"{name:<14} " + "  ".join(f"{k} {v:.1f}" for k, v in row.items()))
    print(
        f"targets: timeline ready {rows['timeline_1000']['ready_ms']:.0f} ms (< 1000), "
        f"list {rows['list_10000']['server_ms']:.0f} ms server, "
        f"{rows['list_10000']['ready_ms']:.0f} ms ready (< 300)"
    )


if __name__ == "__main__":
    main()
