"""Refusals of the HTTP service, and the one JSON shape every error answer has.

Every error answer is ``{"error": {"message", "type", "param", "code"}}`` with the status
that says what happened, the shape OpenAI's API uses, so the official client raises its own
error classes (``BadRequestError`` for 400, ``RateLimitError`` for 429, ...) against the
native API and the OpenAI-compatible endpoint alike.
"""

from __future__ import annotations

import msgspec

# ApiError lives with every other exception (relaybaton.errors); service code imports it
# from here, next to the encoder of the answer it becomes.
from relaybaton.errors import ApiError

__all__ = ["ApiError", "ErrorBody", "ErrorDetail", "error_json"]

# The ``type`` for each status, as OpenAI names them, so clients that switch on it work.
_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "conflict_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    502: "server_error",
    503: "server_error",
    504: "server_error",
}


class ErrorDetail(msgspec.Struct, frozen=True, kw_only=True):
    """What went wrong: a sentence, its class, the field at fault, a stable code."""

    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorBody(msgspec.Struct, frozen=True, kw_only=True):
    """The body of every error answer."""

    error: ErrorDetail


_encoder = msgspec.json.Encoder()


def error_json(status: int, message: str, *, code: str, param: str | None = None) -> bytes:
    """Encode an error answer for ``status``."""
    detail = ErrorDetail(
        message=message,
        type=_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error"),
        param=param,
        code=code,
    )
    return _encoder.encode(ErrorBody(error=detail))
