"""A conversation's trace as a timeline: one lane per agent (and one for people).

Each event is a row in the lane of whoever acted: model calls (model, the route's reason,
latency, tokens, cost), tool calls (arguments and result), approvals, replies, people's
actions. A baton pass is a row that spans from the sender's lane to the receiver's, with
its epoch. Everything shown is escaped (``_html.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import msgspec

from relaybaton.actors import ModelCallEvent, ReplyDeltaEvent, ToolCallEvent
from relaybaton.runtime.messages import (
    ApprovalDecidedEvent,
    ApprovalRequestedEvent,
    HandoffEvent,
    OperatorEvent,
    PausedEvent,
    ReplyEvent,
)
from relaybaton.service.console._html import Html, html, join

__all__ = ["MAX_LANES", "lane_css", "lanes_of", "render_timeline"]

MAX_LANES = 8
PEOPLE = "people"


def lane_css() -> str:
    """Grid placement rules for lanes and for baton rows spanning lanes."""
    rules = [
        f".lanes-{n} {{ grid-template-columns: repeat({n}, minmax(9rem, 1fr)); }}"
        for n in range(1, MAX_LANES + 1)
    ]
    rules += [f".lane-{n} {{ grid-column: {n}; }}" for n in range(1, MAX_LANES + 1)]
    rules += [
        f".span-{a}-{b} {{ grid-column: {a} / {b + 1}; }}"
        for a in range(1, MAX_LANES + 1)
        for b in range(a, MAX_LANES + 1)
    ]
    return "\n".join(rules) + "\n"


def lanes_of(agents: Sequence[str], events: Iterable[msgspec.Struct]) -> list[str]:
    """The lanes: the entry agent (first of ``agents``), the others in the order they
    acted, those that did not, and people last (when a person acted)."""
    order = list(agents[:1])
    people = False
    for event in events:
        people = people or isinstance(event, OperatorEvent)
        for who in (getattr(event, "agent", None), getattr(event, "target", None)):
            if isinstance(who, str) and who in agents and who not in order:
                order.append(who)
    order += [a for a in agents if a not in order]
    lanes = order[: MAX_LANES - 1]
    if people:
        lanes.append(PEOPLE)
    return lanes or [PEOPLE]


def _lane(lanes: list[str], who: str) -> int:
    if who.startswith("person:") or who not in lanes:
        who = PEOPLE if PEOPLE in lanes else lanes[-1]
    return lanes.index(who) + 1


def _span(lanes: list[str], source: str, target: str) -> str:
    a, b = sorted((_lane(lanes, source), _lane(lanes, target)))
    return f"span-{a}-{b}"


def _ms(seconds: float) -> str:
    if seconds != seconds:  # noqa: PLR0124 - NaN: rebuilt from the journal, which has none
        return "latency not journaled"
    return f"{seconds * 1000:.0f} ms"


_NOTHING = Html("")


def _row(event_id: int, kind: str, place: str, summary: Html, detail: Html = _NOTHING) -> Html:
    more = html("<details><summary>details</summary>{}</details>", detail) if detail else Html("")
    return html(
        '<div class="ev ev-{} {}" data-kind="{}" data-id="{}">{}{}</div>',
        kind,
        place,
        kind,
        event_id,
        summary,
        more,
    )


def render_event(lanes: list[str], event_id: int, event: msgspec.Struct) -> Html | None:
    """One row, or None for events the timeline leaves out (streamed deltas)."""
    if isinstance(event, ModelCallEvent):
        route = (
            html(
                ' · <span class="route">{}: {}</span>',
                event.route.policy or "route",
                event.route.reason,
            )
            if event.route is not None
            else Html("")
        )
        return _row(
            event_id,
            "model",
            f"lane-{_lane(lanes, event.agent)}",
            html(
                '<b>model</b> <span class="model">{}</span>{} · <span class="latency">{}</span>'
                " · {} in / {} out tokens · ${}{}",
                event.model,
                route,
                _ms(event.latency_s),
                event.input_tokens,
                event.output_tokens,
                f"{event.cost_usd:.6f}",
                "" if event.outcome == "ok" else f" · {event.outcome}",
            ),
        )
    if isinstance(event, ToolCallEvent):
        return _row(
            event_id,
            "tool",
            f"lane-{_lane(lanes, event.agent)}" + (" error" if event.is_error else ""),
            html("<b>tool</b> {} · {}", event.tool, _ms(event.latency_s)),
            html(
                "<dl><dt>arguments</dt><dd><pre>{}</pre></dd><dt>result</dt><dd><pre>{}</pre>"
                "</dd></dl>",
                event.arguments,
                event.result,
            ),
        )
    if isinstance(event, HandoffEvent):
        verb = {"handoff": "baton", "accept": "baton taken", "return": "baton back"}.get(
            event.action, event.action
        )
        return _row(
            event_id,
            "baton",
            _span(lanes, event.sender, event.target),
            html(
                '<b>{}</b> {} → {} · <span class="epoch">epoch {}</span>',
                verb,
                event.sender,
                event.target,
                event.epoch,
            ),
        )
    if isinstance(event, ApprovalRequestedEvent):
        return _row(
            event_id,
            "approval",
            f"lane-{_lane(lanes, event.agent)}",
            html("<b>approval asked</b> {} · rule {}", event.tool, event.rule),
            html("<pre>{}</pre>", event.arguments),
        )
    if isinstance(event, ApprovalDecidedEvent):
        return _row(
            event_id,
            "approval",
            f"lane-{_lane(lanes, event.by or PEOPLE)}",
            html("<b>approval {}</b> by {} {}", event.decision, event.by or "?", event.note),
        )
    if isinstance(event, ReplyEvent):
        return _row(
            event_id,
            "reply" if event.error is None else "reply error",
            f"lane-{_lane(lanes, event.agent)}",
            html("<b>reply</b> {}", event.error or event.text),
        )
    if isinstance(event, PausedEvent):
        return _row(
            event_id,
            "paused",
            f"lane-{_lane(lanes, event.agent)}",
            html("<b>waits for a person</b>"),
        )
    if isinstance(event, OperatorEvent):
        if event.action in {"take", "give"}:
            source, target = (
                (event.detail, event.by) if event.action == "take" else (event.by, event.detail)
            )
            return _row(
                event_id,
                "baton",
                _span(lanes, source, target),
                html(
                    '<b>baton {}</b> {} → {} · <span class="epoch">epoch {}</span>',
                    "taken by a person" if event.action == "take" else "handed back",
                    source,
                    target,
                    event.epoch,
                ),
            )
        return _row(
            event_id,
            "operator",
            f"lane-{_lane(lanes, event.by)}",
            html("<b>{}</b> by {} {}", event.action, event.by, event.detail),
        )
    if isinstance(event, ReplyDeltaEvent):
        return None
    kind = getattr(event, "kind", type(event).__name__)
    return _row(event_id, "other", f"lane-{len(lanes)}", html("<b>{}</b>", kind))


def _swap(
    lanes: list[str], event_id: int, event: msgspec.Struct, held: dict[str, str]
) -> Html | None:
    """A row where a slot's unrouted calls moved to another model: the slot was swapped.

    Routed calls pick among candidates call by call (their route says why), so only calls
    without a route show what the slot holds.
    """
    if not isinstance(event, ModelCallEvent) or event.route is not None:
        return None
    before = held.get(event.slot)
    held[event.slot] = event.model
    if before is None or before == event.model:
        return None
    return _row(
        event_id,
        "swap",
        f"span-1-{len(lanes)}",
        html("<b>swap</b> slot {}: {} → {}", event.slot, before, event.model),
    )


def render_timeline(
    agents: Sequence[str],
    events: Sequence[tuple[int, msgspec.Struct]],
    *,
    dropped: int = 0,
    source: str = "",
) -> Html:
    """The timeline of ``events`` (id, event), oldest first."""
    lanes = lanes_of(agents, [e for _, e in events])
    grid = f"row lanes-{len(lanes)}"
    heads = html(
        '<li class="{}">{}</li>',
        grid,
        join(
            html('<div class="lane-head lane-{}">{}</div>', n + 1, name)
            for n, name in enumerate(lanes)
        ),
    )
    # Each event is a row of its own with the lanes' columns, so the timeline reads down.
    rows = []
    held: dict[str, str] = {}  # slot -> the model its last unrouted call went to
    for event_id, event in events:
        swap = _swap(lanes, event_id, event, held)
        if swap is not None:
            rows.append(html('<li class="{}">{}</li>', grid, swap))
        cell = render_event(lanes, event_id, event)
        if cell is not None:
            rows.append(html('<li class="{}">{}</li>', grid, cell))
    note = html(
        "{}{}",
        html('<p class="note">{} earlier events are no longer kept for this view.</p>', dropped)
        if dropped
        else Html(""),
        html('<p class="note">{}</p>', source) if source else Html(""),
    )
    if not rows:
        return html('{}<p class="empty">No trace events yet.</p>', note)
    return html('{}<ol class="timeline" id="timeline">{}{}</ol>', note, heads, join(rows))
