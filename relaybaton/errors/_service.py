"""The error the HTTP service answers with."""

from __future__ import annotations

from collections.abc import Mapping
from typing import final

from relaybaton.errors._base import RelaybatonError

# --- the HTTP service ---------------------------------------------------------------------


@final
class ApiError(RelaybatonError):
    """A request the HTTP service refuses; its middleware turns it into an error answer.

    It never leaves the service: handlers raise it, the middleware answers it with
    ``status`` and the JSON body ``{"error": {"message", "type", "param", "code"}}`` and
    counts it by ``code``.

    Attributes:
        status: the HTTP status of the answer (400, 401, 404, 429, ...).
        message: the sentence the client reads.
        code: a stable, machine-readable reason (``invalid_body``, ``rate_limited``, ...).
        param: the request field at fault, when one is.
        headers: extra answer headers (``Retry-After``, ``WWW-Authenticate``).
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.headers = dict(headers or {})
