"""``relaybaton feedback CONVERSATION --rating N``: rate a conversation on a running server.

It posts to ``serve``'s ``/v1/conversations/{id}/feedback`` (the server journals it, turns
it into a grade and counts it in the satisfaction metric), with the bearer token from
``--token`` or ``RELAYBATON_TOKEN`` when the server asks for one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from typing import Any

import aiohttp

from relaybaton.errors import ConfigError

__all__ = ["add_feedback_command"]


def add_feedback_command(commands: Any) -> None:
    """Register ``feedback`` on the CLI's subparsers."""
    command = commands.add_parser("feedback", help="rate a conversation on a running server")
    command.add_argument("conversation_id", help="the conversation to rate")
    command.add_argument("--rating", type=int, required=True, help="1 (bad) to 5 (excellent)")
    command.add_argument("--comment", default="", help="what the user said about it")
    command.add_argument("--message-id", default="", help="the message the rating is about")
    command.add_argument(
        "--url", default="http://127.0.0.1:8080", help="the server (http://127.0.0.1:8080)"
    )
    command.add_argument("--token", help="bearer token (default: $RELAYBATON_TOKEN)")
    command.set_defaults(func=_feedback)


async def _post(url: str, body: dict[str, object], token: str | None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session,
            session.post(url, json=body, headers=headers) as response,
        ):
            return response.status, await response.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot reach {url}: {exc}; is `relaybaton serve` running?") from exc


def _feedback(args: argparse.Namespace) -> int:
    if not 1 <= args.rating <= 5:
        raise ConfigError(f"--rating must be 1 to 5, got {args.rating}")
    url = f"{args.url.rstrip('/')}/v1/conversations/{args.conversation_id}/feedback"
    body: dict[str, object] = {"rating": args.rating}
    if args.comment:
        body["comment"] = args.comment
    if args.message_id:
        body["message_id"] = args.message_id
    token = args.token or os.environ.get("RELAYBATON_TOKEN")
    status, answer = asyncio.run(_post(url, body, token))
    if status != 202:
        error = answer.get("error", {}) if isinstance(answer, dict) else {}
        raise ConfigError(f"the server refused the feedback ({status}): {error.get('message')}")
    print(
        f"rated {args.conversation_id}: {answer['rating']}/5 → grade {answer['utility']:.2f} "
        f"of {answer['agent'] or 'the flow'}" + (" (journaled)" if answer["journaled"] else "")
    )
    return 0
