"""Commands over a durable store: resume, approvals, conversations.

- ``relaybaton resume FLOW --store PATH``: finish every conversation a crash left unfinished;
- ``relaybaton approvals list --store PATH``, ``approvals approve|reject ID --store PATH
  [--edit JSON]``: people decide on paused steps; while a service holds the store the
  decision goes to it (``_store_hold.py``), else ``resume`` or ``serve`` continues them;
- ``relaybaton conversations show ID --store PATH``: a conversation from its journal;
  ``list`` and the actions of a person are in ``_operate.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import msgspec
import structlog

from relaybaton.adapters import ChatMessage
from relaybaton.cli._store_hold import (
    decide_through_holder,
    holder_of,
    holding,
    refusal_text,
    token_for_holder,
)
from relaybaton.errors import ApprovalError, ConfigError, StoreInUseError
from relaybaton.runtime import (
    ApprovalDecided,
    ApprovalRequested,
    Conversation,
    Durability,
    Journal,
    MonotonicClock,
    Store,
)
from relaybaton.runtime._approvals import decide_on
from relaybaton.runtime._journal_events import (
    Appended,
    Charged,
    GuardrailTripped,
    HandedOff,
    JournalRecord,
    Replied,
    TurnFailed,
)

__all__ = ["add_durable_commands", "open_store_path"]

_encoder = msgspec.json.Encoder()
_log = structlog.get_logger("relaybaton.cli")
DURABILITIES = [d.value for d in Durability]


@asynccontextmanager
async def open_store_path(path: str, durability: str = "batched") -> AsyncIterator[Store]:
    """Open the store a ``--store`` option names (a SQLite file, a PostgreSQL URL)."""
    from relaybaton.stores._factory import open_store  # noqa: PLC0415 - heavy, lazy

    async with open_store(path, durability=Durability(durability)) as store:
        yield store


def add_durable_commands(commands: Any) -> None:
    """Register ``resume``, ``approvals`` and ``conversations`` on the CLI's subparsers."""
    resume = commands.add_parser("resume", help="finish every conversation a crash left unfinished")
    resume.add_argument("flow", help="the flow file (TOML)")
    resume.add_argument("--store", required=True, help="the SQLite file or PostgreSQL URL")
    resume.add_argument("--durability", choices=DURABILITIES, default="sync")
    resume.add_argument("--json", action="store_true", help="print one JSON object")
    resume.set_defaults(func=_resume)

    approvals = commands.add_parser("approvals", help="list and decide paused steps")
    actions = approvals.add_subparsers(dest="approvals_command", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="the requests waiting for a decision")
    listing.add_argument("--store", required=True)
    listing.add_argument("--all", action="store_true", help="decided ones too")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=_list_approvals)
    for name, help_text in (("approve", "approve (or edit, with --edit)"), ("reject", "reject")):
        action = actions.add_parser(name, help=help_text)
        action.add_argument("approval_id", metavar="ID")
        action.add_argument("--store", required=True)
        action.add_argument("--note", default="", help="a reason, shown to the model")
        action.add_argument(
            "--by",
            default="",
            help="who decided (kept in the journal; a running service records its token's name)",
        )
        action.add_argument(
            "--token", help="bearer token for a running service (default: $RELAYBATON_API_TOKEN)"
        )
        if name == "approve":
            action.add_argument(
                "--edit", metavar="JSON", help="run the call with these arguments instead"
            )
        action.set_defaults(func=_decide, decision=name)

    conversations = commands.add_parser("conversations", help="read conversations")
    verbs = conversations.add_subparsers(dest="conversations_command", required=True)
    show = verbs.add_parser("show", help="a conversation with its ownership history")
    show.add_argument("conversation_id", metavar="ID")
    show.add_argument("--store", required=True)
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=_show)
    from relaybaton.cli._operate import add_operator_verbs  # noqa: PLC0415 - it imports us

    add_operator_verbs(verbs)


def _run(main: Callable[[], Any]) -> int:
    try:
        return int(asyncio.run(main()))
    except ApprovalError as exc:
        _log.debug("command_refused", exc_info=exc)  # `--log-level debug` shows where
        print(f"relaybaton: {exc}", file=sys.stderr)
        return 2


# --- resume -------------------------------------------------------------------------------


def _resume(args: argparse.Namespace) -> int:
    from relaybaton.flow._compose import open_flow  # noqa: PLC0415
    from relaybaton.flow._file import load_flow  # noqa: PLC0415 - the composition root

    flow = load_flow(args.flow)

    async def main() -> int:
        async with (
            holding(args.store, f"relaybaton resume {args.flow}"),
            open_store_path(args.store, args.durability) as store,
            open_flow(flow, store=store, durability=args.durability) as runtime,
        ):
            by_id = runtime.conversations.by_id
            resumed = list(by_id)
            answered = {cid: _answered(by_id[cid]) for cid in resumed}
            await runtime.settle()
            summaries = [_summary(by_id[cid]) for cid in resumed]
            produced = {cid: _new_replies(by_id[cid], answered[cid]) for cid in resumed}
            pending = [_approval_json(a) for a in runtime.approvals()]
        if args.json:
            report = {"resumed": resumed, "conversations": summaries, "approvals": pending}
            print(_encoder.encode(report).decode())
        else:
            print(f"resumed {len(resumed)} conversation(s)")
            for item in summaries:
                cid = str(item["conversation_id"])
                print(f"  {cid}: {item['status']}, owner {item['owner']}")
                for agent, text in produced[cid]:  # what this resume answered
                    print(f"    {agent}: {text}")
            _print_pending(pending)
        return 0

    return _run(main)


def _answered(conversation: Conversation) -> set[str]:
    """The message ids whose turns have a result already."""
    return {mid for mid, turn in conversation.seen.items() if turn.result is not None}


def _new_replies(conversation: Conversation, before: set[str]) -> list[tuple[str, str]]:
    """(agent, text) of every reply of the turns finished since ``before``."""
    replies: list[tuple[str, str]] = []
    for mid, turn in conversation.seen.items():
        result = turn.result
        if result is None or mid in before:
            continue
        replies.extend((r.agent, r.text) for r in result.replies)
        if result.error:
            replies.append((result.owner or "?", f"failed: {result.error}"))
    return replies


def _summary(conversation: Conversation) -> dict[str, object]:
    last = [t for t in conversation.seen.values() if t.result is not None]
    return {
        "conversation_id": conversation.id,
        "owner": conversation.owner,
        "epoch": conversation.epoch,
        "status": conversation.status.value,
        "last_replies": [
            {"agent": r.agent, "text": r.text}
            for r in (last[-1].result.replies if last else ())  # type: ignore[union-attr]
        ],
    }


# --- approvals ----------------------------------------------------------------------------


def _approval_json(request: ApprovalRequested, decision: str = "") -> dict[str, object]:
    return {
        "approval_id": request.approval_id,
        "agent": request.agent,
        "tool": request.tool,
        "arguments": request.arguments,
        "arguments_hash": request.arguments_hash,
        "rule": request.rule,
        "requested_at": request.requested_at,
        "expires_at": request.expires_at,
        "decision": decision or None,
    }


def _print_pending(approvals: list[dict[str, object]]) -> None:
    for item in approvals:
        print(
            f"  waiting for a person: {item['approval_id']}  {item['tool']}({item['arguments']})"
            f"  rule: {item['rule']}"
        )


def _list_approvals(args: argparse.Namespace) -> int:
    async def main() -> int:
        async with open_store_path(args.store) as store:
            rows = await store.approvals(pending_only=not args.all)
            decoded = [
                (row, msgspec.json.decode(row.request, type=ApprovalRequested))
                for row in rows
                if row.request
            ]
        items = [dict(_approval_json(req, row.decision), conversation_id=row.conversation_id)
                 for row, req in decoded]  # fmt: skip
        if args.json:
            print(_encoder.encode(items).decode())
            return 0
        if not items:
            print("no approval requests are waiting")
        for item in items:
            when = datetime.fromtimestamp(float(item["requested_at"]), UTC)  # type: ignore[arg-type]
            print(
                f"{item['approval_id']}  {item['conversation_id']}  {item['tool']}"
                f"({item['arguments']})  rule: {item['rule']}  "
                f"{item['decision'] or 'waiting'}  since {when:%Y-%m-%d %H:%M:%S} UTC"
            )
        return 0

    return _run(main)


def _decide(args: argparse.Namespace) -> int:
    edit = getattr(args, "edit", None)
    decision = "edit" if edit else args.decision

    async def main() -> int:
        try:
            async with holding(args.store, f"relaybaton approvals {args.decision}"):
                return await _decide_in_store(args, decision, edit)
        except StoreInUseError as refused:  # a process continues it: the decision goes there
            return await _decide_through_holder(args, refused, decision, edit)

    return _run(main)


async def _decide_in_store(args: argparse.Namespace, decision: str, edit: str | None) -> int:
    """No process holds the store (this one does now): journal the decision there."""
    async with open_store_path(args.store, "sync") as store, _journal(store) as journal:
        row = await store.approval(args.approval_id)
        if row is None:
            raise ApprovalError(
                f"no approval request {args.approval_id!r} in {args.store}; "
                "list them with `relaybaton approvals list`",
                approval_id=args.approval_id,
            )
        conversation = await journal.load(row.conversation_id, entry="")
        if conversation is None:  # pragma: no cover - a row implies a journal
            raise ConfigError(f"conversation {row.conversation_id!r} has no journal")
        request = conversation.approvals[args.approval_id]
        taken, fresh = decide_on(
            conversation,
            args.approval_id,
            decision,
            arguments_hash=request.arguments_hash,
            arguments=edit,
            note=args.note,
            by=args.by,
            now=time.time(),
        )
        if fresh:
            journal.record(conversation, taken)
            await journal.flush()
    print(
        f"{taken.decision}: {args.approval_id} ({request.tool}); no service holds the store, "
        "so the conversation waits: continue it with `relaybaton resume FLOW --store ...` "
        "or `relaybaton serve FLOW --store ...`"
    )
    return 0


async def _decide_through_holder(
    args: argparse.Namespace, refused: StoreInUseError, decision: str, edit: str | None
) -> int:
    outcome = await decide_through_holder(
        refused.store,
        holder_of(refused),
        args.approval_id,
        decision,
        edit=edit,
        note=args.note,
        token=token_for_holder(args.token, os.environ),
    )
    if outcome.status >= 400:
        print(f"relaybaton: {refusal_text(outcome)}", file=sys.stderr)
        return 2
    print(
        f"{decision}: {args.approval_id}; sent to the service at {outcome.address}, which "
        "holds the store and continues the conversation now"
    )
    return 0


@asynccontextmanager
async def _journal(store: Store) -> AsyncIterator[Journal[Any]]:
    journal: Journal[Any] = Journal(
        store, ChatMessage, clock=MonotonicClock(), durability=Durability.SYNC
    )
    journal.start()
    try:
        yield journal
    finally:
        await journal.aclose()


# --- conversations show -------------------------------------------------------------------


def _show(args: argparse.Namespace) -> int:
    async def main() -> int:
        async with open_store_path(args.store) as store, _journal(store) as journal:
            bodies = await store.read(args.conversation_id)
            if not bodies:
                raise ConfigError(f"no conversation {args.conversation_id!r} in {args.store}")
            records = journal.decode(bodies)
            conversation = await journal.load(args.conversation_id, entry="")
        assert conversation is not None
        events = [e for r in records if (e := _event_of(r)) is not None]
        report: dict[str, object] = {
            "conversation_id": conversation.id,
            "owner": conversation.owner,
            "epoch": conversation.epoch,
            "status": conversation.status.value,
            "transcript": conversation.transcript,
            "ownership": [{"owner": r.owner, "epoch": r.epoch} for r in conversation.ownership],
            "events": events,
        }
        if args.json:
            print(_encoder.encode(report).decode())
            return 0
        print(
            f"conversation {conversation.id}: {conversation.status.value}, owner "
            f"{conversation.owner} at epoch {conversation.epoch}"
        )
        print(
            "  ownership: "
            + " → ".join(f"{r.owner or '(in flight)'}@{r.epoch}" for r in conversation.ownership)
        )
        for event in events:
            print("  " + "  ".join(f"{k}={v}" for k, v in event.items()))
        return 0

    return _run(main)


def _event_of(record: JournalRecord[Any]) -> dict[str, object] | None:
    """The journal record as an event of ``run --json``'s kinds, if it is one."""
    event = record.event
    base = {"seq": record.seq, "epoch": record.epoch}
    if isinstance(event, Charged):
        return {
            "kind": "model_call",
            "agent": event.agent,
            "model": event.model,
            "input_tokens": event.input_tokens,
            "output_tokens": event.output_tokens,
            "cost_usd": event.cost_usd,
            **base,
        }
    if isinstance(event, Appended) and type(event.item).__name__ == "ToolResultMessage":
        item = event.item
        return {
            "kind": "tool_call",
            "agent": event.agent,
            "tool": item.name,
            "call_id": item.call_id,
            "is_error": item.is_error,
            "result": item.content[:500],
            **base,
        }
    if isinstance(event, HandedOff):
        return {"kind": "handoff", "sender": event.sender, "target": event.target, **base}
    if isinstance(event, Replied):
        return {"kind": "reply", "agent": event.agent, "text": event.text, **base}
    if isinstance(event, TurnFailed):
        return {"kind": "reply", "agent": event.agent, "text": "", "error": event.error, **base}
    if isinstance(event, ApprovalRequested):
        return {"kind": "approval_requested", **_approval_json(event), **base}
    if isinstance(event, ApprovalDecided):
        return {
            "kind": "approval_decided",
            "approval_id": event.approval_id,
            "decision": event.decision,
            **base,
        }
    if isinstance(event, GuardrailTripped):
        return {"kind": "guardrail", **msgspec.structs.asdict(event), **base}
    return None
