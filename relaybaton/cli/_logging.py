"""Logging for the command line: structlog, JSON lines (console lines on a TTY), redacted.

Library users configure structlog themselves; the composition root calls this once.
"""

from __future__ import annotations

import logging
import sys

import structlog

from relaybaton.adapters._redact import redact_processor

__all__ = ["configure_logging"]


def configure_logging(level: str = "warning", *, json: bool | None = None) -> None:
    """Send relaybaton's logs to stderr at ``level``; keys never reach them.

    ``json`` defaults to True unless stderr is a terminal.
    """
    as_json = (not sys.stderr.isatty()) if json is None else json
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_processor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
