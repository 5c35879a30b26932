"""Commands that write to a store hold it; a decision goes to the process that holds it.

``serve``, ``run --store``, ``resume`` and a decision taken offline hold the store while
they write (``relaybaton/stores/_hold.py``): a second such process is refused at start-up
with a message naming the first. Reading commands (``conversations show|list``,
``approvals list``, ``eval --from-store``) take no hold and work beside a running service.
A cluster node takes none either (``exclusive=False``): there, partition leases and epochs
fence the writers.

A decision (``approvals approve|reject``) made while a service holds the store is sent to
that service's native API, which continues the conversation at once; when the holder takes
no decisions (a ``run`` or ``resume`` in progress) or cannot be reached, the command refuses
and writes nothing: a write behind the holder's back would be overwritten by it.
"""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import msgspec
import structlog

from relaybaton.errors import ConfigError, StoreInUseError
from relaybaton.service._auth import TokenTable
from relaybaton.stores._hold import HolderInfo, StoreHold, hold_store

__all__ = [
    "DecisionOutcome",
    "decide_through_holder",
    "holder_of",
    "holding",
    "reachable_address",
    "refusal_text",
    "token_for_holder",
]

TOKEN_ENV = "RELAYBATON_API_TOKEN"
_log = structlog.get_logger("relaybaton.cli")
_WILDCARDS = {"0.0.0.0", "::", ""}  # the binds that mean every interface


@asynccontextmanager
async def holding(
    store: str | None, command: str, *, exclusive: bool = True
) -> AsyncIterator[StoreHold | None]:
    """Hold ``store`` for a command that writes to it; None without a store or a hold.

    ``exclusive=False`` is the switch for cluster mode, where many nodes share one store.

    Raises:
        StoreInUseError: another process holds it.
    """
    if store is None or not exclusive:
        yield None
        return
    async with hold_store(store, HolderInfo.of_this_process(command)) as hold:
        yield hold


def holder_of(refused: StoreInUseError) -> HolderInfo | None:
    """The holder a refusal names (None when it could not say)."""
    if not refused.holder:
        return None
    return msgspec.convert(refused.holder, HolderInfo)


def token_for_holder(explicit: str | None, environ: Mapping[str, str]) -> str | None:
    """The bearer token to send: ``--token``, ``RELAYBATON_API_TOKEN``, else the first of
    the service's own (``RELAYBATON_API_TOKENS`` or its file), when this shell has them."""
    if explicit:
        return explicit
    if environ.get(TOKEN_ENV):
        return environ[TOKEN_ENV]
    table = TokenTable.from_environment(environ)
    return table.tokens[0].secret.decode() if table.tokens else None


def reachable_address(holder: HolderInfo) -> str:
    """The holder's address as this machine reaches it (a wildcard bind means its host)."""
    assert holder.address is not None
    parts = urlsplit(holder.address)
    host = (parts.hostname or "").strip("[]")
    if host not in _WILDCARDS:
        return holder.address
    here = holder.host == socket.gethostname()
    target = ("[::1]" if host == "::" else "127.0.0.1") if here else holder.host
    return urlunsplit(parts._replace(netloc=f"{target}:{parts.port}"))


class DecisionOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """What the holding service answered: its HTTP status and body."""

    address: str
    status: int
    body: Any


async def decide_through_holder(
    where: str,
    holder: HolderInfo | None,
    approval_id: str,
    decision: str,
    *,
    edit: str | None,
    note: str,
    token: str | None,
) -> DecisionOutcome:
    """Send a decision to the service that holds the store, over its native API.

    Raises:
        ConfigError: the holder takes no decisions (it is not a service, or does not
            listen yet), or cannot be reached; nothing was decided.
    """
    if holder is None or holder.address is None:
        who = holder.describe() if holder is not None else "another process"
        raise ConfigError(
            f"journal store {where} is in use by {who}, which takes no decisions from "
            "outside; nothing was decided: decide once it has ended (or, for a service that "
            "is starting, once it listens)"
        )
    address = reachable_address(holder)
    body: dict[str, object] = {"decision": decision, "reason": note}
    if edit is not None:
        try:
            body["arguments"] = json.loads(edit)
        except ValueError as exc:
            raise ConfigError(f"--edit: expected a JSON object, got {edit!r}") from exc
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = f"{address.rstrip('/')}/v1/approvals/{approval_id}"
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session,
            session.post(url, json=body, headers=headers) as response,
        ):
            answer = await response.json(content_type=None)
            return DecisionOutcome(address=address, status=response.status, body=answer)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        _log.debug("holder_unreachable", url=url, exc_info=exc)
        raise ConfigError(
            f"journal store {where} is held by {holder.describe()}, which cannot be reached "
            f"at {address}: {exc or type(exc).__name__}; nothing was decided. If that process "
            "is gone, decide again; if it runs elsewhere, decide through its address"
        ) from exc


def refusal_text(outcome: DecisionOutcome) -> str:
    """The service's refusal as one line."""
    error = outcome.body.get("error", {}) if isinstance(outcome.body, dict) else {}
    message = error.get("message") if isinstance(error, dict) else None
    return f"the service at {outcome.address} answered {outcome.status}: {message or outcome.body}"
