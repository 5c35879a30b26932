"""The console's pages and fragments: conversations, one conversation, approvals.

Each function returns escaped markup (``_html.py``) from what the service already has:
the listing, a live conversation, the event hub's recent events, the approval desk.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from relaybaton.runtime import Conversation
from relaybaton.service._api_types import ConversationItem, OperatorState
from relaybaton.service.console._html import Html, html, join, pretty_json
from relaybaton.service.console._timeline import render_timeline

__all__ = [
    "approvals_fragment",
    "conversation_fragment",
    "conversations_fragment",
    "problem",
]


def _when(at: float) -> str:
    if not at:
        return "-"
    return dt.datetime.fromtimestamp(at, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def problem(message: str, *, status: int) -> Html:
    """A refusal explained on the page (a 409 says what changed)."""
    title = {409: "Conflict: the conversation changed", 403: "Refused", 404: "Not found"}.get(
        status, "Refused"
    )
    return html(
        '<div class="problem" role="alert" data-status="{}"><strong>{}'
        " ({})</strong><p>{}</p></div>",
        status,
        title,
        status,
        message,
    )


def conversations_fragment(items: Sequence[ConversationItem], next_cursor: str | None) -> Html:
    """The live list: waiting for a person first, then newest activity first."""
    if not items:
        return html(
            '<p class="empty">No conversations yet. Send one a message: POST {}</p>',
            "/v1/conversations/{id}/messages",
        )
    ordered = sorted(items, key=lambda c: (not c.waiting_for_a_person, -c.updated_at))
    rows = join(
        html(
            '<tr class="{}"><td><a href="/conversations/{}">{}</a></td><td>{}</td><td>{}</td>'
            "<td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            "waiting" if c.waiting_for_a_person else "",
            c.conversation_id,
            c.conversation_id,
            "waiting for a person" if c.waiting_for_a_person else c.status,
            c.owner or "(baton in flight)",
            c.epoch,
            "-" if c.cost_usd is None else f"${c.cost_usd:.4f}",
            _when(c.updated_at),
            c.flow,
        )
        for c in ordered
    )
    more = (
        html('<p><a href="/?cursor={}">Older conversations</a></p>', next_cursor)
        if next_cursor
        else Html("")
    )
    return html(
        '<table class="list" id="conversations"><thead><tr><th>conversation</th><th>status</th>'
        "<th>owner</th><th>epoch</th><th>cost</th><th>last activity</th><th>flow</th></tr></thead>"
        "<tbody>{}</tbody></table>{}",
        rows,
        more,
    )


def _item(item: msgspec.Struct, index: int) -> Html:
    data: dict[str, Any] = msgspec.to_builtins(item)
    kind = data.get("type", type(item).__name__)
    if kind == "user":
        is_note = str(data.get("message_id", "")).startswith("note-")
        return html(
            '<li class="msg {}" data-index="{}"><span class="who">{}</span><p>{}</p></li>',
            "note" if is_note else "user",
            index,
            "operator note" if is_note else "user",
            data.get("text", ""),
        )
    if kind == "assistant":
        calls = join(
            html(
                '<p class="call">calls <b>{}</b> <code>{}</code></p>',
                c.get("name"),
                c.get("arguments"),
            )
            for c in data.get("tool_calls", ())
        )
        agent = str(data.get("agent", ""))
        return html(
            '<li class="msg {}" data-index="{}"><span class="who">{}</span><p>{}</p>{}</li>',
            "person" if agent.startswith("person:") else "agent",
            index,
            agent or "assistant",
            data.get("text", ""),
            calls,
        )
    if kind == "tool_result":
        return html(
            '<li class="msg tool{}" data-index="{}"><span class="who">{}'
            " result</span><pre>{}</pre></li>",
            " error" if data.get("is_error") else "",
            index,
            data.get("name", ""),
            data.get("content", ""),
        )
    return html('<li class="msg" data-index="{}"><pre>{}</pre></li>', index, pretty_json(data))


_NOTHING = Html("")


def _controls(state: OperatorState, agents: Sequence[str], csrf: str) -> Html:
    cid = state.conversation_id

    def form(action: str, label: str, fields: Html = _NOTHING, cls: str = "") -> Html:
        return html(
            '<form method="post" action="/conversations/{}/{}" class="control {}">'
            '<input type="hidden" name="csrf" value="{}"><input type="hidden" name="epoch"'
            ' value="{}">'
            '{}<button type="submit" name="do" value="{}">{}</button></form>',
            cid,
            action,
            cls,
            csrf,
            state.epoch,
            fields,
            action,
            label,
        )

    person = (state.owner or "").startswith("person:")
    agent_options = join(html('<option value="{}">{}</option>', a, a) for a in agents)
    parts = [
        form("resume", "Resume")
        if state.paused_by or state.halted_before
        else form("pause", "Pause"),
        form(
            "note",
            "Add note",
            html('<input name="text" required placeholder="a note the next model call sees">'),
        ),
        form(
            "breakpoints",
            "Set breakpoints",
            html(
                '<input name="breakpoints" placeholder="tool:issue_refund agent:billing"'
                ' value="{}">',
                " ".join(state.breakpoints),
            ),
        ),
        form(
            "fork",
            "Fork",
            html('<input name="upto" type="number" min="0" required placeholder="items kept">'),
        ),
    ]
    if person:
        parts.append(
            form(
                "reply",
                "Reply as you",
                html(
                    '<textarea name="text" required placeholder="your reply to the'
                    ' user"></textarea>'
                ),
                "wide",
            )
        )
        parts.append(
            form("give", "Hand back", html('<select name="agent">{}</select>', agent_options))
        )
    else:
        parts.append(form("take", "Take the baton"))
    return join(parts)


def conversation_fragment(
    conversation: Conversation,
    state: OperatorState,
    agents: Sequence[str],
    events: Sequence[tuple[int, msgspec.Struct]],
    *,
    dropped: int,
    csrf: str,
    source: str = "",
) -> Html:
    """The transcript beside the timeline, the state, and the controls."""
    transcript = join(_item(item, i) for i, item in enumerate(conversation.transcript))
    facts = html(
        '<dl class="state" id="state"><dt>owner</dt><dd class="owner">{}</dd><dt>epoch</dt><dd'
        ' class="epoch">{}</dd>'
        "<dt>status</dt><dd"
        ' class="status">{}</dd><dt>paused</dt><dd>{}</dd><dt>breakpoints</dt><dd>{}</dd>'
        "<dt>notes waiting</dt><dd>{}</dd><dt>forked"
        " from</dt><dd>{}</dd><dt>cost</dt><dd>${}</dd></dl>",
        state.owner or "(baton in flight)",
        state.epoch,
        "waiting for a person" if state.waiting_for_a_person else state.status,
        (f"by {state.paused_by}" if state.paused_by else "no")
        + (f", halted before {state.halted_before}" if state.halted_before else ""),
        ", ".join(state.breakpoints) or "none",
        state.notes_pending,
        state.forked_from or "-",
        f"{conversation.usage_total().cost_usd:.6f}",
    )
    return html(
        '{}<div class="controls">{}</div><div class="split"><section'
        ' class="transcript"><h2>Transcript</h2>'
        '<ol id="transcript">{}</ol></section><section'
        ' class="trace"><h2>Timeline</h2>{}</section></div>',
        facts,
        _controls(state, agents, csrf),
        transcript,
        render_timeline(agents, events, dropped=dropped, source=source),
    )


def approvals_fragment(
    pending: Sequence[Mapping[str, Any]], context: Mapping[str, str], csrf: str
) -> Html:
    """The inbox: each request with its rule, arguments and conversation context."""
    if not pending:
        return html('<p class="empty">No approvals waiting.</p>')

    def card(request: Mapping[str, Any]) -> Html:
        cid = str(request.get("conversation_id", ""))
        buttons = join(
            html('<button type="submit" name="decision" value="{}">{}</button>', value, label)
            for value, label in (
                ("approve", "Approve"),
                ("reject", "Reject"),
                ("edit", "Approve edited"),
            )
        )
        return html(
            '<article class="approval" data-approval="{}"><h2>{} <small>by {}</small></h2>'
            '<p>conversation <a href="/conversations/{}">{}</a> · rule <code>{}</code></p>'
            '<p class="context">{}</p><pre class="arguments">{}</pre>'
            '<form method="post" action="/approvals/{}"><input type="hidden" name="csrf"'
            ' value="{}">'
            '<input type="hidden" name="arguments_hash" value="{}">'
            '<input name="reason" placeholder="a reason (optional)">{}'
            '<details><summary>edit the arguments</summary><textarea name="arguments">{}'
            "</textarea></details></form></article>",
            request.get("approval_id"),
            request.get("tool"),
            request.get("agent"),
            cid,
            cid,
            request.get("rule"),
            context.get(cid, ""),
            pretty_json(request.get("arguments")),
            request.get("approval_id"),
            csrf,
            request.get("arguments_hash"),
            buttons,
            pretty_json(request.get("arguments")),
        )

    return join(card(r) for r in pending)
