"""The HTTP edge's cost per request in instructions, next to the bare aiohttp handler's.

The same workload and servers as ``http_edge.py`` (``POST /v1/conversations/{id}/messages``
on the customer-service flow with scripted models, against a handler that reads the body
and answers ``{}``), counted in CPU instructions instead of timed, so the figure does not
move with what else the machine is doing.

Each server runs in its own process under ``valgrind --tool=callgrind``; the load comes
from a child process that valgrind does not follow. The child first sends a warm-up round
(one request per client), then says so on a pipe; the server zeroes callgrind's counts
(it calls ``os.getpgrp``, which callgrind is told to zero before), lets the child send
``--requests`` requests from ``--clients`` clients, each in its own conversation, and
dumps the counts (``os.getsid``, which callgrind dumps before). The figure per request
is the dump's instruction total over ``--requests``: the server's whole path, from the
socket read to the answer's write, the event loop included, and a constant of a few
thousand instructions for the two pipe messages.

Figures vary by well under 1 % between runs (hash seeds and the order in which the loop
serves the clients); they depend on the CPython build and the library versions, so
compare figures of one machine and one environment. A run takes a few minutes (callgrind
slows the server about fifty-fold).

Usage: ``python benchmarks/http_edge_instructions.py [--requests N] [--clients N]
[--only edge|bare] [--keep DIR]`` (``--keep`` leaves the callgrind dumps there, for
``callgrind_annotate``). Needs valgrind.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

BENCHMARKS = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCHMARKS))

from http_edge import BODY, _bare_app, _edge, _serve  # noqa: E402

from relaybaton.cli._logging import configure_logging  # noqa: E402

# The libc calls whose entry callgrind zeroes and dumps its counts at: the server calls them
# around the measured window, and nothing else in it calls them.
_ZERO_AT = "getpgrp"
_DUMP_AT = "getsid"


# --- the load (a child of the server, not run under valgrind) --------------------------------


async def _load(url: str, clients: int, requests: int) -> None:
    per_client = max(1, requests // clients)
    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=3600)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:

        async def one(n: int, rounds: int) -> None:
            target = f"{url}/v1/conversations/count-{n}-{time.monotonic_ns()}/messages"
            for _ in range(rounds):
                async with http.post(
                    target, data=BODY, headers={"Content-Type": "application/json"}
                ) as answer:
                    await answer.read()
                    if answer.status != 200:
                        raise RuntimeError(f"status {answer.status}")

        await asyncio.gather(*(one(n, 1) for n in range(clients)))  # warm-up
        print("warm", flush=True)
        sys.stdin.readline()
        await asyncio.gather(*(one(n, per_client) for n in range(clients)))
        print("done", flush=True)


# --- the server (run under valgrind) ---------------------------------------------------------


async def _server(kind: str, clients: int, requests: int) -> None:
    serving = _edge(False) if kind == "edge" else _serve(_bare_app())
    async with serving as url:
        child = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--load", url,
            "--clients", str(clients), "--requests", str(requests),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert child.stdin is not None
        assert child.stdout is not None
        if await child.stdout.readline() != b"warm\n":
            raise RuntimeError("the load process failed in its warm-up")
        os.getpgrp()  # callgrind zeroes its counts here
        child.stdin.write(b"go\n")
        done = await child.stdout.readline()
        os.getsid(0)  # and dumps them here
        if done != b"done\n":
            raise RuntimeError("the load process failed")
        await child.wait()


# --- the driver ------------------------------------------------------------------------------


def _count(kind: str, clients: int, requests: int, out: Path) -> int:
    """Run one server under callgrind; the instructions of its measured window."""
    prefix = out / f"callgrind.{kind}"
    subprocess.run(
        [
            "valgrind", "--tool=callgrind", f"--callgrind-out-file={prefix}.%p",
            f"--zero-before={_ZERO_AT}", f"--dump-before={_DUMP_AT}",
            sys.executable, __file__, "--serve", kind,
            "--clients", str(clients), "--requests", str(requests),
        ],
        check=True, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    dumps = sorted(out.glob(f"callgrind.{kind}.*.1"))  # the first dump: the window
    if len(dumps) != 1:
        raise RuntimeError(f"expected one callgrind dump of the window, found {dumps}")
    for line in dumps[0].read_text().splitlines():
        if line.startswith("summary:"):
            return int(line.split()[1])
    raise RuntimeError(f"no summary in {dumps[0]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2_000)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--only", choices=("edge", "bare"))
    parser.add_argument("--keep", type=Path, help="leave the callgrind dumps in this folder")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--serve", choices=("edge", "bare"), help=argparse.SUPPRESS)
    parser.add_argument("--load", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        asyncio.run(_load(args.load, args.clients, args.requests))
        return
    if args.serve:
        configure_logging("warning")  # as `relaybaton serve` runs by default
        asyncio.run(_server(args.serve, args.clients, args.requests))
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is needed: it counts the instructions")
    requests = max(1, args.requests // args.clients) * args.clients
    out = args.keep or Path(tempfile.mkdtemp(prefix="http-edge-"))
    out.mkdir(parents=True, exist_ok=True)
    try:
        kinds = [args.only] if args.only else ["bare", "edge"]
        rows = {kind: _count(kind, args.clients, requests, out) / requests for kind in kinds}
    finally:
        if args.keep is None:
            shutil.rmtree(out)
    if "bare" in rows and "edge" in rows:
        rows["ratio"] = rows["edge"] / rows["bare"]
    if args.json:
        print(json.dumps({"requests": requests, "clients": args.clients, **rows}, indent=2))
        return
    print(f"{requests} requests from {args.clients} clients, instructions per request:")
    for kind, figure in rows.items():
        print(f"  {kind:<6} {'x' if kind == 'ratio' else ''}{figure:,.2f}")


if __name__ == "__main__":
    main()
