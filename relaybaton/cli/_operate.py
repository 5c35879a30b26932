"""``relaybaton conversations list|pause|resume|take|reply|give|note|break|fork``.

``list`` reads a journal (``--store``) or asks a running server (``--url``); the actions
ask a running server (``relaybaton serve``; ``--url``, or ``--store`` for the one that holds
that store) over its native API, as the person its token names (``--token``, or
``RELAYBATON_API_TOKEN``, else the first of the server's own ``RELAYBATON_API_TOKENS``;
none for a loopback server without tokens). A refusal prints the server's message (a 409
says what changed) and exits 2.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from datetime import UTC, datetime
from typing import Any

import aiohttp

from relaybaton.cli._store_hold import reachable_address, token_for_holder
from relaybaton.errors import ConfigError
from relaybaton.runtime._listing import HeadQuery
from relaybaton.stores._hold import read_holder

__all__ = ["add_operator_verbs"]

TOKEN_ENV = "RELAYBATON_API_TOKEN"

# verb -> (method, path after the conversation, help, the body's fields from arguments)
_ACTIONS: dict[str, tuple[str, str, str]] = {
    "pause": ("POST", "pause", "stop before the next model or tool call"),
    "resume": ("POST", "resume", "go on from where it halted"),
    "take": ("POST", "baton/take", "take the baton as a person (needs --epoch)"),
    "reply": ("POST", "baton/reply", "answer the user as the person holding the baton"),
    "give": ("POST", "baton/give", "hand the baton to an agent"),
    "note": ("POST", "notes", "leave a note the next model call sees"),
    "break": ("PUT", "breakpoints", "halt before tools or agents (tool:NAME, agent:NAME)"),
    "fork": ("POST", "fork", "start a new conversation from a point in this one"),
}


def add_operator_verbs(verbs: Any) -> None:
    """Add ``list`` and the actions to ``relaybaton conversations``."""
    listing = verbs.add_parser("list", help="conversations, newest activity first")
    where = listing.add_mutually_exclusive_group(required=True)
    where.add_argument("--store", help="read this journal (SQLite file or PostgreSQL URL)")
    where.add_argument("--url", help="ask this server (http://host:port)")
    listing.add_argument("--status", default="", help="comma-separated statuses")
    listing.add_argument("--owner", help="only those this agent or person:NAME holds")
    listing.add_argument("--since", type=float, help="updated at or after (epoch seconds)")
    listing.add_argument("--until", type=float, help="updated before (epoch seconds)")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--cursor", help="the next_cursor of the previous page")
    listing.add_argument("--token", help=f"bearer token (default: ${TOKEN_ENV})")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=_list)
    for verb, (_, _, help_text) in _ACTIONS.items():
        action = verbs.add_parser(verb, help=help_text)
        action.add_argument("conversation_id", metavar="ID")
        server = action.add_mutually_exclusive_group(required=True)
        server.add_argument("--url", help="the server (http://host:port)")
        server.add_argument(
            "--store", help="the store a running server holds: act through that server"
        )
        action.add_argument("--token", help=f"bearer token (default: ${TOKEN_ENV})")
        needs_epoch = verb in {"take", "reply", "give"}
        action.add_argument(
            "--epoch",
            type=int,
            required=needs_epoch,
            help="the epoch you saw: a newer one refuses the action (409)",
        )
        if verb == "pause":
            action.add_argument("--reason", default="")
        if verb in {"reply", "note"}:
            action.add_argument("text")
        if verb == "give":
            action.add_argument("agent")
        if verb == "break":
            action.add_argument("points", nargs="*", metavar="POINT")
        if verb == "fork":
            action.add_argument("--upto", type=int, required=True, help="transcript items kept")
            action.add_argument("--new-id", help="the new conversation's id")
            action.add_argument("--agent", help="its first owner (the entry agent by default)")
            action.add_argument(
                "--model",
                action="append",
                default=[],
                metavar="AGENT=PROVIDER:MODEL",
                help="the fork runs AGENT on this model (or a candidate of its slot); repeatable",
            )
            action.add_argument(
                "--instructions",
                action="append",
                default=[],
                metavar="AGENT=TEXT",
                help="the fork gives AGENT these instructions instead of the flow's; repeatable",
            )
        action.set_defaults(func=_act, verb=verb)


def _body(args: argparse.Namespace) -> dict[str, object]:
    body: dict[str, object] = {}
    if args.epoch is not None:
        body["epoch"] = args.epoch
    match args.verb:
        case "pause":
            body["reason"] = args.reason
        case "reply" | "note":
            body["text"] = args.text
        case "give":
            body["agent"] = args.agent
        case "break":
            body["breakpoints"] = list(args.points)
        case "fork":
            body = {"upto": args.upto}
            if args.new_id:
                body["conversation_id"] = args.new_id
            if args.agent:
                body["agent"] = args.agent
            if args.model:
                body["models"] = _per_agent("--model", args.model)
            if args.instructions:
                body["instructions"] = _per_agent("--instructions", args.instructions)
    return body


def _per_agent(option: str, values: list[str]) -> dict[str, str]:
    """``AGENT=VALUE`` pairs as a mapping; the value may hold ``=`` and ``:``."""
    chosen: dict[str, str] = {}
    for value in values:
        agent, sep, rest = value.partition("=")
        if not sep or not agent or not rest:
            raise ConfigError(f"{option}: expected AGENT=VALUE, got {value!r}")
        chosen[agent] = rest
    return chosen


async def _request(
    args: argparse.Namespace, method: str, path: str, body: object | None
) -> tuple[int, Any]:
    token = token_for_holder(args.token, os.environ)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = args.url.rstrip("/") + path
    try:
        async with (
            aiohttp.ClientSession(headers=headers) as session,
            session.request(method, url, json=body) as response,
        ):
            return response.status, await response.json(content_type=None)
    except (aiohttp.ClientError, json.JSONDecodeError) as exc:
        raise ConfigError(
            f"cannot reach {args.url}: {exc}; is `relaybaton serve` running?"
        ) from exc


def _report(status: int, data: Any) -> int:
    if status >= 400:
        error = data.get("error", {}) if isinstance(data, dict) else {}
        print(f"relaybaton: {status}: {error.get('message', data)}", file=sys.stderr)
        return 2
    print(json.dumps(data, indent=2, sort_keys=True))
    return 0


def _act(args: argparse.Namespace) -> int:
    method, tail, _ = _ACTIONS[args.verb]
    path = f"/v1/conversations/{args.conversation_id}/{tail}"
    if args.url is None:
        args.url = asyncio.run(_server_holding(args.store))
    status, data = asyncio.run(_request(args, method, path, _body(args)))
    return _report(status, data)


async def _server_holding(store: str) -> str:
    """The address of the service that holds ``store``: people act through it, never on
    the store behind its back (it would overwrite what they wrote)."""
    holder = await read_holder(store)
    if holder is None:
        raise ConfigError(
            f"no service holds {store}: start `relaybaton serve FLOW --store {store}` to act "
            "on its conversations, or give its --url"
        )
    if holder.address is None:
        raise ConfigError(
            f"{store} is held by {holder.describe()}, which takes no actions from outside; "
            "act once it has ended, through `relaybaton serve`"
        )
    return reachable_address(holder)


def _list(args: argparse.Namespace) -> int:
    if args.url:
        params = {
            "status": args.status,
            "owner": args.owner or "",
            "updated_after": "" if args.since is None else repr(args.since),
            "updated_before": "" if args.until is None else repr(args.until),
            "limit": str(args.limit),
            "cursor": args.cursor or "",
        }
        query = "&".join(f"{k}={v}" for k, v in params.items() if v)
        status, data = asyncio.run(_request(args, "GET", f"/v1/conversations?{query}", None))
        if status >= 400 or args.json:
            return _report(status, data)
        rows = data["data"]
        cursor = data["next_cursor"]
    else:
        rows, cursor = asyncio.run(_list_store(args))
        if args.json:
            return _report(200, {"data": rows, "next_cursor": cursor})
    for row in rows:
        at = datetime.fromtimestamp(row["updated_at"], UTC).strftime("%Y-%m-%d %H:%M:%S")
        print(
            f"{row['conversation_id']}  {row['status']}  owner={row['owner'] or '-'}  "
            f"epoch={row['epoch']}  updated={at}"
        )
    if cursor:
        print(f"more: --cursor '{cursor}'")
    return 0


async def _list_store(args: argparse.Namespace) -> tuple[list[dict[str, Any]], str | None]:
    from relaybaton.cli._conversations import open_store_path  # noqa: PLC0415 - cycle

    query = HeadQuery(
        statuses=tuple(s for s in args.status.split(",") if s),
        owner=args.owner,
        updated_after=args.since,
        updated_before=args.until,
        cursor=args.cursor,
        limit=args.limit,
    )
    async with open_store_path(args.store) as store:
        page = await store.list_heads(query)
    rows = [
        {
            "conversation_id": h.conversation_id,
            "owner": h.owner,
            "epoch": h.epoch,
            "status": h.status,
            "unfinished": h.unfinished,
            "updated_at": h.updated_at,
        }
        for h in page.heads
    ]
    return rows, page.next_cursor
