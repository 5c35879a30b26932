"""Reading the three providers' error bodies and retry hints, for the choke point in ``_http``.

The shapes (each provider's documented error format):

- OpenAI and its copies: ``{"error": {"message", "type", "param", "code"}}``.
- Anthropic: ``{"type": "error", "error": {"type": "overloaded_error", "message"}}``, also
  as the data of an ``event: error`` after a 200.
- Gemini: ``{"error": {"code": 429, "message", "status": "RESOURCE_EXHAUSTED",
  "details": [{"@type": ".../google.rpc.RetryInfo", "retryDelay": "7s"}, ...]}}``.

Bodies that match none (an HTML page from a proxy, an empty body) still give a message.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from typing import Literal

import msgspec

__all__ = ["ProviderErrorBody", "ProviderReply", "parse_error_body", "retry_after_of"]


class ProviderReply(Exception):  # noqa: N818 - a signal to the choke point, not a user error
    """Raised by the pure codecs; ``model_error`` turns it into the ``ModelError`` to raise.

    ``kind`` is ``error`` (``detail`` is the provider's error body, e.g. an in-stream error
    event), ``malformed`` (the answer breaks the protocol), ``filtered`` (the provider
    refused the content) or ``truncated`` (the stream ended before its end marker).
    """

    def __init__(
        self, kind: Literal["error", "malformed", "filtered", "truncated"], detail: str
    ) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


# Error kinds that name a status when an error arrives in a stream, where there is none.
_IMPLIED_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "rate_limit_exceeded": 429,
    "insufficient_quota": 429,
    "api_error": 500,
    "server_error": 500,
    "overloaded_error": 529,
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "RESOURCE_EXHAUSTED": 429,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}

_CONTEXT_MARKERS = (
    "context_length_exceeded",
    "maximum context length",
    "prompt is too long",
    "input token count",
    "exceeds the maximum number of tokens",
    "context window",
)
_AUTH_MARKERS = ("invalid_api_key", "api_key_invalid", "api key not valid")
_FILTER_MARKERS = ("content_filter", "content_policy_violation")


class ProviderErrorBody(msgspec.Struct, frozen=True, kw_only=True):
    """What an error body said, normalised across providers."""

    message: str = ""
    kind: str = ""
    implied_status: int = 500
    context_length: bool = False
    content_filtered: bool = False
    auth: bool = False
    overloaded: bool = False
    quota_exhausted: bool = False
    retry_delay: float | None = None


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def parse_error_body(body: bytes | str) -> ProviderErrorBody:
    """Read an error body in any provider's shape; never raises."""
    try:
        doc = msgspec.json.decode(body) if body else None
    except msgspec.DecodeError:
        doc = None
    if not isinstance(doc, dict):
        text = body.decode(errors="replace") if isinstance(body, bytes) else body
        return ProviderErrorBody(message=" ".join(text.split())[:300])
    error = doc.get("error")
    if isinstance(error, str):  # some copies answer {"error": "text"}
        return ProviderErrorBody(message=error)
    if not isinstance(error, dict):
        return ProviderErrorBody(message=_str(doc.get("message")) or _str(doc.get("detail")))
    message = _str(error.get("message"))
    code = _str(error.get("code"))
    kind = code or _str(error.get("status")) or _str(error.get("type"))
    # Gemini's "status" and Anthropic's/OpenAI's "type" name the category; OpenAI's "code"
    # is the sharper one when present (context_length_exceeded, insufficient_quota).
    category = _str(error.get("status")) or _str(error.get("type"))
    reasons = " ".join(_detail_reasons(error.get("details")))
    haystack = f"{kind} {category} {message} {reasons}".lower()
    implied = _IMPLIED_STATUS.get(kind) or _IMPLIED_STATUS.get(category) or 500
    if isinstance(error.get("code"), int):
        implied = int(error["code"])
    return ProviderErrorBody(
        message=message,
        kind=kind,
        implied_status=implied,
        context_length=any(m in haystack for m in _CONTEXT_MARKERS),
        content_filtered=any(m in haystack for m in _FILTER_MARKERS),
        auth=any(m in haystack for m in _AUTH_MARKERS),
        overloaded="overloaded" in haystack,
        quota_exhausted="insufficient_quota" in haystack,
        retry_delay=_retry_delay(error.get("details")),
    )


def _detail_reasons(details: object) -> list[str]:
    if not isinstance(details, list):
        return []
    return [_str(d.get("reason")) for d in details if isinstance(d, dict)]


def _retry_delay(details: object) -> float | None:
    if not isinstance(details, list):
        return None
    for detail in details:
        if isinstance(detail, dict) and _str(detail.get("@type")).endswith("RetryInfo"):
            delay = _str(detail.get("retryDelay"))
            try:
                return float(delay.removesuffix("s"))
            except ValueError:
                return None
    return None


def retry_after_of(headers: Mapping[str, str], body: ProviderErrorBody) -> float | None:
    """Seconds the provider asked us to wait: ``retry-after-ms``, ``retry-after``, or the body.

    ``retry-after`` may be seconds or an HTTP date (RFC 9110); a date in the past means 0.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    if "retry-after-ms" in lowered:
        try:
            return max(float(lowered["retry-after-ms"]) / 1000.0, 0.0)
        except ValueError:
            pass
    value = lowered.get("retry-after")
    if value:
        try:
            return max(float(value), 0.0)
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError):
                return body.retry_delay
            return max(when.timestamp() - time.time(), 0.0)
    return body.retry_delay
