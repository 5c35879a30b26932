"""The ``relaybaton`` command: the parser and the dispatch, one module per command group.

- ``relaybaton run FLOW --message TEXT [...]`` and ``relaybaton validate FLOW``:
  ``cli/_run.py``;
- ``relaybaton resume``, ``approvals`` and ``conversations``: ``cli/_conversations.py``;
- ``relaybaton memory import|export``: ``cli/_memory.py``;
- ``relaybaton mcp memory``: ``cli/_mcp.py``;
- ``relaybaton serve FLOW``: ``cli/_serve.py``;
- ``relaybaton demo``: ``cli/_demo.py``;
- ``relaybaton eval FLOW DATASET``: ``cli/_eval.py``;
- ``relaybaton feedback CONVERSATION --rating N``: ``cli/_feedback.py``.

Each group registers its parsers on the subparsers made here and sets ``func`` to a
function of the parsed namespace that returns the exit status. Bad input (a missing file,
a malformed flow, a bad option) is a message on stderr and exit status 2, never a
traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

import structlog

from relaybaton.cli._conversations import add_durable_commands
from relaybaton.cli._demo import add_demo_command
from relaybaton.cli._eval import add_eval_command
from relaybaton.cli._feedback import add_feedback_command
from relaybaton.cli._logging import configure_logging
from relaybaton.cli._mcp import add_mcp_commands
from relaybaton.cli._memory import add_memory_commands
from relaybaton.cli._run import add_run_commands
from relaybaton.cli._serve import add_serve_command
from relaybaton.errors import ConfigError

__all__ = ["main"]

_log = structlog.get_logger("relaybaton.cli")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="relaybaton",
        description="An asyncio actor runtime for multi-agent, multi-model LLM work.",
    )
    parser.add_argument(
        "--log-level",
        default="warning",
        choices=["debug", "info", "warning", "error"],
        help="log level on stderr (default: warning)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # The order of registration is the order ``relaybaton --help`` lists the commands in.
    add_run_commands(commands)
    add_durable_commands(commands)
    add_memory_commands(commands)
    add_mcp_commands(commands)
    add_serve_command(commands)
    add_demo_command(commands)
    add_eval_command(commands)
    add_feedback_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = _parser().parse_args(argv)
    configure_logging(args.log_level)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except ConfigError as exc:  # FlowError is one
        # Bad input is a message, never a traceback on screen; `--log-level debug` has it.
        _log.debug("command_refused", exc_info=exc)
        print(f"relaybaton: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
