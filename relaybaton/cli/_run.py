"""The ``run`` and ``validate`` commands of the command line.

- ``relaybaton run FLOW --message TEXT [...]``: run one conversation in-process and print
  the replies and a compact trace (``--json`` for one JSON object);
- ``relaybaton validate FLOW``: check a flow file and list its problems.

The main CLI calls :func:`add_run_commands` with its argparse subparsers; a flow error
raised here reaches ``main``, which prints it and exits with status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
from contextlib import AsyncExitStack
from typing import Any, TextIO

import msgspec

from relaybaton.actors import (
    GuardrailEvent,
    ModelCallEvent,
    Runtime,
    ToolCallEvent,
    waiting_reply,
)
from relaybaton.adapters import ImagePart
from relaybaton.adapters._images import image_from_file
from relaybaton.cli._conversations import open_store_path
from relaybaton.cli._live import live_replies
from relaybaton.cli._store_hold import holding
from relaybaton.errors import ConfigError
from relaybaton.flow._compose import (
    build_agents,
    check_models,
    open_flow,
    parse_model_overrides,
)
from relaybaton.flow._file import FlowFile, load_flow
from relaybaton.runtime import (
    ApprovalRequested,
    Conversation,
    TurnResult,
)
from relaybaton.runtime.messages import HandoffEvent, ReplyEvent

__all__ = ["add_run_commands"]

_encoder = msgspec.json.Encoder()


def add_run_commands(commands: Any) -> None:
    """Register ``run`` and ``validate`` on the CLI's subparsers."""
    run = commands.add_parser("run", help="run a conversation through a flow, in-process")
    run.add_argument("flow", help="the flow file (TOML)")
    run.add_argument(
        "--message", "-m", action="append", required=True, help="a user message (repeatable)"
    )
    run.add_argument("--conversation", help="the conversation id (default: a new one)")
    run.add_argument(
        "--user",
        default="",
        help="whom the conversation is with: the namespace of their long-term memory "
        '(default: "default")',
    )
    run.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="SLOT=PROVIDER:MODEL",
        help="use another model for a slot for this run ('*=...' for every slot)",
    )
    run.add_argument("--json", action="store_true", help="print one JSON object")
    run.add_argument(
        "--image",
        action="append",
        default=[],
        metavar="PATH",
        help="an image (PNG, JPEG, GIF, WebP) sent with the first message (repeatable); "
        "the slot must have a vision-capable model",
    )
    run.add_argument(
        "--no-stream",
        action="store_true",
        help="on a terminal, print the replies when they end instead of as they stream",
    )
    run.add_argument(
        "--store",
        help="journal to this SQLite file (or PostgreSQL URL); the same --conversation "
        "continues it next time",
    )
    run.add_argument(
        "--durability",
        choices=["sync", "batched", "off"],
        default="sync",
        help="when journal writes count as done (default: sync)",
    )
    run.set_defaults(func=_run)

    validate = commands.add_parser(
        "validate",
        help="check a flow file and list its problems: everything run would refuse at load",
    )
    validate.add_argument("flow", help="the flow file (TOML)")
    validate.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="SLOT=PROVIDER:MODEL",
        help="check with another model for a slot, as run --model would use it",
    )
    validate.set_defaults(func=_validate)


def _validate(args: argparse.Namespace) -> int:
    flow = load_flow(args.flow)
    build_agents(flow)
    # The models too, as run builds them: base URLs, keys' variables, prices.
    asyncio.run(check_models(flow, parse_model_overrides(args.model, sorted(flow.models))))
    print(
        f"{args.flow}: ok — flow {flow.flow.name!r}, {len(flow.agents)} agents, "
        f"{len(flow.models)} model slots, entry {flow.entry!r}"
    )
    return 0


def _run(args: argparse.Namespace) -> int:
    flow = load_flow(args.flow)
    overrides = parse_model_overrides(args.model, sorted(flow.models))
    conversation_id = args.conversation or f"c-{secrets.token_hex(4)}"
    images = [image_from_file(path) for path in args.image]  # checked before anything runs
    live = not args.json and not args.no_stream and sys.stdout.isatty()
    results, conversation, waiting = asyncio.run(
        _converse(
            flow,
            overrides,
            conversation_id,
            args.message,
            args.store,
            args.durability,
            user=args.user,
            live=sys.stdout if live else None,
            images=images,
        )
    )
    if live:
        sys.stdout.write("trace:\n")
    if args.json:
        sys.stdout.write(_json_report(conversation, results, waiting) + "\n")
    else:
        _print_report(conversation, results, args.message, sys.stdout)
        if waiting:  # what the customer reads while a person decides
            print(f"  {conversation.owner}: {waiting_reply(conversation.id, waiting)}")
        for request in waiting:
            print(
                f"waiting for a person: {request.approval_id} {request.tool}"
                f"({request.arguments}) — rule {request.rule!r}"
            )
            if args.store:
                print(
                    f"  decide: relaybaton approvals approve|reject {request.approval_id} "
                    f"--store {args.store}\n"
                    f"  then:   relaybaton resume {args.flow} --store {args.store}"
                )
            else:
                print(
                    "  without --store the conversation ends with this process: run it with "
                    "--store PATH to decide later and resume it"
                )
    return 1 if any(r.error for r in results) else 0


async def _converse(  # noqa: PLR0917 - private; one call site passes the run's options
    flow: FlowFile,
    overrides: dict[str, str],
    conversation_id: str,
    messages: list[str],
    store_path: str | None,
    durability: str,
    *,
    user: str = "",
    live: TextIO | None = None,
    images: list[ImagePart] | None = None,
) -> tuple[list[TurnResult], Conversation, list[ApprovalRequested]]:
    async with AsyncExitStack() as stack:
        store = None
        if store_path:
            await stack.enter_async_context(
                holding(store_path, f"relaybaton run ({flow.flow.name})")
            )
            store = await stack.enter_async_context(open_store_path(store_path, durability))
        runtime = await stack.enter_async_context(
            open_flow(flow, model_overrides=overrides, store=store, durability=durability)
        )
        if live is not None:  # a person watches: the replies as they stream
            runtime.conversations.stream_replies = True
            stack.callback(runtime.conversations.subscribe(live_replies(conversation_id, live)))
        results: list[TurnResult] = []
        for index, text in enumerate(messages):
            if live is not None:
                live.write(f"  user: {text}\n")
            future = await runtime.accept(
                conversation_id, text, user=user, images=(images or []) if index == 0 else ()
            )
            await _until_done_or_waiting(runtime, conversation_id, future)
            if not future.done():
                break  # a person must decide first; later messages would only queue
            results.append(future.result())
        conversation = _conversation(runtime, conversation_id)
        waiting = conversation.pending_approvals
    return results, conversation, waiting


async def _until_done_or_waiting(
    runtime: Runtime, conversation_id: str, future: asyncio.Future[TurnResult]
) -> None:
    conversation = _conversation(runtime, conversation_id)
    changed = asyncio.Event()
    unsubscribe = runtime.conversations.subscribe(
        lambda cid, _event: changed.set() if cid == conversation_id else None
    )
    future.add_done_callback(lambda _: changed.set())
    try:
        # Not `busy`: in sync mode a finished turn's result arrives only after its commit.
        while not future.done() and not conversation.waiting_for_a_person:
            changed.clear()
            await changed.wait()
    finally:
        unsubscribe()


def _conversation(runtime: Runtime, conversation_id: str) -> Conversation:
    conversation = runtime.conversation(conversation_id)
    if conversation is None:  # pragma: no cover - send() always opens it
        raise ConfigError(f"conversation {conversation_id!r} was not opened")
    return conversation


def _usage(conversation: Conversation) -> dict[str, object]:
    total = conversation.usage_total()
    return {
        "input_tokens": total.input_tokens,
        "output_tokens": total.output_tokens,
        "cost_usd": round(total.cost_usd, 8),
        "estimated_calls": total.estimated_calls,  # calls whose tokens were estimated
        "by_agent": {
            agent: {
                "calls": entry.calls,
                "input_tokens": entry.input_tokens,
                "output_tokens": entry.output_tokens,
                "cost_usd": round(entry.cost_usd, 8),
                "estimated_calls": entry.estimated_calls,
            }
            for agent, entry in conversation.usage_by_agent().items()
        },
    }


def _json_report(
    conversation: Conversation,
    results: list[TurnResult],
    waiting: list[ApprovalRequested] | None = None,
) -> str:
    replies: list[dict[str, object]] = []
    for result in results:
        replies.extend({"agent": r.agent, "text": r.text} for r in result.replies)
        if result.error:
            replies.append({"agent": result.owner, "text": "", "error": result.error})
    report = {
        "conversation_id": conversation.id,
        "owner": conversation.owner,
        "epoch": conversation.epoch,
        "replies": replies,
        "events": conversation.events or [],
        "ownership": conversation.ownership,
        "status": conversation.status.value,
        "approvals": [
            {
                "approval_id": r.approval_id,
                "tool": r.tool,
                "arguments": r.arguments,
                "arguments_hash": r.arguments_hash,
                "rule": r.rule,
            }
            for r in waiting or []
        ],
        "usage": _usage(conversation),
    }
    if waiting:
        report["waiting_reply"] = waiting_reply(conversation.id, waiting)
    return _encoder.encode(report).decode()


def _print_report(
    conversation: Conversation, results: list[TurnResult], messages: list[str], out: TextIO
) -> None:
    epoch = 0
    owner = conversation.ownership[0].owner if conversation.ownership else None
    out.write(f"conversation {conversation.id}\n")
    out.write(f"  user: {messages[0]}\n")
    turn = 0
    for event in conversation.events or []:
        if isinstance(event, ModelCallEvent) and event.error:
            # A failed attempt (before a retry or a failover, or the last one) is never hidden.
            out.write(
                f"  [e{epoch} {owner}] model  {event.agent:<12} {event.model:<22} "
                f"{event.latency_s * 1000:7.1f} ms  FAILED {event.error}\n"
            )
        elif isinstance(event, ModelCallEvent):
            usage = f"{event.input_tokens}→{event.output_tokens} tok"
            if event.usage_estimated:  # the server gave no counts: estimated from the text
                usage = "~" + usage
            route = event.route
            via = f"  via {route.policy}" if route is not None and route.policy else ""
            out.write(
                f"  [e{epoch} {owner}] model  {event.agent:<12} {event.model:<22} "
                f"{event.latency_s * 1000:7.1f} ms  {usage:<14} ${event.cost_usd:.6f}{via}\n"
            )
            if route is not None and (route.stepped_down or route.policy == "rollout"):
                # What a reader must not miss: a cheaper model than asked for, or a new one.
                label = "budget" if route.stepped_down else "rollout"
                out.write(f"  [e{epoch} {owner}] {label:<6} {route.reason}\n")
        elif isinstance(event, ToolCallEvent):
            mark = "✗" if event.is_error else "✓"
            kind = "agent-tool" if event.tool_kind == "agent" else "tool"
            out.write(
                f"  [e{epoch} {owner}] {kind:<6} {event.agent} → {event.tool}"
                f"({event.arguments[:60]}) {mark} {event.result[:70]}\n"
            )
        elif isinstance(event, GuardrailEvent) and event.verdict != "passed":
            on = f" on {event.tool}" if event.tool else ""
            out.write(
                f"  [e{epoch} {owner}] guard  {event.guardrail} ({event.stage}{on}) "
                f"{event.verdict}: {event.reason[:70]}\n"
            )
        elif isinstance(event, HandoffEvent):
            if event.action == "handoff":
                out.write(
                    f"  [e{epoch} {owner}] handoff {event.sender} → {event.target} "
                    f"(epoch {event.epoch})\n"
                )
            elif event.action == "return":
                out.write(
                    f"  [e{event.epoch} {event.target}] baton returned {event.sender} → "
                    f"{event.target}\n"
                )
            epoch, owner = event.epoch, event.target
        elif isinstance(event, ReplyEvent):
            if event.error:
                out.write(f"  ! {event.agent} failed: {event.error}\n")
            else:
                out.write(f"  {event.agent}: {event.text}\n")
            turn += 1
            if turn < len(messages):
                out.write(f"  user: {messages[turn]}\n")
    total = conversation.usage_total()
    out.write(
        f"owner {conversation.owner} at epoch {conversation.epoch} · {total.calls} model calls · "
        f"{total.input_tokens} in / {total.output_tokens} out tokens · ${total.cost_usd:.6f}\n"
    )
    for result in results:
        if result.error:
            out.write(f"error in turn {result.message_id}: {result.error}\n")
