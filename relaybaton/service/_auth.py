"""Bearer tokens for the service: who may call it, and which flows each token may use.

Tokens come from ``RELAYBATON_API_TOKENS`` (comma-separated) or a file (one per line, ``#``
starts a comment). Each entry is ``TOKEN`` (every flow) or ``TOKEN:flow_a|flow_b``. They
are compared in constant time, and only a short hash of a token ever reaches a log or a
metric label. With no token configured the service answers loopback clients only.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import final

import msgspec

from relaybaton.errors import ConfigError
from relaybaton.service._errors import ApiError

__all__ = ["ApiToken", "TokenTable", "current_token", "is_loopback"]

TOKENS_ENV = "RELAYBATON_API_TOKENS"
TOKENS_FILE_ENV = "RELAYBATON_API_TOKENS_FILE"


class ApiToken(msgspec.Struct, frozen=True, kw_only=True):
    """One bearer token; ``flows`` is None for every flow. ``label`` is safe to log."""

    secret: bytes
    label: str
    flows: frozenset[str] | None = None

    def __repr__(self) -> str:  # the secret never reaches a repr, a log or a trace
        return f"ApiToken(label={self.label!r}, flows={self.flows!r})"


current_token: ContextVar[ApiToken | None] = ContextVar("current_token", default=None)
"""The token of the request being handled (set by the service's middleware)."""


def _parse_entry(entry: str, where: str) -> ApiToken:
    secret, sep, flows = entry.partition(":")
    secret = secret.strip()
    if len(secret) < 16:
        raise ConfigError(
            f"{where}: an API token must be at least 16 characters (got {len(secret)}); "
            "generate one with `python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
        )
    allowed = frozenset(f.strip() for f in flows.split("|") if f.strip()) if sep else None
    digest = hashlib.sha256(secret.encode()).hexdigest()[:12]
    return ApiToken(secret=secret.encode(), label=f"tok-{digest}", flows=allowed or None)


@functools.lru_cache(maxsize=1024)  # asked per request, of the same few peers
def is_loopback(host: str | None) -> bool:
    """Whether ``host`` (a peer address) is this machine."""
    if not host:
        return False
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


@final
class TokenTable:
    """The configured tokens; empty means loopback clients only."""

    def __init__(self, tokens: Iterable[ApiToken] = ()) -> None:
        self.tokens = tuple(tokens)

    @classmethod
    def from_environment(
        cls, environ: Mapping[str, str], path: str | Path | None = None
    ) -> TokenTable:
        """Read ``RELAYBATON_API_TOKENS`` and the token file (``path`` or its variable)."""
        tokens: list[ApiToken] = []
        for entry in environ.get(TOKENS_ENV, "").split(","):
            if entry.strip():
                tokens.append(_parse_entry(entry, TOKENS_ENV))
        file = path or environ.get(TOKENS_FILE_ENV)
        if file:
            try:
                lines = Path(file).read_text(encoding="utf-8").splitlines()
            except OSError as exc:
                raise ConfigError(f"cannot read the API token file {file}: {exc}") from exc
            for number, line in enumerate(lines, 1):
                entry = line.split("#", 1)[0].strip()
                if entry:
                    tokens.append(_parse_entry(entry, f"{file}:{number}"))
        return cls(tokens)

    @property
    def open_to_loopback_only(self) -> bool:
        """True when no token is configured."""
        return not self.tokens

    def authenticate(self, authorization: str | None, peer: str | None) -> ApiToken | None:
        """The caller's token (None for a loopback caller when no token is configured).

        Raises:
            ApiError: 401 for a missing or wrong token, 403 for a remote caller when the
                service has no tokens.
        """
        if not self.tokens:
            if is_loopback(peer):
                return None
            raise ApiError(
                403,
                "this server has no API tokens configured and answers loopback clients only; "
                "set RELAYBATON_API_TOKENS on the server to allow remote clients",
                code="loopback_only",
            )
        scheme, _, presented = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            raise ApiError(
                401,
                "missing bearer token: send `Authorization: Bearer <token>`",
                code="missing_token",
                headers={"WWW-Authenticate": 'Bearer realm="relaybaton"'},
            )
        candidate = presented.strip().encode()
        found: ApiToken | None = None
        # Compare against every token, in constant time each, so the answer's timing says
        # neither which token nor how much of one matched.
        for token in self.tokens:
            if hmac.compare_digest(candidate, token.secret) and found is None:
                found = token
        if found is None:
            raise ApiError(
                401,
                "invalid bearer token",
                code="invalid_token",
                headers={"WWW-Authenticate": 'Bearer realm="relaybaton", error="invalid_token"'},
            )
        return found

    @staticmethod
    def check_flow(token: ApiToken | None, flow: str) -> None:
        """Raise 403 unless ``token`` may use ``flow``."""
        if token is not None and token.flows is not None and flow not in token.flows:
            raise ApiError(
                403,
                f"this token may not use flow {flow!r}; it is allowed: "
                f"{', '.join(sorted(token.flows))}",
                code="flow_not_allowed",
            )
