"""``relaybaton serve FLOW``: run a flow behind the HTTP service until SIGTERM or SIGINT.

Start-up prints where the server listens, one example request, and whether it answers
loopback clients only (no token configured). On SIGTERM or SIGINT it drains: it stops
accepting connections, refuses new messages on open ones with 503, gives accepted turns up
to ``--drain-timeout`` seconds to finish (their waiting requests get their answers), ends
event streams, closes the runtime, and exits 0 (1 if turns were still running at the
deadline).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import signal
import sys
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, TextIO

import structlog
from aiohttp import web

from relaybaton.cli._conversations import open_store_path
from relaybaton.cli._quality import watch_quality
from relaybaton.cli._serve_ab_command import add_ab_options, serve_ab_command
from relaybaton.cli._serve_cluster import cluster_setup
from relaybaton.cli._serve_forwarding import answer_for_owned, forward_to_owners
from relaybaton.cli._store_hold import holding
from relaybaton.errors import ConfigError, StoreError
from relaybaton.flow._compose import open_flow, parse_model_overrides
from relaybaton.flow._file import FlowFile, load_flow
from relaybaton.flow._memory import uses_memory
from relaybaton.flow._tools import memory_store_path
from relaybaton.memory import open_graph_store
from relaybaton.service._approval_desk import RuntimeApprovals
from relaybaton.service._auth import TokenTable, is_loopback
from relaybaton.service._limits import ServiceLimits
from relaybaton.service._server import ConsoleOptions, create_service
from relaybaton.service._tracing import create_otlp_exporter
from relaybaton.stores._hold import StoreHold

__all__ = ["add_serve_command", "serve"]


def add_serve_command(commands: Any) -> None:
    """Add ``serve`` to the command line's subcommands."""
    serve_cmd: argparse.ArgumentParser = commands.add_parser(
        "serve",
        help="serve a flow over HTTP until SIGTERM (native API, OpenAI-compatible, metrics)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve_cmd.add_argument("flow", help="the flow file (TOML)")
    serve_cmd.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    serve_cmd.add_argument("--port", type=int, default=8080, help="port (8080; 0 picks one)")
    serve_cmd.add_argument(
        "--store",
        metavar="PATH",
        help="journal conversations to this SQLite file (or PostgreSQL URL): they survive "
        "restarts, and unfinished ones continue at start-up; approvals need it. This "
        "process holds it alone (a second writer is refused) unless in cluster mode",
    )
    serve_cmd.add_argument(
        "--durability",
        choices=["sync", "batched", "off"],
        default="batched",
        help="when journal writes count as done (default: batched)",
    )
    serve_cmd.add_argument(
        "--tokens-file",
        metavar="PATH",
        help="bearer tokens, one per line (TOKEN or TOKEN:flow_a|flow_b); also read from "
        "RELAYBATON_API_TOKENS (comma-separated). None: loopback clients only",
    )
    serve_cmd.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="SLOT=PROVIDER:MODEL",
        help="use another model for a slot ('*=...' for every slot)",
    )
    defaults = ServiceLimits()
    serve_cmd.add_argument("--max-body-bytes", type=int, default=defaults.max_body_bytes)
    serve_cmd.add_argument(
        "--rate", type=float, default=defaults.rate_per_s, help="requests/s per token"
    )
    serve_cmd.add_argument(
        "--max-concurrent", type=int, default=defaults.max_concurrent, help="per token"
    )
    serve_cmd.add_argument(
        "--drain-timeout",
        type=float,
        default=defaults.drain_timeout_s,
        help="seconds turns in flight get to finish on SIGTERM",
    )
    serve_cmd.add_argument(
        "--record-content",
        action="store_true",
        help="record message content (replies, tool arguments and results) in spans",
    )
    serve_cmd.add_argument(
        "--trace-events",
        type=int,
        default=defaults.replay_events,
        metavar="N",
        help="events kept per conversation for event-stream replay, the console's timeline "
        f"and spans built when a trace is read ({defaults.replay_events})",
    )
    serve_cmd.add_argument(
        "--eval-reports",
        metavar="DIR",
        help="show the JSON reports of `relaybaton eval` in this folder on the console",
    )
    serve_cmd.add_argument(
        "--no-console", action="store_true", help="serve the API only (no pages at /)"
    )
    serve_cmd.add_argument(
        "--cluster",
        metavar="NATS_URL",
        help="run as one node of many (nats://HOST:4222); needs a PostgreSQL --store and"
        " --durability sync (the default in cluster mode); see [cluster] in the flow file",
    )
    add_ab_options(serve_cmd)
    serve_cmd.set_defaults(func=_serve_command)


def _serve_command(args: argparse.Namespace) -> int:
    if args.ab or args.ab_variant:
        return serve_ab_command(args)
    flow = load_flow(args.flow)
    if (args.cluster or flow.cluster is not None) and args.durability == "batched":
        args.durability = "sync"  # cluster mode answers only what is journaled
    overrides = parse_model_overrides(args.model, sorted(flow.models))
    tokens = TokenTable.from_environment(os.environ, args.tokens_file)
    if args.trace_events < 1:
        raise ConfigError(f"--trace-events {args.trace_events}: expected at least 1")
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port}: expected a port between 0 and 65535")
    limits = ServiceLimits(
        max_body_bytes=args.max_body_bytes,
        rate_per_s=args.rate,
        burst=max(1, int(args.rate * 2)),
        max_concurrent=args.max_concurrent,
        drain_timeout_s=args.drain_timeout,
        replay_events=args.trace_events,
    )
    return asyncio.run(
        serve(
            flow,
            host=args.host,
            port=args.port,
            tokens=tokens,
            limits=limits,
            overrides=overrides,
            record_content=args.record_content,
            store_path=args.store,
            durability=args.durability,
            console=not args.no_console,
            eval_reports=Path(args.eval_reports) if args.eval_reports else None,
            cluster=args.cluster,
        )
    )


def _stop_when_lost(hold: StoreHold, stop: asyncio.Event, log: Any) -> asyncio.Task[None]:
    """Drain and stop if another process took the store over (its hold's session broke)."""

    async def watch() -> None:
        await hold.lost.wait()
        log.error("store_hold_lost_stopping", store=hold.where)
        stop.set()

    return asyncio.get_running_loop().create_task(watch(), name="relaybaton hold watch")


def _banner(out: TextIO, flow: FlowFile, url: str, tokens: TokenTable, host: str) -> None:
    body = '{"text": "Hello"}'
    auth = "" if tokens.open_to_loopback_only else '-H "Authorization: Bearer $TOKEN" '
    out.write(f"relaybaton: serving flow {flow.flow.name!r} on {url}\n")
    out.write(
        f"  try: curl -s {auth}-H 'Content-Type: application/json' "
        f"-d {shlex.quote(body)} {url}/v1/conversations/demo/messages\n"
    )
    if tokens.open_to_loopback_only:
        remote = "" if is_loopback(host) else " (remote clients get 403)"
        out.write(
            "  no API tokens configured: answering loopback clients only"
            f"{remote}; set RELAYBATON_API_TOKENS to allow others\n"
        )
    else:
        out.write(f"  {len(tokens.tokens)} API token(s) configured; bearer auth required\n")
    out.flush()


async def serve(
    flow: FlowFile,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    tokens: TokenTable | None = None,
    limits: ServiceLimits | None = None,
    overrides: dict[str, str] | None = None,
    record_content: bool = False,
    out: TextIO = sys.stdout,
    stop: asyncio.Event | None = None,
    on_ready: Callable[[str], None] | None = None,
    store_path: str | None = None,
    durability: str = "batched",
    console: bool = True,
    eval_reports: Path | None = None,
    cluster: str | None = None,
) -> int:
    """Serve ``flow`` until SIGTERM/SIGINT (or ``stop`` is set), then drain; return the status.

    Cancelling it skips the drain: the runtime's own exit cancels turns in flight. Outside
    cluster mode the store is held for this process alone (``cli/_store_hold.py``), and
    the hold names the address at which it takes decisions made with the CLI.
    """
    tokens = tokens or TokenTable()
    limits = limits or ServiceLimits()
    log = structlog.get_logger("relaybaton.service")
    stop = stop or asyncio.Event()
    node, flow = cluster_setup(flow, cluster, store_path, durability)
    loop = asyncio.get_running_loop()
    finished = False
    journal_lost: list[BaseException] = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with AsyncExitStack() as stack:
            store = None
            hold = None
            if store_path:
                hold = await stack.enter_async_context(
                    holding(
                        store_path,
                        f"relaybaton serve ({flow.flow.name})",
                        exclusive=node is None,  # cluster nodes share it
                    )
                )
                store = await stack.enter_async_context(open_store_path(store_path, durability))
                if node is not None:
                    node.fence_store(store)
            runtime = await stack.enter_async_context(
                open_flow(
                    flow,
                    model_overrides=overrides,
                    tracing=False,
                    store=store,
                    durability=durability,
                    resume=node is None,  # a node recovers each partition as it gains it
                )
            )
            forwarder = None
            if node is not None:

                def journal_failed(exc: BaseException) -> None:
                    journal_lost.append(exc)
                    log.error("journal_failed_leaving_cluster", error=repr(exc))
                    stop.set()  # hand the partitions over rather than hold them unjournaled

                await node.start(runtime, stack, limits.drain_timeout_s, journal_failed)
                forwarder = await forward_to_owners(node.node, store, stack)
            options = None
            if console:
                memory = None
                if uses_memory(flow):  # the console browses the graph the agents write
                    memory = await stack.enter_async_context(
                        open_graph_store(memory_store_path(flow))
                    )
                options = ConsoleOptions(reports=eval_reports, memory=memory)
            service = create_service(
                runtime,
                flow_name=flow.flow.name,
                tokens=tokens,
                limits=limits,
                record_content=record_content,
                approvals=(
                    RuntimeApprovals(runtime, shared=store if node is not None else None)
                    if store is not None
                    else None
                ),
                exporter=create_otlp_exporter(service_name=f"relaybaton/{flow.flow.name}"),
                console=options,
                forwarder=forwarder,
            )
            if node is not None:
                node.expose_metrics(service.metrics.registry)  # producers' counters
            await watch_quality(flow, runtime, service, stack)
            runner = web.AppRunner(
                service.app, access_log=None, handle_signals=False, shutdown_timeout=5.0
            )
            await runner.setup()
            if node is not None:  # the app is set up: it can answer other nodes' requests
                await answer_for_owned(node.node, service.app, stack)
            site = web.TCPSite(runner, host, port, backlog=4096)
            try:
                await site.start()
            except OSError as exc:  # a busy port, a host not on this machine: one line
                log.debug("listen_failed", host=host, port=port, exc_info=exc)
                await runner.cleanup()
                service.close()
                raise ConfigError(
                    f"cannot listen on {host}:{port}: {exc.strerror or exc}; is another server "
                    "using that port? choose another with --port"
                ) from exc
            bound = runner.addresses[0]
            shown = f"[{bound[0]}]" if ":" in str(bound[0]) else str(bound[0])
            url = f"http://{shown}:{bound[1]}"
            if hold is not None:  # where `approvals approve` sends its decisions
                await hold.announce(url)
                stack.callback(_stop_when_lost(hold, stop, log).cancel)
            _banner(out, flow, url, tokens, host)
            if on_ready is not None:
                on_ready(url)
            await stop.wait()
            out.write("relaybaton: draining: no new connections; finishing turns in flight\n")
            out.flush()
            await site.stop()
            if node is not None:
                await node.leave()  # hands each partition over once its turns are done
            # Turns cannot finish without a journal: waiting for them would only delay the exit.
            finished = await service.drain(0.0 if journal_lost else limits.drain_timeout_s)
            await runner.cleanup()
            service.close()
            if not finished:
                log.warning("drain_deadline_passed", turns=len(service.pending))
    except StoreError as exc:
        if not journal_lost:
            raise
        # Closing the runtime re-raises the journal's failure, logged when it happened.
        log.debug("journal_failure_at_close", exc_info=exc)
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
    if journal_lost:
        out.write(
            f"relaybaton: the journal failed ({journal_lost[0]}); left the cluster so other"
            " nodes take its partitions; exiting 1\n"
        )
        out.flush()
        return 1
    out.write("relaybaton: drained, exiting\n" if finished else "relaybaton: deadline passed\n")
    out.flush()
    return 0 if finished else 1
