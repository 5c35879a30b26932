"""Keeping keys out of logs: a structlog processor and a plain-text scrubber.

Three nets, because any one of them alone has holes:

- by key name: a value under ``api_key``, ``authorization``, ``x-api-key``... is replaced
  whatever it looks like;
- by pattern: strings shaped like provider keys (``sk-...``, ``sk-ant-...``, ``AIza...``) or
  ``Bearer ...`` credentials are replaced wherever they sit in a string;
- by value: every key the adapters loaded (``Secret`` registers itself here) is replaced
  verbatim, so a key of an unknown shape is still caught.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, MutableMapping
from typing import Any

__all__ = ["REDACTED", "redact_processor", "redact_text", "redact_value", "register_secret"]

REDACTED = "[redacted]"

_SENSITIVE_NAMES = frozenset(
    {
        "api_key",
        "apikey",
        "api-key",
        "x-api-key",
        "x-goog-api-key",
        "authorization",
        "proxy-authorization",
        "token",
        "access_token",
        "refresh_token",
        "secret",
        "client_secret",
        "password",
        "passwd",
        "cookie",
        "set-cookie",
    }
)

_PATTERN = re.compile(
    r"(?:sk-(?:ant-)?[A-Za-z0-9_\-]{8,})"
    r"|(?:AIza[0-9A-Za-z_\-]{20,})"
    r"|(?:(?<=Bearer )\S+)"
    r"|(?:(?<=bearer )\S+)"
)

# Secrets are few (one per provider key) and live for the process; a set of strings is
# enough, and a weak set is impossible since str cannot be weakly referenced.
_known: set[str] = set()
_known_re: re.Pattern[str] | None = None


def register_secret(value: str) -> None:
    """Make ``redact_text`` replace this exact value from now on (values < 8 chars ignored)."""
    global _known_re  # noqa: PLW0603 - one process-wide registry, rebuilt rarely
    if len(value) >= 8 and value not in _known:
        _known.add(value)
        alternatives = sorted(_known, key=len, reverse=True)
        _known_re = re.compile("|".join(re.escape(v) for v in alternatives))


def _is_sensitive(name: str) -> bool:
    lowered = name.lower()
    return lowered in _SENSITIVE_NAMES or lowered.endswith(("_api_key", "_token", "_secret"))


def redact_text(text: str) -> str:
    """Return ``text`` with every key-like substring and every registered key replaced."""
    if _known_re is not None:
        text = _known_re.sub(REDACTED, text)
    return _PATTERN.sub(REDACTED, text)


def redact_value(value: object) -> object:
    """Redact strings inside any nesting of mappings, lists and tuples."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {
            k: REDACTED if isinstance(k, str) and _is_sensitive(k) else redact_value(v)
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return type(value)(redact_value(v) for v in value)
    if isinstance(value, BaseException):
        return redact_text(f"{type(value).__name__}: {value}")
    return value


def redact_processor(
    logger: object, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor: redact sensitive keys and key-shaped strings at any depth.

    Put it last before the renderer, after ``format_exc_info``, so that rendered
    tracebacks are scrubbed too.
    """
    for key in list(event_dict):
        if _is_sensitive(key):
            event_dict[key] = REDACTED
        else:
            event_dict[key] = redact_value(event_dict[key])
    return event_dict
