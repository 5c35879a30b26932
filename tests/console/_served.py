"""`relaybaton serve` on the customer-service flow, in a thread of its own, for the browser."""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from relaybaton.cli._serve import serve
from relaybaton.flow import load_flow
from relaybaton.service import ServiceLimits, TokenTable

FLOW = Path(__file__).resolve().parents[1] / "integration" / "crash_flow" / "flow.toml"


@contextmanager
def served(
    tmp: Path, *, tokens: TokenTable | None = None, reports: Path | None = None
) -> Iterator[str]:
    """The console's base URL while the server runs (on 127.0.0.1, an ephemeral port)."""
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    ready: list[str] = []
    started = threading.Event()
    failure: list[BaseException] = []

    def on_ready(url: str) -> None:
        ready.append(url)
        started.set()

    async def main() -> None:
        try:
            await serve(
                load_flow(FLOW),
                port=0,
                tokens=tokens or TokenTable(),
                stop=stop,
                on_ready=on_ready,
                store_path=str(tmp / "journal.db"),
                durability="sync",
                out=io.StringIO(),
                eval_reports=reports,
                # Parked turns wait for people, not for the drain: end the test quickly.
                limits=ServiceLimits(drain_timeout_s=0.5),
            )
        except BaseException as exc:
            failure.append(exc)
            started.set()
            raise

    def run() -> None:
        # serve() installs signal handlers, which only the main thread may: skip them here.
        loop.add_signal_handler = lambda *args, **kwargs: None  # type: ignore[method-assign]
        loop.remove_signal_handler = lambda *args, **kwargs: True  # type: ignore[method-assign]
        loop.run_until_complete(main())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    started.wait(30)
    if failure:
        raise failure[0]
    try:
        yield ready[0]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(60)
        loop.close()
